//! Whether real Kata Containers can run: a pure decision over facts gathered elsewhere.

use super::{Item, Status};

/// Kata 2.x/3.x are containerd shim v2 runtimes, which dockerd accepts from Engine 23 on.
const MIN_ENGINE_MAJOR: u32 = 23;

/// `/dev/vhost-net`, which Kata's default networking (tap + vhost) needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VhostNet {
    Present,
    /// Built as a module for this kernel but not loaded (no device node yet).
    NotLoaded,
    /// Not in this kernel at all.
    Absent,
}

/// What the Kata verdict depends on.
#[derive(Debug)]
pub(super) struct KataFacts<'a> {
    /// dockerd's registered runtime names, or why they are unknown.
    pub runtimes: Result<&'a [String], &'a str>,
    /// Docker Engine version string (e.g. `20.10.24+dfsg1`); `None` when unreachable.
    pub engine_version: Option<&'a str>,
    /// `Ok` when the KVM probe ran a guest, else why not.
    pub kvm: Result<(), &'a str>,
    pub vhost_net: VhostNet,
}

/// A Kata runtime as dockerd may register it: `kata`, `kata-runtime`,
/// `io.containerd.kata.v2`, or any other name containing "kata" (`kata-qemu`, `kata-fc`).
fn is_kata_runtime(name: &str) -> bool {
    name.to_ascii_lowercase().contains("kata")
}

/// The major number of a Docker Engine version (`20.10.24+dfsg1` -> 20, `28.2.2` -> 28).
pub(super) fn engine_major(version: &str) -> Option<u32> {
    let major = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()?;
    major.parse().ok()
}

/// `Some(true)` when `version` is at least `major`; `None` when it cannot be read.
pub(super) fn engine_at_least(version: &str, major: u32) -> Option<bool> {
    engine_major(version).map(|m| m >= major)
}

/// `kata`: Ok only with a Kata runtime in dockerd, Engine >= 23, usable KVM and vhost-net;
/// otherwise Missing with every reason that applies.
pub(super) fn kata_item(facts: &KataFacts<'_>) -> Item {
    let mut reasons = Vec::new();
    let runtime = match facts.runtimes {
        Err(why) => {
            reasons.push(format!("dockerd runtimes unknown ({why})"));
            None
        }
        Ok(names) => {
            let found = names.iter().find(|n| is_kata_runtime(n));
            if found.is_none() {
                reasons.push("no kata runtime registered in dockerd".to_owned());
            }
            found
        }
    };
    if let Some(version) = facts.engine_version {
        match engine_at_least(version, MIN_ENGINE_MAJOR) {
            Some(true) => {}
            Some(false) => reasons.push(format!(
                "Docker Engine {version} < {MIN_ENGINE_MAJOR} (Kata 2.x/3.x need shim v2 runtimes)"
            )),
            None => reasons.push(format!("Docker Engine version {version:?} not understood")),
        }
    }
    if let Err(why) = facts.kvm {
        reasons.push(format!("KVM not usable: {why}"));
    }
    let vhost_net = match facts.vhost_net {
        VhostNet::Present => None,
        VhostNet::NotLoaded => {
            Some("/dev/vhost-net missing (module not loaded: modprobe vhost_net)")
        }
        VhostNet::Absent => Some("/dev/vhost-net missing (no vhost-net in this kernel)"),
    };
    reasons.extend(vhost_net.map(str::to_owned));

    match (runtime, facts.engine_version) {
        (Some(runtime), Some(version)) if reasons.is_empty() => Item::new(
            "kata",
            Status::Ok,
            format!(
                "runtime {runtime} on Docker Engine {version}; KVM usable; /dev/vhost-net present"
            ),
        ),
        _ => Item::new("kata", Status::Missing, reasons.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn version_comparison() {
        assert_eq!(engine_at_least("20.10.24", 23), Some(false));
        assert_eq!(engine_at_least("20.10.24+dfsg1", 23), Some(false));
        assert_eq!(engine_at_least("28.2.2", 23), Some(true));
        assert_eq!(engine_at_least("23.0.0", 23), Some(true));
        assert_eq!(engine_at_least("1.13.1", 23), Some(false));
        assert_eq!(engine_at_least("17.03.0-ce", 23), Some(false));
        assert_eq!(engine_at_least("v26.1.0", 23), Some(true));
        assert_eq!(engine_at_least("dev", 23), None);
        assert_eq!(engine_at_least("", 23), None);
    }

    #[test]
    fn kata_runtime_names() {
        for name in [
            "kata",
            "kata-runtime",
            "io.containerd.kata.v2",
            "kata-qemu",
            "io.containerd.Kata-fc.v2",
        ] {
            assert!(is_kata_runtime(name), "{name}");
        }
        for name in ["runc", "crun", "io.containerd.runc.v2", "runsc"] {
            assert!(!is_kata_runtime(name), "{name}");
        }
    }

    #[test]
    fn this_machine_lists_every_reason() {
        let runtimes = names(&["io.containerd.runc.v2", "runc", "crun"]);
        let item = kata_item(&KataFacts {
            runtimes: Ok(&runtimes),
            engine_version: Some("20.10.24"),
            kvm: Err("KVM_RUN did not return within 5 s (guest hangs: use TCG)"),
            vhost_net: VhostNet::Absent,
        });
        assert_eq!(item.status, Status::Missing);
        assert_eq!(
            item.detail,
            "no kata runtime registered in dockerd; \
             Docker Engine 20.10.24 < 23 (Kata 2.x/3.x need shim v2 runtimes); \
             KVM not usable: KVM_RUN did not return within 5 s (guest hangs: use TCG); \
             /dev/vhost-net missing (no vhost-net in this kernel)"
        );
    }

    #[test]
    fn a_real_kata_host_is_ok() {
        let runtimes = names(&["runc", "io.containerd.kata.v2"]);
        let item = kata_item(&KataFacts {
            runtimes: Ok(&runtimes),
            engine_version: Some("28.2.2"),
            kvm: Ok(()),
            vhost_net: VhostNet::Present,
        });
        assert_eq!(item.status, Status::Ok, "{}", item.detail);
        assert!(
            item.detail
                .starts_with("runtime io.containerd.kata.v2 on Docker Engine 28.2.2")
        );
    }

    #[test]
    fn each_single_gap_is_named() {
        let runtimes = names(&["kata"]);
        let base = KataFacts {
            runtimes: Ok(&runtimes),
            engine_version: Some("26.1.4"),
            kvm: Ok(()),
            vhost_net: VhostNet::Present,
        };
        assert_eq!(kata_item(&base).status, Status::Ok);

        let no_vhost = kata_item(&KataFacts {
            vhost_net: VhostNet::NotLoaded,
            ..base
        });
        assert_eq!(no_vhost.status, Status::Missing);
        assert_eq!(
            no_vhost.detail,
            "/dev/vhost-net missing (module not loaded: modprobe vhost_net)"
        );

        let no_kvm = kata_item(&KataFacts {
            runtimes: Ok(&runtimes),
            engine_version: Some("26.1.4"),
            kvm: Err("/dev/kvm missing"),
            vhost_net: VhostNet::Present,
        });
        assert_eq!(no_kvm.detail, "KVM not usable: /dev/kvm missing");

        let no_daemon = kata_item(&KataFacts {
            runtimes: Err("dockerd not reachable"),
            engine_version: None,
            kvm: Ok(()),
            vhost_net: VhostNet::Present,
        });
        assert_eq!(no_daemon.status, Status::Missing);
        assert_eq!(
            no_daemon.detail,
            "dockerd runtimes unknown (dockerd not reachable)"
        );
    }
}

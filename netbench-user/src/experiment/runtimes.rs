//! Which OCI runtime each requested name means on this daemon, and why a scenario cannot
//! run (a runtime that is missing, Kata with the host driver, ...). Pure decisions over
//! facts gathered elsewhere, so they are unit-tested without Docker.
use super::matrix::Driver;

/// Kata 2.x/3.x are containerd shim v2 runtimes, which dockerd accepts from Engine 23 on.
const KATA_MIN_ENGINE: u32 = 23;

/// What the decision needs to know about the host and daemon.
#[derive(Clone, Debug)]
pub struct RuntimeFacts<'a> {
    /// dockerd's registered runtime names.
    pub registered: &'a [String],
    /// Docker Engine version, e.g. `20.10.24+dfsg1`.
    pub engine_version: &'a str,
    pub dev_kvm: bool,
    pub dev_vhost_net: bool,
}

impl RuntimeFacts<'_> {
    /// The device facts of this host.
    #[must_use]
    pub fn host_devices() -> (bool, bool) {
        (
            std::path::Path::new("/dev/kvm").exists(),
            std::path::Path::new("/dev/vhost-net").exists(),
        )
    }
}

/// A requested runtime, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// dockerd's name for it (`HostConfig.Runtime`).
    Available(String),
    /// Why its scenarios are unsupported.
    Missing(String),
}

/// Kata Containers under any of its names (`kata`, `kata-runtime`, `kata-qemu`,
/// `io.containerd.kata.v2`, ...).
#[must_use]
pub fn is_kata(name: &str) -> bool {
    name.to_ascii_lowercase().contains("kata")
}

/// Map a requested runtime name to one dockerd knows.
#[must_use]
pub fn resolve(requested: &str, facts: &RuntimeFacts<'_>) -> Resolved {
    let has = |n: &str| facts.registered.iter().any(|r| r == n);
    let listing = || facts.registered.join(", ");
    if has(requested) {
        return Resolved::Available(requested.to_owned());
    }
    if requested == "runc" && has("io.containerd.runc.v2") {
        return Resolved::Available("io.containerd.runc.v2".to_owned());
    }
    if is_kata(requested) {
        // Prefer the shim v2 name, then the classic ones.
        let preferred = ["io.containerd.kata.v2", "kata", "kata-runtime"];
        let found = preferred
            .iter()
            .find(|p| has(p))
            .map(|p| (*p).to_owned())
            .or_else(|| facts.registered.iter().find(|r| is_kata(r)).cloned());
        return match found {
            Some(name) => Resolved::Available(name),
            None => Resolved::Missing(kata_missing_reason(facts)),
        };
    }
    Resolved::Missing(format!(
        "dockerd has no runtime '{requested}' (registered: {})",
        listing()
    ))
}

/// Everything that keeps Kata from running here, in one line.
#[must_use]
pub fn kata_missing_reason(facts: &RuntimeFacts<'_>) -> String {
    let mut parts = vec![format!(
        "no Kata runtime registered in dockerd (registered: {})",
        facts.registered.join(", ")
    )];
    match engine_major(facts.engine_version) {
        Some(m) if m >= KATA_MIN_ENGINE => {}
        Some(_) => parts.push(format!(
            "Docker Engine {} is too old: Kata 2.x/3.x are containerd shim v2 runtimes and need \
             Docker Engine >= {KATA_MIN_ENGINE} (Kata >= 3.29 needs >= 26)",
            facts.engine_version
        )),
        None => parts.push(format!(
            "Docker Engine version '{}' not understood; Kata needs >= {KATA_MIN_ENGINE}",
            facts.engine_version
        )),
    }
    if !facts.dev_kvm {
        parts.push("no /dev/kvm (Kata runs each container in a KVM guest)".to_owned());
    }
    if !facts.dev_vhost_net {
        parts.push("no /dev/vhost-net (Kata's tap networking uses vhost-net)".to_owned());
    }
    format!("Kata Containers cannot run here: {}", parts.join("; "))
}

/// The major number of a Docker Engine version (`20.10.24+dfsg1` -> 20).
#[must_use]
pub fn engine_major(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .next()?
        .parse()
        .ok()
}

/// Why `runtime` cannot be combined with `driver`, whatever the host has.
#[must_use]
pub fn driver_unsupported(runtime: &str, driver: Driver) -> Option<String> {
    (is_kata(runtime) && driver == Driver::Host).then(|| {
        "Kata Containers cannot use the host network driver: each container runs in its own \
         VM with its own kernel, so it cannot join the host's network namespace (the study \
         plots 0 for this pair; netbench reports it unsupported)"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn facts(registered: &[String]) -> RuntimeFacts<'_> {
        RuntimeFacts {
            registered,
            engine_version: "20.10.24+dfsg1",
            dev_kvm: true,
            dev_vhost_net: false,
        }
    }

    #[test]
    fn runc_and_other_registered_runtimes_resolve_to_themselves() {
        let reg = names(&[
            "io.containerd.runc.v2",
            "io.containerd.runtime.v1.linux",
            "runc",
            "crun",
        ]);
        let f = facts(&reg);
        assert_eq!(resolve("runc", &f), Resolved::Available("runc".into()));
        assert_eq!(resolve("crun", &f), Resolved::Available("crun".into()));
        let only_v2 = names(&["io.containerd.runc.v2"]);
        assert_eq!(
            resolve("runc", &facts(&only_v2)),
            Resolved::Available("io.containerd.runc.v2".into())
        );
        assert_eq!(
            resolve("runsc", &f),
            Resolved::Missing(
                "dockerd has no runtime 'runsc' (registered: io.containerd.runc.v2, \
                 io.containerd.runtime.v1.linux, runc, crun)"
                    .into()
            )
        );
    }

    #[test]
    fn kata_on_this_host_is_missing_with_every_reason() {
        let reg = names(&["io.containerd.runc.v2", "runc"]);
        let Resolved::Missing(why) = resolve("kata", &facts(&reg)) else {
            panic!("kata must be missing here");
        };
        assert!(why.starts_with("Kata Containers cannot run here: no Kata runtime registered"));
        assert!(
            why.contains("Docker Engine 20.10.24+dfsg1 is too old"),
            "{why}"
        );
        assert!(why.contains(">= 23"), "{why}");
        assert!(why.contains("/dev/vhost-net"), "{why}");
        assert!(!why.contains("/dev/kvm"), "{why}");
    }

    #[test]
    fn kata_resolves_under_any_registered_name() {
        let reg = names(&["runc", "kata-qemu"]);
        assert_eq!(
            resolve("kata", &facts(&reg)),
            Resolved::Available("kata-qemu".into())
        );
        let reg = names(&["runc", "kata", "io.containerd.kata.v2"]);
        assert_eq!(
            resolve("kata", &facts(&reg)),
            Resolved::Available("kata".into())
        );
        assert_eq!(
            resolve("io.containerd.kata.v2", &facts(&reg)),
            Resolved::Available("io.containerd.kata.v2".into())
        );
        let new = RuntimeFacts {
            engine_version: "28.2.2",
            dev_vhost_net: true,
            ..facts(&[])
        };
        let why = kata_missing_reason(&new);
        assert!(!why.contains("too old") && !why.contains("vhost"), "{why}");
    }

    #[test]
    fn kata_with_the_host_driver_is_unsupported() {
        assert!(driver_unsupported("kata", Driver::Host).is_some());
        assert!(driver_unsupported("io.containerd.kata.v2", Driver::Host).is_some());
        assert!(driver_unsupported("kata", Driver::Bridge).is_none());
        assert!(driver_unsupported("runc", Driver::Host).is_none());
        assert_eq!(engine_major("v26.1.0"), Some(26));
        assert_eq!(engine_major("dev"), None);
    }
}

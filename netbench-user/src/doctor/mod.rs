//! `netbench doctor`: what this host can run, every item checked for real.
//!
//! Each check first gathers facts (files, syscalls, the Docker API, child processes);
//! small pure functions then turn the facts into [`Item`]s, so the decisions are
//! unit-tested without root. The slow checks (eBPF self-tests, Docker, the KVM probe,
//! tool versions) run concurrently, each bounded in time, so the whole report takes
//! about as long as the slowest one (at most ~5 s).
mod docker;
mod host;
mod kata;
pub mod kvm;
mod tools;

use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeStruct as _};

use crate::table::{Column, Table};

/// Item names the default-experiment verdict looks at.
const ROOT: &str = "root";
const BTF: &str = "btf";
const DOCKER: &str = "docker";
const RUNTIMES: &str = "runtimes";
/// eBPF self-test items whose name starts with this are tc attach probes.
const TC_PREFIX: &str = "tc";

/// How one item turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and working.
    Ok,
    /// Present but degraded or only partly usable.
    Warn,
    /// Not there (not installed, not mounted, not running).
    Missing,
    /// There, but the check itself failed.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Missing => "missing",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub name: String,
    pub status: Status,
    /// One line: a version, a path, or why not.
    pub detail: String,
}

impl Item {
    /// An item whose detail is forced onto one line.
    fn new(name: impl Into<String>, status: Status, detail: impl AsRef<str>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: one_line(detail.as_ref()),
        }
    }
}

/// Collapse any whitespace runs (newlines included) so a detail stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Everything `netbench doctor` found, in display order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoctorReport {
    pub items: Vec<Item>,
}

/// Run every check (concurrently where they take time) and collect the report.
pub async fn collect() -> DoctorReport {
    let (ebpf, docker, kvm, tools) = tokio::join!(
        ebpf_selftests(),
        docker::gather(),
        kvm::probe(),
        tools::gather()
    );
    let vhost_net = host::vhost_net();

    let mut items = vec![host::root_item(), host::kernel_item(), host::btf_item()];
    items.extend(ebpf);
    let mounts = host::read_mounts();
    items.push(host::tracefs_item(mounts.as_deref()));
    items.push(host::bpffs_item(mounts.as_deref()));
    items.push(docker::docker_item(&docker));
    items.push(docker::runtimes_item(&docker));
    items.push(kata::kata_item(&kata::KataFacts {
        runtimes: docker.runtime_names(),
        engine_version: docker.engine_version(),
        kvm: kvm.usable(),
        vhost_net,
    }));
    items.push(tools.qemu);
    items.push(kvm.item());
    items.extend(tools.workloads);
    items.push(agent_item(locate_agent().map(|path| {
        let linkage = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| crate::elf::interpreter(&b).map_err(|e| e.to_string()));
        (path, linkage)
    })));
    DoctorReport { items }
}

/// The eBPF feature probes (blocking: they load and attach programs) on a blocking thread.
async fn ebpf_selftests() -> Vec<Item> {
    match tokio::task::spawn_blocking(crate::trace::selftest::run_all).await {
        Ok(results) => ebpf_items(results),
        Err(e) => vec![Item::new(
            "ebpf",
            Status::Failed,
            format!("eBPF self-tests did not complete: {e}"),
        )],
    }
}

fn ebpf_items(results: Vec<(&'static str, crate::trace::selftest::Probe)>) -> Vec<Item> {
    if results.is_empty() {
        return vec![Item::new(
            "ebpf",
            Status::Failed,
            "no eBPF self-test ran (trace::selftest::run_all returned none)",
        )];
    }
    results
        .into_iter()
        .map(|(name, outcome)| match outcome {
            Ok(detail) => Item::new(name, Status::Ok, detail),
            Err(reason) => Item::new(name, Status::Failed, reason),
        })
        .collect()
}

/// The agent lookup lives in `crate::agent`; doctor only reports it.
fn locate_agent() -> Result<std::path::PathBuf, String> {
    crate::agent::locate().map_err(|e| e.to_string())
}

/// How the agent binary links: `Ok(None)` static, `Ok(Some(loader))` dynamic.
type Linkage = Result<Option<String>, String>;

/// `agent`: found, and static (it runs in images built `FROM scratch` and in VM guests).
fn agent_item(found: Result<(std::path::PathBuf, Linkage), String>) -> Item {
    match found {
        Ok((path, Ok(None))) => {
            Item::new("agent", Status::Ok, format!("{} (static)", path.display()))
        }
        Ok((path, Ok(Some(loader)))) => Item::new(
            "agent",
            Status::Warn,
            format!(
                "{} is dynamically linked (needs {loader}): containers and guests need the static build, \
                 run `cargo xtask build`",
                path.display()
            ),
        ),
        Ok((path, Err(why))) => Item::new(
            "agent",
            Status::Failed,
            format!("{}: {why}", path.display()),
        ),
        Err(reason) => Item::new("agent", Status::Missing, reason),
    }
}

impl DoctorReport {
    /// Aligned text table (item, status, detail), then the default-experiment verdict.
    #[must_use]
    pub fn render_table(&self) -> String {
        let mut table = Table::new([
            Column::left("ITEM"),
            Column::left("STATUS"),
            Column::left("DETAIL"),
        ]);
        for item in &self.items {
            table.row([item.name.as_str(), item.status.as_str(), &item.detail]);
        }
        let mut out = table.render();
        out += &self.verdict_line();
        out.push('\n');
        out
    }

    fn verdict_line(&self) -> String {
        let blockers = self.default_blockers();
        if blockers.is_empty() {
            "default experiment: can run here".to_owned()
        } else {
            format!(
                "default experiment: cannot run here: {}",
                blockers.join("; ")
            )
        }
    }

    /// Whether the default experiment (runC, bridge, traced) can run on this host:
    /// root, BTF, a working tc attach, a reachable Docker daemon with the runc runtime.
    #[must_use]
    pub fn can_run_default(&self) -> bool {
        self.default_blockers().is_empty()
    }

    /// Why the default experiment cannot run (empty when it can).
    fn default_blockers(&self) -> Vec<String> {
        let find = |name: &str| self.items.iter().find(|i| i.name == name);
        let require = |name: &str| match find(name) {
            Some(item) if item.status == Status::Ok => None,
            Some(item) => Some(format!("{name}: {}", item.detail)),
            None => Some(format!("{name}: not checked")),
        };
        let mut blockers: Vec<String> = [ROOT, BTF].into_iter().filter_map(require).collect();

        let mut tc = self.items.iter().filter(|i| i.name.starts_with(TC_PREFIX));
        if !tc.clone().any(|i| i.status == Status::Ok) {
            blockers.push(match tc.next() {
                Some(first) => format!("no tc attach works ({}: {})", first.name, first.detail),
                None => "no tc attach self-test ran".to_owned(),
            });
        }

        // Without a daemon the runtime list says nothing new: report the daemon only.
        match require(DOCKER) {
            Some(reason) => blockers.push(reason),
            None => blockers.extend(require(RUNTIMES)),
        }
        blockers
    }

    /// The report as pretty JSON (items plus the default-experiment verdict).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"serializing the report: {e}\"}}"))
    }
}

impl Serialize for DoctorReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Verdict {
            can_run: bool,
            blockers: Vec<String>,
        }
        let blockers = self.default_blockers();
        let mut s = serializer.serialize_struct("DoctorReport", 2)?;
        s.serialize_field("items", &self.items)?;
        s.serialize_field(
            "default_experiment",
            &Verdict {
                can_run: blockers.is_empty(),
                blockers,
            },
        )?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, status: Status, detail: &str) -> Item {
        Item::new(name, status, detail)
    }

    fn runnable() -> DoctorReport {
        DoctorReport {
            items: vec![
                item("root", Status::Ok, "euid 0"),
                item("btf", Status::Ok, "/sys/kernel/btf/vmlinux, 5516713 bytes"),
                item("tc tcx attach", Status::Ok, "attached"),
                item("tc netlink attach", Status::Failed, "EPERM"),
                item("docker", Status::Ok, "Docker Engine 20.10.24, API 1.41"),
                item("runtimes", Status::Ok, "default runc; registered: runc"),
                item("kvm", Status::Warn, "not usable"),
            ],
        }
    }

    #[test]
    fn table_is_aligned_and_ends_with_verdict() {
        let table = runnable().render_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ITEM               STATUS  DETAIL");
        assert_eq!(lines[1], "root               ok      euid 0");
        assert_eq!(lines[4], "tc netlink attach  failed  EPERM");
        let detail_column = lines[0].find("DETAIL").unwrap();
        for line in &lines[1..lines.len() - 1] {
            assert_eq!(&line[detail_column - 2..detail_column], "  ", "{line}");
            assert!(!line[detail_column..].starts_with(' '), "{line}");
        }
        assert_eq!(lines.last(), Some(&"default experiment: can run here"));
        assert!(table.ends_with('\n'));
    }

    #[test]
    fn details_are_forced_onto_one_line() {
        let i = item("docker", Status::Missing, "first\nsecond  third\n");
        assert_eq!(i.detail, "first second third");
    }

    #[test]
    fn default_needs_root_btf_tc_docker_and_runc() {
        assert!(runnable().can_run_default());

        let mut r = runnable();
        r.items[0] = item("root", Status::Missing, "not root (euid 1000)");
        r.items[5] = item(
            "runtimes",
            Status::Warn,
            "no runc runtime; registered: crun",
        );
        assert!(!r.can_run_default());
        assert_eq!(
            r.render_table().lines().last(),
            Some(
                "default experiment: cannot run here: root: not root (euid 1000); runtimes: no runc runtime; registered: crun"
            )
        );

        // No daemon: the runtime item adds nothing; failed tc probes are named.
        let mut r = runnable();
        r.items[2] = item("tc tcx attach", Status::Failed, "EINVAL");
        r.items[4] = item("docker", Status::Missing, "dockerd not running");
        r.items[5] = item("runtimes", Status::Missing, "dockerd not reachable");
        assert_eq!(
            r.default_blockers(),
            vec![
                "no tc attach works (tc tcx attach: EINVAL)".to_owned(),
                "docker: dockerd not running".to_owned()
            ]
        );

        let empty = DoctorReport { items: vec![] };
        assert_eq!(empty.default_blockers().len(), 4);
    }

    #[test]
    fn json_has_items_and_verdict() {
        let v: serde_json::Value = serde_json::from_str(&runnable().to_json()).unwrap();
        assert_eq!(v["items"][0]["name"], "root");
        assert_eq!(v["items"][0]["status"], "ok");
        assert_eq!(v["items"][6]["status"], "warn");
        assert_eq!(v["default_experiment"]["can_run"], true);
        assert_eq!(v["default_experiment"]["blockers"], serde_json::json!([]));
    }

    #[test]
    fn ebpf_results_map_to_items() {
        let items = ebpf_items(vec![
            ("tc tcx attach", Ok("link 3".into())),
            ("tp_btf", Err("EPERM".into())),
        ]);
        assert_eq!(items[0], item("tc tcx attach", Status::Ok, "link 3"));
        assert_eq!(items[1], item("tp_btf", Status::Failed, "EPERM"));
        assert_eq!(ebpf_items(vec![])[0].status, Status::Failed);
    }

    #[test]
    fn agent_must_be_found_and_static() {
        let i = agent_item(Err(
            "netbench-agent not found: run `cargo xtask build`".into()
        ));
        assert_eq!(i.status, Status::Missing);
        assert!(i.detail.contains("cargo xtask build"));

        let path = std::path::PathBuf::from("/t/netbench-agent");
        let i = agent_item(Ok((path.clone(), Ok(None))));
        assert_eq!(
            (i.status, i.detail.as_str()),
            (Status::Ok, "/t/netbench-agent (static)")
        );

        let loader = "/lib64/ld-linux-x86-64.so.2";
        let i = agent_item(Ok((path.clone(), Ok(Some(loader.into())))));
        assert_eq!(i.status, Status::Warn);
        assert!(
            i.detail
                .starts_with("/t/netbench-agent is dynamically linked (needs /lib64/ld-linux")
        );

        let not_elf = agent_item(Ok((path, Err("not an ELF file".into()))));
        assert_eq!(not_elf.status, Status::Failed);
    }
}

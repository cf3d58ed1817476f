//! The ledger: every resource netbench creates on the host is written down *before* it
//! is created, in a state file of the process that creates it, and struck off once it
//! is removed. Labels and name prefixes still mark netbench's objects; the ledger is what
//! makes clean-up exact:
//!
//! - on every exit path (normal, error, SIGINT/SIGTERM) [`sweep_own`](crate::reclaim::sweep_own) removes what the
//!   process still has listed (what a destructor or an async teardown did not get to);
//! - after SIGKILL, a crash or a power cut, the next netbench command sees a state file
//!   whose owner is gone ([`stale`]: pid dead, or reused by another process) and says so;
//!   `netbench cleanup` removes exactly what those files name ([`clean_stale`](crate::reclaim::clean_stale)).
//!
//! A state file is `<dir>/<pid>.json` (dir: `/var/lib/netbench/ledger`, or
//! `$NETBENCH_STATE_DIR`), written atomically (temp file + rename) at every change and
//! deleted when the list is empty. Nothing that is not listed is ever touched: a user's
//! containers, networks, namespaces and processes are not in it.
use std::{
    io,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
};

use serde::{Deserialize, Serialize};

/// Where state files live unless `$NETBENCH_STATE_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/netbench/ledger";

/// One thing netbench created.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A named network namespace (`/run/netns/<name>`).
    Netns { name: String },
    /// A link in the host namespace (e.g. a macvlan parent veth).
    Link { name: String },
    /// A Docker container on the local engine (its id once created).
    Container { name: String, id: Option<String> },
    /// A Docker network on the local engine.
    Network { name: String },
    /// The single-node swarm netbench initialised on the local engine.
    Swarm,
    /// A process netbench started: pid and its start time (clock ticks after boot), so a
    /// reused pid is never signalled; `group`: the pid leads a process group to kill.
    Process {
        pid: u32,
        start: u64,
        program: String,
        group: bool,
    },
    /// A clsact qdisc netbench added to a device (legacy netlink tc mode), in the
    /// namespace `netns` (None: netbench's own) whose inode was `netns_ino`: a namespace
    /// file that names another namespace by then (a reused pid) is left alone.
    Clsact {
        netns: Option<PathBuf>,
        netns_ino: u64,
        ifname: String,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Netns { name } => write!(f, "netns {name}"),
            Self::Link { name } => write!(f, "link {name}"),
            Self::Container { name, .. } => write!(f, "container {name}"),
            Self::Network { name } => write!(f, "network {name}"),
            Self::Swarm => f.write_str("the swarm netbench initialised"),
            Self::Process {
                pid,
                program,
                group,
                ..
            } => write!(
                f,
                "process {pid} ({program}{})",
                if *group { ", with its group" } else { "" }
            ),
            Self::Clsact { netns, ifname, .. } => write!(
                f,
                "clsact qdisc on {ifname}@{}",
                netns
                    .as_deref()
                    .map_or_else(|| "host".to_owned(), |p| p.display().to_string())
            ),
        }
    }
}

/// A state file as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub pid: u32,
    /// The owner's start time (clock ticks after boot): tells a reused pid apart.
    pub start: u64,
    /// The owner's command line.
    pub command: String,
    /// Unix seconds.
    pub started_at: u64,
    /// In creation order.
    pub resources: Vec<Resource>,
}

impl StateFile {
    /// Whether the process that wrote this file still runs (same pid, same start time,
    /// not a zombie waiting to be reaped).
    #[must_use]
    pub fn owner_alive(&self) -> bool {
        process_start(self.pid) == Some(self.start) && !is_zombie(self.pid)
    }

    /// A short count by kind: "2 containers, 1 network".
    #[must_use]
    pub fn summary(&self) -> String {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for r in &self.resources {
            let kind = match r {
                Resource::Netns { .. } => "netns",
                Resource::Link { .. } => "links",
                Resource::Container { .. } => "containers",
                Resource::Network { .. } => "networks",
                Resource::Swarm => "swarm",
                Resource::Process { .. } => "processes",
                Resource::Clsact { .. } => "qdiscs",
            };
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((kind, 1)),
            }
        }
        counts
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The start time of `pid` (clock ticks after boot), if it runs.
#[must_use]
pub fn process_start(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

/// The state directory.
#[must_use]
pub fn dir() -> PathBuf {
    std::env::var_os("NETBENCH_STATE_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

struct Own {
    path: PathBuf,
    file: StateFile,
    /// Writing failed once (said once on stderr); labels remain the fallback.
    warned: bool,
}

fn own() -> MutexGuard<'static, Option<Own>> {
    static OWN: OnceLock<Mutex<Option<Own>>> = OnceLock::new();
    OWN.get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn new_own() -> Own {
    let pid = std::process::id();
    Own {
        path: dir().join(format!("{pid}.json")),
        file: StateFile {
            pid,
            start: process_start(pid).unwrap_or(0),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            resources: Vec::new(),
        },
        warned: false,
    }
}

fn persist(own: &mut Own) {
    let res = if own.file.resources.is_empty() {
        match std::fs::remove_file(&own.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        write_atomic(&own.path, &own.file)
    };
    if let Err(e) = res
        && !own.warned
    {
        own.warned = true;
        eprintln!(
            "netbench: warning: cannot write the state file {} ({e}); `netbench cleanup` will find this run's objects by their labels only",
            own.path.display()
        );
    }
}

pub(crate) fn write_atomic(path: &Path, file: &StateFile) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let text = serde_json::to_vec_pretty(file).map_err(io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        use io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Write `r` down before creating it.
pub fn record(r: Resource) {
    let mut guard = own();
    let own = guard.get_or_insert_with(new_own);
    if !own.file.resources.contains(&r) {
        own.file.resources.push(r);
        persist(own);
    }
}

/// Strike off every entry `matches` accepts (the resource is gone).
pub fn release_where(matches: impl Fn(&Resource) -> bool) {
    let mut guard = own();
    let Some(own) = guard.as_mut() else { return };
    let before = own.file.resources.len();
    own.file.resources.retain(|r| !matches(r));
    if own.file.resources.len() != before {
        persist(own);
    }
}

/// Strike off `r`.
pub fn release(r: &Resource) {
    release_where(|x| x == r);
}

/// Replace `old` by `new` (e.g. a container's entry gains its id).
pub fn update(old: &Resource, new: Resource) {
    let mut guard = own();
    let Some(own) = guard.as_mut() else { return };
    if let Some(slot) = own.file.resources.iter_mut().find(|r| *r == old) {
        *slot = new;
        persist(own);
    }
}

/// What this process still has listed.
#[must_use]
pub fn listed() -> Vec<Resource> {
    own()
        .as_ref()
        .map_or_else(Vec::new, |o| o.file.resources.clone())
}

/// A process netbench started, listed while this guard lives: dropping it strikes the
/// entry off (the owner stops the process, e.g. through `kill_on_drop`). After SIGKILL of
/// netbench the entry stays, and `netbench cleanup` stops the process by its pid.
#[derive(Debug)]
pub struct ProcessGuard(Option<Resource>);

impl ProcessGuard {
    /// List process `pid` (if it still runs).
    #[must_use]
    pub fn new(pid: Option<u32>, program: &str, group: bool) -> Self {
        let entry = pid.and_then(|pid| {
            Some(Resource::Process {
                pid,
                start: process_start(pid)?,
                program: program.to_owned(),
                group,
            })
        });
        if let Some(r) = &entry {
            record(r.clone());
        }
        Self(entry)
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            release(&r);
        }
    }
}

/// State files of other netbench processes, read from [`dir`]. Unreadable or corrupt
/// files are returned as errors (path and reason), never dropped silently.
#[must_use]
pub fn others() -> Vec<(PathBuf, Result<StateFile, String>)> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut out: Vec<(PathBuf, Result<StateFile, String>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.file_stem().and_then(|s| s.to_str()) != Some(&me.to_string()))
        .map(|p| {
            let read = std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<StateFile>(&b).map_err(|e| e.to_string()));
            (p, read)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// State files whose owner is gone: what a killed netbench left.
#[must_use]
pub fn stale() -> Vec<(PathBuf, StateFile)> {
    others()
        .into_iter()
        .filter_map(|(p, f)| f.ok().map(|f| (p, f)))
        .filter(|(_, f)| !f.owner_alive())
        .collect()
}

/// The line every netbench command prints (stderr) when a killed run left objects.
#[must_use]
pub fn stale_notice() -> Option<String> {
    let stale = stale();
    if stale.is_empty() {
        return None;
    }
    let what: Vec<String> = stale
        .iter()
        .map(|(_, f)| format!("pid {} ({})", f.pid, f.summary()))
        .collect();
    Some(format!(
        "netbench: a netbench run ended without cleaning up: {}; `netbench cleanup` removes exactly that",
        what.join("; ")
    ))
}

pub(crate) fn is_zombie(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok())
        .and_then(|p| p.stat().ok())
        .is_some_and(|s| s.state == 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_reads_back_and_counts_by_kind() {
        let f = StateFile {
            pid: 1,
            start: 2,
            command: "netbench run".into(),
            started_at: 3,
            resources: vec![
                Resource::Netns {
                    name: "nb-1-a".into(),
                },
                Resource::Container {
                    name: "nb-x-server".into(),
                    id: Some("abc".into()),
                },
                Resource::Container {
                    name: "nb-x-client".into(),
                    id: None,
                },
                Resource::Swarm,
            ],
        };
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""kind":"container""#), "{text}");
        assert_eq!(serde_json::from_str::<StateFile>(&text).unwrap(), f);
        assert_eq!(f.summary(), "netns: 1, containers: 2, swarm: 1");
    }

    #[test]
    fn a_dead_or_reused_owner_is_not_alive() {
        let me = std::process::id();
        let start = process_start(me).expect("own start time");
        let alive = StateFile {
            pid: me,
            start,
            ..StateFile::default()
        };
        assert!(alive.owner_alive());
        let reused = StateFile {
            start: start + 1,
            ..alive.clone()
        };
        assert!(!reused.owner_alive());
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = StateFile {
            pid: 5_000_000,
            ..alive
        };
        assert!(!dead.owner_alive());
    }
}

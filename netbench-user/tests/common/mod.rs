//! Shared pieces of the privileged tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod docker_run;

use std::{io, path::Path};

use aya::{
    programs::{ProgramError, SchedClassifier, TcAttachType, tc::TcError},
    sys::SyscallError,
};
use netbench::{
    netlink,
    netns::{self, NetnsRef},
};

/// Where `cargo xtask test` collects the skipped tests of one `cargo test` run: one
/// file per skipped test holding the line `<test name>: <why>`. xtask counts them as
/// skipped instead of passed (and fails the run on them in CI and as root).
pub const SKIP_DIR_ENV: &str = "NETBENCH_SKIP_DIR";

/// The running test's name (libtest names each test's thread after the test).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned()
}

/// Marks `test` as skipped because of `why`: a `SKIPPED:` line on stderr, and under
/// xtask a marker in [`SKIP_DIR_ENV`], so the test counts as skipped, never as passed.
/// The caller returns right after. A marker that cannot be written fails the test.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
    let Some(dir) = std::env::var_os(SKIP_DIR_ENV) else {
        return;
    };
    // One file per test binary and test: one `cargo test` runs many binaries, which may
    // share test names.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let file: String = format!("{binary}-{test}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = Path::new(&dir).join(file);
    std::fs::write(&path, format!("{test}: {why}\n"))
        .unwrap_or_else(|e| panic!("{test}: writing the skip marker {}: {e}", path.display()));
}

/// Proof that the test runs as root.
pub struct Root;

/// `Some` as root; otherwise the running test is [`skip`]ped (it returns on `None`).
pub fn require_root() -> Option<Root> {
    if nix::unistd::geteuid().is_root() {
        Some(Root)
    } else {
        skip(
            &test_name(),
            "privileged test needs root (run `cargo xtask test`)",
        );
        None
    }
}

/// No namespace of `names` is left in /run/netns.
pub fn assert_gone(names: &[String]) {
    let left: Vec<String> = netns::list_owned()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// Device `ifname` in `ns` carries no clsact/ingress qdisc and no tcx program. A device
/// that no longer exists carries nothing; every other failure to look fails the test.
pub async fn assert_no_tc(ns: &NetnsRef, ifname: &str) {
    let h = netlink::handle_in(ns).expect("netlink");
    let link = netlink::link_by_name(&h, ifname)
        .await
        .unwrap_or_else(|e| panic!("{ifname}@{ns}: looking up the device: {e}"));
    let Some(link) = link else {
        eprintln!("{ifname}@{ns}: device gone, so no tc state can be left on it");
        return;
    };
    let kinds = netlink::qdisc_kinds(&h, link.header.index)
        .await
        .unwrap_or_else(|e| panic!("{ifname}@{ns}: listing qdiscs: {e}"));
    assert!(
        !kinds.iter().any(|k| k == "clsact" || k == "ingress"),
        "{ifname}@{ns}: tc qdisc left: {kinds:?}"
    );
    match tcx_programs(ns, ifname) {
        Some(progs) => assert_eq!(progs, 0, "{ifname}@{ns}: tcx programs left"),
        None => eprintln!("{ifname}@{ns}: device gone, so no tcx program can be left on it"),
    }
}

/// The tcx programs on `ifname` in `ns`, ingress plus egress; `None` when the device does
/// not exist. Any other query error panics: an error is never "no programs".
pub fn tcx_programs(ns: &NetnsRef, ifname: &str) -> Option<usize> {
    let name = ifname.to_owned();
    let counts = netns::in_netns(ns, move || {
        [TcAttachType::Ingress, TcAttachType::Egress].map(|t| {
            SchedClassifier::query_tcx(&name, t)
                .map(|(_, progs)| progs.len())
                .map_err(|e| (t, e))
        })
    })
    .unwrap_or_else(|e| panic!("entering {ns}: {e}"));
    let mut total = 0;
    for count in counts {
        match count {
            Ok(n) => total += n,
            Err((_, e)) if is_no_device(&e) => return None,
            Err((t, e)) => panic!("{ifname}@{ns}: querying tcx {t:?} programs: {e}"),
        }
    }
    Some(total)
}

/// The query failed because the device does not exist (ENODEV from resolving its name
/// or from the query itself).
fn is_no_device(e: &ProgramError) -> bool {
    let io = match e {
        ProgramError::TcError(TcError::IoError(io)) => Some(io),
        ProgramError::SyscallError(SyscallError { io_error, .. }) => Some(io_error),
        _ => None,
    };
    io.and_then(io::Error::raw_os_error) == Some(libc::ENODEV)
}

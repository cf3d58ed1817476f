//! Shared pieces of the privileged tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use netbench::{
    netlink,
    netns::{self, NetnsRef},
};

/// Proof that the test runs as root. Without root the test prints why it is skipped,
/// loudly, and returns early (xtask only runs this tier as root, so CI never skips).
pub struct Root;

pub fn require_root() -> Option<Root> {
    if nix::unistd::geteuid().is_root() {
        Some(Root)
    } else {
        eprintln!("SKIPPED: privileged test needs root (run `cargo xtask test`)");
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

/// Device `ifname` in `ns` carries no clsact/ingress qdisc and no tcx program.
pub async fn assert_no_tc(ns: &NetnsRef, ifname: &str) {
    let h = netlink::handle_in(ns).expect("netlink");
    let index = netlink::index_of(&h, ifname).await.expect("ifindex");
    let kinds = netlink::qdisc_kinds(&h, index).await.expect("qdiscs");
    assert!(
        !kinds.iter().any(|k| k == "clsact" || k == "ingress"),
        "{ifname}@{ns}: tc qdisc left: {kinds:?}"
    );
    let name = ifname.to_owned();
    let progs = netns::in_netns(ns, move || {
        use aya::programs::{SchedClassifier, TcAttachType};
        [TcAttachType::Ingress, TcAttachType::Egress]
            .into_iter()
            .map(|t| SchedClassifier::query_tcx(&name, t).map_or(0, |(_, p)| p.len()))
            .sum::<usize>()
    })
    .expect("netns");
    assert_eq!(progs, 0, "{ifname}@{ns}: tcx programs left");
}

//! Hook discovery: where a container's traffic can be traced, read from the container's
//! inspection and the kernel. The namespace is the `SandboxKey` (checked to be the
//! namespace of the container's pid); the interface is the one with the endpoint's MAC;
//! a veth's host-side peer is found through `IFLA_LINK` (its index) and the namespace
//! it lives in (the host's for bridge networks, the overlay network's own for overlay)
//! by the peer pointing back; Kata's `tap0_kata` and its qdiscs are noted when present.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};

use super::{DockerError, container::Container};
use crate::{netlink, netns::NetnsRef, trace::HookDevice};

/// Where Docker keeps network namespaces (sandboxes, overlay networks).
pub const DOCKER_NETNS_DIR: &str = "/var/run/docker/netns";
/// The tap device Kata connects the sandbox's eth0 to the VM with.
pub const KATA_TAP: &str = "tap0_kata";

/// One network interface in one namespace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Interface {
    #[serde(serialize_with = "display")]
    pub netns: NetnsRef,
    pub ifname: String,
    pub ifindex: u32,
    /// Link kind (`veth`, `macvlan`, `bridge`, `tun`, ...).
    pub kind: Option<String>,
}

fn display<S: serde::Serializer>(v: &NetnsRef, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Interface {
    #[must_use]
    pub fn device(&self) -> HookDevice {
        HookDevice::new(self.netns.clone(), self.ifname.clone())
    }
}

/// Kata's tap in the sandbox namespace and the qdiscs on it (`ingress` carries the
/// mirred redirect filters).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KataTap {
    pub iface: Interface,
    pub qdiscs: Vec<String>,
    /// qdiscs on the sandbox's eth0 (Kata adds `ingress` there too).
    pub eth_qdiscs: Vec<String>,
}

/// The hook points of one container.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ContainerHooks {
    #[serde(serialize_with = "display")]
    pub netns: NetnsRef,
    /// The interface on the measured network (found by MAC).
    pub eth: Interface,
    /// The other end of `eth` when it is a veth.
    pub peer: Option<Interface>,
    pub kata_tap: Option<KataTap>,
}

/// The namespace file of a container: its `SandboxKey` when that is the namespace its
/// pid is in, else `/proc/PID/ns/net`.
///
/// # Errors
/// When the pid's namespace cannot be read.
pub fn container_netns(c: &Container) -> Result<NetnsRef, DockerError> {
    let proc_ns = PathBuf::from(format!("/proc/{}/ns/net", c.pid));
    let pid_ns = std::fs::metadata(&proc_ns).map_err(|err| DockerError::File {
        path: proc_ns.clone(),
        source: err,
    })?;
    if let Some(key) = &c.sandbox_key
        && let Ok(m) = std::fs::metadata(key)
        && (m.dev(), m.ino()) == (pid_ns.dev(), pid_ns.ino())
    {
        return Ok(NetnsRef::Path(key.clone()));
    }
    Ok(NetnsRef::Path(proc_ns))
}

/// The kind of a link from `IFLA_LINKINFO`.
#[must_use]
pub fn kind_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

fn interface(netns: &NetnsRef, link: &LinkMessage) -> Interface {
    Interface {
        netns: netns.clone(),
        ifname: netlink::name_of(link).unwrap_or_default().to_owned(),
        ifindex: link.header.index,
        kind: kind_of(link),
    }
}

/// Namespaces where the host side of a container's veth may live: the host's first,
/// then overlay network namespaces (`<n>-<network id prefix>`) of `network_id`, then
/// any other overlay namespace.
#[must_use]
pub fn peer_candidates(network_id: Option<&str>) -> Vec<NetnsRef> {
    let mut out = vec![NetnsRef::Current];
    let Ok(dir) = std::fs::read_dir(DOCKER_NETNS_DIR) else {
        return out;
    };
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_overlay_netns_name(n))
        .collect();
    names.sort_by_key(|n| !network_id.is_some_and(|id| overlay_netns_matches(n, id)));
    out.extend(
        names
            .into_iter()
            .map(|n| NetnsRef::Path(Path::new(DOCKER_NETNS_DIR).join(n))),
    );
    out
}

/// Overlay network namespaces are named `<digits>-<network id prefix>`.
#[must_use]
pub fn is_overlay_netns_name(name: &str) -> bool {
    name.split_once('-').is_some_and(|(n, id)| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && !id.is_empty()
            && id.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

fn overlay_netns_matches(name: &str, network_id: &str) -> bool {
    name.split_once('-')
        .is_some_and(|(_, prefix)| network_id.starts_with(prefix))
}

/// Find the hook points of container `c` on the network it reached through `mac`.
///
/// # Errors
/// When the namespace cannot be entered, no interface has the MAC, or a veth's peer is
/// in none of `candidates`.
pub async fn discover(
    c: &Container,
    mac: [u8; 6],
    candidates: &[NetnsRef],
) -> Result<ContainerHooks, DockerError> {
    let netns = container_netns(c)?;
    let h = netlink::handle_in(&netns)?;
    let links = netlink::list_links(&h).await?;
    let eth_link = links
        .iter()
        .find(|l| netlink::mac_of(l) == Some(mac) && kind_of(l).as_deref() != Some("tun"))
        .ok_or_else(|| {
            DockerError::Hook(format!(
                "container {}: no interface with MAC {} in {netns}",
                c.name,
                fmt_mac(mac)
            ))
        })?;
    let eth = interface(&netns, eth_link);
    let peer = if eth.kind.as_deref() == Some("veth") {
        let (Some(peer_index), _) = netlink::link_target_of(eth_link) else {
            return Err(DockerError::Hook(format!(
                "container {}: veth {} has no IFLA_LINK",
                c.name, eth.ifname
            )));
        };
        Some(find_peer(&eth, peer_index, candidates).await?)
    } else {
        None
    };
    let kata_tap = match links.iter().find(|l| netlink::name_of(l) == Some(KATA_TAP)) {
        Some(tap) => Some(KataTap {
            iface: interface(&netns, tap),
            qdiscs: netlink::qdisc_kinds(&h, tap.header.index).await?,
            eth_qdiscs: netlink::qdisc_kinds(&h, eth.ifindex).await?,
        }),
        None => None,
    };
    Ok(ContainerHooks {
        netns,
        eth,
        peer,
        kata_tap,
    })
}

/// The veth at `peer_index` in one of `candidates` that points back at `eth`.
async fn find_peer(
    eth: &Interface,
    peer_index: u32,
    candidates: &[NetnsRef],
) -> Result<Interface, DockerError> {
    for ns in candidates {
        let Ok(h) = netlink::handle_in(ns) else {
            continue;
        };
        let Ok(links) = netlink::list_links(&h).await else {
            continue;
        };
        if let Some(link) = links.iter().find(|l| {
            l.header.index == peer_index
                && kind_of(l).as_deref() == Some("veth")
                && netlink::link_target_of(l).0 == Some(eth.ifindex)
        }) {
            return Ok(interface(ns, link));
        }
    }
    Err(DockerError::Hook(format!(
        "the peer (ifindex {peer_index}) of {} in {} is in none of: {}",
        eth.ifname,
        eth.netns,
        candidates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The host-side interface named `ifname` (e.g. a bridge network's Linux bridge).
///
/// # Errors
/// When there is no such link.
pub async fn host_interface(ifname: &str) -> Result<Interface, DockerError> {
    let ns = NetnsRef::Current;
    let h = netlink::handle_in(&ns)?;
    let link = netlink::link_by_name(&h, ifname)
        .await?
        .ok_or_else(|| DockerError::Hook(format!("no link {ifname} in the host namespace")))?;
    Ok(interface(&ns, &link))
}

#[must_use]
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_namespace_names() {
        assert!(is_overlay_netns_name("1-k3xq9s0abc"));
        assert!(is_overlay_netns_name("12-0123456789"));
        assert!(!is_overlay_netns_name("default"));
        assert!(!is_overlay_netns_name("ingress_sbox"));
        assert!(!is_overlay_netns_name("3a8b2c1d0e4f"));
        assert!(!is_overlay_netns_name("1-"));
        assert!(overlay_netns_matches("1-0123456789", "0123456789abcdef"));
        assert!(!overlay_netns_matches("1-0123456789", "ffff"));
        assert_eq!(fmt_mac([2, 0x42, 0xac, 0x11, 0, 2]), "02:42:ac:11:00:02");
    }
}

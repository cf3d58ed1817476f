//! Lab topologies. Every namespace is an [`OwnedNetns`]; dropping the topology removes
//! the namespaces, and the kernel removes their devices with them.
use clap::ValueEnum;
use rtnetlink::Handle;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use strum::IntoStaticStr;

use super::{tap, vmm::VmmSpec};
use crate::{
    netlink::{self, NetlinkError},
    netns::{NetnsRef, OwnedNetns, unique_name},
    trace::HookDevice,
};

/// One side of a client/server pair.
#[derive(Debug)]
pub struct Endpoint {
    pub netns: OwnedNetns,
    /// The device the agent's traffic leaves through.
    pub ifname: String,
    pub ip: Ipv4Addr,
}

impl Endpoint {
    fn new(netns: OwnedNetns, ifname: impl Into<String>, ip: Ipv4Addr) -> Self {
        Self {
            netns,
            ifname: ifname.into(),
            ip,
        }
    }

    #[must_use]
    pub fn netns_ref(&self) -> NetnsRef {
        self.netns.reference()
    }

    #[must_use]
    pub fn hook(&self) -> HookDevice {
        HookDevice::new(self.netns_ref(), self.ifname.clone())
    }
}

/// The paths `netbench lab` builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[derive(Serialize, Deserialize, ValueEnum, IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LabPath {
    /// Client netns <-> server netns over one veth pair.
    #[default]
    Veth,
    /// runC's bridge path: client - veth - Linux bridge - veth - server.
    Bridge,
    /// Kata's tc-redirect + tap datapath, with a VMM stand-in (a model).
    Tap,
}

impl LabPath {
    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A built topology: client and server endpoints plus the hook devices on the path, in
/// request order.
#[derive(Debug)]
pub struct LabTopology {
    pub path: LabPath,
    pub client: Endpoint,
    pub server: Endpoint,
    /// Devices to trace, in the order a request crosses them.
    pub hooks: Vec<HookDevice>,
    /// Namespaces in the middle of the path (e.g. the bridge's "host").
    pub extra: Vec<OwnedNetns>,
}

/// Kata's name for the sandbox-side tap.
pub const TAP: &str = "tap0_kata";
/// The stand-in guest's NIC.
pub const GUEST_TAP: &str = "nbgtap0";

/// Subnet for lab paths: a /24 inside namespaces netbench owns, never routed anywhere.
const LAB_NET: [u8; 3] = [10, 203, 0];

fn lab_ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(LAB_NET[0], LAB_NET[1], LAB_NET[2], host)
}

/// An endpoint's device gets `ip`/24 and goes up, with its namespace's `lo`.
async fn bring_up(h: &Handle, ifname: &str, ip: Ipv4Addr) -> Result<(), NetlinkError> {
    netlink::add_addr(h, ifname, IpAddr::V4(ip), 24).await?;
    netlink::set_up(h, ifname).await?;
    netlink::set_up(h, "lo").await
}

impl LabTopology {
    /// client netns `c` --veth-- server netns `s`: the simplest container-to-container
    /// path. `tag` keeps names of concurrent topologies apart (<= 6 chars).
    ///
    /// # Errors
    /// When namespaces or links cannot be created; whatever was made is removed.
    pub async fn veth(tag: &str) -> Result<Self, NetlinkError> {
        let client_ns = OwnedNetns::create(&unique_name(&format!("{tag}-c")))?;
        let server_ns = OwnedNetns::create(&unique_name(&format!("{tag}-s")))?;
        let (cif, sif) = ("nbc0".to_owned(), "nbs0".to_owned());
        let hc = netlink::handle_in(&client_ns.reference())?;
        netlink::create_veth(&hc, &cif, &sif).await?;
        netlink::move_to_netns(&hc, &sif, &server_ns.reference()).await?;
        let hs = netlink::handle_in(&server_ns.reference())?;
        let (cip, sip) = (lab_ip(1), lab_ip(2));
        for (h, ifname, ip) in [(&hc, &cif, cip), (&hs, &sif, sip)] {
            bring_up(h, ifname, ip).await?;
        }
        Ok(Self::assemble(
            LabPath::Veth,
            Endpoint::new(client_ns, cif, cip),
            None,
            Endpoint::new(server_ns, sif, sip),
        ))
    }

    /// The topology of `client` and `server`, with the two devices `between` them that
    /// a `middle` namespace holds, if any: hooks in request order.
    fn assemble(
        path: LabPath,
        client: Endpoint,
        middle: Option<(OwnedNetns, [&str; 2])>,
        server: Endpoint,
    ) -> Self {
        let mut hooks = vec![client.hook()];
        let mut extra = Vec::new();
        if let Some((ns, between)) = middle {
            hooks.extend(between.map(|ifname| HookDevice::new(ns.reference(), ifname)));
            extra.push(ns);
        }
        hooks.push(server.hook());
        Self {
            path,
            client,
            server,
            hooks,
            extra,
        }
    }

    /// client netns --veth-- Linux bridge in a "host" netns --veth-- server netns: the
    /// runC bridge path. Every device is created in the host namespace, so ifindexes are
    /// unique across the three namespaces (moved devices keep their index).
    ///
    /// # Errors
    /// When namespaces or links cannot be created; whatever was made is removed.
    pub async fn bridge(tag: &str) -> Result<Self, NetlinkError> {
        let host_ns = OwnedNetns::create(&unique_name(&format!("{tag}-h")))?;
        let client_ns = OwnedNetns::create(&unique_name(&format!("{tag}-c")))?;
        let server_ns = OwnedNetns::create(&unique_name(&format!("{tag}-s")))?;
        let hh = netlink::handle_in(&host_ns.reference())?;
        netlink::create_bridge(&hh, "nbbr0").await?;
        netlink::set_up(&hh, "nbbr0").await?;
        netlink::set_up(&hh, "lo").await?;
        for (host_end, far_end, ns) in
            [("nbhc0", "nbc0", &client_ns), ("nbhs0", "nbs0", &server_ns)]
        {
            netlink::create_veth(&hh, host_end, far_end).await?;
            netlink::move_to_netns(&hh, far_end, &ns.reference()).await?;
            netlink::set_controller(&hh, host_end, "nbbr0").await?;
            netlink::set_up(&hh, host_end).await?;
        }
        let (cip, sip) = (lab_ip(1), lab_ip(2));
        for (ns, ifname, ip) in [(&client_ns, "nbc0", cip), (&server_ns, "nbs0", sip)] {
            bring_up(&netlink::handle_in(&ns.reference())?, ifname, ip).await?;
        }
        Ok(Self::assemble(
            LabPath::Bridge,
            Endpoint::new(client_ns, "nbc0", cip),
            Some((host_ns, ["nbhc0", "nbhs0"])),
            Endpoint::new(server_ns, "nbs0", sip),
        ))
    }

    /// Kata's datapath model on the server side: a "sandbox" netns holding eth0 (veth
    /// peer of the client) and `tap0_kata` with eth0's MAC and MTU, ingress qdiscs and u32
    /// mirred redirects both ways, exactly as Kata sets them; a "guest" netns holding the
    /// guest's NIC (a tap with eth0's MAC, as Kata's virtio NIC) where the server runs.
    /// A VMM backend (see `vmm`) must relay between `tap0_kata` and the guest tap. All
    /// devices are created in the sandbox, so ifindexes are unique.
    ///
    /// # Errors
    /// When namespaces, links, taps or filters cannot be created.
    pub async fn tap(tag: &str) -> Result<Self, NetlinkError> {
        let sandbox_ns = OwnedNetns::create(&unique_name(&format!("{tag}-sb")))?;
        let client_ns = OwnedNetns::create(&unique_name(&format!("{tag}-c")))?;
        let guest_ns = OwnedNetns::create(&unique_name(&format!("{tag}-g")))?;
        let sandbox = sandbox_ns.reference();
        let hsb = netlink::handle_in(&sandbox)?;
        netlink::set_up(&hsb, "lo").await?;
        netlink::create_veth(&hsb, "eth0", "nbc0").await?;
        netlink::move_to_netns(&hsb, "nbc0", &client_ns.reference()).await?;
        let eth0 = netlink::link_by_name(&hsb, "eth0")
            .await?
            .ok_or_else(|| NetlinkError::NoDevice("eth0".into()))?;
        let mac =
            netlink::mac_of(&eth0).ok_or_else(|| NetlinkError::NoDevice("eth0 MAC".into()))?;
        let mtu = netlink::mtu_of(&eth0);
        tap::create_persistent_tap(&sandbox, TAP)?;
        tap::create_persistent_tap(&sandbox, GUEST_TAP)?;
        netlink::set_mac_mtu(&hsb, TAP, mac, mtu).await?;
        netlink::move_to_netns(&hsb, GUEST_TAP, &guest_ns.reference()).await?;
        netlink::set_up(&hsb, "eth0").await?;
        netlink::set_up(&hsb, TAP).await?;
        tap::install_kata_redirects(&hsb, "eth0", TAP).await?;

        let (cip, sip) = (lab_ip(1), lab_ip(2));
        bring_up(&netlink::handle_in(&client_ns.reference())?, "nbc0", cip).await?;
        let hg = netlink::handle_in(&guest_ns.reference())?;
        netlink::set_mac_mtu(&hg, GUEST_TAP, mac, mtu).await?;
        bring_up(&hg, GUEST_TAP, sip).await?;

        Ok(Self::assemble(
            LabPath::Tap,
            Endpoint::new(client_ns, "nbc0", cip),
            Some((sandbox_ns, ["eth0", TAP])),
            Endpoint::new(guest_ns, GUEST_TAP, sip),
        ))
    }

    /// The VMM backend's view of a tap topology (None for other paths).
    #[must_use]
    pub fn vmm_spec(&self, max_seconds: u64) -> Option<VmmSpec> {
        (self.path == LabPath::Tap).then(|| VmmSpec {
            sandbox: self.extra[0].reference(),
            tap: TAP.into(),
            guest: self.server.netns_ref(),
            guest_tap: GUEST_TAP.into(),
            max_seconds,
        })
    }

    /// Every namespace of the topology.
    #[must_use]
    pub fn namespaces(&self) -> Vec<NetnsRef> {
        let mut v = vec![self.client.netns_ref(), self.server.netns_ref()];
        v.extend(self.extra.iter().map(OwnedNetns::reference));
        v
    }
}

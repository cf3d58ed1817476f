//! Lab topologies. Every namespace is an [`OwnedNetns`]; dropping the topology removes
//! the namespaces, and the kernel removes their devices with them.
use std::net::{IpAddr, Ipv4Addr};

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
    #[must_use]
    pub fn netns_ref(&self) -> NetnsRef {
        self.netns.reference()
    }

    #[must_use]
    pub fn hook(&self) -> HookDevice {
        HookDevice::new(self.netns_ref(), self.ifname.clone())
    }
}

/// A built topology: client and server endpoints plus the hook devices on the path, in
/// request order.
#[derive(Debug)]
pub struct LabTopology {
    pub path: &'static str,
    pub client: Endpoint,
    pub server: Endpoint,
    /// Devices to trace, in the order a request crosses them.
    pub hooks: Vec<HookDevice>,
    /// Namespaces in the middle of the path (e.g. the bridge's "host").
    pub extra: Vec<OwnedNetns>,
}

/// Subnet for lab paths: a /24 inside namespaces netbench owns, never routed anywhere.
const LAB_NET: [u8; 3] = [10, 203, 0];

fn lab_ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(LAB_NET[0], LAB_NET[1], LAB_NET[2], host)
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
            netlink::add_addr(h, ifname, IpAddr::V4(ip), 24).await?;
            netlink::set_up(h, ifname).await?;
            netlink::set_up(h, "lo").await?;
        }
        let client = Endpoint {
            netns: client_ns,
            ifname: cif,
            ip: cip,
        };
        let server = Endpoint {
            netns: server_ns,
            ifname: sif,
            ip: sip,
        };
        let hooks = vec![client.hook(), server.hook()];
        Ok(Self {
            path: "veth",
            client,
            server,
            hooks,
            extra: Vec::new(),
        })
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
            let h = netlink::handle_in(&ns.reference())?;
            netlink::add_addr(&h, ifname, IpAddr::V4(ip), 24).await?;
            netlink::set_up(&h, ifname).await?;
            netlink::set_up(&h, "lo").await?;
        }
        let host = host_ns.reference();
        let client = Endpoint {
            netns: client_ns,
            ifname: "nbc0".into(),
            ip: cip,
        };
        let server = Endpoint {
            netns: server_ns,
            ifname: "nbs0".into(),
            ip: sip,
        };
        let hooks = vec![
            client.hook(),
            HookDevice::new(host.clone(), "nbhc0"),
            HookDevice::new(host, "nbhs0"),
            server.hook(),
        ];
        Ok(Self {
            path: "bridge",
            client,
            server,
            hooks,
            extra: vec![host_ns],
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

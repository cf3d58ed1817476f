//! rtnetlink operations on links, addresses and qdiscs in any network namespace.
//!
//! A netlink socket talks to the namespace it was created in, so [`handle_in`] creates
//! the socket on a thread inside the target namespace and drives it on the caller's tokio
//! runtime. No `ip`/`tc` shell-outs.
use std::{net::IpAddr, os::fd::AsRawFd};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    tc::TcHandle,
};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use crate::netns::{NetnsRef, in_netns};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink in netns {netns}")]
    Socket {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("no device {0}")]
    NoDevice(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The error of a netlink request, naming `what` it was for.
pub(crate) fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// An rtnetlink handle whose socket lives in `ns`. Must be called inside a tokio runtime.
///
/// # Errors
/// When the namespace cannot be entered or the socket not created.
pub fn handle_in(ns: &NetnsRef) -> Result<Handle, NetlinkError> {
    let rt = tokio::runtime::Handle::current();
    let made = in_netns(ns, move || {
        // The socket registers with the caller's reactor.
        let _enter = rt.enter();
        rtnetlink::new_connection()
    })
    .and_then(|r| r)
    .map_err(|source| NetlinkError::Socket {
        netns: ns.to_string(),
        source,
    })?;
    let (conn, handle, _) = made;
    tokio::spawn(conn);
    Ok(handle)
}

/// The link called `name`, or None.
///
/// # Errors
/// On netlink failures other than "no such device".
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(req(format!("looking up {name}"))(e)),
    }
}

/// Index of the link called `name`.
///
/// # Errors
/// When there is no such link.
pub async fn index_of(h: &Handle, name: &str) -> Result<u32, NetlinkError> {
    link_by_name(h, name)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| NetlinkError::NoDevice(name.to_owned()))
}

/// The MAC address of a link.
#[must_use]
pub fn mac_of(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(mac) if mac.len() == 6 => {
            let mut m = [0u8; 6];
            m.copy_from_slice(mac);
            Some(m)
        }
        _ => None,
    })
}

/// The MTU of a link.
#[must_use]
pub fn mtu_of(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Create a veth pair `name` <-> `peer` in the handle's namespace.
///
/// # Errors
/// When the kernel refuses (e.g. a name is taken).
pub async fn create_veth(h: &Handle, name: &str, peer: &str) -> Result<(), NetlinkError> {
    h.link()
        .add(LinkVeth::new(name, peer).build())
        .execute()
        .await
        .map_err(req(format!("creating veth {name}/{peer}")))
}

/// Create a Linux bridge `name` in the handle's namespace.
///
/// # Errors
/// When the kernel refuses.
pub async fn create_bridge(h: &Handle, name: &str) -> Result<(), NetlinkError> {
    h.link()
        .add(rtnetlink::LinkBridge::new(name).build())
        .execute()
        .await
        .map_err(req(format!("creating bridge {name}")))
}

/// Enslave link `name` to bridge `controller`.
///
/// # Errors
/// When a link is missing or the kernel refuses.
pub async fn set_controller(h: &Handle, name: &str, controller: &str) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    let ctrl = index_of(h, controller).await?;
    set_link(
        h,
        LinkUnspec::new_with_index(index).controller(ctrl).build(),
        format!("adding {name} to {controller}"),
    )
    .await
}

/// Move link `name` into namespace `to`.
///
/// # Errors
/// When the namespace cannot be opened or the kernel refuses.
pub async fn move_to_netns(h: &Handle, name: &str, to: &NetnsRef) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    let file = to.open()?;
    let msg = LinkUnspec::new_with_index(index);
    let msg = match &file {
        Some(file) => msg.setns_by_fd(file.as_raw_fd()),
        None => msg.setns_by_pid(std::process::id()),
    };
    // The fd only has to live until the kernel has handled the request.
    let res = set_link(h, msg.build(), format!("moving {name} to {to}")).await;
    drop(file);
    res
}

/// Bring link `name` up.
///
/// # Errors
/// When there is no such link or the kernel refuses.
pub async fn set_up(h: &Handle, name: &str) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    set_link(
        h,
        LinkUnspec::new_with_index(index).up().build(),
        format!("setting {name} up"),
    )
    .await
}

/// Send one `RTM_SETLINK` change; an error names `what` it was for.
async fn set_link(h: &Handle, change: LinkMessage, what: String) -> Result<(), NetlinkError> {
    h.link().set(change).execute().await.map_err(req(what))
}

/// Set MAC address and MTU of link `name`.
///
/// # Errors
/// When there is no such link or the kernel refuses.
pub async fn set_mac_mtu(
    h: &Handle,
    name: &str,
    mac: [u8; 6],
    mtu: Option<u32>,
) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    let mut b = LinkUnspec::new_with_index(index).address(mac.to_vec());
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    set_link(h, b.build(), format!("setting MAC/MTU of {name}")).await
}

/// Add `addr/prefix` to link `name`.
///
/// # Errors
/// When there is no such link or the kernel refuses.
pub async fn add_addr(
    h: &Handle,
    name: &str,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    h.address()
        .add(index, addr, prefix)
        .execute()
        .await
        .map_err(req(format!("adding {addr}/{prefix} to {name}")))
}

/// Delete link `name` (a veth takes its peer with it). Missing links are fine.
///
/// # Errors
/// When the kernel refuses.
pub async fn delete_link(h: &Handle, name: &str) -> Result<(), NetlinkError> {
    let Some(link) = link_by_name(h, name).await? else {
        return Ok(());
    };
    h.link()
        .del(link.header.index)
        .execute()
        .await
        .map_err(req(format!("deleting {name}")))
}

/// Delete the clsact qdisc of `ifname` in the *calling thread's* namespace (used from a
/// thread that already entered it). Blocking; runs its own small runtime.
///
/// # Errors
/// When the device or the qdisc is missing, or the kernel refuses.
pub fn delete_clsact_here(ifname: &str) -> Result<(), NetlinkError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (conn, h, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        let res = async {
            let index = index_of(&h, ifname).await?;
            let mut del = h.qdisc().del(i32::try_from(index).unwrap_or(i32::MAX));
            // clsact sits at ffff:fff1 with handle ffff:0, like the ingress qdisc.
            del.message_mut().header.parent = TcHandle::INGRESS;
            del.message_mut().header.handle = TcHandle::from(0xffff_0000);
            del.execute()
                .await
                .map_err(req(format!("deleting clsact on {ifname}")))
        }
        .await;
        task.abort();
        res
    })
}

/// A veth pair that netbench created; deleting one end removes both.
#[derive(Debug)]
pub struct OwnedVeth {
    pub netns: NetnsRef,
    pub name: String,
}

impl OwnedVeth {
    /// Delete the pair now.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the kernel refuses.
    pub async fn delete(self) -> Result<(), NetlinkError> {
        let h = handle_in(&self.netns)?;
        delete_link(&h, &self.name).await
    }
}

/// Kinds of the qdiscs on device `index` (e.g. `noqueue`, `clsact`, `ingress`).
///
/// # Errors
/// On netlink failures.
pub async fn qdisc_kinds(h: &Handle, index: u32) -> Result<Vec<String>, NetlinkError> {
    use netlink_packet_route::tc::TcAttribute;
    let mut dump = h.qdisc().get().execute();
    let mut kinds = Vec::new();
    while let Some(msg) = dump.try_next().await.map_err(req("listing qdiscs"))? {
        if u32::try_from(msg.header.index).ok() != Some(index) {
            continue;
        }
        kinds.extend(msg.attributes.iter().filter_map(|a| match a {
            TcAttribute::Kind(k) => Some(k.clone()),
            _ => None,
        }));
    }
    Ok(kinds)
}

/// Every link in the handle's namespace.
///
/// # Errors
/// On netlink failures.
pub async fn list_links(h: &Handle) -> Result<Vec<LinkMessage>, NetlinkError> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(req("listing links"))
}

/// The name of a link.
#[must_use]
pub fn name_of(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The alias (`IFLA_IFALIAS`) of a link.
#[must_use]
pub fn alias_of(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

/// Where a link points: `IFLA_LINK` (a veth's peer, a macvlan's parent: an ifindex in
/// the namespace given by `IFLA_LINK_NETNSID`, or in the link's own namespace when that
/// is absent).
#[must_use]
pub fn link_target_of(link: &LinkMessage) -> (Option<u32>, Option<i32>) {
    let mut target = (None, None);
    for a in &link.attributes {
        match a {
            LinkAttribute::Link(i) => target.0 = Some(*i),
            LinkAttribute::LinkNetNsId(id) => target.1 = Some(*id),
            _ => {}
        }
    }
    target
}

/// Set the alias (`IFLA_IFALIAS`) of link `name`: a label that `ip link` shows.
///
/// # Errors
/// When there is no such link or the kernel refuses.
pub async fn set_alias(h: &Handle, name: &str, alias: &str) -> Result<(), NetlinkError> {
    let index = index_of(h, name).await?;
    set_link(
        h,
        LinkUnspec::new_with_index(index).alias(alias).build(),
        format!("setting the alias of {name}"),
    )
    .await
}

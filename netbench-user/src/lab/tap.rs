//! TAP devices and Kata's tc-filter datapath model.
//!
//! Kata Containers cannot hand a veth to a VM, so inside the sandbox namespace it creates
//! `tap0_kata` with eth0's MAC and MTU, puts an `ingress` qdisc on both and connects them
//! with u32 match-all filters whose action is `mirred egress redirect`, both ways:
//! `tc filter add dev eth0 parent ffff: protocol all u32 match u8 0 0 action mirred
//! egress redirect dev tap0_kata` (and the reverse). [`install_kata_redirects`] does
//! exactly that through netlink.
use std::{
    fs::{File, OpenOptions},
    io,
    os::fd::AsRawFd,
};

use futures::TryStreamExt as _;
use rtnetlink::Handle;

use crate::{
    netlink::{self, NetlinkError},
    netns::{NetnsRef, in_netns},
};

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `TUNSETPERSIST` = `_IOW('T', 203, int)`.
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// `IFF_VNET_HDR` is not set: frames are plain Ethernet, as QEMU without vhost reads them.
const IFNAMSIZ: usize = 16;

#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Open (or create) TAP device `name` in the calling thread's namespace and return its
/// queue fd. Frames read from it are what the kernel transmits on the device; frames
/// written to it are received by the kernel on the device.
///
/// # Errors
/// When `/dev/net/tun` cannot be opened or the kernel refuses the name.
pub fn open_tap_here(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad tap name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: valid fd and a properly sized, initialized struct ifreq.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Create a persistent TAP device `name` in `ns` (it outlives the creating fd, like one
/// that Kata's runtime prepares for QEMU). It goes away with its namespace.
///
/// # Errors
/// When the namespace cannot be entered or the device cannot be created.
pub fn create_persistent_tap(ns: &NetnsRef, name: &str) -> io::Result<()> {
    let name = name.to_owned();
    in_netns(ns, move || {
        let file = open_tap_here(&name)?;
        // SAFETY: valid tun fd; the argument is an int flag.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })?
}

/// Kata's filters: ingress qdiscs on `eth0` and `tap`, and u32 match-all mirred egress
/// redirects eth0 -> tap and tap -> eth0.
///
/// # Errors
/// When a device is missing or the kernel refuses.
pub async fn install_kata_redirects(h: &Handle, eth0: &str, tap: &str) -> Result<(), NetlinkError> {
    let eth = netlink::index_of(h, eth0).await?;
    let tapi = netlink::index_of(h, tap).await?;
    for (from, to, what) in [(eth, tapi, "eth0 -> tap"), (tapi, eth, "tap -> eth0")] {
        let from_i = i32::try_from(from).unwrap_or(i32::MAX);
        h.qdisc()
            .add(from_i)
            .ingress()
            .execute()
            .await
            .map_err(netlink::req(format!("adding ingress qdisc ({what})")))?;
        h.traffic_filter(from_i)
            .add()
            .parent(0xffff_0000)
            // ETH_P_ALL, in network byte order as the kernel reads tcm_info's protocol.
            .protocol(0x0003_u16.to_be())
            .redirect(to)
            .map_err(netlink::req(format!(
                "building the mirred redirect ({what})"
            )))?
            .execute()
            .await
            .map_err(netlink::req(format!(
                "adding the mirred redirect filter ({what})"
            )))?;
    }
    Ok(())
}

/// Number of tc filters on the ingress of device `index` (Kata's redirect is one).
///
/// # Errors
/// On netlink failures.
pub async fn ingress_filter_count(h: &Handle, index: u32) -> Result<usize, NetlinkError> {
    let mut dump = h
        .traffic_filter(i32::try_from(index).unwrap_or(i32::MAX))
        .get()
        .ingress()
        .execute();
    let mut n = 0;
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(netlink::req("listing filters"))?
    {
        // The dump lists a chain header per filter priority plus the filter itself;
        // count entries that carry a handle.
        if u32::from(msg.header.handle) != 0 {
            n += 1;
        }
    }
    Ok(n)
}

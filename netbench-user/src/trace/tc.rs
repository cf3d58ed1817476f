//! Attaching the tc classifiers (`netbench-ebpf/src/tc.rs`) to devices in any network
//! namespace. The kernel resolves the device in the namespace of the calling thread, so
//! every attach and detach runs on a dedicated OS thread that has entered the device's
//! namespace (never on a tokio worker, whose namespace must not change).
use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        tc::{SchedClassifierLinkId, TcAttachOptions, qdisc_add_clsact},
    },
};
use netbench_common::names;

use super::TraceError;
use crate::{
    error::Aya,
    netns::{NetnsRef, in_netns},
};

/// How to attach: tcx links (kernel >= 6.6) or legacy netlink filters on clsact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcMode {
    /// tcx where the kernel has it (>= 6.6), netlink otherwise.
    Auto,
    Tcx,
    Netlink,
}

/// A device to trace: its name inside a network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookDevice {
    pub netns: NetnsRef,
    pub ifname: String,
}

impl HookDevice {
    #[must_use]
    pub fn new(netns: NetnsRef, ifname: impl Into<String>) -> Self {
        Self {
            netns,
            ifname: ifname.into(),
        }
    }
}

impl std::fmt::Display for HookDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.ifname, self.netns)
    }
}

/// One program attached to one device in one direction.
#[derive(Debug)]
pub struct Attachment {
    pub device: HookDevice,
    pub program: &'static str,
    pub attach_type: &'static str,
    /// `tcx` or `netlink`.
    pub mode: &'static str,
    /// The device's index in its namespace: what events carry.
    pub ifindex: u32,
    link: Option<SchedClassifierLinkId>,
    /// netlink mode: this attachment added the clsact qdisc and removes it at detach.
    added_clsact: bool,
}

pub(super) fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, TraceError> {
    ebpf.program_mut(name)
        .ok_or(TraceError::Missing(name))?
        .try_into()
        .map_err(|source| TraceError::Program {
            name,
            source: Aya::from(source),
        })
}

fn resolve(mode: TcMode) -> TcMode {
    match mode {
        TcMode::Auto if tcx_supported() => TcMode::Tcx,
        TcMode::Auto => TcMode::Netlink,
        m => m,
    }
}

/// tcx links exist from Linux 6.6 on.
#[must_use]
pub fn tcx_supported() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// The index of `device` in its namespace.
///
/// # Errors
/// When the namespace cannot be entered or there is no such device.
pub fn ifindex_of(device: &HookDevice) -> Result<u32, TraceError> {
    let name = device.ifname.clone();
    in_netns(&device.netns, move || {
        nix::net::if_::if_nametoindex(name.as_str())
    })
    .and_then(|r| r.map_err(std::io::Error::from))
    .map_err(|source| TraceError::Netns {
        netns: format!("{} (device {})", device.netns, device.ifname),
        source,
    })
}

/// Attach ingress and egress programs to `device`.
pub(super) fn attach_both(
    ebpf: &mut Ebpf,
    device: &HookDevice,
    mode: TcMode,
) -> Result<Vec<Attachment>, TraceError> {
    let mode = resolve(mode);
    let ifindex = ifindex_of(device)?;
    let mut done = Vec::with_capacity(2);
    for (program, attach_type, kind) in [
        (names::TC_INGRESS, TcAttachType::Ingress, "ingress"),
        (names::TC_EGRESS, TcAttachType::Egress, "egress"),
    ] {
        let prog = classifier(ebpf, program)?;
        let ifname = device.ifname.clone();
        let entry = clsact_entry(device);
        let attached = in_netns(&device.netns, move || {
            let mut added_clsact = false;
            let options = match mode {
                TcMode::Netlink => {
                    // An existing clsact (EEXIST) is the user's: use it, never remove it.
                    crate::ledger::record(entry.clone());
                    match qdisc_add_clsact(&ifname) {
                        Ok(()) => added_clsact = true,
                        Err(e) => {
                            crate::ledger::release(&entry);
                            if !is_eexist(&e) {
                                return Err(aya::programs::ProgramError::from(e));
                            }
                        }
                    }
                    TcAttachOptions::Netlink(aya::programs::tc::NlOptions::default())
                }
                _ => TcAttachOptions::TcxOrder(LinkOrder::default()),
            };
            let res = prog.attach_with_options(&ifname, attach_type, options);
            if res.is_err() && added_clsact && crate::netlink::delete_clsact_here(&ifname).is_ok() {
                crate::ledger::release(&entry);
                added_clsact = false;
            }
            res.map(|link| (link, added_clsact))
        })
        .map_err(|source| TraceError::Netns {
            netns: device.netns.to_string(),
            source,
        })?;
        match attached {
            Ok((link, added_clsact)) => done.push(Attachment {
                device: device.clone(),
                program,
                attach_type: kind,
                mode: if mode == TcMode::Netlink {
                    "netlink"
                } else {
                    "tcx"
                },
                link: Some(link),
                added_clsact,
                ifindex,
            }),
            Err(source) => {
                // Leave nothing half-attached behind.
                let _ = detach_all(ebpf, done);
                return Err(TraceError::Attach {
                    program,
                    device: device.ifname.clone(),
                    netns: device.netns.to_string(),
                    source: Aya::from(source),
                });
            }
        }
    }
    Ok(done)
}

/// Detach `attachments`, each in its own namespace. Devices that are already gone (their
/// namespace deleted) count as detached.
pub(super) fn detach_all(ebpf: &mut Ebpf, attachments: Vec<Attachment>) -> Result<(), TraceError> {
    let mut first_err = None;
    // Reverse order: the ingress attachment, which may own the clsact qdisc, goes last.
    for mut a in attachments.into_iter().rev() {
        let Some(link) = a.link.take() else { continue };
        let prog = classifier(ebpf, a.program)?;
        let ifname = a.device.ifname.clone();
        let added_clsact = a.added_clsact;
        let entry = clsact_entry(&a.device);
        let res = in_netns(&a.device.netns, move || {
            let res = prog.detach(link);
            // Removing clsact also removes any filter still on it.
            if added_clsact && crate::netlink::delete_clsact_here(&ifname).is_ok() {
                crate::ledger::release(&entry);
            }
            res
        });
        match res {
            // Ok, or the namespace is gone: the kernel removed the device and its programs.
            Err(_) | Ok(Ok(())) => {}
            Ok(Err(source)) => {
                if first_err.is_none() {
                    first_err = Some(TraceError::Attach {
                        program: a.program,
                        device: a.device.ifname.clone(),
                        netns: a.device.netns.to_string(),
                        source: Aya::from(source),
                    });
                }
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The ledger entry of a clsact qdisc netbench adds to `device`.
fn clsact_entry(device: &HookDevice) -> crate::ledger::Resource {
    crate::ledger::Resource::Clsact {
        netns: match &device.netns {
            NetnsRef::Current => None,
            NetnsRef::Path(p) => Some(p.clone()),
        },
        netns_ino: device.netns.inode().unwrap_or(0),
        ifname: device.ifname.clone(),
    }
}

fn is_eexist(e: &aya::programs::tc::TcError) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::EEXIST)
        {
            return true;
        }
        cur = err.source();
    }
    e.to_string().contains("exists")
}

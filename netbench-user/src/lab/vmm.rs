//! The VM side of the Kata-style tap path, as a pluggable piece.
//!
//! A [`Vmm`] holds `tap0_kata` (as QEMU does with `-netdev tap,ifname=tap0_kata`) and
//! delivers frames to a guest where the server agent runs. Here the only backend is the
//! stand-in: a separate process (`netbench vmm-relay`) that copies frames between
//! `tap0_kata` in the sandbox namespace and a TAP device in a "guest" namespace on the
//! same kernel. It models the host-visible datapath (tc redirect -> tap -> a userspace
//! process -> guest stack), not a real VM's cost: every figure it produces is labelled a
//! model. A QEMU backend (real guest kernel under TCG/KVM) plugs in behind the same trait.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use nix::sched::{CloneFlags, setns};
use tokio::process::{Child, Command};

use super::tap::open_tap_here;
use crate::netns::NetnsRef;

/// What a VMM backend is told about the datapath it serves.
#[derive(Clone, Debug)]
pub struct VmmSpec {
    /// The sandbox namespace holding the host-side tap.
    pub sandbox: NetnsRef,
    /// The host-side tap (`tap0_kata`).
    pub tap: String,
    /// The guest namespace and its tap (stand-in only).
    pub guest: NetnsRef,
    pub guest_tap: String,
    /// Upper bound on the backend's life.
    pub max_seconds: u64,
}

/// A running VMM backend.
pub trait Vmm: Send {
    /// Short label for results (`stand-in`, `qemu`).
    fn kind(&self) -> &'static str;
    /// What the figures of this backend model, shown next to them.
    fn model_label(&self) -> String;
}

/// The stand-in VMM: a relay process, killed by its handle on drop.
pub struct StandIn {
    child: Child,
    _listed: crate::ledger::ProcessGuard,
}

/// Where the `netbench` binary is (the relay runs as `netbench vmm-relay`): `$NETBENCH_BIN`,
/// the current executable when it is netbench, or `target/{debug,release}/netbench`.
///
/// # Errors
/// When it cannot be found.
pub fn locate_netbench() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NETBENCH_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == "netbench") {
        return Ok(exe);
    }
    // Test binaries live in target/<profile>/deps/.
    let mut dir = exe.parent();
    while let Some(d) = dir {
        for profile in ["debug", "release"] {
            let p = d.join(profile).join("netbench");
            if p.is_file() {
                return Ok(p);
            }
        }
        if d.join("netbench").is_file() {
            return Ok(d.join("netbench"));
        }
        dir = d.parent();
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "netbench binary not found (set NETBENCH_BIN)",
    ))
}

fn ns_path(ns: &NetnsRef) -> io::Result<&Path> {
    match ns {
        NetnsRef::Path(p) => Ok(p),
        NetnsRef::Current => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the relay needs named namespaces",
        )),
    }
}

impl StandIn {
    /// Start the relay and wait (at most 5 s) until it holds both taps.
    ///
    /// # Errors
    /// When the binary is missing or the relay does not come up.
    pub async fn start(spec: &VmmSpec) -> io::Result<Self> {
        let bin = locate_netbench()?;
        let mut child = Command::new(bin)
            .arg("vmm-relay")
            .arg("--sandbox-netns")
            .arg(ns_path(&spec.sandbox)?)
            .arg("--tap")
            .arg(&spec.tap)
            .arg("--guest-netns")
            .arg(ns_path(&spec.guest)?)
            .arg("--guest-tap")
            .arg(&spec.guest_tap)
            .arg("--max-seconds")
            .arg(spec.max_seconds.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let listed = crate::ledger::ProcessGuard::new(child.id(), "netbench vmm-relay", false);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("relay has no stdout"))?;
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let ready = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line.contains("ready") => Ok(Self {
                child,
                _listed: listed,
            }),
            other => {
                let _ = child.start_kill();
                Err(io::Error::other(format!(
                    "vmm relay did not start: {other:?}"
                )))
            }
        }
    }

    /// Stop the relay (by its handle) and reap it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Vmm for StandIn {
    fn kind(&self) -> &'static str {
        "stand-in"
    }

    fn model_label(&self) -> String {
        "Kata tc-filter datapath (ingress qdisc + u32 mirred redirect eth0 <-> tap0_kata) with a \
         VMM stand-in process relaying tap frames to a guest netns on the same kernel; not a real VM"
            .into()
    }
}

/// The relay process itself (`netbench vmm-relay`): enter the sandbox namespace and open
/// the host-side tap, enter the guest namespace and open the guest tap, then copy frames
/// both ways until `max` passes or the parent kills it.
///
/// # Errors
/// When a namespace or tap cannot be opened.
pub fn relay_main(
    sandbox: &Path,
    tap: &str,
    guest: &Path,
    guest_tap: &str,
    max: Duration,
) -> io::Result<()> {
    // Single-threaded process: setns on the main thread is what we want here.
    let enter = |p: &Path| -> io::Result<()> {
        let f = std::fs::File::open(p)?;
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
    };
    enter(sandbox)?;
    let host = open_tap_here(tap)?;
    enter(guest)?;
    let guest_fd = open_tap_here(guest_tap)?;
    println!("{{\"event\":\"ready\"}}");
    let deadline = Instant::now() + max;
    let mut buf = vec![0u8; 65_536];
    let fds = [host.as_raw_fd(), guest_fd.as_raw_fd()];
    while Instant::now() < deadline {
        let mut pfd = [
            libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fds[1],
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: pfd is a valid array of two pollfd structs.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 2, 100) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (i, p) in pfd.iter().enumerate() {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            let (from, to) = (fds[i], fds[1 - i]);
            // SAFETY: buf is valid for buf.len() bytes.
            let r = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
            if let Ok(len) = usize::try_from(r)
                && len > 0
            {
                // One frame per read and per write on a tap. A failed write drops the
                // frame, as a NIC would.
                // SAFETY: the first len bytes of buf were just written by read.
                let _ = unsafe { libc::write(to, buf.as_ptr().cast(), len) };
            }
        }
    }
    Ok(())
}

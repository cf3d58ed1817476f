//! Network namespaces: references to existing ones, and named ones netbench creates
//! (and always removes, on drop).
//!
//! Entering a namespace changes the calling *thread*, so everything that must run inside
//! one goes through [`in_netns`], which uses a dedicated, short-lived OS thread.
use std::{
    ffi::OsStr,
    fmt,
    fs::File,
    io,
    os::{fd::AsFd, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, CpuSet, sched_setaffinity, setns, unshare},
    unistd::Pid,
};

/// Where named namespaces live (the `ip netns` convention, so users can inspect them).
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Prefix of every namespace netbench creates: `netbench cleanup` and tests look for it.
pub const NETNS_PREFIX: &str = "nb-";

/// A network namespace by reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NetnsRef {
    /// The namespace of the netbench process itself (the "host" namespace).
    Current,
    /// A namespace file: `/run/netns/NAME`, `/proc/PID/ns/net`, a Docker `SandboxKey`.
    Path(PathBuf),
}

impl NetnsRef {
    /// `/run/netns/NAME`.
    #[must_use]
    pub fn named(name: &str) -> Self {
        Self::Path(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// The namespace's inode (what tells two namespaces apart), if it exists.
    #[must_use]
    pub fn inode(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt as _;
        let path = match self {
            Self::Current => Path::new("/proc/self/ns/net"),
            Self::Path(p) => p.as_path(),
        };
        std::fs::metadata(path).ok().map(|m| m.ino())
    }

    /// Open the namespace file (None for the current namespace).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(&self) -> io::Result<Option<File>> {
        match self {
            Self::Current => Ok(None),
            Self::Path(p) => File::open(p).map(Some),
        }
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("host"),
            Self::Path(p) if p.starts_with(NETNS_RUN_DIR) => {
                write!(
                    f,
                    "{}",
                    p.file_name().map_or_else(
                        || p.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    )
                )
            }
            Self::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Run `f` inside `ns` on a dedicated OS thread and return its result. The thread ends
/// with `f`, so no other code ever runs in the wrong namespace.
///
/// # Errors
/// When the namespace cannot be opened or entered, or `f` panics.
pub fn in_netns<F, R>(ns: &NetnsRef, f: F) -> io::Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let file = ns.open()?;
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(file) = &file {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            }
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("thread running in the namespace panicked"))?
    })
}

/// A command for `program` that runs inside `ns` (the agent, sockperf, iperf3), pinned
/// to `cpu` if given: the child enters the namespace (and its CPU) between fork and
/// exec, so no thread of netbench itself ever changes namespace.
///
/// # Errors
/// When the namespace file cannot be opened or the CPU is out of range.
pub fn command_in(
    ns: &NetnsRef,
    program: impl AsRef<OsStr>,
    cpu: Option<usize>,
) -> io::Result<Command> {
    let file = ns.open()?;
    let cpus = match cpu {
        Some(c) => {
            let mut set = CpuSet::new();
            set.set(c).map_err(io::Error::from)?;
            Some(set)
        }
        None => None,
    };
    let mut cmd = Command::new(program);
    if file.is_some() || cpus.is_some() {
        // SAFETY: between fork and exec only async-signal-safe work: a setns and a
        // sched_setaffinity syscall on an fd and a CPU set made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(file) = &file {
                    setns(file.as_fd(), CloneFlags::CLONE_NEWNET)?;
                }
                if let Some(set) = &cpus {
                    sched_setaffinity(Pid::from_raw(0), set)?;
                }
                Ok(())
            });
        }
    }
    Ok(cmd)
}

/// The namespace cookie (`SO_NETNS_COOKIE`) of `ns`: the id `bpf_get_netns_cookie`
/// reports in hop events.
///
/// # Errors
/// When the namespace cannot be entered or the socket option is missing (Linux < 5.14).
pub fn cookie_of(ns: &NetnsRef) -> io::Result<u64> {
    in_netns(ns, || {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mut cookie: u64 = 0;
        let mut len = u32::try_from(std::mem::size_of::<u64>()).unwrap_or(8);
        // SAFETY: valid socket fd, pointer and length describe `cookie`.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_NETNS_COOKIE,
                (&raw mut cookie).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cookie)
    })?
}

/// A named network namespace netbench created. Dropping it unmounts and removes the
/// name; the kernel frees the namespace (and its devices) once nothing uses it.
#[derive(Debug)]
pub struct OwnedNetns {
    name: String,
    path: PathBuf,
    removed: bool,
}

impl OwnedNetns {
    /// Create `/run/netns/NAME` like `ip netns add`, with `lo` brought up by the caller if
    /// needed. `name` must start with [`NETNS_PREFIX`].
    ///
    /// # Errors
    /// When the name is taken or the kernel refuses.
    pub fn create(name: &str) -> io::Result<Self> {
        if !name.starts_with(NETNS_PREFIX) || name.contains('/') || name.len() > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad netns name {name:?}"),
            ));
        }
        std::fs::create_dir_all(NETNS_RUN_DIR)?;
        let path = Path::new(NETNS_RUN_DIR).join(name);
        let entry = crate::ledger::Resource::Netns {
            name: name.to_owned(),
        };
        crate::ledger::record(entry.clone());
        let made = Self::make(&path);
        if made.is_err() {
            crate::ledger::release(&entry);
        }
        made?;
        Ok(Self {
            name: name.to_owned(),
            path,
            removed: false,
        })
    }

    fn make(path: &Path) -> io::Result<()> {
        // create_new: never take over a namespace someone else named.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let target = path.to_owned();
        let made = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            // thread-self: /proc/self/ns/net would name the main thread's namespace.
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("netns creation thread panicked"))?;
        if let Err(e) = made {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(())
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn reference(&self) -> NetnsRef {
        NetnsRef::Path(self.path.clone())
    }

    /// Remove now (drop does the same, ignoring errors).
    ///
    /// # Errors
    /// When the bind mount cannot be removed.
    pub fn remove(mut self) -> io::Result<()> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        remove_named(&self.path)
    }
}

impl Drop for OwnedNetns {
    fn drop(&mut self) {
        let _ = self.remove_inner();
    }
}

/// Unmount and unlink a named namespace file.
fn remove_named(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        crate::ledger::release(&crate::ledger::Resource::Netns {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Names of namespaces under [`NETNS_RUN_DIR`] that carry netbench's prefix.
#[must_use]
pub fn list_owned() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return vec![];
    };
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect();
    names.sort();
    names
}

/// Remove a netbench namespace by name (used by `netbench cleanup`).
///
/// # Errors
/// When the name lacks netbench's prefix or the mount cannot be removed.
pub fn remove_owned(name: &str) -> io::Result<()> {
    if !name.starts_with(NETNS_PREFIX) || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a netbench namespace"),
        ));
    }
    remove_named(&Path::new(NETNS_RUN_DIR).join(name))
}

/// A namespace name unique to this process: `nb-<pid>-<tag>`, cut to fit.
#[must_use]
pub fn unique_name(tag: &str) -> String {
    let mut n = format!("{NETNS_PREFIX}{}-{tag}", std::process::id());
    n.truncate(40);
    n
}

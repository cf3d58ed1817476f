//! Host facts read straight from the kernel: privileges, release, BTF, mounts, vhost-net.
use std::{
    ffi::CStr,
    fs::File,
    io::{self, Read as _},
    path::Path,
};

use super::{Item, Status, kata::VhostNet};

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// First two bytes of every BTF blob (`BTF_MAGIC`, native endian).
const BTF_MAGIC: u16 = 0xEB9F;

/// The capabilities netbench needs, with their bit numbers in `CapEff`.
const CAPS: [(&str, u32); 4] = [
    ("CAP_BPF", 39),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_PERFMON", 38),
];

// ---- root -------------------------------------------------------------------------------

/// `root`: effective uid 0 and the capabilities eBPF and netns work needs.
pub(super) fn root_item() -> Item {
    let euid = nix::unistd::geteuid().as_raw();
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))
        .and_then(|s| {
            parse_cap_eff(&s).ok_or_else(|| "no CapEff line in /proc/self/status".to_owned())
        });
    root_from(euid, cap_eff)
}

/// The effective capability mask from the text of `/proc/<pid>/status`.
pub(super) fn parse_cap_eff(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(value.trim(), 16).ok()
}

fn root_from(euid: u32, cap_eff: Result<u64, String>) -> Item {
    let caps = match cap_eff {
        Ok(mask) => {
            let (have, lack): (Vec<_>, Vec<_>) =
                CAPS.iter().partition(|(_, bit)| mask & (1 << bit) != 0);
            let names = |caps: Vec<&(&str, u32)>| {
                caps.iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match (have.is_empty(), lack.is_empty()) {
                (_, true) => Ok(format!("{} effective", names(have))),
                (true, false) => Err(format!("none of {} effective", names(lack))),
                (false, false) => Err(format!(
                    "effective: {}; not effective: {}",
                    names(have),
                    names(lack)
                )),
            }
        }
        Err(reason) => Err(format!("capabilities unknown: {reason}")),
    };
    match (euid, caps) {
        (0, Ok(caps)) => Item::new("root", Status::Ok, format!("euid 0; {caps}")),
        (0, Err(caps)) => Item::new("root", Status::Warn, format!("euid 0; {caps}")),
        (euid, Ok(caps) | Err(caps)) => Item::new(
            "root",
            Status::Missing,
            format!("not root (euid {euid}): run as root; {caps}"),
        ),
    }
}

// ---- kernel -----------------------------------------------------------------------------

/// `kernel`: the running kernel's release, from uname(2).
pub(super) fn kernel_item() -> Item {
    match kernel_release() {
        Ok(release) => Item::new("kernel", Status::Ok, release),
        Err(e) => Item::new("kernel", Status::Failed, format!("uname: {e}")),
    }
}

fn kernel_release() -> io::Result<String> {
    // SAFETY: `utsname` is plain old data (arrays of c_char); all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable `utsname` that the kernel fills in.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: uname(2) succeeded, so `release` holds a NUL-terminated string within its
    // array (and the array was zeroed beforehand, so a NUL exists regardless).
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

// ---- btf --------------------------------------------------------------------------------

/// Why the kernel's BTF cannot be used.
#[derive(Debug)]
enum BtfProblem {
    Absent,
    Unreadable(io::Error),
    NotBtf(u16),
}

/// `btf`: `/sys/kernel/btf/vmlinux` exists, opens, and starts with the BTF magic.
pub(super) fn btf_item() -> Item {
    btf_from(VMLINUX_BTF, check_btf(Path::new(VMLINUX_BTF)))
}

fn check_btf(path: &Path) -> Result<u64, BtfProblem> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BtfProblem::Absent,
        _ => BtfProblem::Unreadable(e),
    })?;
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic)
        .map_err(BtfProblem::Unreadable)?;
    let magic = u16::from_ne_bytes(magic);
    if magic != BTF_MAGIC {
        return Err(BtfProblem::NotBtf(magic));
    }
    file.metadata()
        .map(|m| m.len())
        .map_err(BtfProblem::Unreadable)
}

fn btf_from(path: &str, check: Result<u64, BtfProblem>) -> Item {
    match check {
        Ok(size) => Item::new(
            "btf",
            Status::Ok,
            format!("{path}, {} ({size} bytes)", mib(size)),
        ),
        Err(BtfProblem::Absent) => Item::new(
            "btf",
            Status::Missing,
            format!("{path} missing: kernel built without CONFIG_DEBUG_INFO_BTF"),
        ),
        Err(BtfProblem::Unreadable(e)) => {
            Item::new("btf", Status::Failed, format!("{path} unreadable: {e}"))
        }
        Err(BtfProblem::NotBtf(magic)) => Item::new(
            "btf",
            Status::Failed,
            format!("{path} is not BTF (magic {magic:#06x}, expected {BTF_MAGIC:#06x})"),
        ),
    }
}

/// Size in MiB with one decimal, without float casts.
fn mib(bytes: u64) -> String {
    let tenths = bytes * 10 / (1 << 20);
    format!("{}.{} MiB", tenths / 10, tenths % 10)
}

// ---- mounts -----------------------------------------------------------------------------

/// One line of `/proc/mounts`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Mount {
    pub mountpoint: String,
    pub fstype: String,
}

pub(super) fn read_mounts() -> Result<Vec<Mount>, String> {
    std::fs::read_to_string("/proc/mounts")
        .map(|t| parse_mounts(&t))
        .map_err(|e| format!("/proc/mounts: {e}"))
}

/// Parse `/proc/mounts` text: `device mountpoint fstype options dump pass`.
pub(super) fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mountpoint = unescape_mount_field(fields.next()?);
            let fstype = fields.next()?.to_owned();
            Some(Mount { mountpoint, fstype })
        })
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_field(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// `tracefs`: mounted somewhere (tracepoint attach needs it).
pub(super) fn tracefs_item(mounts: Result<&[Mount], &String>) -> Item {
    mount_item(
        "tracefs",
        "tracefs",
        "mount -t tracefs nodev /sys/kernel/tracing",
        mounts,
    )
}

/// `bpffs`: mounted somewhere (pinning maps and links needs it).
pub(super) fn bpffs_item(mounts: Result<&[Mount], &String>) -> Item {
    mount_item("bpffs", "bpf", "mount -t bpf bpf /sys/fs/bpf", mounts)
}

fn mount_item(
    name: &str,
    fstype: &str,
    mount_hint: &str,
    mounts: Result<&[Mount], &String>,
) -> Item {
    let mounts = match mounts {
        Ok(m) => m,
        Err(reason) => return Item::new(name, Status::Failed, reason),
    };
    let points: Vec<&str> = mounts
        .iter()
        .filter(|m| m.fstype == fstype)
        .map(|m| m.mountpoint.as_str())
        .collect();
    if points.is_empty() {
        Item::new(name, Status::Missing, format!("not mounted: {mount_hint}"))
    } else {
        Item::new(
            name,
            Status::Ok,
            format!("mounted at {}", points.join(", ")),
        )
    }
}

// ---- vhost-net --------------------------------------------------------------------------

/// Whether `/dev/vhost-net` exists, and if not whether this kernel has the module at all.
pub(super) fn vhost_net() -> VhostNet {
    if Path::new("/dev/vhost-net").exists() {
        return VhostNet::Present;
    }
    let Ok(release) = kernel_release() else {
        return VhostNet::Absent;
    };
    let modules = Path::new("/lib/modules").join(release);
    let listed = ["modules.dep", "modules.builtin"].iter().any(|index| {
        std::fs::read_to_string(modules.join(index))
            .is_ok_and(|text| text.contains("/vhost_net.ko"))
    });
    if listed {
        VhostNet::NotLoaded
    } else {
        VhostNet::Absent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x0000_01ff_feff_ffff));
        assert_eq!(parse_cap_eff("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(parse_cap_eff("CapPrm:\t00000000\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
    }

    #[test]
    fn root_with_all_caps_is_ok() {
        let i = root_from(0, Ok(0x0000_01ff_feff_ffff));
        assert_eq!(i.status, Status::Ok);
        assert_eq!(
            i.detail,
            "euid 0; CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON effective"
        );
    }

    #[test]
    fn root_without_bpf_caps_warns() {
        let mask = (1 << 12) | (1 << 21);
        let i = root_from(0, Ok(mask));
        assert_eq!(i.status, Status::Warn);
        assert_eq!(
            i.detail,
            "euid 0; effective: CAP_NET_ADMIN, CAP_SYS_ADMIN; not effective: CAP_BPF, CAP_PERFMON"
        );
    }

    #[test]
    fn non_root_is_missing() {
        let i = root_from(1000, Ok(0));
        assert_eq!(i.status, Status::Missing);
        assert!(i.detail.starts_with("not root (euid 1000)"), "{}", i.detail);
        assert!(i.detail.contains("none of CAP_BPF"), "{}", i.detail);
        assert_eq!(root_from(0, Err("gone".into())).status, Status::Warn);
    }

    #[test]
    fn btf_outcomes() {
        let ok = btf_from(VMLINUX_BTF, Ok(5_516_713));
        assert_eq!(
            (ok.status, ok.detail.as_str()),
            (
                Status::Ok,
                "/sys/kernel/btf/vmlinux, 5.2 MiB (5516713 bytes)"
            )
        );
        assert_eq!(
            btf_from(VMLINUX_BTF, Err(BtfProblem::Absent)).status,
            Status::Missing
        );
        assert_eq!(
            btf_from(VMLINUX_BTF, Err(BtfProblem::NotBtf(0x7f45))).status,
            Status::Failed
        );
    }

    #[test]
    fn finds_tracefs_and_bpffs() {
        let text = "proc /proc proc rw 0 0\n\
                    tracefs /sys/kernel/tracing tracefs rw 0 0\n\
                    none /my\\040bpf bpf rw 0 0\n";
        let mounts = parse_mounts(text);
        let t = tracefs_item(Ok(&mounts));
        assert_eq!(
            (t.status, t.detail.as_str()),
            (Status::Ok, "mounted at /sys/kernel/tracing")
        );
        let b = bpffs_item(Ok(&mounts));
        assert_eq!(b.detail, "mounted at /my bpf");
        let none = parse_mounts("proc /proc proc rw 0 0\n");
        assert_eq!(bpffs_item(Ok(&none)).status, Status::Missing);
        assert_eq!(
            tracefs_item(Err(&"/proc/mounts: gone".to_owned())).status,
            Status::Failed
        );
    }
}

//! Types shared by the eBPF programs and userspace.
//!
//! Everything here is `#[repr(C)]`, `Copy`, made of fixed-width integers and explicit
//! padding, so the kernel and user side agree byte for byte. Tags cross the boundary as
//! integers and are decoded with `TryFrom` on the user side.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "protocol")]
pub mod protocol;

use core::mem::size_of;

#[cfg(feature = "std")]
pub mod stamp;

/// Magic number at the start of every probe payload ("NBPR").
pub const PROBE_MAGIC: u32 = 0x4e42_5052;
/// Version of [`HopEvent`]'s layout.
pub const EVENT_VERSION: u16 = 1;

/// Names of programs and maps in the eBPF object: one definition, used on both sides.
pub mod names {
    pub const TC_INGRESS: &str = "netbench_tc_ingress";
    pub const TC_EGRESS: &str = "netbench_tc_egress";
    pub const TP_NET_DEV_QUEUE: &str = "netbench_tp_net_dev_queue";
    pub const TP_BTF_NET_DEV_QUEUE: &str = "netbench_btf_net_dev_queue";
    pub const TP_SCHED_WAKEUP: &str = "netbench_sched_wakeup";
    pub const TP_SCHED_SWITCH: &str = "netbench_sched_switch";
    pub const TP_SCHED_FORK: &str = "netbench_sched_fork";
    /// Hash map: thread ids whose scheduling is traced.
    pub const SCHED_TIDS: &str = "NETBENCH_SCHED_TIDS";
    /// Global: offset of `pid` in `struct task_struct` (from the kernel's BTF).
    pub const GLOBAL_TASK_PID_OFF: &str = "TASK_PID_OFF";
    /// Global (u64): bytes waiting in the ring above which a submit wakes the reader.
    pub const GLOBAL_WAKEUP_BYTES: &str = "WAKEUP_BYTES";
    /// Global: [`super::SINK_RING`] or [`super::SINK_RECORDER`].
    pub const GLOBAL_SINK: &str = "SINK";
    /// Global: recorder slots per CPU.
    pub const GLOBAL_RECORD_SLOTS: &str = "RECORD_SLOTS";
    /// Array of `HopEvent`: the recorder's slots, `RECORD_SLOTS` per CPU.
    pub const RECORD: &str = "NETBENCH_RECORD";
    /// Per-CPU u32 per region: recorder slots taken.
    pub const RECORD_NEXT: &str = "NETBENCH_RECORD_NEXT";
    pub const EVENTS: &str = "NETBENCH_EVENTS";
    pub const LOST: &str = "NETBENCH_LOST";
    pub const COUNTERS: &str = "NETBENCH_COUNTERS";
    /// Global: the probe port (UDP or TCP, source or destination), host byte order.
    pub const GLOBAL_PROBE_PORT: &str = "PROBE_PORT";
    /// Global: a second probe port (0 = unused), e.g. a TCP port beside the UDP one.
    pub const GLOBAL_PROBE_PORT2: &str = "PROBE_PORT2";
    /// Global: [`super::MODE_EVENTS`] or [`super::MODE_COUNT_ONLY`].
    pub const GLOBAL_MODE: &str = "MODE";
}

/// Events go to the ring buffer (streaming; the reader drains while the programs run).
pub const SINK_RING: u32 = 0;
/// Events go to the recorder: per-CPU slots in an array, read after the measurement
/// (the cheapest path: no lock, no helper beyond the CPU id, nothing to wake).
pub const SINK_RECORDER: u32 = 1;

/// Recorder regions per CPU: programs that may interrupt each other write apart.
pub const RECORD_REGIONS: u32 = 2;
/// Recorder region of the tc programs.
pub const RECORD_TC: u32 = 0;
/// Recorder region of the sched tracepoints.
pub const RECORD_SCHED: u32 = 1;

/// Emit one event per probe packet and hook.
pub const MODE_EVENTS: u32 = 0;
/// Only count probe packets per CPU (cheap mode, e.g. while measuring bandwidth).
pub const MODE_COUNT_ONLY: u32 = 1;

/// Indexes of the per-CPU counter array [`names::COUNTERS`].
pub mod counter {
    /// Probe packets seen (all hooks).
    pub const PROBES_SEEN: u32 = 0;
    /// Packets on a probe port whose payload did not carry the probe header.
    pub const NOT_PROBE: u32 = 1;
    /// Packets the parser could not read (short, truncated).
    pub const PARSE_ERRORS: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 3;
}

/// Where in the datapath an event was taken.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "kebab-case"))]
pub enum HookKind {
    /// tc ingress (clsact ingress / tcx ingress) of a device.
    TcIngress = 1,
    /// tc egress of a device.
    TcEgress = 2,
    /// The agent's own send stamp (userspace, `CLOCK_MONOTONIC`).
    AppSend = 3,
    /// The agent's own receive stamp (userspace, `CLOCK_MONOTONIC`).
    AppRecv = 4,
    /// `sched:sched_wakeup` of a traced thread: it was put on a run queue.
    SchedWakeup = 5,
    /// `sched:sched_switch` onto a traced thread: it started running.
    SchedSwitchIn = 6,
}

impl HookKind {
    /// Short name, as point names use it (`ingress`, `egress`, `app-send`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TcIngress => "ingress",
            Self::TcEgress => "egress",
            Self::AppSend => "app-send",
            Self::AppRecv => "app-recv",
            Self::SchedWakeup => "sched-wakeup",
            Self::SchedSwitchIn => "sched-switch-in",
        }
    }
}

impl TryFrom<u32> for HookKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => Self::TcIngress,
            2 => Self::TcEgress,
            3 => Self::AppSend,
            4 => Self::AppRecv,
            5 => Self::SchedWakeup,
            6 => Self::SchedSwitchIn,
            other => return Err(other),
        })
    }
}

/// Direction of a probe message.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "kebab-case"))]
pub enum Direction {
    Request = 0,
    Reply = 1,
}

impl TryFrom<u32> for Direction {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            0 => Ok(Self::Request),
            1 => Ok(Self::Reply),
            other => Err(other),
        }
    }
}

/// Transport of a probe, carried in [`HopEvent::proto`] (IP protocol number).
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// The fixed header at the start of every probe message, in network byte order on the
/// wire. The agent writes it; the tc programs read it at the start of the L4 payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeHeader {
    /// [`PROBE_MAGIC`], big endian.
    pub magic: u32,
    /// Run identifier, big endian.
    pub run_id: u32,
    /// Sequence number, big endian.
    pub seq: u64,
    /// [`Direction`] as u32, big endian.
    pub dir: u32,
    /// Total message length in bytes (header included), big endian.
    pub len: u32,
}
const _: () = assert!(size_of::<ProbeHeader>() == 24);

impl ProbeHeader {
    pub const SIZE: usize = size_of::<Self>();

    /// Header in host order -> wire bytes.
    #[must_use]
    pub fn to_bytes(run_id: u32, seq: u64, dir: Direction, len: u32) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&PROBE_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&run_id.to_be_bytes());
        b[8..16].copy_from_slice(&seq.to_be_bytes());
        b[16..20].copy_from_slice(&(dir as u32).to_be_bytes());
        b[20..24].copy_from_slice(&len.to_be_bytes());
        b
    }

    /// Wire bytes -> `(run_id, seq, dir, len)` in host order, or `None` if the magic or
    /// the direction is wrong or the slice is short.
    #[must_use]
    pub fn parse(b: &[u8]) -> Option<(u32, u64, Direction, u32)> {
        if b.len() < Self::SIZE {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != PROBE_MAGIC {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[8..16]);
        let dir = Direction::try_from(u32_at(16)).ok()?;
        Some((u32_at(4), u64::from_be_bytes(seq), dir, u32_at(20)))
    }
}

/// One probe packet seen at one hook (tc programs), or one scheduler event of a traced
/// server thread (sched tracepoints: `hook` is [`HookKind::SchedWakeup`] or
/// [`HookKind::SchedSwitchIn`], `tid` names the thread, the probe fields are 0).
/// The `_pad` field is public so that both sides can build the struct literally.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::pub_underscore_fields,
    reason = "explicit padding, written out as style.md asks"
)]
pub struct HopEvent {
    /// [`EVENT_VERSION`].
    pub version: u16,
    /// IP protocol of the probe ([`PROTO_UDP`] or [`PROTO_TCP`]).
    pub proto: u8,
    pub _pad0: u8,
    /// [`HookKind`] as u32.
    pub hook: u32,
    /// Device index (`skb->dev`). Unique among the devices one tracer attaches to.
    pub ifindex: u32,
    /// CPU the program ran on.
    pub cpu: u32,
    /// `bpf_get_netns_cookie(skb)`: the namespace of the socket owning the skb when it has
    /// one (on ingress across a veth, the *sender's*), else of the device. Diagnostic only;
    /// never used to identify a device.
    pub netns_cookie: u64,
    /// Run identifier from the probe header.
    pub run_id: u32,
    /// [`Direction`] as u32.
    pub dir: u32,
    /// Sequence number from the probe header.
    pub seq: u64,
    /// `bpf_ktime_get_ns()`: `CLOCK_MONOTONIC`.
    pub ts_ns: u64,
    /// skb->len at the hook.
    pub pkt_len: u32,
    /// Sched events: the thread id woken / switched in. tc events: 0.
    pub tid: u32,
}
const _: () = assert!(size_of::<HopEvent>() == 56);

impl HopEvent {
    pub const SIZE: usize = size_of::<Self>();

    /// Decode an event from ring-buffer bytes without assuming alignment.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        // SAFETY: the length was checked above; HopEvent is plain old data (any bit
        // pattern is valid) and read_unaligned makes no alignment assumption.
        let ev = unsafe { core::ptr::read_unaligned(b.as_ptr().cast::<Self>()) };
        (ev.version == EVENT_VERSION).then_some(ev)
    }
}

#[cfg(feature = "user")]
// SAFETY: HopEvent is repr(C), Copy, and has no implicit padding.
unsafe impl aya::Pod for HopEvent {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn header_round_trip() {
        let b = ProbeHeader::to_bytes(7, 0x1122_3344_5566_7788, Direction::Reply, 64);
        assert_eq!(
            ProbeHeader::parse(&b),
            Some((7, 0x1122_3344_5566_7788, Direction::Reply, 64))
        );
        assert_eq!(&b[0..4], b"NBPR");
    }

    #[test]
    fn header_rejects_bad_magic_dir_and_short() {
        let mut b = ProbeHeader::to_bytes(1, 2, Direction::Request, 24);
        assert!(ProbeHeader::parse(&b[..23]).is_none());
        b[19] = 9;
        assert!(ProbeHeader::parse(&b).is_none());
        let mut c = ProbeHeader::to_bytes(1, 2, Direction::Request, 24);
        c[0] = 0;
        assert!(ProbeHeader::parse(&c).is_none());
    }

    #[test]
    fn event_decodes_unaligned_and_checks_version() {
        let ev = HopEvent {
            version: EVENT_VERSION,
            proto: PROTO_UDP,
            _pad0: 0,
            hook: HookKind::TcEgress as u32,
            ifindex: 3,
            cpu: 1,
            netns_cookie: 42,
            run_id: 9,
            dir: 1,
            seq: 5,
            ts_ns: 123,
            pkt_len: 80,
            tid: 0,
        };
        let mut buf = std::vec![0u8; HopEvent::SIZE + 1];
        // SAFETY: buf has SIZE + 1 bytes; write at offset 1 is unaligned on purpose.
        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr().add(1).cast::<HopEvent>(), ev) };
        assert_eq!(HopEvent::from_bytes(&buf[1..]), Some(ev));
        assert!(HopEvent::from_bytes(&buf[1..HopEvent::SIZE]).is_none());
        buf[1] = 99;
        assert!(HopEvent::from_bytes(&buf[1..]).is_none());
        assert_eq!(HookKind::try_from(2), Ok(HookKind::TcEgress));
        assert_eq!(HookKind::try_from(0), Err(0));
    }
}

//! Maps and load-time globals shared by all programs.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use netbench_common::{HopEvent, MODE_EVENTS, SINK_RECORDER, counter};

/// Hop events to userspace. 1 MiB by default; userspace may resize it at load time.
#[map(name = "NETBENCH_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// The recorder: per CPU and per region `RECORD_SLOTS` event slots (region r of CPU c
/// starts at `(c * RECORD_REGIONS + r) * RECORD_SLOTS`), filled in order and read by
/// userspace after the measurement. Userspace sizes it at load time.
#[map(name = "NETBENCH_RECORD")]
pub static RECORD: Array<HopEvent> = Array::with_max_entries(1, 0);

/// Per CPU and region: slots taken so far (past `RECORD_SLOTS`: events lost).
#[map(name = "NETBENCH_RECORD_NEXT")]
pub static RECORD_NEXT: PerCpuArray<u32> =
    PerCpuArray::with_max_entries(netbench_common::RECORD_REGIONS, 0);

/// Per-CPU count of events lost in the kernel (ring full, or recorder slots used up).
#[map(name = "NETBENCH_LOST")]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU counters, indexed by `netbench_common::counter`.
#[map(name = "NETBENCH_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

// Load-time globals (EbpfLoader::set_global). Read with read_volatile so the compiler
// does not fold the initial value.
#[unsafe(no_mangle)]
static PROBE_PORT: u16 = 0;
#[unsafe(no_mangle)]
static PROBE_PORT2: u16 = 0;
#[unsafe(no_mangle)]
static MODE: u32 = MODE_EVENTS;
/// Bytes waiting in the ring above which a submit wakes the reader (0 = every submit
/// wakes it). Below it nothing is woken: the reader drains on its own schedule.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;
/// Where events go: `SINK_RING` or `SINK_RECORDER`.
#[unsafe(no_mangle)]
static SINK: u32 = 0;
/// Recorder slots per CPU.
#[unsafe(no_mangle)]
static RECORD_SLOTS: u32 = 1;

#[inline(always)]
pub fn probe_ports() -> (u16, u16) {
    // SAFETY: plain reads of rodata globals set by the loader.
    unsafe {
        (
            core::ptr::read_volatile(&raw const PROBE_PORT),
            core::ptr::read_volatile(&raw const PROBE_PORT2),
        )
    }
}

#[inline(always)]
pub fn mode() -> u32 {
    // SAFETY: plain read of a rodata global set by the loader.
    unsafe { core::ptr::read_volatile(&raw const MODE) }
}

#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(ptr) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *ptr += 1 };
    }
}

/// Hand one event to userspace, through the recorder (into `region`) or the ring
/// buffer; a full recorder or ring counts the event as lost.
#[inline(always)]
pub fn emit(ev: &HopEvent, region: u32) {
    // SAFETY: plain read of a rodata global set by the loader.
    if unsafe { core::ptr::read_volatile(&raw const SINK) } == SINK_RECORDER {
        record(ev, region);
    } else {
        ring(ev);
    }
}

/// The recorder: no helper beyond the CPU id (both map lookups are inlined by the
/// verifier), no lock, no wake-up. Programs that can interrupt each other on one CPU
/// write different regions: tc programs never nest (ingress runs in softirq, egress
/// with bottom halves off, neither in hard interrupts), and the sched tracepoints run
/// with interrupts off; `sched_wakeup` may fire in a hard interrupt during a tc
/// program, so the two have a region each and no slot is ever taken twice.
#[inline(always)]
fn record(ev: &HopEvent, region: u32) {
    // SAFETY: plain read of a rodata global set by the loader.
    let slots = unsafe { core::ptr::read_volatile(&raw const RECORD_SLOTS) };
    let Some(next) = RECORD_NEXT.get_ptr_mut(region) else {
        return bump(&LOST, 0);
    };
    // SAFETY: this CPU's counter of this region; nothing else writes it meanwhile (above).
    let n = unsafe { *next };
    if n >= slots {
        return bump(&LOST, 0);
    }
    // SAFETY: as above.
    unsafe { *next = n + 1 };
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let base = cpu
        .wrapping_mul(netbench_common::RECORD_REGIONS)
        .wrapping_add(region);
    match RECORD.get_ptr_mut(base.wrapping_mul(slots).wrapping_add(n)) {
        // SAFETY: the slot is this CPU's and region's, counted above.
        Some(slot) => unsafe { slot.write(*ev) },
        None => bump(&LOST, 0),
    }
}

/// The ring buffer: submitted without waking the reader (a wake-up is an irq_work
/// self-IPI, a VM exit on a virtual machine, in the middle of the measured path),
/// unless the ring is filling up: past the watermark the reader is woken to drain it.
#[inline(always)]
fn ring(ev: &HopEvent) {
    let Some(mut entry) = EVENTS.reserve::<HopEvent>(0) else {
        return bump(&LOST, 0);
    };
    entry.write(*ev);
    // SAFETY: plain read of a rodata global set by the loader.
    let watermark = unsafe { core::ptr::read_volatile(&raw const WAKEUP_BYTES) };
    let flags = if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= watermark {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(u64::from(flags));
}

//! Maps and load-time globals shared by all programs.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{PerCpuArray, RingBuf, ring_buf::RingBufEntry},
};
use netbench_common::{MODE_EVENTS, counter};

/// Hop events to userspace. 1 MiB by default; userspace may resize it at load time.
#[map(name = "NETBENCH_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Per-CPU count of ring-buffer reserve failures (events lost in the kernel).
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

/// Submit a reserved event without waking the reader (a wake-up is an irq_work
/// self-IPI, a VM exit on a virtual machine, in the middle of the measured path),
/// unless the ring is filling up: past the watermark the reader is woken to drain it.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    // SAFETY: plain read of a rodata global set by the loader.
    let watermark = unsafe { core::ptr::read_volatile(&raw const WAKEUP_BYTES) };
    let flags = if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= watermark {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(u64::from(flags));
}

//! Maps and load-time globals shared by all programs.
use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
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

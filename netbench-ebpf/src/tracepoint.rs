//! Tracepoint programs: the scheduler events of traced server threads (run-queue wait),
//! the fork tracking that keeps the traced set complete without a userspace poller,
//! and the feature probes `netbench doctor` loads.
use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map, tracepoint},
    maps::HashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use netbench_common::{EVENT_VERSION, HookKind, HopEvent};

use crate::maps::{EVENTS, LOST, bump, submit};

/// Thread ids whose scheduling is traced (value unused). Userspace seeds it with the
/// threads of the processes it tracks; `netbench_sched_fork` adds every thread or
/// process those create, in the kernel, as they are created.
#[map(name = "NETBENCH_SCHED_TIDS")]
static SCHED_TIDS: HashMap<u32, u32> = HashMap::with_max_entries(16_384, 0);

// Record offsets, from the tracefs format files (set by the loader).
#[unsafe(no_mangle)]
static WAKEUP_PID_OFF: u32 = 24;
#[unsafe(no_mangle)]
static SWITCH_NEXT_PID_OFF: u32 = 56;
#[unsafe(no_mangle)]
static FORK_PARENT_PID_OFF: u32 = 12;
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFF: u32 = 20;

#[inline(always)]
fn global(v: &u32) -> usize {
    // SAFETY: plain read of a rodata global set by the loader.
    unsafe { core::ptr::read_volatile(v) as usize }
}

#[inline(always)]
fn emit_if_traced(ctx: &TracePointContext, pid_off: usize, hook: HookKind) {
    // SAFETY: the offset comes from the tracepoint's own format description.
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(pid_off) }) else {
        return;
    };
    let tid = tid.cast_unsigned();
    if SCHED_TIDS.get_ptr(tid).is_none() {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<HopEvent>(0) else {
        return bump(&LOST, 0);
    };
    // SAFETY: helpers without arguments.
    let (ts_ns, cpu) = unsafe { (bpf_ktime_get_ns(), bpf_get_smp_processor_id()) };
    entry.write(HopEvent {
        version: EVENT_VERSION,
        proto: 0,
        _pad0: 0,
        hook: hook as u32,
        ifindex: 0,
        cpu,
        netns_cookie: 0,
        run_id: 0,
        dir: 0,
        seq: 0,
        ts_ns,
        pkt_len: 0,
        tid,
    });
    submit(entry);
}

#[tracepoint]
pub fn netbench_sched_wakeup(ctx: TracePointContext) -> u32 {
    emit_if_traced(&ctx, global(&WAKEUP_PID_OFF), HookKind::SchedWakeup);
    0
}

#[tracepoint]
pub fn netbench_sched_switch(ctx: TracePointContext) -> u32 {
    emit_if_traced(&ctx, global(&SWITCH_NEXT_PID_OFF), HookKind::SchedSwitchIn);
    0
}

/// `sched:sched_process_fork` (threads too): a traced thread's new thread or child is
/// traced from its first instruction on.
#[tracepoint]
pub fn netbench_sched_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: the offsets come from the tracepoint's own format description.
    let ids = unsafe {
        (
            ctx.read_at::<i32>(global(&FORK_PARENT_PID_OFF)),
            ctx.read_at::<i32>(global(&FORK_CHILD_PID_OFF)),
        )
    };
    if let (Ok(parent), Ok(child)) = ids
        && SCHED_TIDS.get_ptr(parent.cast_unsigned()).is_some()
    {
        // A full map only loses the run-queue split of that thread.
        let _ = SCHED_TIDS.insert(child.cast_unsigned(), 1, 0);
    }
    0
}

#[tracepoint]
pub fn netbench_tp_net_dev_queue(_ctx: TracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "net_dev_queue")]
pub fn netbench_btf_net_dev_queue(_ctx: BtfTracePointContext) -> i32 {
    0
}

//! Tracepoint programs: the scheduler events of traced server threads (run-queue wait),
//! the fork tracking that keeps the traced set complete without a userspace poller,
//! and the feature probes `netbench doctor` loads.
//!
//! The scheduler programs are BTF tracepoints (`tp_btf`): they get the tracepoint's
//! typed arguments (`task_struct` pointers) directly. A classic tracepoint first builds
//! the event record (for `sched_switch`: both tasks' comm, pids, priorities, state) on
//! every context switch of every CPU; measured here, that doubled what tracing added to
//! a same-CPU round trip. `task_struct.pid`'s offset comes from the kernel's BTF
//! (userspace, at load time).
use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{btf_tracepoint, map, tracepoint},
    maps::HashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use netbench_common::{EVENT_VERSION, HookKind, HopEvent};

use crate::maps::emit;

/// Thread ids whose scheduling is traced (value unused). Userspace seeds it with the
/// threads of the processes it tracks; `netbench_sched_fork` adds every thread or
/// process those create, in the kernel, as they are created.
#[map(name = "NETBENCH_SCHED_TIDS")]
static SCHED_TIDS: HashMap<u32, u32> = HashMap::with_max_entries(16_384, 0);

/// Offset of `pid` in `struct task_struct`, from the kernel's BTF (set by the loader).
#[unsafe(no_mangle)]
static TASK_PID_OFF: u32 = 0;

/// The thread id (`task_struct.pid`) of task `task`.
#[inline(always)]
fn tid_of(task: *const u8) -> Option<u32> {
    // SAFETY: plain read of a rodata global set by the loader.
    let off = unsafe { core::ptr::read_volatile(&raw const TASK_PID_OFF) } as usize;
    // SAFETY: the helper reads kernel memory safely (a fault returns an error); the
    // pointer is the tracepoint's task argument.
    unsafe { bpf_probe_read_kernel(task.wrapping_add(off).cast::<i32>()) }
        .ok()
        .map(i32::cast_unsigned)
}

#[inline(always)]
fn emit_if_traced(task: *const u8, hook: HookKind) {
    let Some(tid) = tid_of(task) else {
        return;
    };
    if SCHED_TIDS.get_ptr(tid).is_none() {
        return;
    }
    // SAFETY: helpers without arguments.
    let (ts_ns, cpu) = unsafe { (bpf_ktime_get_ns(), bpf_get_smp_processor_id()) };
    emit(
        &HopEvent {
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
        },
        netbench_common::RECORD_SCHED,
    );
}

/// `sched_wakeup(struct task_struct *p)`: a traced thread was put on a run queue.
#[btf_tracepoint(function = "sched_wakeup")]
pub fn netbench_sched_wakeup(ctx: BtfTracePointContext) -> i32 {
    emit_if_traced(ctx.arg::<*const u8>(0), HookKind::SchedWakeup);
    0
}

/// `sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)`: a traced thread starts running.
#[btf_tracepoint(function = "sched_switch")]
pub fn netbench_sched_switch(ctx: BtfTracePointContext) -> i32 {
    emit_if_traced(ctx.arg::<*const u8>(2), HookKind::SchedSwitchIn);
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`
/// (threads too): a traced thread's new thread or child is traced from its first
/// instruction on.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn netbench_sched_fork(ctx: BtfTracePointContext) -> i32 {
    if let (Some(parent), Some(child)) = (
        tid_of(ctx.arg::<*const u8>(0)),
        tid_of(ctx.arg::<*const u8>(1)),
    ) && SCHED_TIDS.get_ptr(parent).is_some()
    {
        // A full map only loses the run-queue split of that thread.
        let _ = SCHED_TIDS.insert(child, 1, 0);
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

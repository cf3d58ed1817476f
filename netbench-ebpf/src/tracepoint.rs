//! Tracepoint programs. For now only the feature probes `netbench doctor` loads: a
//! classic tracepoint and a BTF (tp_btf) one on `net:net_dev_queue`. The run-queue
//! stage (sched_wakeup / sched_switch) will live here too.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
#[tracepoint]
pub fn netbench_tp_net_dev_queue(_ctx: TracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "net_dev_queue")]
pub fn netbench_btf_net_dev_queue(_ctx: BtfTracePointContext) -> i32 {
    0
}

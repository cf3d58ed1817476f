//! tc classifiers for ingress and egress. They only observe: every path returns
//! TC_ACT_UNSPEC, which both tcx (as TCX_NEXT) and legacy cls_bpf direct-action read as
//! "go on to the next program/filter", so e.g. Kata's mirred redirect still runs.
//! TC_ACT_OK would end processing there and skip those filters; TC_ACT_PIPE would end
//! a legacy filter chain too.
use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::classifier,
    programs::TcContext,
};
use netbench_common::{EVENT_VERSION, HookKind, HopEvent, MODE_COUNT_ONLY, counter};

use crate::{
    maps::{COUNTERS, bump, emit, mode, probe_ports},
    parse::{Parsed, parse},
};

#[classifier]
pub fn netbench_tc_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, HookKind::TcIngress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netbench_tc_egress(ctx: TcContext) -> i32 {
    observe(&ctx, HookKind::TcEgress);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext, hook: HookKind) {
    let probe = match parse(ctx, probe_ports()) {
        Parsed::Probe(p) => p,
        Parsed::PortOnly => return bump(&COUNTERS, counter::NOT_PROBE),
        Parsed::Error => return bump(&COUNTERS, counter::PARSE_ERRORS),
        Parsed::Other => return,
    };
    bump(&COUNTERS, counter::PROBES_SEEN);
    if mode() == MODE_COUNT_ONLY {
        return;
    }
    let skb = ctx.skb.skb;
    // SAFETY: helpers without arguments.
    let (ts_ns, cpu) = unsafe { (bpf_ktime_get_ns(), bpf_get_smp_processor_id()) };
    // SAFETY: skb points at the program's __sk_buff context.
    let (ifindex, pkt_len) = unsafe { ((*skb).ifindex, (*skb).len) };
    emit(
        &HopEvent {
            version: EVENT_VERSION,
            proto: probe.proto,
            _pad0: 0,
            hook: hook as u32,
            ifindex,
            cpu,
            // Not a device key (on ingress it is the sender's netns): not read, to save a
            // helper call per event. Devices are told apart by ifindex.
            netns_cookie: 0,
            run_id: probe.run_id,
            dir: probe.dir,
            seq: probe.seq,
            ts_ns,
            pkt_len,
            tid: 0,
        },
        netbench_common::RECORD_TC,
    );
}

//! The one analysis: repetitions of traced and untraced probe blocks on a [`TracedPath`] ->
//! correlated timelines, stage statistics (merged as the path reports them, with the
//! merged parts and the run-queue split as a breakdown), the untraced round trip, and
//! the observer effect. Lab, run and bench all analyse through [`analyze`]. Pure: no
//! kernel, no processes.
use std::collections::HashMap;

use netbench_common::{HookKind, HopEvent};
use serde::Serialize;

use crate::{
    block::{self, Block},
    correlate::{CorrelationStats, PathSpec, Timeline, correlate},
    observer::{ObserverEffect, observer_effect},
    path::TracedPath,
    runqueue::{self, Parts, SplitStats},
    stages::{StageResult, stage_results},
    stats::{Summary, p50_us, summarize},
    trace::SessionOutcome,
};

/// What the tracer did over all traced blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceTotals {
    pub events: u64,
    /// Events lost in the kernel (ring full) or dropped by the reader.
    pub events_lost: u64,
    /// Times the reader ran while probes could be in flight (timer or forced wake-up).
    pub reader_wakeups: u64,
    pub ring_bytes: u32,
}

impl TraceTotals {
    fn add(&mut self, o: &SessionOutcome) {
        self.events += o.delivered;
        self.events_lost += o.events_lost();
        self.reader_wakeups += o.reader.wakeups();
        self.ring_bytes = self.ring_bytes.max(o.ring_bytes);
    }
}

/// Everything the figures of one scenario come from.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Complete timelines of the traced probes, in traced shape (every point).
    pub timelines: Vec<Timeline>,
    pub correlation: CorrelationStats,
    /// Round trips of the matched traced probes (what the stages add up to).
    pub rtt: Option<Summary>,
    /// Each repetition's traced p50 (None: nothing matched in it).
    pub per_rep_p50: Vec<Option<f64>>,
    /// Round trips of the untraced probes: the round trip to quote.
    pub rtt_untraced: Option<Summary>,
    pub per_rep_untraced_p50: Vec<Option<f64>>,
    pub observer_effect: Option<ObserverEffect>,
    /// Stages as the path reports them.
    pub stages: Vec<StageResult>,
    /// Merged stages' parts and the server stage's run-queue split (not in the sum).
    pub breakdown: Vec<StageResult>,
    pub runqueue: Option<SplitStats>,
    pub trace: TraceTotals,
}

/// Correlate one traced block along `path`. For a guest client, each host-only
/// timeline gets a first point earlier by the agent's round trip minus the host-observed
/// span (a duration on the guest clock, never a join of two clocks), so stages still
/// sum to the agent's round trip.
#[must_use]
pub fn correlate_block(path: &TracedPath, b: &Block) -> (Vec<Timeline>, CorrelationStats) {
    let (mut timelines, mut stats) = correlate(
        &path.correlation_path(),
        b.run_id,
        &b.app_probes(),
        &b.trace.events,
    );
    if path.guest_client {
        let rtt: HashMap<u64, u64> = b
            .probes
            .iter()
            .filter_map(|p| p.rtt_ns.map(|r| (p.seq, r)))
            .collect();
        timelines.retain_mut(|t| {
            let span = t.rtt_ns();
            match rtt.get(&t.seq) {
                Some(&rtt) if rtt >= span => {
                    let first = t.ts_ns[0];
                    t.ts_ns.insert(0, first.saturating_sub(rtt - span));
                    true
                }
                _ => {
                    stats.probes_matched -= 1;
                    stats.probes_out_of_order += 1;
                    false
                }
            }
        });
    }
    (timelines, stats)
}

fn has_sched_events(events: &[HopEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            HookKind::try_from(e.hook),
            Ok(HookKind::SchedWakeup | HookKind::SchedSwitchIn)
        )
    })
}

/// Drop the points at `drop` from a path and its timelines, naming the new stages
/// `names`: consecutive stages around a dropped point merge into one.
fn without_points(
    path: &PathSpec,
    timelines: &[Timeline],
    drop: &[usize],
    names: &[String],
) -> (PathSpec, Vec<Timeline>) {
    let keep = |i: &usize| !drop.contains(i);
    let points = (0..path.points.len())
        .filter(keep)
        .map(|i| path.points[i].clone())
        .collect();
    let spec = PathSpec::new(points, names.to_vec());
    let tls = timelines
        .iter()
        .map(|t| Timeline {
            seq: t.seq,
            ts_ns: (0..t.ts_ns.len())
                .filter(keep)
                .map(|i| t.ts_ns[i])
                .collect(),
        })
        .collect();
    (spec, tls)
}

/// Analyse `reps` (each repetition's blocks, traced and untraced, in the order they
/// ran; see [`block::order`]) on `path`.
#[must_use]
pub fn analyze(path: &TracedPath, reps: &[Vec<Block>]) -> Analysis {
    let mut a = Analysis::default();
    let mut parts: Option<Parts> = None;
    let mut split = SplitStats::default();
    let stage = path.runqueue_stage();
    let mut pairs = Vec::new();
    let mut untraced = Vec::new();
    for rep in reps {
        let mut rep_rtts = Vec::new();
        let mut rep_untraced = Vec::new();
        for b in rep {
            if !b.traced {
                rep_untraced.extend(b.rtts_ns());
                continue;
            }
            let (timelines, stats) = correlate_block(path, b);
            if let Some(i) = stage.filter(|_| has_sched_events(&b.trace.events)) {
                let (p, s) = runqueue::split_parts(&timelines, i, &b.trace.events);
                let acc = parts.get_or_insert_with(Default::default);
                for (acc, part) in acc.iter_mut().zip(p) {
                    acc.extend(part);
                }
                split.add(s);
            }
            rep_rtts.extend(timelines.iter().map(Timeline::rtt_ns));
            a.timelines.extend(timelines);
            a.correlation.absorb(stats);
            a.trace.add(&b.trace);
        }
        a.per_rep_p50.push(p50_us(&rep_rtts));
        a.per_rep_untraced_p50.push(p50_us(&rep_untraced));
        pairs.extend(block::pairs(rep));
        untraced.extend(rep_untraced);
    }
    a.rtt_untraced = (!untraced.is_empty()).then(|| summarize(&untraced));
    a.observer_effect = observer_effect(&pairs);
    if a.timelines.is_empty() {
        return a;
    }
    let rtts: Vec<u64> = a.timelines.iter().map(Timeline::rtt_ns).collect();
    let rtt = summarize(&rtts);
    a.rtt = Some(rtt);
    let traced = path.traced_path();
    let all = stage_results(&traced, &a.timelines, rtt.mean);
    if path.merges.is_empty() {
        a.stages = all;
    } else {
        let (report, tls) = without_points(
            &traced,
            &a.timelines,
            &path.hidden_points(),
            &path.report_stages(),
        );
        a.stages = stage_results(&report, &tls, rtt.mean);
        for m in &path.merges {
            a.breakdown.extend_from_slice(&all[m.from..m.to]);
        }
    }
    if let (Some(parts), Some(i)) = (&parts, stage) {
        a.breakdown
            .extend(runqueue::results(parts, rtt.mean, &path.stages[i]));
        a.runqueue = Some(split);
    }
    a
}

#[cfg(test)]
mod tests {
    use netbench_common::{Direction, EVENT_VERSION, HookKind, HopEvent, PROTO_UDP};

    use super::*;
    use crate::{
        agent::RrProbe,
        netns::NetnsRef,
        path::Merge,
        stages::{TAP_STAGES, TAP_TRACED_STAGES, TAP_VM_MERGE},
        trace::HookDevice,
    };

    fn ev(seq: u64, hook: HookKind, dir: Direction, ifindex: u32, ts: u64) -> HopEvent {
        HopEvent {
            version: EVENT_VERSION,
            proto: PROTO_UDP,
            _pad0: 0,
            hook: hook as u32,
            ifindex,
            cpu: 0,
            netns_cookie: 0,
            run_id: 9,
            dir: dir as u32,
            seq,
            ts_ns: ts,
            pkt_len: 64,
            tid: 0,
        }
    }

    fn tap_path() -> TracedPath {
        let hops = [(2, "nbc0"), (3, "eth0"), (4, "tap0_kata"), (5, "nbgtap0")]
            .into_iter()
            .map(|(i, n)| {
                (
                    n.to_owned(),
                    HookDevice::new(NetnsRef::Path("/ns".into()), n),
                    i,
                )
            })
            .collect();
        let mut p = TracedPath::alternating("lab-tap", hops, TAP_TRACED_STAGES);
        p.merges.push(Merge {
            into: "vm".into(),
            from: TAP_VM_MERGE.0,
            to: TAP_VM_MERGE.1,
        });
        p
    }

    fn probe(seq: u64, send: u64, recv: u64) -> RrProbe {
        RrProbe {
            seq,
            run_id: 9,
            send_ns: send,
            recv_ns: Some(recv),
            rtt_ns: Some(recv - send),
            lost: false,
            proto: None,
        }
    }

    #[test]
    fn tap_path_merges_the_guest_into_vm_and_keeps_the_breakdown() {
        use Direction::{Reply, Request};
        use HookKind::{TcEgress as E, TcIngress as I};
        // Request: nbc0 E, eth0 I, tap E, guest I; reply: guest E, tap I, eth0 E, nbc0 I.
        let events = vec![
            ev(0, E, Request, 2, 110),
            ev(0, I, Request, 3, 120),
            ev(0, E, Request, 4, 121),
            ev(0, I, Request, 5, 140),
            ev(0, E, Reply, 5, 170),
            ev(0, I, Reply, 4, 200),
            ev(0, E, Reply, 3, 210),
            ev(0, I, Reply, 2, 215),
        ];
        let traced = |events: &[HopEvent]| Block {
            run_id: 9,
            traced: true,
            probes: vec![probe(0, 100, 230)],
            trace: SessionOutcome {
                events: events.to_vec(),
                ..SessionOutcome::default()
            },
        };
        let untraced = Block {
            run_id: 10,
            traced: false,
            probes: vec![probe(0, 300, 400)],
            ..Block::default()
        };
        let a = analyze(&tap_path(), &[vec![traced(&events), untraced.clone()]]);
        let names: Vec<&str> = a.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, TAP_STAGES);
        let us = |name: &str| a.stages.iter().find(|s| s.name == name).unwrap().mean_us;
        assert!((us("tc-redirect-in") - 0.001).abs() < 1e-9);
        assert!(
            (us("vm") - 0.079).abs() < 1e-9,
            "tap egress 121 -> tap ingress 200"
        );
        assert!((us("tc-redirect-out") - 0.010).abs() < 1e-9);
        let part = |name: &str| a.breakdown.iter().find(|s| s.name == name).unwrap().mean_us;
        assert!(
            (part("vmm-in") - 0.019).abs() < 1e-9,
            "tap egress -> guest ingress"
        );
        assert!((part("guest-stack-and-app") - 0.030).abs() < 1e-9);
        assert!((part("vmm-out") - 0.030).abs() < 1e-9);
        // The traced round trip 130 ns against the untraced 100 ns.
        assert_eq!(a.rtt_untraced.map(|s| s.count), Some(1));
        let effect = a.observer_effect.expect("one pair");
        assert!((effect.p50.ratio - 1.3).abs() < 0.01, "{effect:?}");
        assert_eq!(a.per_rep_p50.len(), 1);
        assert!(a.runqueue.is_none(), "no sched events, no split");
        // A hop missing: nothing matched, no figures (and no panic).
        let none = analyze(&tap_path(), &[vec![traced(&events[1..]), untraced]]);
        assert!(none.rtt.is_none() && none.stages.is_empty());
        assert_eq!(none.per_rep_p50, [None]);
        assert_eq!(none.correlation.probes_missing_hops, 1);
    }

    #[test]
    fn guest_client_durations_never_join_two_clocks() {
        use Direction::{Reply, Request};
        use HookKind::{TcEgress as E, TcIngress as I};
        // A client on its own clock: its stamps (1_000_000..) are not the host's (100..).
        let mut p = TracedPath::alternating(
            "kata-client",
            vec![
                (
                    "c".into(),
                    HookDevice::new(NetnsRef::Path("/ns".into()), "c"),
                    2,
                ),
                (
                    "s".into(),
                    HookDevice::new(NetnsRef::Path("/ns".into()), "s"),
                    3,
                ),
            ],
            &["client-vm", "veth", "server-stack-and-app", "veth-reply"],
        );
        p.guest_client = true;
        let events = vec![
            ev(0, E, Request, 2, 100),
            ev(0, I, Request, 3, 110),
            ev(0, E, Reply, 3, 150),
            ev(0, I, Reply, 2, 160),
        ];
        let b = Block {
            run_id: 9,
            traced: true,
            probes: vec![probe(0, 1_000_000, 1_000_100)],
            trace: SessionOutcome {
                events,
                ..SessionOutcome::default()
            },
        };
        let a = analyze(&p, &[vec![b]]);
        let us = |name: &str| a.stages.iter().find(|s| s.name == name).unwrap().mean_us;
        // Host hooks span 60 ns; the agent measured 100 ns: the VM's own share is 40 ns.
        assert!((us("client-vm") - 0.040).abs() < 1e-9, "{:?}", a.stages);
        assert!((us("server-stack-and-app") - 0.040).abs() < 1e-9);
        assert!((a.rtt.unwrap().mean - 0.100).abs() < 1e-9);
    }
}

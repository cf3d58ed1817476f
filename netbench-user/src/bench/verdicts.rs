//! The figures against the targets, each decided on its 95% CI.
use super::{
    BenchReport,
    figures::{
        Decision, RatioCi, TARGET_COST_NS, TARGET_COUNT_ONLY_LOSS_PCT, TARGET_EVENTS_PER_S,
        TARGET_RATIO_PCT, Target, Verdict,
    },
};

fn cost_verdicts(v: &mut Vec<Verdict>, r: &BenchReport) {
    let Some(c) = &r.cost else {
        v.push(Verdict::of_reps(
            "per-program cost",
            None,
            "ns",
            Target::AtMost {
                limit: TARGET_COST_NS,
            },
        ));
        return;
    };
    for run in &c.runs {
        let target = run
            .target_ns
            .map_or(Target::None, |limit| Target::AtMost { limit });
        for (side, p) in run.tc_programs() {
            v.push(Verdict::of_reps(
                &format!(
                    "cost/run, {} {}, {side} ({})",
                    run.load, run.variant, run.target_for
                ),
                Some(&p.ns_per_run),
                "ns",
                target,
            ));
        }
    }
}

fn throughput_verdicts(v: &mut Vec<Verdict>, r: &BenchReport) {
    let t = r.throughput.as_ref();
    let loss = |mode: &str, target| {
        let m = t.and_then(|t| t.mode(mode));
        Verdict::new(
            &format!("stream throughput loss, {mode} (paired)"),
            m.and_then(|m| m.loss_pct),
            m.and_then(|m| m.loss_ci95_pct),
            "%",
            target,
        )
    };
    v.push(loss(
        "count-only",
        Target::AtMost {
            limit: TARGET_COUNT_ONLY_LOSS_PCT,
        },
    ));
    v.push(Verdict::of_reps(
        "tracer's share of the path's CPU per packet, count-only",
        t.and_then(|t| t.cpu_share.as_ref()).map(|s| &s.share_pct),
        "%",
        Target::AtMost {
            limit: TARGET_COUNT_ONLY_LOSS_PCT,
        },
    ));
    v.push(loss("full", Target::None));
}

fn capacity_verdicts(v: &mut Vec<Verdict>, r: &BenchReport) {
    let target = Target::AtLeast {
        limit: TARGET_EVENTS_PER_S,
    };
    let Some(c) = &r.capacity else {
        v.push(Verdict::of_reps(
            "loss-free hop events/s delivered",
            None,
            "events/s",
            target,
        ));
        return;
    };
    match &c.reps {
        Some(reps) => {
            let figure = format!(
                "loss-free hop events/s delivered, {} MiB ring ({} reps)",
                reps.ring_bytes >> 20,
                reps.per_rep.len()
            );
            let lossy = reps.reps_without_lossless_step();
            let mut verdict = Verdict::of_reps(
                &figure,
                Some(&reps.lossless_events_per_s),
                "events/s",
                target,
            );
            if lossy > 0 {
                verdict = verdict.with_note(format!(
                    "{lossy} of {} reps lost events at every step",
                    reps.per_rep.len()
                ));
                // Loss everywhere is a result, not a missing figure.
                if lossy * 2 > reps.per_rep.len() {
                    verdict.decision = Decision::NotMet;
                }
            }
            v.push(verdict);
        }
        None => v.push(Verdict::of_reps(
            "loss-free hop events/s delivered",
            None,
            "events/s",
            target,
        )),
    }
    for ring in &c.rings {
        v.push(Verdict::new(
            &format!(
                "ladder: highest loss-free events/s, {} MiB ring",
                ring.ring_bytes >> 20
            ),
            ring.summary.max_lossless_events_per_s,
            None,
            "events/s",
            Target::None,
        ));
    }
    v.push(Verdict::new(
        "reader drain rate (pre-filled ring)",
        c.drain.as_ref().map(|d| d.events_per_s),
        None,
        "events/s",
        Target::None,
    ));
}

fn rtt_verdicts(v: &mut Vec<Verdict>, r: &BenchReport) {
    let rtts: Vec<_> = r
        .accuracy
        .as_ref()
        .map(|a| a.rtt.iter().collect())
        .unwrap_or_default();
    if rtts.is_empty() {
        for pct in ["p50", "p99"] {
            v.push(Verdict::ratio_within(
                &format!("rr {pct}, agent untraced / sockperf"),
                None,
                TARGET_RATIO_PCT,
            ));
        }
    }
    for rtt in rtts {
        for (pct, ratio) in [("p50", rtt.ratio_p50), ("p99", rtt.ratio_p99)] {
            v.push(Verdict::ratio_within(
                &format!(
                    "rr {pct}, agent untraced / sockperf, bridge {}",
                    rtt.placement
                ),
                ratio,
                TARGET_RATIO_PCT,
            ));
        }
    }
    v.push(Verdict::ratio_within(
        "stream, agent / iperf3",
        r.accuracy.as_ref().and_then(|a| a.stream.ratio),
        TARGET_RATIO_PCT,
    ));
    let runs: Vec<_> = r
        .observer
        .as_ref()
        .map(|o| o.runs.iter().collect())
        .unwrap_or_default();
    if runs.is_empty() {
        v.push(Verdict::ratio_within(
            "rr traced / untraced",
            None,
            TARGET_RATIO_PCT,
        ));
    }
    for run in runs {
        let e = run.effect.as_ref();
        for (pct, ratio) in [("p50", e.map(|e| &e.p50)), ("p99", e.map(|e| &e.p99))] {
            v.push(Verdict::ratio_within(
                &format!(
                    "rr {pct}, traced / untraced, lab {} {}",
                    run.path, run.placement
                ),
                ratio.map(|r| RatioCi {
                    ratio: r.ratio,
                    ci95: r.ci95,
                }),
                TARGET_RATIO_PCT,
            ));
        }
    }
    if let Some(d) = &r.docker {
        let e = d.effect.as_ref();
        for (pct, ratio) in [("p50", e.map(|e| &e.p50)), ("p99", e.map(|e| &e.p99))] {
            let figure = format!("rr {pct}, traced / untraced, Docker runc bridge pair");
            let mut verdict = Verdict::new(
                &figure,
                ratio.map(|r| r.ratio),
                ratio.and_then(|r| r.ci95),
                "x",
                Target::None,
            );
            if let Some(why) = &d.unsupported {
                verdict = verdict.with_note(format!("unsupported: {why}"));
            }
            v.push(verdict);
        }
    }
}

/// The figures against the targets.
#[must_use]
pub fn verdicts(r: &BenchReport) -> Vec<Verdict> {
    let mut v = Vec::new();
    cost_verdicts(&mut v, r);
    throughput_verdicts(&mut v, r);
    capacity_verdicts(&mut v, r);
    rtt_verdicts(&mut v, r);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_figures_fail_no_target() {
        let v = verdicts(&crate::bench::fixture::empty_report());
        assert!(
            v.iter()
                .all(|v| matches!(v.decision, Decision::NotMeasured | Decision::AsMeasured)),
            "{v:?}"
        );
        assert_eq!(v.len(), 9, "{v:?}");
    }
}

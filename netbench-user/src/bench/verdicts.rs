//! The figures against the targets, each decided on its 95% CI.
use super::{
    AccuracyFigures, BenchReport, CapacityFigures, CostFigures, Measured, ThroughputFigures,
    figures::{
        Decision, RatioCi, TARGET_COST_NS, TARGET_COUNT_ONLY_LOSS_PCT, TARGET_EVENTS_PER_S,
        TARGET_RATIO_PCT, Target, Verdict,
    },
};
use crate::observer::{ObserverEffect, Ratio};

fn cost_verdicts(v: &mut Vec<Verdict>, cost: Option<&CostFigures>) {
    let Some(c) = cost else {
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

fn throughput_verdicts(v: &mut Vec<Verdict>, t: Option<&ThroughputFigures>) {
    let loss = |mode: &str, target| {
        let m = t.and_then(|t| t.mode(mode));
        Verdict::new(
            &format!("stream throughput loss, {mode} (paired)"),
            m.and_then(|m| m.loss.mean),
            m.and_then(|m| m.loss.ci95),
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

fn capacity_verdicts(v: &mut Vec<Verdict>, capacity: Option<&CapacityFigures>) {
    let target = Target::AtLeast {
        limit: TARGET_EVENTS_PER_S,
    };
    let Some(c) = capacity else {
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

/// The agent against the reference tools.
fn accuracy_verdicts(v: &mut Vec<Verdict>, accuracy: Option<&AccuracyFigures>) {
    let rtts = accuracy.map_or(&[][..], |a| a.rtt.as_slice());
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
                    rtt.at.placement
                ),
                ratio,
                TARGET_RATIO_PCT,
            ));
        }
    }
    v.push(Verdict::ratio_within(
        "stream, agent / iperf3",
        accuracy.and_then(|a| a.stream.ratio),
        TARGET_RATIO_PCT,
    ));
}

/// The p50 and the p99 ratio of an observer effect, by name.
fn percentiles(e: Option<&ObserverEffect>) -> [(&'static str, Option<&Ratio>); 2] {
    [("p50", e.map(|e| &e.p50)), ("p99", e.map(|e| &e.p99))]
}

/// Traced / untraced: on the lab paths, and on the Docker experiment's bridge pair.
fn observer_verdicts(v: &mut Vec<Verdict>, m: &Measured) {
    let runs = m.observer.as_ref().map_or(&[][..], |o| o.runs.as_slice());
    if runs.is_empty() {
        v.push(Verdict::ratio_within(
            "rr traced / untraced",
            None,
            TARGET_RATIO_PCT,
        ));
    }
    for run in runs {
        for (pct, ratio) in percentiles(run.effect.as_ref()) {
            v.push(Verdict::ratio_within(
                &format!(
                    "rr {pct}, traced / untraced, lab {} {}",
                    run.path, run.at.placement
                ),
                ratio.map(|r| RatioCi {
                    ratio: r.ratio,
                    ci95: r.ci95,
                }),
                TARGET_RATIO_PCT,
            ));
        }
    }
    if let Some(d) = &m.docker {
        for (pct, ratio) in percentiles(d.figure.effect()) {
            let figure = format!("rr {pct}, traced / untraced, Docker runc bridge pair");
            let mut verdict = Verdict::new(
                &figure,
                ratio.map(|r| r.ratio),
                ratio.and_then(|r| r.ci95),
                "x",
                Target::None,
            );
            if let Some(why) = d.figure.unsupported() {
                verdict = verdict.with_note(format!("unsupported: {why}"));
            }
            v.push(verdict);
        }
    }
}

/// The figures against the targets.
#[must_use]
pub fn verdicts(r: &BenchReport) -> Vec<Verdict> {
    let m = &r.measured;
    let mut v = Vec::new();
    cost_verdicts(&mut v, m.cost.as_ref());
    throughput_verdicts(&mut v, m.throughput.as_ref());
    capacity_verdicts(&mut v, m.capacity.as_ref());
    accuracy_verdicts(&mut v, m.accuracy.as_ref());
    observer_verdicts(&mut v, m);
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

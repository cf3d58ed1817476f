//! After the run: the sanity problems that fail short mode (errors, leftovers,
//! figures that are not numbers or zero, events not accounted for, a reader woken per
//! event).
use super::{
    BenchReport,
    figures::{RatioCi, check_positive, check_reps},
};

fn accuracy_problems(p: &mut Vec<String>, a: &super::AccuracyFigures) {
    if a.rtt.is_empty() {
        p.push("no round-trip comparison".into());
    }
    for rtt in &a.rtt {
        let at = rtt.at.placement;
        for (name, t) in [("sockperf", &rtt.sockperf), ("agent", &rtt.agent)] {
            check_reps(p, &format!("{name} rtt p50 us, {at}"), &t.p50_us);
            check_reps(p, &format!("{name} rtt p99 us, {at}"), &t.p99_us);
        }
        for (name, r) in [
            ("rr p50 ratio", rtt.ratio_p50),
            ("rr p99 ratio", rtt.ratio_p99),
        ] {
            check_ratio(p, &format!("{name}, {at}"), r);
        }
    }
    check_ratio(p, "stream ratio", a.stream.ratio);
    check_reps(p, "iperf3 Gbit/s", &a.stream.iperf3_gbps);
    check_reps(p, "agent stream Gbit/s", &a.stream.agent_gbps);
}

fn check_ratio(p: &mut Vec<String>, name: &str, r: Option<RatioCi>) {
    check_positive(p, name, r.map(|r| r.ratio));
    if r.is_some_and(|r| r.ci95.is_some_and(|c| !c.is_finite())) {
        p.push(format!("{name}: confidence interval is not a number"));
    }
}

/// Whether the reader ran far less often than events arrived: at most one wake-up per
/// [`EVENTS_PER_WAKEUP`] events (a reader woken per event would match the count).
pub const EVENTS_PER_WAKEUP: u64 = 50;

fn check_wakeups(p: &mut Vec<String>, what: &str, wakeups: u64, events: u64) {
    if events > 0 && wakeups.saturating_mul(EVENTS_PER_WAKEUP) > events {
        p.push(format!(
            "{what}: the reader ran {wakeups} times for {events} events (expected at most one \
             run per {EVENTS_PER_WAKEUP} events: no wake-up per event)"
        ));
    }
}

fn cost_problems(p: &mut Vec<String>, c: &super::CostFigures) {
    for run in &c.runs {
        let what = format!("cost, {} {}", run.load, run.variant);
        if run.tc_programs().count() != 2 {
            p.push(format!("{what}: not both tc programs ran"));
        }
        for prog in &run.programs {
            check_reps(
                p,
                &format!("cost of {} under {} load", prog.program, run.load),
                &prog.ns_per_run,
            );
        }
        if run.mode == crate::trace::TraceMode::Events {
            if run.probes_seen != run.events + run.events_lost {
                p.push(format!(
                    "{what}: the kernel saw {} probes but {} events were delivered and {} lost",
                    run.probes_seen, run.events, run.events_lost
                ));
            }
            check_wakeups(p, &what, run.reader_wakeups, run.events);
        }
    }
    if c.floor.is_some() {
        check_reps(
            p,
            "cost of the empty program",
            &c.floor
                .as_ref()
                .map(|f| f.ns_per_run.clone())
                .unwrap_or_default(),
        );
    }
}

fn capacity_problems(p: &mut Vec<String>, c: &super::CapacityFigures) {
    match &c.drain {
        Some(d) => {
            check_positive(p, "reader drain rate", Some(d.events_per_s));
            if d.kernel_lost > 0 {
                p.push(format!(
                    "reader drain: {} events lost while filling the ring",
                    d.kernel_lost
                ));
            }
        }
        None => p.push("reader drain rate is missing".into()),
    }
    let reps = c.reps.iter().map(|r| {
        (
            format!("capacity reps, {} MiB ring", r.ring_bytes >> 20),
            &r.runs,
        )
    });
    let ladders = c.rings.iter().map(|r| {
        (
            format!("capacity, {} MiB ring", r.ring_bytes >> 20),
            &r.steps,
        )
    });
    for (what, steps) in ladders.chain(reps) {
        if steps.is_empty() {
            p.push(format!("{what}: no steps ran"));
        }
        for s in steps {
            check_positive(p, &format!("{what}: events/s"), Some(s.event_rate));
            check_positive(p, &format!("{what}: datagrams/s"), Some(s.datagram_rate));
            let accounted = s.delivered + s.kernel_lost + s.reader_dropped;
            if accounted != s.probes_seen {
                p.push(format!(
                    "{what}: {} probes seen but {accounted} events delivered or lost",
                    s.probes_seen
                ));
            }
        }
    }
}

fn observer_problems(p: &mut Vec<String>, o: &super::EffectFigures) {
    if o.runs.is_empty() {
        p.push("observer effect: no run".into());
    }
    for run in &o.runs {
        let what = format!("observer effect, lab {} {}", run.path, run.at.placement);
        let pooled = run.pooled;
        for (name, rtt) in [("traced", pooled.traced), ("untraced", pooled.untraced)] {
            check_positive(p, &format!("{what}: {name} p50"), Some(rtt.p50_us));
            check_positive(p, &format!("{what}: {name} p99"), Some(rtt.p99_us));
        }
        let e = run.effect.as_ref();
        check_positive(p, &format!("{what}: p50 ratio"), e.map(|e| e.p50.ratio));
        check_positive(p, &format!("{what}: p99 ratio"), e.map(|e| e.p99.ratio));
        let blocks = run.blocks;
        if blocks.min_block_events == 0 {
            p.push(format!("{what}: a traced block delivered no event"));
        }
        if blocks.events_lost > 0 {
            p.push(format!(
                "{what}: {} events lost in a recorder sized for the block",
                blocks.events_lost
            ));
        }
        check_wakeups(p, &what, blocks.reader_wakeups, blocks.events);
    }
}

/// Everything that makes the run's figures untrustworthy, whatever their values.
#[must_use]
pub fn problems(r: &BenchReport) -> Vec<String> {
    let mut p: Vec<String> = r
        .errors
        .iter()
        .map(|e| format!("{} failed: {}", e.section, e.error))
        .collect();
    p.extend(r.leftovers.iter().map(|l| format!("left behind: {l}")));
    if let Some(c) = &r.measured.cost {
        cost_problems(&mut p, c);
    }
    if let Some(t) = &r.measured.throughput {
        for m in &t.modes {
            check_reps(
                &mut p,
                &format!("stream Gbit/s, tracing {}", m.mode),
                &m.gbps,
            );
            if m.mode != "off" && !m.loss.mean.is_some_and(f64::is_finite) {
                p.push(format!("throughput loss of {} is not a number", m.mode));
            }
        }
        match &t.cpu_share {
            Some(s) => {
                check_reps(&mut p, "tracer's CPU share", &s.share_pct);
                check_reps(&mut p, "tracer ns per packet", &s.tracer_ns_per_packet);
                check_reps(&mut p, "path ns per packet", &s.path_ns_per_packet);
            }
            None => p.push("tracer's CPU share is missing".into()),
        }
    }
    if let Some(c) = &r.measured.capacity {
        capacity_problems(&mut p, c);
    }
    if let Some(a) = &r.measured.accuracy {
        accuracy_problems(&mut p, a);
    }
    if let Some(o) = &r.measured.observer {
        observer_problems(&mut p, o);
    }
    if let Some(e) = r.measured.docker.as_ref().and_then(|d| d.figure.effect()) {
        check_positive(&mut p, "Docker observer effect p50", Some(e.p50.ratio));
        check_positive(&mut p, "Docker observer effect p99", Some(e.p99.ratio));
    }
    let w = &r.wall_time;
    if w.skipped.is_none() && w.error.is_none() {
        check_positive(&mut p, "default experiment wall time", w.seconds);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{SectionError, WallTime, fixture::empty_report};

    #[test]
    fn errors_and_leftovers_are_problems() {
        let mut r = empty_report();
        assert!(problems(&r).is_empty());
        r.errors.push(SectionError {
            section: "capacity",
            error: "boom".into(),
        });
        r.leftovers.push("netns nb-1-x".into());
        assert_eq!(
            problems(&r),
            ["capacity failed: boom", "left behind: netns nb-1-x"]
        );
    }

    #[test]
    fn a_failed_default_run_is_reported_not_timed() {
        let mut r = empty_report();
        r.wall_time = WallTime {
            command: vec!["lab".into()],
            error: Some("exited with 1".into()),
            ..WallTime::default()
        };
        assert!(
            problems(&r).is_empty(),
            "the error is listed as a section error"
        );
        r.wall_time.error = None;
        assert_eq!(problems(&r), ["default experiment wall time is missing"]);
    }

    #[test]
    fn a_reader_woken_per_event_is_a_problem() {
        let mut p = Vec::new();
        check_wakeups(&mut p, "a", 2, 10_000);
        check_wakeups(&mut p, "b", 0, 0);
        check_wakeups(&mut p, "c", 5, 0);
        assert!(p.is_empty(), "{p:?}");
        check_wakeups(&mut p, "d", 900, 1000);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("d: the reader ran 900 times"), "{p:?}");
    }
}

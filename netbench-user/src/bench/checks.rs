//! After the run: what it left behind (must be nothing), the figures against the
//! issue's targets, and the sanity problems that fail short mode.
use std::time::{Duration, Instant};

use netbench_common::names;

use super::{
    BenchReport, StatsToggle,
    cost::{CostRun, ProgramCostStats},
    figures::{
        Decision, RatioCi, TARGET_COST_NS, TARGET_COUNT_ONLY_LOSS_PCT, TARGET_EVENTS_PER_S,
        TARGET_RATIO_PCT, Target, Verdict, check_positive, check_reps,
    },
};
use crate::netns::{NETNS_PREFIX, list_owned};

/// Namespaces of this process, programs it loaded, child processes, and the BPF stats
/// switch, retried for a few seconds (the kernel frees namespaces asynchronously).
pub async fn leftovers(program_ids: &[u32], toggle: &StatsToggle) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = loop {
        let found = current_leftovers(program_ids);
        if found.is_empty() || Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if toggle.sysctl_before != toggle.sysctl_after {
        found.push(format!(
            "kernel.bpf_stats_enabled was {:?} before the run and is {:?} after it",
            toggle.sysctl_before, toggle.sysctl_after
        ));
    }
    found
}

fn current_leftovers(program_ids: &[u32]) -> Vec<String> {
    let mine = format!("{NETNS_PREFIX}{}-", std::process::id());
    let mut found: Vec<String> = list_owned()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .map(|n| format!("netns {n}"))
        .collect();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        if program_ids.contains(&info.id()) {
            found.push(format!(
                "eBPF program {} (id {}) still loaded",
                info.name_as_str().unwrap_or("?"),
                info.id()
            ));
        }
    }
    found.extend(
        children()
            .into_iter()
            .map(|pid| format!("child process {pid}")),
    );
    found
}

/// Live (or unreaped) children of this process, from `/proc/self/task/*/children`.
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// How busy the machine was apart from the benchmark: other work on the same CPUs
/// moves every figure, so the report says how quiet it was.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MachineLoad {
    /// Share of CPU time not idle over one second before the run started, percent.
    pub busy_pct_before: Option<f64>,
    pub loadavg_1m_before: Option<f64>,
    pub loadavg_1m_after: Option<f64>,
}

/// Busy share of all CPUs over `window`, from two `/proc/stat` samples.
pub async fn busy_pct(window: Duration) -> Option<f64> {
    let a = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    tokio::time::sleep(window).await;
    let b = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let (total, idle) = (b.0.checked_sub(a.0)?, b.1.checked_sub(a.1)?);
    #[expect(clippy::cast_precision_loss, reason = "jiffies fit f64 well")]
    (total > 0).then(|| (total - idle.min(total)) as f64 * 100.0 / total as f64)
}

/// (total, idle + iowait) jiffies of the aggregate `cpu` line of `/proc/stat`.
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = v.iter().take(8).sum();
    Some((total, v.get(3)? + v.get(4).copied().unwrap_or(0)))
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn accuracy_problems(p: &mut Vec<String>, a: &super::AccuracyFigures) {
    if a.rtt.is_empty() {
        p.push("no round-trip comparison".into());
    }
    for rtt in &a.rtt {
        let at = rtt.placement;
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

fn tc_programs(run: &CostRun) -> impl Iterator<Item = (&'static str, &ProgramCostStats)> {
    run.programs.iter().filter_map(|p| {
        let side = match p.program.as_str() {
            names::TC_INGRESS => "ingress",
            names::TC_EGRESS => "egress",
            _ => return None,
        };
        Some((side, p))
    })
}

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
        for (side, p) in tc_programs(run) {
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
    let mode = |m| t.and_then(|t| t.mode(m));
    let count_only = mode("count-only");
    v.push(Verdict::new(
        "stream throughput loss, count-only (paired)",
        count_only.and_then(|m| m.loss_pct),
        count_only.and_then(|m| m.loss_ci95_pct),
        "%",
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
    let full = mode("full");
    v.push(Verdict::new(
        "stream throughput loss, full (paired)",
        full.and_then(|m| m.loss_pct),
        full.and_then(|m| m.loss_ci95_pct),
        "%",
        Target::None,
    ));
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

fn cost_problems(p: &mut Vec<String>, c: &super::CostFigures) {
    for run in &c.runs {
        let what = format!("cost, {} {}", run.load, run.variant);
        if tc_programs(run).count() != 2 {
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
        let what = format!("observer effect, lab {} {}", run.path, run.placement);
        for (name, v) in [
            ("traced p50", run.traced_p50_us),
            ("traced p99", run.traced_p99_us),
            ("untraced p50", run.untraced_p50_us),
            ("untraced p99", run.untraced_p99_us),
        ] {
            check_positive(p, &format!("{what}: {name}"), Some(v));
        }
        let e = run.effect.as_ref();
        check_positive(p, &format!("{what}: p50 ratio"), e.map(|e| e.p50.ratio));
        check_positive(p, &format!("{what}: p99 ratio"), e.map(|e| e.p99.ratio));
        if run.min_block_events == 0 {
            p.push(format!("{what}: a traced block delivered no event"));
        }
        if run.events_lost > 0 {
            p.push(format!(
                "{what}: {} events lost in a ring sized for the block",
                run.events_lost
            ));
        }
        check_wakeups(p, &what, run.reader_wakeups, run.events);
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
    if let Some(c) = &r.cost {
        cost_problems(&mut p, c);
    }
    if let Some(t) = &r.throughput {
        for m in &t.modes {
            check_reps(
                &mut p,
                &format!("stream Gbit/s, tracing {}", m.mode),
                &m.gbps,
            );
            if m.mode != "off" && !m.loss_pct.is_some_and(f64::is_finite) {
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
    if let Some(c) = &r.capacity {
        capacity_problems(&mut p, c);
    }
    if let Some(a) = &r.accuracy {
        accuracy_problems(&mut p, a);
    }
    if let Some(o) = &r.observer {
        observer_problems(&mut p, o);
    }
    if let Some(e) = r.docker.as_ref().and_then(|d| d.effect.as_ref()) {
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
    use crate::bench::{BenchConfig, SectionError, WallTime};

    fn empty_report() -> BenchReport {
        BenchReport {
            schema: 1,
            kind: "netbench-bench",
            mode: "short",
            env: crate::results::Env::default(),
            config: BenchConfig::short(),
            cost: None,
            throughput: None,
            capacity: None,
            accuracy: None,
            observer: None,
            docker: None,
            wall_time: WallTime {
                skipped: Some("test".into()),
                ..WallTime::default()
            },
            targets: Vec::new(),
            bpf_stats: StatsToggle::default(),
            machine_load: MachineLoad::default(),
            errors: Vec::new(),
            leftovers: Vec::new(),
            problems: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    #[test]
    fn errors_and_leftovers_are_problems_and_missing_figures_fail_no_target() {
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
        let v = verdicts(&r);
        assert!(
            v.iter()
                .all(|v| matches!(v.decision, Decision::NotMeasured | Decision::AsMeasured)),
            "{v:?}"
        );
        assert_eq!(v.len(), 9, "{v:?}");
    }

    #[test]
    fn cpu_times_from_proc_stat() {
        let stat = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n";
        assert_eq!(cpu_times(stat), Some((990, 820)));
        assert_eq!(cpu_times("intr 1\n"), None);
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

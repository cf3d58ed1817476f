//! After the run: what it left behind (must be nothing), the figures against the
//! issue's targets, and the sanity problems that fail short mode.
use std::time::{Duration, Instant};

use super::{
    BenchReport, StatsToggle,
    cost::max_ns,
    figures::{
        TARGET_COST_NS, TARGET_COUNT_ONLY_LOSS_PCT, TARGET_EVENTS_PER_S, TARGET_RATIO_PCT, Verdict,
        check_positive, check_reps,
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
        for (name, t) in [
            ("sockperf", &rtt.sockperf),
            ("agent", &rtt.agent),
            ("agent traced", &rtt.agent_traced),
        ] {
            check_reps(p, &format!("{name} rtt p50 us, {at}"), &t.p50_us);
            check_reps(p, &format!("{name} rtt p99 us, {at}"), &t.p99_us);
        }
        for (name, r) in [
            ("rr p50 ratio", rtt.ratio_p50),
            ("rr p99 ratio", rtt.ratio_p99),
            ("traced rr p50 ratio", rtt.traced_ratio_p50),
            ("traced rr p99 ratio", rtt.traced_ratio_p99),
        ] {
            check_ratio(p, &format!("{name}, {at}"), r);
        }
    }
    check_ratio(p, "stream ratio", a.stream.ratio);
    check_reps(p, "iperf3 Gbit/s", &a.stream.iperf3_gbps);
    check_reps(p, "agent stream Gbit/s", &a.stream.agent_gbps);
}

fn check_ratio(p: &mut Vec<String>, name: &str, r: Option<super::figures::RatioCi>) {
    check_positive(p, name, r.map(|r| r.ratio));
    if r.is_some_and(|r| r.ci95.is_some_and(|c| !c.is_finite())) {
        p.push(format!("{name}: confidence interval is not a number"));
    }
}

/// The figures against the targets.
#[must_use]
pub fn verdicts(r: &BenchReport) -> Vec<Verdict> {
    let mut v = Vec::new();
    match &r.cost {
        Some(c) => {
            for run in &c.runs {
                v.push(Verdict::at_most(
                    &format!(
                        "per-program cost, {} {} (max of programs)",
                        run.load, run.variant
                    ),
                    max_ns(std::iter::once(run)),
                    TARGET_COST_NS,
                    "ns",
                ));
            }
        }
        None => v.push(Verdict::at_most(
            "per-program cost",
            None,
            TARGET_COST_NS,
            "ns",
        )),
    }
    let loss = |mode| r.throughput.as_ref().and_then(|t| t.loss_of(mode));
    v.push(Verdict::at_most(
        "stream throughput loss, count-only",
        loss("count-only"),
        TARGET_COUNT_ONLY_LOSS_PCT,
        "%",
    ));
    v.push(Verdict {
        figure: "stream throughput loss, full".into(),
        value: loss("full"),
        unit: "%",
        target: "as measured".into(),
        met: None,
    });
    if let Some(c) = &r.capacity {
        for ring in &c.rings {
            v.push(Verdict::at_least(
                &format!(
                    "loss-free events/s delivered, {} MiB ring",
                    ring.ring_bytes >> 20
                ),
                ring.summary.max_lossless_events_per_s,
                TARGET_EVENTS_PER_S,
                "events/s",
            ));
        }
        v.push(Verdict::at_least(
            "reader drain rate (pre-filled ring)",
            c.drain.as_ref().map(|d| d.events_per_s),
            TARGET_EVENTS_PER_S,
            "events/s",
        ));
    } else {
        v.push(Verdict::at_least(
            "loss-free events/s delivered",
            None,
            TARGET_EVENTS_PER_S,
            "events/s",
        ));
    }
    let acc = r.accuracy.as_ref();
    let rtts: Vec<_> = acc.map(|a| a.rtt.iter().collect()).unwrap_or_default();
    if rtts.is_empty() {
        for pct in ["p50", "p99"] {
            v.push(Verdict::ratio_within(
                &format!("rr {pct}, agent / sockperf"),
                None,
                TARGET_RATIO_PCT,
            ));
        }
    }
    for rtt in rtts {
        for (pct, ratio) in [("p50", rtt.ratio_p50), ("p99", rtt.ratio_p99)] {
            v.push(Verdict::ratio_within(
                &format!("rr {pct}, agent / sockperf, {}", rtt.placement),
                ratio.map(|r| r.ratio),
                TARGET_RATIO_PCT,
            ));
        }
    }
    v.push(Verdict::ratio_within(
        "stream, agent / iperf3",
        acc.and_then(|a| a.stream.ratio).map(|r| r.ratio),
        TARGET_RATIO_PCT,
    ));
    v
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
        for run in &c.runs {
            for prog in &run.programs {
                check_positive(
                    &mut p,
                    &format!("cost of {} under {} load", prog.program, run.load),
                    prog.ns_per_run,
                );
            }
        }
        if c.floor.is_some() {
            check_positive(
                &mut p,
                "cost of the empty program",
                c.floor.as_ref().and_then(|f| f.ns_per_run),
            );
        }
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
    }
    if let Some(c) = &r.capacity {
        match &c.drain {
            Some(d) => {
                check_positive(&mut p, "reader drain rate", Some(d.events_per_s));
                if d.kernel_lost > 0 {
                    p.push(format!(
                        "reader drain: {} events lost while filling the ring",
                        d.kernel_lost
                    ));
                }
            }
            None => p.push("reader drain rate is missing".into()),
        }
        for ring in &c.rings {
            let what = format!("capacity, {} MiB ring", ring.ring_bytes >> 20);
            if ring.steps.is_empty() {
                p.push(format!("{what}: no steps ran"));
            }
            for s in &ring.steps {
                check_positive(&mut p, &format!("{what}: events/s"), Some(s.event_rate));
                check_positive(
                    &mut p,
                    &format!("{what}: datagrams/s"),
                    Some(s.datagram_rate),
                );
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
    if let Some(a) = &r.accuracy {
        accuracy_problems(&mut p, a);
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
            env: crate::report::Env::default(),
            config: BenchConfig::short(),
            cost: None,
            throughput: None,
            capacity: None,
            accuracy: None,
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
        assert!(v.iter().all(|v| v.met.is_none()), "{v:?}");
        assert_eq!(v.len(), 7);
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
}

//! The benchmark's figures as text.
use std::fmt::Write as _;

use super::{BenchReport, figures::RatioCi};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(r: Option<RatioCi>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| match r.ci95 {
            Some(ci) => format!("{:.3} +- {ci:.3}", r.ratio),
            None => format!("{:.3}", r.ratio),
        },
    )
}

/// The whole report as text: one block per measurement, then the targets.
#[must_use]
#[expect(
    clippy::too_many_lines,
    reason = "one flat block per section reads best"
)]
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let env = &report.env;
    let _ = writeln!(
        out,
        "netbench bench ({}) on {}, {} CPUs, kernel {}; {:.0} s",
        report.mode, env.cpu_model, env.cpus, env.kernel, report.elapsed_s
    );

    if let Some(cost) = &report.cost {
        let _ = writeln!(
            out,
            "\n1. per-program cost, lab {} path (BPF stats run_time_ns / run_cnt)",
            cost.path
        );
        let _ = writeln!(
            out,
            "  {:<7} {:<11} {:<32} {:>10} {:>9}",
            "load", "variant", "program", "runs", "ns/run"
        );
        for run in &cost.runs {
            for p in &run.programs {
                let _ = writeln!(
                    out,
                    "  {:<7} {:<11} {:<32} {:>10} {:>9}",
                    run.load,
                    run.variant,
                    p.program,
                    p.run_cnt,
                    opt(p.ns_per_run, 1)
                );
            }
        }
        match (&cost.floor, &cost.floor_error) {
            (Some(f), _) => {
                let _ = writeln!(
                    out,
                    "  {:<7} {:<11} {:<32} {:>10} {:>9}   (floor of the method)",
                    "stream",
                    "-",
                    f.program,
                    f.run_cnt,
                    opt(f.ns_per_run, 1)
                );
            }
            (None, Some(err)) => {
                let _ = writeln!(out, "  floor (empty program) not measured: {err}");
            }
            (None, None) => {}
        }
        for run in &cost.runs {
            let _ = writeln!(
                out,
                "  {} / {}: {} [programs busy {:.2}% of one CPU]",
                run.load, run.variant, run.what, run.cpu_pct
            );
        }
    }

    if let Some(tput) = &report.throughput {
        let _ = writeln!(
            out,
            "\n2. throughput impact: agent TCP stream over the lab {} path, {} x {} s per mode \
             (rotating order)",
            tput.path, tput.reps, tput.seconds
        );
        let _ = writeln!(
            out,
            "  {:<11} {:>9} {:>8} {:>8} {:>8}  paired loss (95% CI)",
            "tracing", "Gbit/s", "stddev", "min", "max"
        );
        for m in &tput.modes {
            let min = m.gbps.per_rep.iter().copied().fold(f64::INFINITY, f64::min);
            let max = m
                .gbps
                .per_rep
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                out,
                "  {:<11} {:>9.2} {:>8.2} {:>8.2} {:>8.2}  {}",
                m.mode,
                m.gbps.mean,
                m.gbps.stddev,
                min,
                max,
                m.loss_pct.map_or_else(
                    || "-".into(),
                    |l| {
                        let ci = m
                            .loss_ci95_pct
                            .map_or_else(String::new, |c| format!(" +- {c:.2}"));
                        let median = m.loss_median_pct.unwrap_or(f64::NAN);
                        format!("{l:.2}%{ci} (median {median:.2}%)")
                    }
                )
            );
        }
        for m in &tput.modes {
            let _ = writeln!(out, "  {}: {}", m.mode, m.what);
        }
    }

    if let Some(cap) = &report.capacity {
        let _ = writeln!(
            out,
            "\n3. capacity: blast datagrams ({} B) across the lab {} path, {} events per \
             datagram, {} s per step",
            cap.datagram_bytes, cap.path, cap.events_per_datagram, cap.step_seconds
        );
        for ring in &cap.rings {
            let _ = writeln!(
                out,
                "  ring {} MiB ({} events)",
                ring.ring_bytes >> 20,
                ring.ring_events
            );
            let _ = writeln!(
                out,
                "    {:>12} {:>12} {:>13} {:>13} {:>10} {:>10}",
                "offered/s", "datagrams/s", "produced ev/s", "delivered/s", "ring lost", "rdr drop"
            );
            for s in &ring.steps {
                let offered = if s.offered_per_sender == 0 {
                    format!("{} x max", s.senders)
                } else {
                    format!("{} x {}", s.senders, s.offered_per_sender)
                };
                let _ = writeln!(
                    out,
                    "    {:>12} {:>12.0} {:>13.0} {:>13.0} {:>10} {:>10}",
                    offered,
                    s.datagram_rate,
                    s.produced_rate,
                    s.event_rate,
                    s.kernel_lost,
                    s.reader_dropped
                );
            }
            let _ = writeln!(
                out,
                "    highest loss-free: {} events/s; {}",
                opt(ring.summary.max_lossless_events_per_s, 0),
                ring.limited_by
            );
        }
    }

    if let Some(d) = report.capacity.as_ref().and_then(|c| c.drain.as_ref()) {
        let _ = writeln!(
            out,
            "  reader drain rate: {} events waiting in a {} MiB ring, delivered in {:.3} s = \
             {:.0} events/s (the delivery path alone, whatever the senders manage)",
            d.events,
            d.ring_bytes >> 20,
            d.seconds,
            d.events_per_s
        );
    }

    if let Some(acc) = &report.accuracy {
        let _ = writeln!(
            out,
            "\n4. accuracy on the lab {} path, {} reps in rotating order (mean +- sd of the \
             per-rep percentiles; ratio +- 95% CI)",
            acc.path, acc.reps
        );
        for r in &acc.rtt {
            let cpu = |c: Option<usize>| c.map_or_else(|| "any".into(), |c| c.to_string());
            let _ = writeln!(
                out,
                "  {} (client cpu {}, server cpu {})",
                r.placement,
                cpu(r.client_cpu),
                cpu(r.server_cpu)
            );
            for (name, tool, ratios) in [
                ("sockperf ping-pong", &r.sockperf, None),
                (
                    "agent (untraced)",
                    &r.agent,
                    Some((r.ratio_p50, r.ratio_p99)),
                ),
                (
                    "agent (traced)",
                    &r.agent_traced,
                    Some((r.traced_ratio_p50, r.traced_ratio_p99)),
                ),
            ] {
                let _ = write!(
                    out,
                    "    rr {} B {:<19} p50 {:7.2} +- {:5.2} us  p99 {:7.2} +- {:6.2} us",
                    r.size,
                    name,
                    tool.p50_us.mean,
                    tool.p50_us.stddev,
                    tool.p99_us.mean,
                    tool.p99_us.stddev
                );
                if let Some((p50, p99)) = ratios {
                    let _ = write!(out, "  ratio p50 {} p99 {}", ratio(p50), ratio(p99));
                }
                let _ = writeln!(out);
            }
        }
        let s = &acc.stream;
        let _ = writeln!(
            out,
            "  stream {} x {} s (cross-cpu): iperf3 {:.2} +- {:.2} Gbit/s, agent {:.2} +- {:.2} \
             Gbit/s, ratio {}",
            s.reps,
            s.seconds,
            s.iperf3_gbps.mean,
            s.iperf3_gbps.stddev,
            s.agent_gbps.mean,
            s.agent_gbps.stddev,
            ratio(s.ratio)
        );
    }

    let wall = &report.wall_time;
    let _ = writeln!(out, "\n5. wall time of the default experiment");
    match (&wall.skipped, wall.seconds) {
        (Some(why), _) => {
            let _ = writeln!(out, "  skipped: {why}");
        }
        (None, Some(s)) => {
            let _ = writeln!(
                out,
                "  netbench {}: {s:.1} s (exit {})",
                wall.command.join(" "),
                wall.exit_code.map_or_else(|| "?".into(), |c| c.to_string())
            );
        }
        (None, None) => {
            let _ = writeln!(
                out,
                "  netbench {}: {}",
                wall.command.join(" "),
                wall.error.as_deref().unwrap_or("not measured")
            );
        }
    }

    let _ = writeln!(out, "\ntargets");
    for v in &report.targets {
        let verdict = match v.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "-",
        };
        let value = v.value.map_or_else(
            || "-".to_owned(),
            |x| {
                if x.abs() >= 1000.0 {
                    format!("{x:.0}")
                } else if v.unit == "x" {
                    format!("{x:.3}")
                } else {
                    format!("{x:.1}")
                }
            },
        );
        let _ = writeln!(
            out,
            "  {:<54} {:>10} {:<9} {:<22} {verdict}",
            v.figure, value, v.unit, v.target
        );
    }
    let _ = writeln!(
        out,
        "BPF stats: {}; kernel.bpf_stats_enabled before {:?}, after {:?}",
        report.bpf_stats.method, report.bpf_stats.sysctl_before, report.bpf_stats.sysctl_after
    );
    let load = &report.machine_load;
    let _ = writeln!(
        out,
        "machine load apart from the benchmark: {} busy in the second before it; load \
         average {} before, {} after{}",
        load.busy_pct_before
            .map_or_else(|| "?".to_owned(), |b| format!("{b:.0}%")),
        opt(load.loadavg_1m_before, 2),
        opt(load.loadavg_1m_after, 2),
        if load.busy_pct_before.is_some_and(|b| b > 10.0) {
            " (NOT quiet: other work moved these figures)"
        } else {
            ""
        }
    );
    if report.problems.is_empty() {
        let _ = writeln!(out, "checks: ok (figures sane, nothing left behind)");
    } else {
        let _ = writeln!(out, "checks: {} problem(s)", report.problems.len());
        for p in &report.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

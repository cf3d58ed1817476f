//! The benchmark's figures as text.
use std::fmt::Write as _;

use super::{
    AccuracyFigures, BenchReport, CapacityFigures, CostFigures, DockerEffect, EffectFigures,
    ThroughputFigures,
    docker::DockerFigure,
    figures::{CapacityStep, RatioCi},
};
use crate::{
    stats::{RepStats, pm},
    table::{Column, Table},
};

/// A table of the report: one space between cells.
fn table(columns: impl IntoIterator<Item = Column>) -> Table {
    Table::new(columns).gap(" ")
}

/// A [`table`] without a header line.
fn listing(columns: impl IntoIterator<Item = Column>) -> Table {
    table(columns).without_header()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(r: Option<RatioCi>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| format!("{:.3} {}", r.ratio, pm(r.ci95, 3)),
    )
}

/// `mean +/- ci` of repetition statistics, or `-` without any.
fn reps(r: &RepStats, digits: usize) -> String {
    if r.per_rep.is_empty() {
        "-".to_owned()
    } else {
        match r.ci95.filter(|c| c.is_finite()) {
            Some(_) => format!("{:.digits$} {}", r.mean, pm(r.ci95, digits)),
            None => format!("{:.digits$} (n/a)", r.mean),
        }
    }
}

fn cost(out: &mut String, cost: &CostFigures) {
    let _ = writeln!(
        out,
        "\n1. per-program cost, lab {} path (BPF stats run_time_ns / run_cnt), {} reps \
         (mean +/- 95% CI)",
        cost.path, cost.reps
    );
    let mut table = table([
        Column::left("load").width(7),
        Column::left("variant").width(11),
        Column::left("program").width(32),
        Column::right("runs").width(10),
        Column::right("ns/run").width(18),
        Column::right("target").width(8),
    ])
    .indent("  ");
    for run in &cost.runs {
        let target = run
            .target_ns
            .map_or_else(|| "-".to_owned(), |t| format!("<= {t}"));
        for p in &run.programs {
            table.row([
                run.load.to_owned(),
                run.variant.to_owned(),
                p.program.clone(),
                p.run_cnt.to_string(),
                reps(&p.ns_per_run, 1),
                target.clone(),
            ]);
        }
    }
    if let Some(f) = &cost.floor {
        // Wider than its column, so it starts right after the gap (and two spaces).
        table.row([
            "stream".to_owned(),
            "-".to_owned(),
            f.program.clone(),
            f.run_cnt.to_string(),
            reps(&f.ns_per_run, 1),
            "  (floor of the method)".to_owned(),
        ]);
    }
    out.push_str(&table.render());
    if let (None, Some(err)) = (&cost.floor, &cost.floor_error) {
        let _ = writeln!(out, "  floor (empty program) not measured: {err}");
    }
    for run in &cost.runs {
        let _ = writeln!(
            out,
            "  {} / {}: {} [programs busy {}% of one CPU; {} events, {} reader runs]",
            run.load,
            run.variant,
            run.what,
            reps(&run.cpu_pct, 2),
            run.events,
            run.reader_wakeups
        );
    }
}

fn throughput(out: &mut String, tput: &ThroughputFigures) {
    let _ = writeln!(
        out,
        "\n2. throughput impact: agent TCP stream over the lab {} path, {} x {} s per mode \
         (rotating order)",
        tput.path, tput.reps, tput.seconds
    );
    // The loss column stands two spaces off: one of the gap, one of its cells.
    let mut table = table([
        Column::left("tracing").width(16),
        Column::right("Gbit/s").width(9),
        Column::right("stddev").width(8),
        Column::right("min").width(8),
        Column::right("max").width(8),
        Column::right("CPU ns/KiB").width(16),
        Column::left(" paired loss (95% CI)"),
    ])
    .indent("  ");
    for m in &tput.modes {
        let min = m.gbps.per_rep.iter().copied().fold(f64::INFINITY, f64::min);
        let max = m
            .gbps
            .per_rep
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let loss = m.loss.mean.map_or_else(
            || "-".into(),
            |l| {
                let median = m.loss.median.unwrap_or(f64::NAN);
                format!("{l:.2}% {} (median {median:.2}%)", pm(m.loss.ci95, 2))
            },
        );
        table.row([
            m.mode.to_owned(),
            format!("{:.2}", m.gbps.mean),
            format!("{:.2}", m.gbps.stddev),
            format!("{min:.2}"),
            format!("{max:.2}"),
            reps(&m.cpu_ns_per_kib, 1),
            format!(" {loss}"),
        ]);
    }
    out.push_str(&table.render());
    if let Some(s) = &tput.cpu_share {
        let _ = writeln!(
            out,
            "  tracer's share of the path's CPU (count-only, stats on): {}% = {} ns of \
             programs per packet / {} ns of sender + receiver CPU per packet ({} packets, \
             runs / {} devices)",
            reps(&s.share_pct, 2),
            reps(&s.tracer_ns_per_packet, 1),
            reps(&s.path_ns_per_packet, 0),
            s.packets,
            s.devices
        );
    }
    for m in &tput.modes {
        let _ = writeln!(out, "  {}: {}", m.mode, m.what);
    }
}

/// A column of the capacity ladder (all right-aligned): header, width, cell.
type StepColumn = (&'static str, usize, fn(&CapacityStep) -> String);

const STEP_COLUMNS: [StepColumn; 8] = [
    ("offered/s", 12, |s| match s.offered_per_sender {
        0 => format!("{} x max", s.senders),
        rate => format!("{} x {rate}", s.senders),
    }),
    ("datagrams/s", 12, |s| format!("{:.0}", s.datagram_rate)),
    ("produced ev/s", 13, |s| format!("{:.0}", s.produced_rate)),
    ("delivered/s", 13, |s| format!("{:.0}", s.event_rate)),
    ("ring lost", 10, |s| s.kernel_lost.to_string()),
    ("rdr drop", 9, |s| s.reader_dropped.to_string()),
    ("forced", 7, |s| s.forced_wakeups.to_string()),
    ("timer", 6, |s| s.timer_drains.to_string()),
];

/// The capacity ladder's steps, one row each.
fn steps_table(steps: &[CapacityStep]) -> String {
    let columns = STEP_COLUMNS.map(|(header, width, _)| Column::right(header).width(width));
    let mut table = table(columns).indent("    ");
    for s in steps {
        table.row(STEP_COLUMNS.map(|(_, _, cell)| cell(s)));
    }
    table.render()
}

fn capacity(out: &mut String, cap: &CapacityFigures) {
    let _ = writeln!(
        out,
        "\n3. capacity: blast datagrams ({} B) across the lab {} path, {} events per \
         datagram, {} s per step",
        cap.datagram_bytes, cap.path, cap.events_per_datagram, cap.step_seconds
    );
    for ring in &cap.rings {
        let _ = writeln!(
            out,
            "  ring {} MiB ({} events; forced wake-up past half of it)",
            ring.ring_bytes >> 20,
            ring.ring_events
        );
        out.push_str(&steps_table(&ring.steps));
        let _ = writeln!(
            out,
            "    highest loss-free: {} events/s; {}",
            opt(ring.summary.max_lossless_events_per_s, 0),
            ring.limited_by
        );
    }
    if let Some(r) = &cap.reps {
        let _ = writeln!(
            out,
            "  top steps repeated {} times on the {} MiB ring ({} s each):",
            r.per_rep.len(),
            r.ring_bytes >> 20,
            r.seconds
        );
        out.push_str(&steps_table(&r.runs));
        let _ = writeln!(
            out,
            "    highest loss-free events/s per rep: {}; mean {}",
            r.per_rep
                .iter()
                .map(|v| opt(*v, 0))
                .collect::<Vec<_>>()
                .join(", "),
            reps(&r.lossless_events_per_s, 0)
        );
    }
    if let Some(d) = &cap.drain {
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
}

fn accuracy(out: &mut String, acc: &AccuracyFigures) {
    let _ = writeln!(
        out,
        "\n4. accuracy on the lab {} path, {} reps in alternating order (mean +- sd of the \
         per-rep percentiles; ratio: mean of the per-rep ratios +/- 95% CI)",
        acc.path, acc.reps
    );
    let cpu = |c: Option<usize>| c.map_or_else(|| "any".into(), |c| c.to_string());
    for r in &acc.rtt {
        let _ = writeln!(
            out,
            "  {} (client cpu {}, server cpu {})",
            r.at.placement,
            cpu(r.at.cpus.client_cpu),
            cpu(r.at.cpus.server_cpu)
        );
        let mut table = listing([
            Column::left("size"),
            Column::left("tool").width(19),
            Column::left("round trip"),
        ])
        .indent("    ");
        for (name, tool, ratios) in [
            ("sockperf ping-pong", &r.sockperf, None),
            (
                "agent (untraced)",
                &r.agent,
                Some((r.ratio_p50, r.ratio_p99)),
            ),
        ] {
            let mut rtt = format!(
                "p50 {:7.2} +- {:5.2} us  p99 {:7.2} +- {:6.2} us",
                tool.p50_us.mean, tool.p50_us.stddev, tool.p99_us.mean, tool.p99_us.stddev
            );
            if let Some((p50, p99)) = ratios {
                let _ = write!(rtt, "  ratio p50 {} p99 {}", ratio(p50), ratio(p99));
            }
            table.row([format!("rr {} B", r.size), name.to_owned(), rtt]);
        }
        out.push_str(&table.render());
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

fn observer(out: &mut String, o: &EffectFigures) {
    let _ = writeln!(
        out,
        "\n5. observer effect on the lab paths: interleaved traced / untraced blocks (ABBA), \
         traced as `netbench lab` traces; ratio pooled, 95% CI from the per-pair ratios"
    );
    let mut table = listing([
        Column::left("path").width(6),
        Column::left("placement").width(9),
        Column::left("effect"),
    ])
    .indent("  ");
    for r in &o.runs {
        let effect = format!(
            "{} pairs x {} probes: {}: {}; {} events, {} lost, {} reader runs (at most {} \
             in a block)",
            r.pairs,
            r.probes_per_block,
            r.pooled.describe(),
            r.effect.as_ref().map_or_else(
                || "no pair".to_owned(),
                crate::observer::ObserverEffect::describe
            ),
            r.blocks.events,
            r.blocks.events_lost,
            r.blocks.reader_wakeups,
            r.blocks.max_block_wakeups
        );
        table.row([r.path.to_owned(), r.at.placement.to_owned(), effect]);
    }
    out.push_str(&table.render());
}

fn docker(out: &mut String, d: &DockerEffect) {
    let _ = writeln!(
        out,
        "\n6. observer effect of the default Docker experiment's bridge pair (netbench run {}; \
         {:.0} s)",
        d.matrix, d.seconds
    );
    match &d.figure {
        DockerFigure::Effect(e) => {
            let _ = writeln!(out, "  runc bridge/bridge: {}", e.describe());
            if let Some(s) = &d.scenario {
                let p = |r: Option<&crate::results::Rtt>| {
                    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}", r.summary.p50))
                };
                let _ = writeln!(
                    out,
                    "  rtt p50 traced {} us, untraced {} us; status {}",
                    p(s.rtt_us.as_ref()),
                    p(s.rtt_untraced_us.as_ref()),
                    s.status.name()
                );
            }
        }
        DockerFigure::Unsupported(why) => {
            let _ = writeln!(out, "  unsupported: {why}");
        }
    }
}

fn wall_time(out: &mut String, report: &BenchReport) {
    let wall = &report.wall_time;
    let _ = writeln!(out, "\n7. wall time of the default experiment");
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
}

fn number(x: f64, unit: &str) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if unit == "x" {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

fn targets(out: &mut String, report: &BenchReport) {
    let _ = writeln!(
        out,
        "\ntargets (met: the whole 95% CI inside the target; NOT met: wholly outside; \
         otherwise unresolved)"
    );
    let mut table = listing([
        Column::left("figure").width(72),
        Column::right("value").width(22),
        Column::left("unit").width(9),
        Column::left("target").width(18),
        Column::left("decision"),
    ])
    .indent("  ");
    for v in &report.targets {
        let value = v.value.filter(|x| x.is_finite()).map_or_else(
            || "-".to_owned(),
            |x| {
                let ci = v.ci95.filter(|c| c.is_finite()).map_or_else(
                    || " (no CI)".to_owned(),
                    |c| format!(" +/- {}", number(c, v.unit)),
                );
                format!("{}{ci}", number(x, v.unit))
            },
        );
        let note = v
            .note
            .as_ref()
            .map_or_else(String::new, |n| format!("  [{n}]"));
        table.row([
            v.figure.clone(),
            value,
            v.unit.to_owned(),
            v.target.clone(),
            format!("{}{note}", v.decision.label()),
        ]);
    }
    out.push_str(&table.render());
}

/// The whole report as text: one block per measurement, then the targets.
#[must_use]
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let env = &report.env;
    let _ = writeln!(
        out,
        "netbench bench ({}) on {}, {} CPUs, kernel {}; {:.0} s",
        report.mode, env.host.cpu_model, env.host.cpus, env.host.kernel, report.elapsed_s
    );
    let m = &report.measured;
    if let Some(c) = &m.cost {
        cost(&mut out, c);
    }
    if let Some(t) = &m.throughput {
        throughput(&mut out, t);
    }
    if let Some(c) = &m.capacity {
        capacity(&mut out, c);
    }
    if let Some(a) = &m.accuracy {
        accuracy(&mut out, a);
    }
    if let Some(o) = &m.observer {
        observer(&mut out, o);
    }
    if let Some(d) = &m.docker {
        docker(&mut out, d);
    }
    wall_time(&mut out, report);
    targets(&mut out, report);
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
        let _ = writeln!(
            out,
            "checks: ok (figures sane, events accounted for, no wake-up per event, nothing \
             left behind)"
        );
    } else {
        let _ = writeln!(out, "checks: {} problem(s)", report.problems.len());
        for p in &report.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text as the hand-aligned renderer printed it before the table helper.
    #[test]
    fn every_table_prints_as_before() {
        let want = include_str!("testdata/render.txt");
        let got = render(&crate::bench::fixture::full_report());
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got, want);
    }
}

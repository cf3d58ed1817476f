//! The terminal rendering of results: per scenario its header lines, the round trip to
//! quote and the stage tables (`netbench report DIR` prints this from `results.json`).
use std::fmt::Write as _;

use super::{OBSERVER_LIMIT, Results, Scenario, Status};
use crate::{
    stats::Summary,
    table::{Column, Table},
};

/// The stage header: where the stages come from and how tracing moved the round trip.
#[must_use]
pub fn stages_header(s: &Scenario) -> String {
    match &s.observer_effect {
        Some(e) => format!("stages (from traced probes; {})", e.describe()),
        None => "stages (from traced probes; no untraced probes to compare)".to_owned(),
    }
}

/// The terminal summary: per scenario a header line, the round trip to quote, and the
/// stage table of the traced probes.
#[must_use]
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    for s in &r.scenarios {
        let model = s
            .model
            .as_ref()
            .map_or_else(String::new, |m| format!(" [MODEL: {m}]"));
        if !s.status.has_figures() {
            let _ = writeln!(
                out,
                "{}{model}: {}: {}",
                s.id,
                s.status.name(),
                s.reason.as_deref().unwrap_or("")
            );
            continue;
        }
        if s.status == Status::Degraded {
            let _ = writeln!(
                out,
                "{}{model}: degraded: {}",
                s.id,
                s.reason.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            out,
            "{}{model}: {} probes sent, {} matched, {} timed out, {} with missing hops, {} non-causal; {} events lost",
            s.id,
            s.probes_sent,
            s.probes_matched,
            s.probes_timed_out,
            s.probes_missing_hops,
            s.probes_non_causal,
            s.events_lost
        );
        if let Some(bw) = &s.bandwidth_gbps {
            let _ = writeln!(
                out,
                "  bandwidth {:.2} Gbit/s (sd {:.2}, 95% CI {}, {} reps, tracing {})",
                bw.mean,
                bw.stddev,
                crate::stats::pm(bw.ci95, 2),
                bw.per_rep.len(),
                s.bandwidth_tracing.as_deref().unwrap_or("off")
            );
        }
        if let Some((rtt, source)) = s.quoted_rtt() {
            let _ = writeln!(
                out,
                "  round trip ({} probes): mean {:.2} us, p50 {:.2} us, p99 {:.2} us",
                source.name(),
                rtt.summary.mean,
                rtt.summary.p50,
                rtt.summary.p99
            );
        }
        if let Some(e) = s.observer_exceeds() {
            let _ = writeln!(
                out,
                "  WARNING: tracing moved this round trip by more than {:.0}%: {}",
                OBSERVER_LIMIT * 100.0,
                e.describe()
            );
        }
        let _ = writeln!(out, "  {}:", stages_header(s));
        let columns = stage_columns("stage", 24);
        let mut table = Table::new(columns.into_iter().chain([Column::right("share").width(7)]))
            .indent("  ")
            .gap(" ");
        for st in &s.stages {
            let share = format!("{:.1}%", st.share * 100.0);
            table.row(
                stage_cells(&st.name, st.mean_us, st.p50_us, st.p99_us)
                    .into_iter()
                    .chain([share]),
            );
        }
        if let Some(rtt) = &s.rtt_us {
            let Summary { mean, p50, p99, .. } = rtt.summary;
            let cells = stage_cells("round trip (traced)", mean, p50, p99);
            table.row(cells.into_iter().chain(["100.0%".to_owned()]));
        }
        out.push_str(&table.render());
        render_breakdown(&mut out, s, &model);
    }
    out
}

/// The finer split of one stage, below the stage table.
fn render_breakdown(out: &mut String, s: &Scenario, model: &str) {
    if s.breakdown.is_empty() {
        return;
    }
    let _ = writeln!(out, "  breakdown{model} (not part of the sum above):");
    if let Some(rq) = s.runqueue {
        let _ = writeln!(
            out,
            "    (server split from sched events: {} probes woken, {} runnable, {} running)",
            rq.probes_woken, rq.probes_runnable, rq.probes_running
        );
    }
    let mut table = Table::new(stage_columns("", 22))
        .indent("    ")
        .gap(" ")
        .without_header();
    for st in &s.breakdown {
        table.row(stage_cells(&st.name, st.mean_us, st.p50_us, st.p99_us));
    }
    out.push_str(&table.render());
}

/// A stage table's columns: the name (`name_width` wide), then mean, p50 and p99.
fn stage_columns(name: &str, name_width: usize) -> [Column; 4] {
    [
        Column::left(name).width(name_width),
        Column::right("mean us").width(10),
        Column::right("p50 us").width(10),
        Column::right("p99 us").width(10),
    ]
}

fn stage_cells(name: &str, mean: f64, p50: f64, p99: f64) -> [String; 4] {
    [
        name.to_owned(),
        format!("{mean:.2}"),
        format!("{p50:.2}"),
        format!("{p99:.2}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Env, fixtures::measured, summary_csv};

    #[test]
    fn failed_scenarios_print_no_figure_anywhere() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        // The gVisor case: figures were recorded, then the scenario failed.
        let mut f = measured("gvisor-bridge-bridge-none");
        f.status = Status::Failed;
        f.reason = Some("no probe was seen at every hop".into());
        f.bandwidth_gbps = Some(crate::stats::rep_stats(&[0.51]));
        r.scenarios.push(f);
        let shown = render(&r);
        assert_eq!(
            shown,
            "gvisor-bridge-bridge-none: failed: no probe was seen at every hop\n"
        );
        let csv = summary_csv(&r);
        let row = csv.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "gvisor-bridge-bridge-none,runc,bridge,bridge,none,failed,,round-trip,,,,,,,,,,,,,,,,,,no probe was seen at every hop"
        );
        assert_eq!(csv.lines().count(), 2, "no stage rows: {csv}");
        let s = &r.scenarios[0];
        assert!(s.quoted_rtt().is_none() && s.observer_exceeds().is_none());
    }

    #[test]
    fn render_quotes_untraced_labels_stages_and_warns_over_five_percent() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        r.scenarios.push(measured("runc-bridge-bridge-none"));
        let shown = render(&r);
        assert!(
            shown.contains(
                "  round trip (untraced probes): mean 25.00 us, p50 24.00 us, p99 40.00 us\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  stages (from traced probes; tracing moved p50 x1.04 (95% CI 1.02..1.06), p99 x1.10 (n/a)):\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("round trip (traced)"), "{shown}");
        // One repetition of bandwidth: no interval, and no "+/- 0".
        assert!(shown.contains("(sd 0.00, 95% CI n/a, 1 reps"), "{shown}");
        assert!(!shown.contains("+/- 0.00"), "{shown}");
        // p99 moved 10%: over the limit.
        assert!(
            shown.contains(
                "WARNING: tracing moved this round trip by more than 5%: tracing moved p50 x1.04"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "990 matched, 3 timed out, 5 with missing hops, 2 non-causal; 4 events lost"
            ),
            "{shown}"
        );
        // Within 5% on both: no warning.
        if let Some(e) = r.scenarios[0].observer_effect.as_mut() {
            e.p99.ratio = 1.05;
        }
        assert!(!render(&r).contains("WARNING"));
        // Degraded: the reason first, then the figures.
        r.scenarios[0].status = Status::Degraded;
        r.scenarios[0].reason = Some("only 97.1% of probes matched (x)".into());
        let shown = render(&r);
        assert!(
            shown.starts_with(
                "runc-bridge-bridge-none: degraded: only 97.1% of probes matched (x)\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("p50 24.00 us"), "{shown}");
    }
}

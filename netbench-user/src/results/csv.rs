//! `summary.csv`: one row per scenario and stage, from [`Results`] alone.
use std::fmt::Write as _;

use super::Results;

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.3}"))
}

/// CSV columns. The `round-trip` row quotes the untraced round trip where it was
/// measured (`share` empty: the stages do not split it) and is then followed by a
/// `round-trip-traced` row, the round trip the stage rows split (share 1). Figures,
/// counts and the observer columns are empty for failed and unsupported scenarios; a
/// confidence half-width without an interval (one pair) is `n/a`.
pub const CSV_HEADER: &str = "scenario,runtime,client_driver,server_driver,stress,status,model,row,mean_us,p50_us,p99_us,share,bandwidth_gbps,probes_sent,probes_matched,events_lost,rtt_untraced_p50_us,rtt_untraced_p99_us,observer_p50,observer_p50_ci95,observer_p99,observer_p99_ci95,probes_timed_out,probes_non_causal,probes_missing_hops,reason";

/// Free text in one CSV cell: commas and line breaks become `;`.
fn text_cell(text: &str) -> String {
    text.replace([',', '\n'], ";")
}

fn ci_cell(ratio: Option<&crate::observer::Ratio>) -> String {
    match ratio {
        None => String::new(),
        Some(r) => r
            .ci95
            .filter(|c| c.is_finite())
            .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.3}")),
    }
}

/// One row per scenario and stage (and one or two per scenario for the round trip).
#[must_use]
pub fn summary_csv(r: &Results) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for s in &r.scenarios {
        let status = s.status.name();
        let model = text_cell(s.model.as_deref().unwrap_or(""));
        let reason = text_cell(s.reason.as_deref().unwrap_or(""));
        let head = format!(
            "{},{},{},{},{},{status},{model}",
            s.id, s.runtime, s.client_driver, s.server_driver, s.stress
        );
        if !s.status.has_figures() {
            let _ = writeln!(out, "{head},round-trip,,,,,,,,,,,,,,,,,,{reason}");
            continue;
        }
        let bw = fmt_opt(s.bandwidth_gbps.as_ref().map(|b| b.mean));
        let untraced = s.rtt_untraced_us.as_ref().map(|r| r.summary);
        let traced = s.rtt_us.as_ref().map(|r| r.summary);
        let quoted = untraced.or(traced);
        let share = if untraced.is_some() { "" } else { "1.000" };
        let oe = s.observer_effect.as_ref();
        let _ = writeln!(
            out,
            "{head},round-trip,{},{},{},{share},{bw},{},{},{},{},{},{},{},{},{},{},{},{},{reason}",
            fmt_opt(quoted.map(|r| r.mean)),
            fmt_opt(quoted.map(|r| r.p50)),
            fmt_opt(quoted.map(|r| r.p99)),
            s.probes_sent,
            s.probes_matched,
            s.events_lost,
            fmt_opt(untraced.map(|r| r.p50)),
            fmt_opt(untraced.map(|r| r.p99)),
            fmt_opt(oe.map(|e| e.p50.ratio)),
            ci_cell(oe.map(|e| &e.p50)),
            fmt_opt(oe.map(|e| e.p99.ratio)),
            ci_cell(oe.map(|e| &e.p99)),
            s.probes_timed_out,
            s.probes_non_causal,
            s.probes_missing_hops,
        );
        if let (Some(_), Some(t)) = (untraced, traced) {
            let _ = writeln!(
                out,
                "{head},round-trip-traced,{:.3},{:.3},{:.3},1.000,,,,,,,,,,,,,,",
                t.mean, t.p50, t.p99
            );
        }
        for st in &s.stages {
            let _ = writeln!(
                out,
                "{head},{},{:.3},{:.3},{:.3},{:.3},,,,,,,,,,,,,,",
                st.name, st.mean_us, st.p50_us, st.p99_us, st.share
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Status, fixtures::sample};

    #[test]
    fn csv_quotes_the_untraced_round_trip_and_the_observer_effect() {
        let r = sample();
        let csv = summary_csv(&r);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        for col in [
            "rtt_untraced_p50_us",
            "rtt_untraced_p99_us",
            "observer_p50",
            "observer_p50_ci95",
            "observer_p99",
            "observer_p99_ci95",
            "probes_timed_out",
            "probes_non_causal",
            "probes_missing_hops",
        ] {
            assert!(header.contains(&col), "{col}");
        }
        for line in csv.lines() {
            assert_eq!(line.split(',').count(), header.len(), "{line}");
        }
        let cell = |line: &str, col: &str| -> String {
            let i = header.iter().position(|h| *h == col).unwrap();
            line.split(',').nth(i).unwrap().to_owned()
        };
        let rows: Vec<&str> = csv
            .lines()
            .filter(|l| l.starts_with("runc-bridge-bridge-none,"))
            .collect();
        let rt = rows[0];
        assert_eq!(cell(rt, "row"), "round-trip");
        assert_eq!(cell(rt, "p50_us"), "24.000"); // untraced, not the traced 31
        assert_eq!(cell(rt, "share"), "");
        assert_eq!(cell(rt, "rtt_untraced_p99_us"), "40.000");
        assert_eq!(cell(rt, "observer_p50"), "1.040");
        assert_eq!(cell(rt, "observer_p50_ci95"), "0.020");
        assert_eq!(cell(rt, "observer_p99_ci95"), "n/a");
        assert_eq!(cell(rt, "probes_timed_out"), "3");
        assert_eq!(cell(rt, "probes_non_causal"), "2");
        assert_eq!(cell(rt, "probes_missing_hops"), "5");
        assert_eq!(cell(rt, "status"), "ok");
        assert_eq!(cell(rows[1], "row"), "round-trip-traced");
        assert_eq!(cell(rows[1], "p50_us"), "31.000");
        assert_eq!(cell(rows[2], "row"), "veth");
        // Without an untraced measurement the round-trip row is the traced one.
        let tap = csv.lines().find(|l| l.starts_with("lab-tap,")).unwrap();
        assert_eq!(cell(tap, "share"), "1.000");
        assert_eq!(cell(tap, "observer_p50"), "");
        assert_eq!(cell(tap, "observer_p50_ci95"), "");
        let mut d = r.clone();
        d.scenarios[2].status = Status::Degraded;
        let csv = summary_csv(&d);
        let row = csv
            .lines()
            .find(|l| l.starts_with("runc-bridge-bridge-none,"))
            .unwrap();
        assert_eq!(cell(row, "status"), "degraded");
    }
}

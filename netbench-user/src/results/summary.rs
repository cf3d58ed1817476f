//! The terminal summary of a run: one line per scenario (bandwidth, the round trip to
//! quote, the observer effect, probes matched, the two largest stages) and headline
//! findings computed from the results.
//!
//! The round trip quoted is the untraced one where it was measured; stages always come
//! from the traced probes. Failed and unsupported scenarios show their reason only.
use std::fmt::Write as _;

use super::{OBSERVER_LIMIT, Results, RttSource, Scenario, Status};
use crate::{
    observer::Ratio,
    stats::Summary,
    table::{Column, Table},
};

/// The `n` stages with the largest mean, as `name mean (share)`.
#[must_use]
pub fn top_stages(s: &Scenario, n: usize) -> String {
    let mut stages: Vec<_> = s.stages.iter().collect();
    stages.sort_by(|a, b| b.mean_us.total_cmp(&a.mean_us));
    stages
        .iter()
        .take(n)
        .map(|st| {
            format!(
                "{} {:.1} us ({:.0}%)",
                st.name,
                st.mean_us,
                st.share * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `x1.04 +/- 0.02`, or `x1.10 (n/a)` without an interval.
fn ratio_short(r: &Ratio) -> String {
    match r.ci95.filter(|c| c.is_finite()) {
        Some(ci) => format!("x{:.2} +/- {ci:.2}", r.ratio),
        None => format!("x{:.2} (n/a)", r.ratio),
    }
}

/// The observer effect as `p50 x1.04 +/- 0.02, p99 x1.10 (n/a)`, or `-`.
fn observer_short(s: &Scenario) -> String {
    s.observer_effect.as_ref().map_or_else(
        || "-".to_owned(),
        |e| format!("p50 {}, p99 {}", ratio_short(&e.p50), ratio_short(&e.p99)),
    )
}

/// `failed: why` / `unsupported: why` for a scenario without figures.
fn no_figures(s: &Scenario) -> String {
    format!(
        "{}: {}: {}",
        s.id,
        s.status.name(),
        s.reason.as_deref().unwrap_or("")
    )
}

/// One line for a finished scenario (printed as the run goes).
#[must_use]
pub fn scenario_line(s: &Scenario) -> String {
    let Some((rtt, source)) = s.quoted_rtt() else {
        return no_figures(s);
    };
    let bw = s.bandwidth_gbps.as_ref().map_or_else(
        || "no bandwidth".to_owned(),
        |b| format!("{:.2} Gbit/s", b.mean),
    );
    let reps = s
        .rtt_us
        .as_ref()
        .or(s.rtt_untraced_us.as_ref())
        .map_or(0, |r| r.per_rep_p50.len());
    let mut line = format!(
        "{}: {reps} reps, RTT p50 {:.1} us p99 {:.1} us ({}), {bw}, {:.1}% probes matched",
        s.id,
        rtt.summary.p50,
        rtt.summary.p99,
        source.name(),
        s.matched_pct(),
    );
    if let Some(e) = &s.observer_effect {
        let _ = write!(line, "; {}", e.describe());
    }
    let _ = write!(line, "; top stages (traced): {}", top_stages(s, 2));
    if s.status == Status::Degraded {
        let _ = write!(line, " (degraded: {})", s.reason.as_deref().unwrap_or(""));
    }
    line
}

/// The results table: one row per scenario; reasons (why degraded, unsupported or
/// failed) are numbered notes below it, each reason once.
#[must_use]
pub fn table(r: &Results) -> String {
    let mut table = Table::new([
        Column::left("SCENARIO"),
        Column::left("STATUS").width(14),
        Column::right("BW Gbit/s").width(15),
        Column::right("p50 us").width(9),
        Column::right("p99 us").width(9),
        Column::left("TRACING MOVED RTT").width(38),
        Column::right("MATCHED").width(7),
        Column::left("TOP STAGES (traced; mean, share of RTT)"),
    ]);
    let mut notes: Vec<String> = Vec::new();
    let mut note = |reason: Option<&str>| -> String {
        let Some(reason) = reason else {
            return String::new();
        };
        let n = notes.iter().position(|x| x == reason).unwrap_or_else(|| {
            notes.push(reason.to_owned());
            notes.len() - 1
        });
        format!("({})", n + 1)
    };
    let mut any_traced = false;
    for s in &r.scenarios {
        let status = match s.status {
            Status::Ok => "ok".to_owned(),
            other => format!("{}{}", other.name(), note(s.reason.as_deref())),
        };
        let Some((rtt, source)) = s.quoted_rtt() else {
            table.row([s.id.clone(), status]);
            continue;
        };
        let mark = if source == RttSource::Traced {
            any_traced = true;
            "*"
        } else {
            ""
        };
        let bw = s.bandwidth_gbps.as_ref().map_or_else(
            || "-".to_owned(),
            |b| match b.ci95.filter(|c| c.is_finite()) {
                Some(ci) => format!("{:.2} +/- {ci:.2}", b.mean),
                None => format!("{:.2} (n/a)", b.mean),
            },
        );
        table.row([
            s.id.clone(),
            status,
            bw,
            format!("{:.1}{mark}", rtt.summary.p50),
            format!("{:.1}{mark}", rtt.summary.p99),
            observer_short(s),
            format!("{:.1}%", s.matched_pct()),
            top_stages(s, 2),
        ]);
    }
    let mut out = table.render();
    if any_traced {
        out.push_str("* traced probes: no untraced round trip was measured\n");
    }
    for (i, reason) in notes.iter().enumerate() {
        let _ = writeln!(out, "({}) {reason}", i + 1);
    }
    out
}

/// Headline findings: tracing that moved a round trip by more than 5%, the stress
/// effect per runtime and pair (and which stage moved most, so "stress made it faster"
/// comes with its cause), the extremes, and what was degraded or could not run.
#[must_use]
pub fn findings(r: &Results) -> Vec<String> {
    let shown = r.with_rtt();
    let mut out = Vec::new();
    for s in &shown {
        if let Some(e) = s.observer_exceeds() {
            out.push(format!(
                "{}: tracing moved this round trip by more than {:.0}%: {}",
                s.id,
                OBSERVER_LIMIT * 100.0,
                e.describe()
            ));
        }
    }
    for base in shown.iter().filter(|s| s.stress == "none") {
        if let Some(stressed) = shown.iter().find(|s| {
            s.stress == "cpu"
                && s.runtime == base.runtime
                && s.client_driver == base.client_driver
                && s.server_driver == base.server_driver
        }) {
            out.extend(stress_effect(base, stressed));
        }
    }
    if let Some(fast) = shown.iter().min_by(|a, b| p50(a).total_cmp(&p50(b))) {
        let source = fast.quoted_rtt().map_or("traced", |(_, s)| s.name());
        out.push(format!(
            "lowest RTT p50: {} ({:.1} us, {source}; largest stage {})",
            fast.id,
            p50(fast),
            top_stages(fast, 1)
        ));
    }
    if let Some(bw) = shown
        .iter()
        .filter(|s| s.bandwidth_gbps.is_some())
        .max_by(|a, b| gbps(a).total_cmp(&gbps(b)))
    {
        out.push(format!(
            "highest bandwidth: {} ({:.2} Gbit/s)",
            bw.id,
            gbps(bw)
        ));
    }
    let low: Vec<String> = shown
        .iter()
        .filter(|s| s.status == Status::Degraded)
        .map(|s| format!("{} {:.1}%", s.id, s.matched_pct()))
        .collect();
    if !low.is_empty() {
        out.push(format!(
            "degraded, fewer than 99% of probes matched on every hop: {}",
            low.join(", ")
        ));
    }
    for (status, what) in [
        (
            Status::Unsupported,
            "unsupported on this host (reasons in the table and results.json)",
        ),
        (Status::Failed, "failed (reasons in the table)"),
    ] {
        let n = r.scenarios.iter().filter(|s| s.status == status).count();
        if n > 0 {
            out.push(format!("{n} scenario(s) {what}"));
        }
    }
    out
}

/// The round trips to compare for two scenarios: both untraced when both were
/// measured so, else both traced.
fn comparable<'a>(a: &'a Scenario, b: &'a Scenario) -> Option<(Summary, Summary, RttSource)> {
    if let (Some(x), Some(y)) = (&a.rtt_untraced_us, &b.rtt_untraced_us) {
        return Some((x.summary, y.summary, RttSource::Untraced));
    }
    Some((
        a.rtt_us.as_ref()?.summary,
        b.rtt_us.as_ref()?.summary,
        RttSource::Traced,
    ))
}

/// How CPU stress changed one runtime and pair: RTT p50, bandwidth, and the stage whose
/// mean moved most (stage means add up to the mean traced round trip; percentiles do
/// not).
fn stress_effect(base: &Scenario, stressed: &Scenario) -> Option<String> {
    let (a, b, source) = comparable(base, stressed)?;
    let pct = |from: f64, to: f64| {
        if from > 0.0 {
            (to - from) / from * 100.0
        } else {
            0.0
        }
    };
    let mut line = format!(
        "{} {}/{}: CPU stress moved RTT p50 ({}) {:.1} -> {:.1} us ({:+.0}%)",
        base.runtime,
        base.client_driver,
        base.server_driver,
        source.name(),
        a.p50,
        b.p50,
        pct(a.p50, b.p50)
    );
    // Said only where the figure shows it (a drop of more than 10%), and without a
    // cause: CPU idle states (the likely one on an idle host) are not traced yet.
    if pct(a.p50, b.p50) < -10.0 {
        line.push_str(" (faster under load; why is not measured: CPU idle states are not traced)");
    }
    if let (Some(x), Some(y)) = (&base.bandwidth_gbps, &stressed.bandwidth_gbps) {
        let _ = write!(
            line,
            ", bandwidth {:.2} -> {:.2} Gbit/s ({:+.0}%)",
            x.mean,
            y.mean,
            pct(x.mean, y.mean)
        );
    }
    let moved = base
        .stages
        .iter()
        .filter_map(|st| {
            let other = stressed.stages.iter().find(|o| o.name == st.name)?;
            Some((st.name.as_str(), st.mean_us, other.mean_us))
        })
        .max_by(|a, b| (a.2 - a.1).abs().total_cmp(&(b.2 - b.1).abs()));
    if let Some((name, from, to)) = moved {
        let _ = write!(
            line,
            "; the stage whose mean moved most (traced): {name} {from:.1} -> {to:.1} us"
        );
    }
    Some(line)
}

fn p50(s: &Scenario) -> f64 {
    s.quoted_rtt().map_or(f64::MAX, |(r, _)| r.summary.p50)
}

fn gbps(s: &Scenario) -> f64 {
    s.bandwidth_gbps.as_ref().map_or(0.0, |b| b.mean)
}

/// Scenarios for the tests of the renderers: this module's and the plots'.
#[cfg(test)]
pub(crate) mod fixture {
    use super::{Ratio, Scenario, Status, Summary};
    use crate::{observer::ObserverEffect, results::Rtt, stages::StageResult, stats::RepStats};

    pub(crate) fn stage(name: &str, mean: f64, share: f64) -> StageResult {
        StageResult {
            name: name.into(),
            from_hook: "a".into(),
            to_hook: "b".into(),
            mean_us: mean,
            p50_us: mean,
            p90_us: mean,
            p99_us: mean,
            p999_us: mean,
            share,
        }
    }

    /// Round trips of p50 `p50` (p99 twice it).
    pub(crate) fn rtt(p50: f64) -> Rtt {
        Rtt {
            summary: Summary {
                count: 10,
                mean: p50,
                p50,
                p90: p50,
                p99: p50 * 2.0,
                p999: p50 * 3.0,
            },
            per_rep_p50: vec![Some(p50)],
        }
    }

    /// `runc-bridge-bridge-<stress>`, measured: traced round trips of `p50`, `bw` Gbit/s,
    /// every probe matched.
    pub(crate) fn ok(stress: &str, p50: f64, bw: f64, stages: Vec<StageResult>) -> Scenario {
        let id = format!("runc-bridge-bridge-{stress}");
        let mut s = Scenario::unsupported(id, "runc", "bridge", "bridge", stress, String::new());
        s.status = Status::Ok;
        s.reason = None;
        s.rtt_us = Some(rtt(p50));
        s.bandwidth_gbps = Some(RepStats {
            mean: bw,
            stddev: 0.1,
            ci95: Some(0.2),
            per_rep: vec![bw, bw],
        });
        s.stages = stages;
        s.probes_sent = 100;
        s.probes_matched = 100;
        s
    }

    /// [`ok`] at 20 Gbit/s, the whole round trip in one `bridge` stage.
    pub(crate) fn one_stage(stress: &str, p50: f64) -> Scenario {
        ok(stress, p50, 20.0, vec![stage("bridge", p50, 1.0)])
    }

    pub(crate) fn effect(p50: f64, p99: f64, ci: Option<f64>) -> ObserverEffect {
        let r = |ratio| Ratio {
            ratio,
            mean_of_pairs: ratio,
            ci95: ci,
            per_pair: vec![ratio],
        };
        ObserverEffect {
            p50: r(p50),
            p99: r(p99),
            pairs: 2,
            pairs_skipped: 0,
        }
    }

    /// Kata on the host driver: unsupported, no figures.
    pub(crate) fn kata_on_host() -> Scenario {
        let why = "Kata cannot use the host driver".to_owned();
        Scenario::unsupported(
            "kata-host-bridge-none".into(),
            "kata",
            "host",
            "bridge",
            "none",
            why,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{fixture::*, *};
    use crate::results::Env;

    #[test]
    fn table_and_findings_name_the_stress_effect_and_its_stage() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        // (mean, share) of the server and the bridge stage.
        for (stress, p50, bw, [server, bridge]) in [
            ("none", 30.0, 20.0, [(20.0, 0.66), (2.0, 0.07)]),
            ("cpu", 10.0, 10.0, [(4.0, 0.4), (2.5, 0.25)]),
        ] {
            let stages = vec![
                stage("server-stack-and-app", server.0, server.1),
                stage("bridge", bridge.0, bridge.1),
            ];
            r.scenarios.push(ok(stress, p50, bw, stages));
        }
        r.scenarios.push(kata_on_host());
        let t = table(&r);
        assert!(t.contains("runc-bridge-bridge-none  ok "), "{t}");
        assert!(t.contains("20.00 +/- 0.20"), "{t}");
        assert!(t.contains("30.0*"), "{t}");
        assert!(
            t.contains("server-stack-and-app 20.0 us (66%), bridge 2.0 us (7%)"),
            "{t}"
        );
        assert!(
            t.contains("kata-host-bridge-none    unsupported(1)\n"),
            "{t}"
        );
        assert!(
            t.contains("* traced probes: no untraced round trip was measured\n"),
            "{t}"
        );
        assert!(t.ends_with("(1) Kata cannot use the host driver\n"), "{t}");
        let f = findings(&r);
        assert!(
            f[0].starts_with("runc bridge/bridge: CPU stress moved RTT p50 (traced) 30.0 -> 10.0 us (-67%) (faster under load; why is not measured: CPU idle states are not traced), bandwidth 20.00 -> 10.00 Gbit/s (-50%); the stage whose mean moved most (traced): server-stack-and-app 20.0 -> 4.0 us"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.starts_with("lowest RTT p50: runc-bridge-bridge-cpu (10.0 us, traced;"))
        );
        assert!(f.iter().any(|l| l.starts_with("1 scenario(s) unsupported")));
        let line = scenario_line(&r.scenarios[0]);
        assert!(
            line.contains(
                "RTT p50 30.0 us p99 60.0 us (traced), 20.00 Gbit/s, 100.0% probes matched"
            ),
            "{line}"
        );
    }

    #[test]
    fn untraced_round_trip_is_quoted_with_the_observer_effect() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        for (stress, traced, untraced, e) in [
            ("none", 30.0, 25.0, effect(1.2, 1.02, Some(0.03))),
            ("cpu", 40.0, 35.0, effect(1.01, 1.02, None)),
        ] {
            let mut s = one_stage(stress, traced);
            s.rtt_untraced_us = Some(rtt(untraced));
            s.observer_effect = Some(e);
            r.scenarios.push(s);
        }
        let line = scenario_line(&r.scenarios[0]);
        assert!(
            line.contains(
                "RTT p50 25.0 us p99 50.0 us (untraced), 20.00 Gbit/s, 100.0% probes matched; \
                 tracing moved p50 x1.20 (95% CI 1.17..1.23), p99 x1.02 (95% CI 0.99..1.05); \
                 top stages (traced): bridge"
            ),
            "{line}"
        );
        let t = table(&r);
        assert!(
            t.contains("25.0       50.0  p50 x1.20 +/- 0.03, p99 x1.02 +/- 0.03"),
            "{t}"
        );
        assert!(t.contains("p50 x1.01 (n/a), p99 x1.02 (n/a)"), "{t}");
        assert!(!t.contains('*'), "{t}");
        let f = findings(&r);
        assert_eq!(
            f[0],
            "runc-bridge-bridge-none: tracing moved this round trip by more than 5%: \
             tracing moved p50 x1.20 (95% CI 1.17..1.23), p99 x1.02 (95% CI 0.99..1.05)"
        );
        // Only the scenario over 5% is named.
        assert!(
            !f.iter()
                .any(|l| l.starts_with("runc-bridge-bridge-cpu: tracing")),
            "{f:?}"
        );
        // Stress compares untraced with untraced.
        assert!(
            f.iter()
                .any(|l| l.contains("CPU stress moved RTT p50 (untraced) 25.0 -> 35.0 us (+40%)")),
            "{f:?}"
        );
        // Both not untraced: compare the traced round trips.
        r.scenarios[1].rtt_untraced_us = None;
        assert!(
            findings(&r)
                .iter()
                .any(|l| l.contains("CPU stress moved RTT p50 (traced) 30.0 -> 40.0 us")),
        );
    }

    #[test]
    fn failed_and_degraded_scenarios() {
        // Failed after figures were recorded (the gVisor case): none of them shows.
        let mut failed = ok("none", 0.0, 0.51, Vec::new());
        failed.id = "runsc-bridge-bridge-none".into();
        failed.status = Status::Failed;
        failed.reason = Some("no probe was seen at every hop".into());
        let mut degraded = one_stage("none", 30.0);
        degraded.status = Status::Degraded;
        degraded.reason = Some("only 97.0% of probes matched (missing hops 3)".into());
        degraded.probes_matched = 97;
        degraded.bandwidth_gbps = Some(crate::stats::rep_stats(&[20.0]));
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        r.scenarios.push(failed);
        r.scenarios.push(degraded);
        assert_eq!(
            scenario_line(&r.scenarios[0]),
            "runsc-bridge-bridge-none: failed: no probe was seen at every hop"
        );
        let t = table(&r);
        assert!(t.contains("runsc-bridge-bridge-none  failed(1)\n"), "{t}");
        assert!(!t.contains("0.51"), "{t}");
        assert!(t.contains("degraded(2)"), "{t}");
        assert!(t.contains("20.00 (n/a)"), "{t}");
        assert!(!t.contains("+/- 0.00"), "{t}");
        assert!(
            t.contains("(2) only 97.0% of probes matched (missing hops 3)\n"),
            "{t}"
        );
        let line = scenario_line(&r.scenarios[1]);
        assert!(
            line.ends_with("(degraded: only 97.0% of probes matched (missing hops 3))"),
            "{line}"
        );
        let f = findings(&r);
        assert!(
            f.iter().any(|l| l
                == "degraded, fewer than 99% of probes matched on every hop: runc-bridge-bridge-none 97.0%"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l == "1 scenario(s) failed (reasons in the table)"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.starts_with("lowest RTT p50: runc-bridge-bridge-none")),
            "{f:?}"
        );
    }
}

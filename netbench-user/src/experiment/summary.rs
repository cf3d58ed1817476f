//! The terminal summary of a run: one line per scenario (bandwidth, RTT p50/p99, probes
//! matched, the two largest stages) and headline findings computed from the results.
use std::fmt::Write as _;

use crate::report::{Results, Scenario, Status};

/// The two stages with the largest mean, as `name mean (share)`.
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

fn matched_pct(s: &Scenario) -> f64 {
    if s.probes_sent == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "probe counts are small")]
    let pct = s.probes_matched as f64 * 100.0 / s.probes_sent as f64;
    pct
}

/// One line for a finished scenario (printed as the run goes).
#[must_use]
pub fn scenario_line(s: &Scenario) -> String {
    match s.status {
        Status::Unsupported => format!(
            "{}: unsupported: {}",
            s.id,
            s.reason.as_deref().unwrap_or("")
        ),
        Status::Failed if s.rtt_us.is_none() => {
            format!("{}: FAILED: {}", s.id, s.reason.as_deref().unwrap_or(""))
        }
        _ => {
            let rtt = s.rtt_us.as_ref().map(|r| r.summary).unwrap_or_default();
            let bw = s.bandwidth_gbps.as_ref().map_or(0.0, |b| b.mean);
            let mut line = format!(
                "{}: {} reps, RTT p50 {:.1} us p99 {:.1} us, {:.2} Gbit/s, {:.1}% probes matched; top: {}",
                s.id,
                s.rtt_us.as_ref().map_or(0, |r| r.per_rep_p50.len()),
                rtt.p50,
                rtt.p99,
                bw,
                matched_pct(s),
                top_stages(s, 2)
            );
            if s.status == Status::Failed {
                let _ = write!(line, " (FAILED: {})", s.reason.as_deref().unwrap_or(""));
            }
            line
        }
    }
}

/// The results table: one row per scenario; reasons (why unsupported or failed) are
/// numbered notes below it, each reason once.
#[must_use]
pub fn table(r: &Results) -> String {
    let width = r
        .scenarios
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<width$}  {:<11}  {:>15}  {:>9}  {:>9}  {:>7}  TOP STAGES (mean, share of RTT)\n",
        "SCENARIO", "STATUS", "BW Gbit/s", "p50 us", "p99 us", "MATCHED"
    );
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
    for s in &r.scenarios {
        let status = match s.status {
            Status::Ok => "ok".to_owned(),
            Status::Unsupported => format!("unsupported{}", note(s.reason.as_deref())),
            Status::Failed => format!("FAILED{}", note(s.reason.as_deref())),
        };
        match (&s.rtt_us, &s.bandwidth_gbps) {
            (Some(rtt), Some(bw)) => {
                let _ = writeln!(
                    out,
                    "{:<width$}  {status:<11}  {:>15}  {:>9.1}  {:>9.1}  {:>6.1}%  {}",
                    s.id,
                    format!("{:.2} {}", bw.mean, crate::stats::pm(bw.ci95, 2)),
                    rtt.summary.p50,
                    rtt.summary.p99,
                    matched_pct(s),
                    top_stages(s, 2)
                );
            }
            _ => {
                let _ = writeln!(out, "{:<width$}  {status}", s.id);
            }
        }
    }
    for (i, reason) in notes.iter().enumerate() {
        let _ = writeln!(out, "({}) {reason}", i + 1);
    }
    out
}

/// Headline findings: the stress effect per runtime and pair (and which stage moved
/// most, so "stress made it faster" comes with its cause), the extremes, and what could
/// not run.
#[must_use]
pub fn findings(r: &Results) -> Vec<String> {
    let ok: Vec<&Scenario> = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Ok && s.rtt_us.is_some())
        .collect();
    let mut out = Vec::new();
    for base in ok.iter().filter(|s| s.stress == "none") {
        if let Some(stressed) = ok.iter().find(|s| {
            s.stress == "cpu"
                && s.runtime == base.runtime
                && s.client_driver == base.client_driver
                && s.server_driver == base.server_driver
        }) {
            out.extend(stress_effect(base, stressed));
        }
    }
    if let Some(fast) = ok.iter().min_by(|a, b| p50(a).total_cmp(&p50(b))) {
        out.push(format!(
            "lowest RTT p50: {} ({:.1} us; largest stage {})",
            fast.id,
            p50(fast),
            top_stages(fast, 1)
        ));
    }
    if let Some(bw) = ok
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
    let low: Vec<String> = ok
        .iter()
        .filter(|s| matched_pct(s) < 99.0)
        .map(|s| format!("{} {:.1}%", s.id, matched_pct(s)))
        .collect();
    if !low.is_empty() {
        out.push(format!(
            "fewer than 99% of probes matched on every hop: {}",
            low.join(", ")
        ));
    }
    let unsupported = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Unsupported)
        .count();
    if unsupported > 0 {
        out.push(format!(
            "{unsupported} scenario(s) unsupported on this host (reasons in the table and results.json)"
        ));
    }
    let failed = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
        .count();
    if failed > 0 {
        out.push(format!(
            "{failed} scenario(s) FAILED (reasons in the table)"
        ));
    }
    out
}

/// How CPU stress changed one runtime and pair: RTT p50, bandwidth, and the stage whose
/// mean moved most (stage means add up to the mean round trip; percentiles do not).
fn stress_effect(base: &Scenario, stressed: &Scenario) -> Option<String> {
    let (a, b) = (base.rtt_us.as_ref()?, stressed.rtt_us.as_ref()?);
    let pct = |from: f64, to: f64| {
        if from > 0.0 {
            (to - from) / from * 100.0
        } else {
            0.0
        }
    };
    let mut line = format!(
        "{} {}/{}: CPU stress moved RTT p50 {:.1} -> {:.1} us ({:+.0}%)",
        base.runtime,
        base.client_driver,
        base.server_driver,
        a.summary.p50,
        b.summary.p50,
        pct(a.summary.p50, b.summary.p50)
    );
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
            "; the stage whose mean moved most: {name} {from:.1} -> {to:.1} us"
        );
    }
    if b.summary.p50 < a.summary.p50 {
        line.push_str(
            " (faster under load: with every CPU busy no core sits in an idle state, so \
             wake-ups skip the idle exit that an idle host pays)",
        );
    }
    Some(line)
}

fn p50(s: &Scenario) -> f64 {
    s.rtt_us.as_ref().map_or(f64::MAX, |r| r.summary.p50)
}

fn gbps(s: &Scenario) -> f64 {
    s.bandwidth_gbps.as_ref().map_or(0.0, |b| b.mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        report::{Env, Rtt},
        stages::StageResult,
        stats::{RepStats, Summary},
    };

    fn stage(name: &str, mean: f64, share: f64) -> StageResult {
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

    fn ok(id: &str, stress: &str, p50: f64, bw: f64, stages: Vec<StageResult>) -> Scenario {
        let mut s =
            Scenario::unsupported(id.into(), "runc", "bridge", "bridge", stress, String::new());
        s.status = Status::Ok;
        s.reason = None;
        s.rtt_us = Some(Rtt {
            summary: Summary {
                count: 10,
                mean: p50,
                p50,
                p90: p50,
                p99: p50 * 2.0,
                p999: p50 * 3.0,
            },
            per_rep_p50: vec![p50],
        });
        s.bandwidth_gbps = Some(RepStats {
            mean: bw,
            stddev: 0.1,
            ci95: Some(0.2),
            per_rep: vec![bw],
        });
        s.stages = stages;
        s.probes_sent = 100;
        s.probes_matched = 100;
        s
    }

    #[test]
    fn table_and_findings_name_the_stress_effect_and_its_stage() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        r.scenarios.push(ok(
            "runc-bridge-bridge-none",
            "none",
            30.0,
            20.0,
            vec![
                stage("server-stack-and-app", 20.0, 0.66),
                stage("bridge", 2.0, 0.07),
            ],
        ));
        r.scenarios.push(ok(
            "runc-bridge-bridge-cpu",
            "cpu",
            10.0,
            10.0,
            vec![
                stage("server-stack-and-app", 4.0, 0.4),
                stage("bridge", 2.5, 0.25),
            ],
        ));
        r.scenarios.push(Scenario::unsupported(
            "kata-host-bridge-none".into(),
            "kata",
            "host",
            "bridge",
            "none",
            "Kata cannot use the host driver".into(),
        ));
        let t = table(&r);
        assert!(t.contains("runc-bridge-bridge-none  ok"), "{t}");
        assert!(t.contains("20.00 +/- 0.20"), "{t}");
        assert!(
            t.contains("server-stack-and-app 20.0 us (66%), bridge 2.0 us (7%)"),
            "{t}"
        );
        assert!(
            t.contains("kata-host-bridge-none    unsupported(1)\n"),
            "{t}"
        );
        assert!(t.ends_with("(1) Kata cannot use the host driver\n"), "{t}");
        let f = findings(&r);
        assert!(
            f[0].starts_with("runc bridge/bridge: CPU stress moved RTT p50 30.0 -> 10.0 us (-67%), bandwidth 20.00 -> 10.00 Gbit/s (-50%); the stage whose mean moved most: server-stack-and-app 20.0 -> 4.0 us"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l.starts_with("lowest RTT p50: runc-bridge-bridge-cpu"))
        );
        assert!(f.iter().any(|l| l.starts_with("1 scenario(s) unsupported")));
        let line = scenario_line(&r.scenarios[0]);
        assert!(
            line.contains("RTT p50 30.0 us p99 60.0 us, 20.00 Gbit/s, 100.0% probes matched"),
            "{line}"
        );
    }
}

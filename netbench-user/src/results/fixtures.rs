//! Results shared by the tests of the results modules.
use super::{Env, ProbeCounts, Results, Rtt, Scenario, Status};
use crate::{
    observer::{ObserverEffect, Ratio},
    stages::StageResult,
    stats::Summary,
};

fn stage(name: &str, mean: f64) -> StageResult {
    StageResult {
        name: name.into(),
        from_hook: "a".into(),
        to_hook: "b".into(),
        mean_us: mean,
        p50_us: mean - 1.0,
        p90_us: mean + 1.0,
        p99_us: mean + 4.0,
        p999_us: mean + 4.5,
        share: 1.0,
    }
}

fn rtt(mean: f64, p50: f64, p99: f64) -> Rtt {
    Rtt {
        summary: Summary {
            count: 100,
            mean,
            p50,
            p90: p99 - 1.0,
            p99,
            p999: p99 + 1.0,
        },
        per_rep_p50: vec![Some(p50), None],
    }
}

fn ratio(ratio: f64, ci95: Option<f64>) -> Ratio {
    Ratio {
        ratio,
        mean_of_pairs: ratio,
        ci95,
        per_pair: vec![ratio],
    }
}

/// A measured scenario: traced RTT 30/31/44 us (mean/p50/p99), untraced 25/24/40.
pub(super) fn measured(id: &str) -> Scenario {
    let mut s = Scenario::unsupported(id.into(), "runc", "bridge", "bridge", "none", String::new());
    s.status = Status::Ok;
    s.reason = None;
    s.rtt_us = Some(rtt(30.0, 31.0, 44.0));
    s.rtt_untraced_us = Some(rtt(25.0, 24.0, 40.0));
    s.observer_effect = Some(ObserverEffect {
        p50: ratio(1.04, Some(0.02)),
        p99: ratio(1.1, None),
        pairs: 1,
        pairs_skipped: 0,
    });
    s.bandwidth_gbps = Some(crate::stats::rep_stats(&[7.5]));
    s.stages = vec![stage("veth", 10.0), stage("server", 20.0)];
    s.set_counts(&ProbeCounts {
        sent: 1000,
        timed_out: 3,
        matched: 990,
        missing_hops: 5,
        non_causal: 2,
        missing_by_point: Vec::new(),
    });
    s.events_lost = 4;
    s
}

pub(super) fn sample() -> Results {
    let mut r = Results::new(Env::default(), serde_json::json!({"probes": 10}));
    r.scenarios.push(Scenario::unsupported(
        "kata-host-bridge".into(),
        "kata",
        "host",
        "bridge",
        "none",
        "Kata cannot use the host network driver".into(),
    ));
    let mut ok = Scenario::unsupported(
        "lab-tap".into(),
        "lab-tap",
        "lab",
        "lab",
        "none",
        String::new(),
    );
    ok.status = Status::Ok;
    ok.reason = None;
    ok.model = Some("Kata tc-redirect + tap, VMM stand-in".into());
    ok.rtt_us = Some(Rtt::default());
    ok.stages.push(StageResult {
        name: "vm".into(),
        from_hook: "a".into(),
        to_hook: "b".into(),
        mean_us: 5.0,
        p50_us: 4.0,
        p90_us: 6.0,
        p99_us: 9.0,
        p999_us: 9.5,
        share: 1.0,
    });
    r.scenarios.push(ok);
    r.scenarios.push(measured("runc-bridge-bridge-none"));
    r
}

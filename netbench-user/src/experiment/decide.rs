//! Whether each scenario of the matrix can run here, decided before anything is created.
use std::collections::BTreeMap;

use super::{
    matrix::{Driver, ScenarioSpec, Stress},
    runtimes::{self, Resolved, RuntimeFacts},
};
use crate::docker::{Engine, network::SwarmPlan};

/// Whether a scenario can run, decided before anything is created.
pub(super) enum Decision {
    /// dockerd's runtime name.
    Run(String),
    Unsupported(String),
}

/// Decide every scenario; also which dockerd runtime each requested name resolved to.
pub(super) fn decide_all(
    specs: &[ScenarioSpec],
    engine: &Engine,
    swarm: &SwarmPlan,
    have_stress_ng: bool,
) -> (Vec<Decision>, BTreeMap<String, Option<String>>) {
    let (dev_kvm, dev_vhost_net) = RuntimeFacts::host_devices();
    let facts = RuntimeFacts {
        registered: &engine.runtimes,
        engine_version: &engine.version,
        dev_kvm,
        dev_vhost_net,
    };
    let mut resolved = BTreeMap::new();
    let decisions = specs
        .iter()
        .map(|spec| {
            let runtime = runtimes::resolve(&spec.runtime, &facts);
            resolved.insert(
                spec.runtime.clone(),
                match &runtime {
                    Resolved::Available(n) => Some(n.clone()),
                    Resolved::Missing(_) => None,
                },
            );
            decide(spec, runtime, swarm, have_stress_ng)
        })
        .collect();
    (decisions, resolved)
}

pub(super) fn decide(
    spec: &ScenarioSpec,
    runtime: Resolved,
    swarm: &SwarmPlan,
    have_stress_ng: bool,
) -> Decision {
    // The study's rule first: Kata with the host driver is unsupported on any host.
    if let Some(why) = runtimes::driver_unsupported(&spec.runtime, spec.driver) {
        return Decision::Unsupported(why);
    }
    let runtime = match runtime {
        Resolved::Missing(why) => return Decision::Unsupported(why),
        Resolved::Available(name) => name,
    };
    if spec.driver == Driver::Overlay
        && let SwarmPlan::Unusable(why) = swarm
    {
        return Decision::Unsupported(why.clone());
    }
    if spec.stress == Stress::Cpu && !have_stress_ng {
        return Decision::Unsupported(
            "stress-ng is not installed on this host (apt-get install stress-ng, or `cargo \
             xtask setup`): netbench copies it into the server image"
                .to_owned(),
        );
    }
    Decision::Run(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_rules() {
        let spec = |runtime: &str, driver, stress| ScenarioSpec {
            id: "x".into(),
            runtime: runtime.into(),
            driver,
            stress,
        };
        let ok = || Resolved::Available("runc".into());
        assert!(matches!(
            decide(&spec("runc", Driver::Bridge, Stress::None), ok(), &SwarmPlan::Ready, true),
            Decision::Run(r) if r == "runc"
        ));
        assert!(matches!(
            decide(&spec("kata", Driver::Host, Stress::None), Resolved::Available("kata".into()), &SwarmPlan::Ready, true),
            Decision::Unsupported(w) if w.contains("host network driver")
        ));
        assert!(matches!(
            decide(&spec("kata", Driver::Host, Stress::None), Resolved::Missing("m".into()), &SwarmPlan::Ready, true),
            Decision::Unsupported(w) if w.contains("host network driver")
        ));
        assert!(matches!(
            decide(&spec("runc", Driver::Overlay, Stress::None), ok(), &SwarmPlan::Unusable("no swarm".into()), true),
            Decision::Unsupported(w) if w == "no swarm"
        ));
        assert!(matches!(
            decide(
                &spec("runc", Driver::Overlay, Stress::None),
                ok(),
                &SwarmPlan::Init,
                true
            ),
            Decision::Run(_)
        ));
        assert!(matches!(
            decide(&spec("runc", Driver::Bridge, Stress::Cpu), ok(), &SwarmPlan::Ready, false),
            Decision::Unsupported(w) if w.contains("stress-ng")
        ));
        assert!(matches!(
            decide(&spec("kata", Driver::Bridge, Stress::None), Resolved::Missing("m".into()), &SwarmPlan::Ready, true),
            Decision::Unsupported(w) if w == "m"
        ));
    }
}

//! The observer effect of the default Docker experiment's bridge pair: `netbench run`
//! itself ([`crate::experiment::run`]) on a small matrix (runc, the bridge pair, no
//! stress, a few repetitions), and that scenario's `observer_effect` (traced /
//! untraced per repetition pair). Without Docker the figure is "unsupported", with the
//! reason, never a number.
use serde::Serialize;

use super::{BenchConfig, progress};
use crate::{
    experiment::{self, Cancel, ExperimentError, matrix::RunConfig},
    observer::ObserverEffect,
    results::{Scenario, Status},
};

#[derive(Clone, Debug, Default, Serialize)]
pub struct DockerEffect {
    /// `netbench run`'s matrix, in its own flags.
    pub matrix: String,
    pub reps: u32,
    pub probes: u64,
    pub effect: Option<ObserverEffect>,
    /// Why there is no figure (Docker unreachable, the scenario unsupported or failed).
    pub unsupported: Option<String>,
    /// The whole scenario as results.json has it.
    pub scenario: Option<Scenario>,
    pub seconds: f64,
}

pub async fn measure(config: &BenchConfig) -> DockerEffect {
    let started = std::time::Instant::now();
    let out = std::env::temp_dir().join(format!("netbench-bench-docker-{}", std::process::id()));
    let matrix = format!(
        "--runtimes runc --drivers bridge --stress none --reps {} --probes {} --duration {}",
        config.docker_reps, config.docker_probes, config.docker_seconds
    );
    let mut fig = DockerEffect {
        matrix: matrix.clone(),
        reps: config.docker_reps,
        probes: config.docker_probes,
        ..DockerEffect::default()
    };
    progress(&format!("  netbench run {matrix}"));
    let cfg = RunConfig::from_lists(
        "runc",
        "bridge",
        "none",
        config.docker_reps,
        config.docker_probes,
        config.docker_seconds,
        out.clone(),
        false,
        None,
        0,
        crate::experiment::matrix::BandwidthTracing::Off,
        crate::trace::sched::SchedTracing::Auto,
    );
    let result = match cfg {
        Ok(cfg) => experiment::run(&cfg, &Cancel::new()).await,
        Err(e) => Err(ExperimentError::Config(e)),
    };
    // The figures are copied into the bench report; the run's own directory goes.
    let _ = std::fs::remove_dir_all(&out);
    fig.seconds = started.elapsed().as_secs_f64();
    match result {
        Err(ExperimentError::Docker(e)) => {
            fig.unsupported = Some(format!(
                "Docker is not usable here: {}",
                crate::error::one_line(&e)
            ));
        }
        Err(e) => {
            fig.unsupported = Some(format!(
                "netbench run failed: {}",
                crate::error::one_line(&e)
            ));
        }
        Ok(outcome) => {
            let scenario = outcome
                .results
                .scenarios
                .into_iter()
                .find(|s| s.client_driver == "bridge" && s.runtime == "runc");
            match &scenario {
                None => fig.unsupported = Some("the run has no runc bridge scenario".into()),
                Some(s) if matches!(s.status, Status::Unsupported | Status::Failed) => {
                    fig.unsupported = Some(format!(
                        "scenario {} {}: {}",
                        s.id,
                        s.status.name(),
                        s.reason.as_deref().unwrap_or("no reason given")
                    ));
                }
                Some(s) => {
                    fig.effect.clone_from(&s.observer_effect);
                    if fig.effect.is_none() {
                        fig.unsupported = Some(format!(
                            "scenario {} has no observer effect (no traced/untraced pair)",
                            s.id
                        ));
                    }
                }
            }
            fig.scenario = scenario;
        }
    }
    progress(&format!(
        "  docker bridge pair: {}",
        fig.effect.as_ref().map_or_else(
            || format!("unsupported: {}", fig.unsupported.as_deref().unwrap_or("?")),
            ObserverEffect::describe
        )
    ));
    fig
}

//! The observer effect of the default Docker experiment's bridge pair: `netbench run`
//! itself ([`crate::experiment::run`]) on a small matrix (runc, the bridge pair, no
//! stress, a few repetitions), and that scenario's `observer_effect` (traced /
//! untraced per repetition pair). Without Docker the figure is "unsupported", with the
//! reason, never a number.
use serde::{Serialize, Serializer, ser::SerializeStruct as _};

use super::{BenchConfig, progress};
use crate::{
    experiment::{self, Cancel, ExperimentError, matrix::RunConfig},
    observer::ObserverEffect,
    results::{Scenario, Status},
};

#[derive(Clone, Debug, Serialize)]
pub struct DockerEffect {
    /// `netbench run`'s matrix, in its own flags.
    pub matrix: String,
    pub reps: u32,
    pub probes: u64,
    #[serde(flatten)]
    pub figure: DockerFigure,
    /// The whole scenario as results.json has it.
    pub scenario: Option<Scenario>,
    pub seconds: f64,
}

/// The scenario's observer effect, or why there is none (Docker unreachable, the
/// scenario unsupported or failed). Written as `effect` and `unsupported`, one of them
/// null.
#[derive(Clone, Debug)]
pub enum DockerFigure {
    Effect(ObserverEffect),
    Unsupported(String),
}

impl DockerFigure {
    #[must_use]
    pub fn effect(&self) -> Option<&ObserverEffect> {
        match self {
            Self::Effect(e) => Some(e),
            Self::Unsupported(_) => None,
        }
    }

    #[must_use]
    pub fn unsupported(&self) -> Option<&str> {
        match self {
            Self::Effect(_) => None,
            Self::Unsupported(why) => Some(why),
        }
    }
}

impl Serialize for DockerFigure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("DockerFigure", 2)?;
        s.serialize_field("effect", &self.effect())?;
        s.serialize_field("unsupported", &self.unsupported())?;
        s.end()
    }
}

pub async fn measure(config: &BenchConfig) -> DockerEffect {
    let started = std::time::Instant::now();
    let out = std::env::temp_dir().join(format!("netbench-bench-docker-{}", std::process::id()));
    let matrix = format!(
        "--runtimes runc --drivers bridge --stress none --reps {} --probes {} --duration {}",
        config.docker_reps, config.docker_probes, config.docker_seconds
    );
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
    let seconds = started.elapsed().as_secs_f64();
    let unsupported = |why| (DockerFigure::Unsupported(why), None);
    let (figure, scenario) = match result {
        Err(ExperimentError::Docker(e)) => unsupported(format!(
            "Docker is not usable here: {}",
            crate::error::one_line(&e)
        )),
        Err(e) => unsupported(format!(
            "netbench run failed: {}",
            crate::error::one_line(&e)
        )),
        Ok(outcome) => {
            let scenario = outcome
                .results
                .scenarios
                .into_iter()
                .find(|s| s.client_driver == "bridge" && s.runtime == "runc");
            (figure_of(scenario.as_ref()), scenario)
        }
    };
    let fig = DockerEffect {
        matrix,
        reps: config.docker_reps,
        probes: config.docker_probes,
        figure,
        scenario,
        seconds,
    };
    progress(&format!(
        "  docker bridge pair: {}",
        fig.figure.effect().map_or_else(
            || format!("unsupported: {}", fig.figure.unsupported().unwrap_or("?")),
            ObserverEffect::describe
        )
    ));
    fig
}

/// The observer effect of the runc bridge scenario, or why there is none.
fn figure_of(scenario: Option<&Scenario>) -> DockerFigure {
    match scenario {
        None => DockerFigure::Unsupported("the run has no runc bridge scenario".into()),
        Some(s) if matches!(s.status, Status::Unsupported | Status::Failed) => {
            DockerFigure::Unsupported(format!(
                "scenario {} {}: {}",
                s.id,
                s.status.name(),
                s.reason.as_deref().unwrap_or("no reason given")
            ))
        }
        Some(s) => s.observer_effect.clone().map_or_else(
            || {
                DockerFigure::Unsupported(format!(
                    "scenario {} has no observer effect (no traced/untraced pair)",
                    s.id
                ))
            },
            DockerFigure::Effect,
        ),
    }
}

//! `netbench run`: the study's matrix on real containers (runtimes x driver pairs x CPU
//! stress x repetitions), each repetition's probes traced at every hop.
//!
//! Per scenario: a server container (`serve`) and a client container (idle agent; the
//! measurements run in it with `docker exec`) on the pair's network, their hooks found
//! from inspection, then per repetition: [stress-ng on] -> latency (traced) ->
//! bandwidth (tracing off or count-only) -> [stress-ng off]. Everything created carries
//! the run's labels and is removed at the end, on error and on Ctrl-C alike.
mod decide;
pub mod matrix;
pub mod measure;
pub mod path;
pub mod progress;
pub mod record;
pub mod runtimes;
mod scenario;
mod state;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use decide::{Decision, decide_all};
use matrix::{Driver, RunConfig, ScenarioSpec};
pub use progress::{Cancel, Progress};
use record::{ImagesRecord, RunRecord};
use scenario::{Job, failed_scenario, run_scenario, unsupported_scenario};
use state::{RunState, build_images};

use crate::{
    docker::{DockerError, Engines, cleanup::Removed, image, labels, network},
    error::one_line,
    results::{DockerFacts, Env, ReportError, Results, Status, summary},
    trace::TraceError,
};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Locate(#[from] crate::agent::LocateError),
    /// A network creation that failed, remembered for every scenario of its pair.
    #[error(transparent)]
    Network(std::sync::Arc<DockerError>),
    #[error("{scenario}")]
    Plan {
        scenario: String,
        #[source]
        source: path::PlanError,
    },
    #[error("building images")]
    Images(#[source] DockerError),
    #[error("repetition {rep} of {reps}")]
    Repetition {
        rep: u32,
        reps: u32,
        #[source]
        source: Box<ExperimentError>,
    },
    #[error("agent: {0}")]
    Agent(String),
    #[error("writing results")]
    Report(#[from] ReportError),
    #[error("reader task")]
    Join(#[from] tokio::task::JoinError),
    #[error("interrupted")]
    Interrupted,
}

/// The agent's echo port in the client container (idle: it only keeps the container
/// alive) is derived from the run id, so concurrent runs in host mode do not collide.
fn keepalive_port(run: &str) -> u16 {
    let n = u32::from_str_radix(run, 16).unwrap_or(0);
    20_000 + u16::try_from(n % 10_000).unwrap_or(0) * 2
}

/// The run id of repetition `rep` of scenario `index` (carried in every probe).
fn probe_run_id(run: &str, index: usize, rep: u32) -> u32 {
    let base = u32::from_str_radix(run, 16).unwrap_or(0x4e42);
    base.wrapping_mul(2_654_435_761)
        .wrapping_add(u32::try_from(index).unwrap_or(0) << 8)
        .wrapping_add(rep)
}

/// How a finished `netbench run` went.
pub struct Outcome {
    pub results: Results,
    pub dir: PathBuf,
    pub interrupted: bool,
    /// The exit code for an interrupted run (128 + the signal).
    pub exit_code: u8,
    pub plots: Vec<PathBuf>,
    pub cleanup: Removed,
}

impl Outcome {
    /// Scenarios that were supported but did not complete.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.results
            .scenarios
            .iter()
            .filter(|s| s.status == Status::Failed)
            .count()
    }
}

/// Run the matrix of `cfg`. Validation and the Docker connection come first, so bad
/// input fails before anything is created; after that, whatever happens (errors,
/// Ctrl-C), everything created is removed and `results.json` is written.
///
/// # Errors
/// Bad input, Docker not reachable, or results that cannot be written.
pub async fn run(cfg: &RunConfig, cancel: &Cancel) -> Result<Outcome, ExperimentError> {
    let engines = Engines::local().await?;
    if cfg.drivers.contains(&Driver::Macvlan)
        && let Some(p) = &cfg.macvlan_parent
        && !network::host_link_exists(p).await?
    {
        return Err(ExperimentError::Config(format!(
            "--macvlan-parent: no interface '{p}' in the host network namespace"
        )));
    }
    let agent = crate::agent::locate()?;
    let stress_ng = image::find_stress_ng();

    let specs = matrix::expand(cfg);
    let swarm = network::swarm_plan(
        &engines.server.swarm_state,
        engines.server.swarm_manager,
        cfg.allow_swarm_init,
    );
    let (decisions, resolved) = decide_all(&specs, &engines.server, &swarm, stress_ng.is_some());

    let run = labels::new_run_id();
    let stress_cpus = if cfg.stress_cpus == 0 {
        u32::try_from(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
            .unwrap_or(1)
    } else {
        cfg.stress_cpus
    };
    let mut env = Env::local();
    env.docker = DockerFacts {
        docker_version: Some(engines.server.version.clone()),
        runtimes_found: engines.server.runtimes.clone(),
    };
    let record = RunRecord::new(cfg, &run, resolved, stress_cpus, &engines, &swarm);
    let mut results = Results::new(env, record.to_value().map_err(ReportError::Serialize)?);

    let mut state = RunState {
        run: run.clone(),
        engines,
        swarm,
        networks: HashMap::new(),
        macvlan_parent: None,
        record,
    };
    let runnable_reps = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Run(_)))
        .count() as u64
        * u64::from(cfg.reps);
    let mut progress = Progress::new(runnable_reps);
    progress.println(&format!(
        "netbench run {run}: {} scenarios ({} to run), {} repetitions each; results in {}",
        specs.len(),
        runnable_reps / u64::from(cfg.reps.max(1)),
        cfg.reps,
        cfg.out.display()
    ));
    let ctx = Ctx {
        cfg,
        cancel,
        stress_cpus,
    };
    let matrix = run_matrix(
        &ctx,
        &mut state,
        &specs,
        &decisions,
        &agent,
        stress_ng.as_deref(),
        &mut results,
        &mut progress,
    )
    .await;
    progress.phase("cleaning up");
    results.config = state.record.to_value().map_err(ReportError::Serialize)?;
    let removed = state.cleanup().await;
    progress.finish();
    list_not_run(&specs, &mut results, cancel, matrix.as_ref().err());
    crate::exit::failpoint("report");
    results.write(&cfg.out)?;
    let plots = crate::plot::write_all(&results, &cfg.out).unwrap_or_default();
    Ok(Outcome {
        results,
        dir: cfg.out.clone(),
        // A signal while the report was written still makes this an interrupted run.
        interrupted: cancel.is_cancelled(),
        exit_code: cancel.exit_code(),
        plots,
        cleanup: removed,
    })
}

/// Whatever did not get to run is listed with the reason.
fn list_not_run(
    specs: &[ScenarioSpec],
    results: &mut Results,
    cancel: &Cancel,
    stopped_by: Option<&ExperimentError>,
) {
    for spec in specs.iter().skip(results.scenarios.len()) {
        let why = if cancel.is_cancelled() {
            format!("not run: interrupted ({})", cancel.what())
        } else {
            format!(
                "not run: {}",
                stopped_by.map_or_else(String::new, |e| one_line(e))
            )
        };
        results.scenarios.push(failed_scenario(spec, why));
    }
}

/// Read-only context of a run.
struct Ctx<'a> {
    cfg: &'a RunConfig,
    cancel: &'a Cancel,
    stress_cpus: u32,
}

/// Every scenario in order. An `Err` stops the whole matrix (the images could not be
/// built); the scenarios not run get it as their reason.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, passed explicitly"
)]
async fn run_matrix(
    ctx: &Ctx<'_>,
    state: &mut RunState,
    specs: &[ScenarioSpec],
    decisions: &[Decision],
    agent: &Path,
    stress_ng: Option<&Path>,
    results: &mut Results,
    progress: &mut Progress,
) -> Result<(), ExperimentError> {
    let mut images = None;
    let total = specs.len();
    for (index, (spec, decision)) in specs.iter().zip(decisions).enumerate() {
        let runtime = match decision {
            Decision::Unsupported(why) => {
                let seen = results
                    .scenarios
                    .iter()
                    .any(|s| s.reason.as_ref() == Some(why));
                progress.println(&if seen {
                    format!("{}: unsupported (same reason as above)", spec.id)
                } else {
                    format!("{}: unsupported: {why}", spec.id)
                });
                results
                    .scenarios
                    .push(unsupported_scenario(spec, why.clone()));
                continue;
            }
            Decision::Run(r) => r,
        };
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        if images.is_none() {
            progress.phase("building images");
            crate::exit::failpoint("images");
            let built = tokio::select! {
                b = build_images(&state.engines, agent, stress_ng) => b,
                () = ctx.cancel.cancelled() => return Ok(()),
            };
            let built = built.map_err(ExperimentError::Images)?;
            progress.println(&format!(
                "images: {} ({}), {} ({})",
                built.agent.tag,
                if built.agent.built { "built" } else { "cached" },
                built.server.tag,
                if built.server.built {
                    "built"
                } else {
                    "cached"
                }
            ));
            state.record.images = Some(ImagesRecord {
                agent: built.agent.tag.clone(),
                server: built.server.tag.clone(),
            });
            if let Ok(v) = state.record.to_value() {
                results.config = v;
            }
            images = Some(built);
        }
        let Some(imgs) = &images else { continue };
        progress.start_scenario(&spec.id, index + 1, total, ctx.cfg.reps);
        let job = Job {
            spec,
            runtime,
            index,
            images: imgs,
        };
        let scenario = run_scenario(ctx, state, &job, progress).await;
        let done = scenario
            .rtt_us
            .as_ref()
            .map_or(0, |r| r.per_rep_p50.len() as u64);
        let line = summary::scenario_line(&scenario);
        results.scenarios.push(scenario);
        progress.finish_scenario(&line, u64::from(ctx.cfg.reps).saturating_sub(done));
        // Keep what is done on disk: a crash or kill still leaves the finished scenarios.
        if let Err(e) = results.write(&ctx.cfg.out) {
            progress.println(&format!(
                "warning: writing partial results: {}",
                one_line(&e)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_probe_ids_are_derived_from_the_run() {
        let p = keepalive_port("0badcafe");
        assert!((20_000..40_000).contains(&p) && p.is_multiple_of(2));
        assert_eq!(keepalive_port("zz"), 20_000);
        let a = probe_run_id("0badcafe", 0, 0);
        assert_ne!(a, probe_run_id("0badcafe", 0, 1));
        assert_ne!(a, probe_run_id("0badcafe", 1, 0));
        assert_ne!(a, probe_run_id("0badcaff", 0, 0));
    }
}

//! `netbench run`: the study's matrix on real containers (runtimes x driver pairs x CPU
//! stress x repetitions), each repetition's probes traced at every hop.
//!
//! Per scenario: a server container (`serve`) and a client container (idle agent; the
//! measurements run in it with `docker exec`) on the pair's network, their hooks found
//! from inspection, then per repetition: [stress-ng on] -> latency (traced) ->
//! bandwidth (tracing off or count-only) -> [stress-ng off]. Everything created carries
//! the run's labels and is removed at the end, on error and on Ctrl-C alike.
pub mod matrix;
pub mod measure;
pub mod path;
pub mod progress;
pub mod runtimes;
pub mod summary;

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use matrix::{Driver, RunConfig, ScenarioSpec, Stress};
use crate::{analysis::analyze, block::Block, path::TracedPath};
pub use progress::{Cancel, Progress};
use runtimes::{Resolved, RuntimeFacts};

use crate::{

    docker::{
        DockerError, Engine, Engines,
        cleanup::{self, Removed},
        container::{self, Attach, Container, ContainerSpec},
        hooks,
        image::{self, AGENT_PATH, BuiltImage},
        labels,
        network::{self, MacvlanParent, Network, SwarmPlan},
    },
    report::{Env, ProbeCounts, ReportError, Results, Rtt, Scenario, Status, decide_status},
    stats::rep_stats,
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
    #[error("agent: {0}")]
    Agent(String),
    #[error("writing results")]
    Report(#[from] ReportError),
    #[error("reader task")]
    Join(#[from] tokio::task::JoinError),
    #[error("interrupted (Ctrl-C)")]
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

/// `YYYYmmdd-HHMMSS` in UTC, for result directory names.
#[must_use]
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// How a finished `netbench run` went.
pub struct Outcome {
    pub results: Results,
    pub dir: PathBuf,
    pub interrupted: bool,
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

/// Whether a scenario can run, decided before anything is created.
enum Decision {
    /// dockerd's runtime name.
    Run(String),
    Unsupported(String),
}

/// Images of this run.
struct Images {
    agent: BuiltImage,
    server: BuiltImage,
}

/// What the run created and holds; everything goes at [`RunState::cleanup`].
struct RunState {
    run: String,
    engines: Engines,
    swarm: SwarmPlan,
    networks: HashMap<&'static str, Result<Network, String>>,
    macvlan_parent: Option<MacvlanParent>,
    /// Where each scenario was traced (recorded in results.json's config).
    hooks: serde_json::Map<String, serde_json::Value>,
}

impl RunState {
    /// The network of `driver`'s pair, created on first use (a failure is remembered,
    /// so later scenarios of the pair fail at once with the same reason).
    async fn network(&mut self, cfg: &RunConfig, driver: Driver) -> Result<Network, String> {
        let kind = driver.network();
        if let Some(n) = self.networks.get(kind) {
            return n.clone();
        }
        let made = self
            .create_network(cfg, kind)
            .await
            .map_err(|e| e.to_string());
        self.networks.insert(kind, made.clone());
        made
    }

    async fn create_network(
        &mut self,
        cfg: &RunConfig,
        kind: &str,
    ) -> Result<Network, DockerError> {
        let engine = &self.engines.server;
        match kind {
            "macvlan" => {
                let parent = match &cfg.macvlan_parent {
                    Some(name) => MacvlanParent {
                        name: name.clone(),
                        peer: None,
                        owned: false,
                    },
                    None => network::create_parent(&self.run).await?,
                };
                let name = parent.name.clone();
                self.macvlan_parent = Some(parent);
                network::create_macvlan(engine, &self.run, &name).await
            }
            "overlay" => {
                if self.swarm == SwarmPlan::Init {
                    network::init_swarm(&mut self.engines.server, &self.run).await?;
                    self.engines
                        .client
                        .swarm_state
                        .clone_from(&self.engines.server.swarm_state);
                    self.swarm = SwarmPlan::Ready;
                }
                network::create_overlay(&self.engines.server, &self.run).await
            }
            _ => network::create_bridge(engine, &self.run).await,
        }
    }

    /// Remove everything of this run: containers, networks, the swarm if this run
    /// initialised it (and its `docker_gwbridge`), the macvlan parent veth.
    async fn cleanup(&mut self) -> Removed {
        let mut removed =
            cleanup::everything(&mut self.engines.server, Some(&self.run), false).await;
        if let Some(parent) = self.macvlan_parent.take()
            && parent.owned
            && let Err(e) = network::delete_parent(&parent).await
        {
            removed.failures.push(e.to_string());
        }
        removed
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
    let agent = crate::agent::locate().map_err(ExperimentError::Config)?;
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
    env.docker_version = Some(engines.server.version.clone());
    env.runtimes_found.clone_from(&engines.server.runtimes);
    let config = config_json(cfg, &run, resolved, stress_cpus, &engines, &swarm);
    let mut results = Results::new(env, config);

    let mut state = RunState {
        run: run.clone(),
        engines,
        swarm,
        networks: HashMap::new(),
        macvlan_parent: None,
        hooks: serde_json::Map::new(),
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
    if let Some(obj) = results.config.as_object_mut() {
        obj.insert("hooks".into(), std::mem::take(&mut state.hooks).into());
    }
    let removed = state.cleanup().await;
    progress.finish();
    let interrupted = cancel.is_cancelled();
    // Whatever did not get to run is listed with the reason.
    for spec in specs.iter().skip(results.scenarios.len()) {
        results.scenarios.push(failed_scenario(
            spec,
            if interrupted {
                "not run: interrupted (Ctrl-C)".to_owned()
            } else {
                format!(
                    "not run: {}",
                    matrix.as_ref().err().map_or("", |e| e.as_str())
                )
            },
        ));
    }
    results.write(&cfg.out)?;
    let plots = crate::plot::write_all(&results, &cfg.out).unwrap_or_default();
    Ok(Outcome {
        results,
        dir: cfg.out.clone(),
        interrupted,
        plots,
        cleanup: removed,
    })
}

/// Decide every scenario; also which dockerd runtime each requested name resolved to.
fn decide_all(
    specs: &[ScenarioSpec],
    engine: &Engine,
    swarm: &SwarmPlan,
    have_stress_ng: bool,
) -> (Vec<Decision>, serde_json::Map<String, serde_json::Value>) {
    let (dev_kvm, dev_vhost_net) = RuntimeFacts::host_devices();
    let facts = RuntimeFacts {
        registered: &engine.runtimes,
        engine_version: &engine.version,
        dev_kvm,
        dev_vhost_net,
    };
    let mut resolved = serde_json::Map::new();
    let decisions = specs
        .iter()
        .map(|spec| {
            let runtime = runtimes::resolve(&spec.runtime, &facts);
            resolved.insert(
                spec.runtime.clone(),
                match &runtime {
                    Resolved::Available(n) => serde_json::Value::String(n.clone()),
                    Resolved::Missing(_) => serde_json::Value::Null,
                },
            );
            decide(spec, runtime, swarm, have_stress_ng)
        })
        .collect();
    (decisions, resolved)
}

/// The resolved configuration recorded in results.json.
fn config_json(
    cfg: &RunConfig,
    run: &str,
    resolved: serde_json::Map<String, serde_json::Value>,
    stress_cpus: u32,
    engines: &Engines,
    swarm: &SwarmPlan,
) -> serde_json::Value {
    let mut config = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(obj) = config.as_object_mut() {
        obj.insert("run_id".into(), run.into());
        obj.insert("runtimes_resolved".into(), resolved.into());
        obj.insert("stress_cpus".into(), stress_cpus.into());
        obj.insert(
            "driver_pairs".into(),
            serde_json::json!(cfg.drivers.iter().map(|d| d.pair()).collect::<Vec<_>>()),
        );
        obj.insert(
            "engines".into(),
            serde_json::json!({
                "client": {"version": engines.client.version, "api": engines.client.api_version},
                "server": {"version": engines.server.version, "api": engines.server.api_version},
                "same_engine": true,
            }),
        );
        obj.insert(
            "swarm".into(),
            match swarm {
                SwarmPlan::Ready => "existing swarm (left as it is)".into(),
                SwarmPlan::Init => {
                    "single-node swarm initialised by netbench, left at cleanup".into()
                }
                SwarmPlan::Unusable(why) => why.clone().into(),
            },
        );
    }
    config
}

fn decide(
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

/// Read-only context of a run.
struct Ctx<'a> {
    cfg: &'a RunConfig,
    cancel: &'a Cancel,
    stress_cpus: u32,
}

/// Every scenario in order. An `Err` is a reason that stops the whole matrix (the
/// images could not be built); the scenarios not run get it as their reason.
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
) -> Result<(), String> {
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
            let built = tokio::select! {
                b = build_images(&state.engines, agent, stress_ng) => b,
                () = ctx.cancel.cancelled() => return Ok(()),
            };
            let built = built.map_err(|e| format!("building images: {e}"))?;
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
            if let Some(obj) = results.config.as_object_mut() {
                obj.insert(
                    "images".into(),
                    serde_json::json!({"agent": built.agent.tag, "server": built.server.tag}),
                );
            }
            images = Some(built);
        }
        let Some(imgs) = &images else { continue };
        progress.start_scenario(&spec.id, index + 1, total, ctx.cfg.reps);
        let scenario = run_scenario(ctx, state, spec, runtime, index, imgs, progress).await;
        let done = scenario
            .rtt_us
            .as_ref()
            .map_or(0, |r| r.per_rep_p50.len() as u64);
        let line = summary::scenario_line(&scenario);
        results.scenarios.push(scenario);
        progress.finish_scenario(&line, u64::from(ctx.cfg.reps).saturating_sub(done));
        // Keep what is done on disk: a crash or kill still leaves the finished scenarios.
        if let Err(e) = results.write(&ctx.cfg.out) {
            progress.println(&format!("warning: writing partial results: {e}"));
        }
    }
    Ok(())
}

async fn build_images(
    engines: &Engines,
    agent: &Path,
    stress_ng: Option<&Path>,
) -> Result<Images, DockerError> {
    let agent_spec = image::agent_spec(agent)?;
    let server_spec = match stress_ng {
        Some(s) => image::server_spec(agent, s)?,
        None => agent_spec.clone(),
    };
    let agent_img = image::ensure(&engines.client, &agent_spec).await?;
    let server_img = image::ensure(&engines.server, &server_spec).await?;
    Ok(Images {
        agent: agent_img,
        server: server_img,
    })
}

fn base_scenario(spec: &ScenarioSpec, status: Status, reason: Option<String>) -> Scenario {
    let mut s = Scenario::unsupported(
        spec.id.clone(),
        &spec.runtime,
        spec.client_driver(),
        spec.server_driver(),
        spec.stress.name(),
        String::new(),
    );
    s.status = status;
    s.reason = reason;
    s
}

fn unsupported_scenario(spec: &ScenarioSpec, why: String) -> Scenario {
    base_scenario(spec, Status::Unsupported, Some(why))
}

fn failed_scenario(spec: &ScenarioSpec, why: String) -> Scenario {
    base_scenario(spec, Status::Failed, Some(why))
}

/// Per-repetition results of one scenario, accumulated.
#[derive(Default)]
struct Acc {
    /// Each repetition's probe blocks, traced and untraced, in the order they ran.
    reps: Vec<Vec<Block>>,
    bandwidth: Vec<f64>,
}

impl Acc {
    fn add(&mut self, blocks: Vec<Block>, bw: &measure::BandwidthRep) {
        self.reps.push(blocks);
        self.bandwidth.push(bw.gbps);
    }

    fn into_scenario(
        self,
        spec: &ScenarioSpec,
        plan: Option<&TracedPath>,
        error: Option<String>,
        bandwidth_tracing: &str,
    ) -> Scenario {
        let Some(plan) = plan.filter(|_| !self.reps.is_empty()) else {
            let (status, reason) = decide_status(&ProbeCounts::default(), error);
            return base_scenario(spec, status, reason);
        };
        let a = analyze(plan, &self.reps);
        let counts = ProbeCounts::from(&a.correlation);
        let (status, reason) = decide_status(&counts, error);
        let mut s = base_scenario(spec, status, reason);
        s.set_counts(&counts);
        s.events_lost = a.trace.events_lost;
        s.bandwidth_gbps = Some(rep_stats(&self.bandwidth));
        s.bandwidth_tracing = Some(bandwidth_tracing.to_owned());
        s.rtt_untraced_us = a.rtt_untraced.map(|summary| Rtt {
            summary,
            per_rep_p50: a.per_rep_untraced_p50,
        });
        s.observer_effect = a.observer_effect;
        if let Some(summary) = a.rtt {
            s.rtt_us = Some(Rtt {
                summary,
                per_rep_p50: a.per_rep_p50,
            });
            s.stages = a.stages;
            s.breakdown = a.breakdown;
            s.runqueue = a.runqueue;
        }
        s
    }
}

/// The pair of one scenario, running.
struct Pair {
    server: Container,
    client: Container,
    server_ip: Ipv4Addr,
    plan: TracedPath,
}

async fn run_scenario(
    ctx: &Ctx<'_>,
    state: &mut RunState,
    spec: &ScenarioSpec,
    runtime: &str,
    index: usize,
    images: &Images,
    progress: &Progress,
) -> Scenario {
    let cfg = ctx.cfg;
    let mut acc = Acc::default();
    let mut plan = None;
    let mut created: Vec<(bool, String)> = Vec::new();
    let outcome = async {
        let pair = tokio::select! {
            p = set_up_pair(ctx, state, spec, runtime, index, images, &mut created) => p?,
            () = ctx.cancel.cancelled() => return Err(ExperimentError::Interrupted),
        };
        plan = Some(pair.plan.clone());
        state.hooks.insert(spec.id.clone(), pair.plan.describe());
        for rep in 0..cfg.reps {
            if ctx.cancel.is_cancelled() {
                return Err(ExperimentError::Interrupted);
            }
            let rep_result = tokio::select! {
                r = repetition(ctx, state, spec, index, rep, &pair, progress) => r,
                () = ctx.cancel.cancelled() => Err(ExperimentError::Interrupted),
            };
            let (lat, bw) = rep_result.map_err(|e| match e {
                ExperimentError::Interrupted => e,
                other => ExperimentError::Config(format!(
                    "repetition {} of {}: {other}",
                    rep + 1,
                    cfg.reps
                )),
            })?;
            acc.add(lat, &bw);
            progress.rep_done();
        }
        Ok(())
    }
    .await;
    progress.phase("removing containers");
    for (is_client, id) in created.iter().rev() {
        let engine = if *is_client {
            &state.engines.client
        } else {
            &state.engines.server
        };
        let _ = container::remove(engine, id).await;
    }
    let error = outcome.err().map(|e| match e {
        ExperimentError::Interrupted => format!(
            "interrupted (Ctrl-C) after {} of {} repetitions",
            acc.reps.len(),
            cfg.reps
        ),
        other => other.to_string(),
    });
    acc.into_scenario(spec, plan.as_ref(), error, cfg.bandwidth_tracing.name())
}

/// Start server and client, wait until both agents are up, find the hooks.
async fn set_up_pair(
    ctx: &Ctx<'_>,
    state: &mut RunState,
    spec: &ScenarioSpec,
    runtime: &str,
    index: usize,
    images: &Images,
    created: &mut Vec<(bool, String)>,
) -> Result<Pair, ExperimentError> {
    let cfg = ctx.cfg;
    let network = state
        .network(cfg, spec.driver)
        .await
        .map_err(ExperimentError::Config)?;
    let run = state.run.clone();
    // Upper bound of the containers' life: the agent exits by itself after this.
    let per_rep = cfg.duration_s + 60 + cfg.probes / 100;
    let lifetime = 600 + u64::from(cfg.reps) * per_rep;
    let scenario_labels = |role: &str| {
        let mut l = labels::labels(&run, role);
        l.insert("netbench.scenario".into(), spec.id.clone());
        l
    };
    let server_spec = ContainerSpec {
        name: format!("nb-{run}-{index:02}-server"),
        image: images.server.tag.clone(),
        cmd: [
            AGENT_PATH,
            "serve",
            "--port",
            &cfg.port.to_string(),
            "--max-seconds",
            &lifetime.to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
        runtime: runtime.to_owned(),
        attach: Attach::Network(network.name.clone()),
        labels: scenario_labels("server"),
    };
    let server = start_agent(&state.engines.server, &server_spec, created, false).await?;
    let client_spec = ContainerSpec {
        name: format!("nb-{run}-{index:02}-client"),
        image: images.agent.tag.clone(),
        cmd: [
            AGENT_PATH,
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            &keepalive_port(&run).to_string(),
            "--max-seconds",
            &lifetime.to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
        runtime: runtime.to_owned(),
        attach: if spec.driver == Driver::Host {
            Attach::Host
        } else {
            Attach::Network(network.name.clone())
        },
        labels: scenario_labels("client"),
    };
    let client = start_agent(&state.engines.client, &client_spec, created, true).await?;
    let plan = find_plan(spec, &network, &server, &client).await?;
    let server_ip = server.ip.ok_or_else(|| {
        DockerError::Hook(format!(
            "server {} has no IPv4 address on {}",
            server.name, network.name
        ))
    })?;
    Ok(Pair {
        server,
        client,
        server_ip,
        plan,
    })
}

/// Start one agent container (recorded in `created` for removal) and wait for its
/// ready line.
async fn start_agent(
    engine: &Engine,
    spec: &ContainerSpec,
    created: &mut Vec<(bool, String)>,
    is_client: bool,
) -> Result<Container, ExperimentError> {
    let c = container::start(engine, spec).await?;
    created.push((is_client, c.id.clone()));
    container::wait_for_log(engine, &c.id, "\"ready\"", Duration::from_secs(30)).await?;
    Ok(c)
}

/// Discover both containers' hooks (and the host bridge for the host pair) and plan the
/// traced path.
async fn find_plan(
    spec: &ScenarioSpec,
    network: &Network,
    server: &Container,
    client: &Container,
) -> Result<TracedPath, ExperimentError> {
    let candidates = hooks::peer_candidates(server.network_id.as_deref());
    let server_mac = server.mac.ok_or_else(|| {
        DockerError::Hook(format!(
            "server {} has no MAC on {}",
            server.name, network.name
        ))
    })?;
    let server_hooks = hooks::discover(server, server_mac, &candidates).await?;
    let (client_hooks, bridge) = if spec.driver == Driver::Host {
        let ifname = network.bridge_ifname.clone().ok_or_else(|| {
            DockerError::Hook(format!(
                "network {} has no known bridge device",
                network.name
            ))
        })?;
        (None, Some(hooks::host_interface(&ifname).await?))
    } else {
        let mac = client.mac.ok_or_else(|| {
            DockerError::Hook(format!(
                "client {} has no MAC on {}",
                client.name, network.name
            ))
        })?;
        (Some(hooks::discover(client, mac, &candidates).await?), None)
    };
    let plan = path::plan(
        spec.driver,
        client_hooks.as_ref(),
        &server_hooks,
        bridge.as_ref(),
    )
    .map_err(|e| DockerError::Hook(format!("{}: {e}", spec.id)))?;
    Ok(plan)
}

/// One repetition: stress on (if any), latency, bandwidth, stress off.
async fn repetition(
    ctx: &Ctx<'_>,
    state: &RunState,
    spec: &ScenarioSpec,
    index: usize,
    rep: u32,
    pair: &Pair,
    progress: &Progress,
) -> Result<(Vec<Block>, measure::BandwidthRep), ExperimentError> {
    let cfg = ctx.cfg;
    let reps = cfg.reps;
    let server_engine = &state.engines.server;
    let client_engine = &state.engines.client;
    let stress = if spec.stress == Stress::Cpu {
        progress.phase(format!("rep {}/{reps}: starting stress-ng", rep + 1));
        let bound = 120 + cfg.duration_s + cfg.probes / 100;
        Some(measure::start_stress(server_engine, &pair.server.id, ctx.stress_cpus, bound).await?)
    } else {
        None
    };
    let measured = async {
        progress.phase(format!(
            "rep {}/{reps}: latency ({} probes)",
            rep + 1,
            cfg.probes
        ));
        progress.measuring(true);
        let lat = measure::latency(
            client_engine,
            &pair.client.id,
            pair.server_ip,
            &pair.plan,
            cfg,
            probe_run_id(&state.run, index, rep),
            Some(pair.server.pid),
            rep.is_multiple_of(2),
        )
        .await;
        progress.measuring(false);
        let lat = lat?;
        progress.phase(format!(
            "rep {}/{reps}: bandwidth ({} s)",
            rep + 1,
            cfg.duration_s
        ));
        let bw = measure::bandwidth(
            client_engine,
            &pair.client.id,
            pair.server_ip,
            &pair.plan,
            cfg,
        )
        .await?;
        Ok::<_, ExperimentError>((lat, bw))
    }
    .await;
    if let Some(bg) = stress {
        container::stop_background(server_engine, &bg, Duration::from_secs(5)).await?;
    }
    measured
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

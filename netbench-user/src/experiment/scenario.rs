//! One scenario: set up its client/server pair, run its repetitions (stress, traced and
//! untraced latency blocks, bandwidth), remove the containers, and turn what was
//! measured into its results entry.
use std::{net::Ipv4Addr, time::Duration};

use netbench_common::protocol::{AgentCommand, ServeOpts};

use super::{
    Ctx, ExperimentError, keepalive_port,
    matrix::{Driver, ScenarioSpec, Stress},
    measure::{self, agent_cmd},
    path, probe_run_id,
    progress::Progress,
    state::{Images, RunState},
};
use crate::{
    analysis::analyze,
    block::Block,
    docker::{
        DockerError, Engine,
        container::{self, Attach, Container, ContainerSpec},
        hooks, labels,
        network::Network,
    },
    path::TracedPath,
    results::{ProbeCounts, Rtt, Scenario, Status, decide_status},
    stats::rep_stats,
};

pub(super) fn base_scenario(
    spec: &ScenarioSpec,
    status: Status,
    reason: Option<String>,
) -> Scenario {
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

pub(super) fn unsupported_scenario(spec: &ScenarioSpec, why: String) -> Scenario {
    base_scenario(spec, Status::Unsupported, Some(why))
}

pub(super) fn failed_scenario(spec: &ScenarioSpec, why: String) -> Scenario {
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

/// One scenario to run: its spec, the runtime it resolved to, its place in the matrix
/// (names the containers and the probes' run ids) and the images its pair runs.
pub(super) struct Job<'a> {
    pub spec: &'a ScenarioSpec,
    pub runtime: &'a str,
    pub index: usize,
    pub images: &'a Images,
}

pub(super) async fn run_scenario(
    ctx: &Ctx<'_>,
    state: &mut RunState,
    job: &Job<'_>,
    progress: &Progress,
) -> Scenario {
    let (cfg, spec, index) = (ctx.cfg, job.spec, job.index);
    let mut acc = Acc::default();
    let mut plan = None;
    let mut created: Vec<(bool, String)> = Vec::new();
    let outcome = async {
        let pair = tokio::select! {
            p = set_up_pair(ctx, state, job, &mut created) => p?,
            () = ctx.cancel.cancelled() => return Err(ExperimentError::Interrupted),
        };
        plan = Some(pair.plan.clone());
        crate::exit::failpoint("pair");
        state
            .record
            .hooks
            .insert(spec.id.clone(), pair.plan.describe());
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
                other => ExperimentError::Repetition {
                    rep: rep + 1,
                    reps: cfg.reps,
                    source: Box::new(other),
                },
            })?;
            acc.add(lat, &bw);
            progress.rep_done();
            crate::exit::failpoint("rep");
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
            "interrupted ({}) after {} of {} repetitions",
            ctx.cancel.what(),
            acc.reps.len(),
            cfg.reps
        ),
        other => crate::error::one_line(&other),
    });
    acc.into_scenario(spec, plan.as_ref(), error, cfg.bandwidth_tracing.name())
}

/// Start server and client, wait until both agents are up, find the hooks.
async fn set_up_pair(
    ctx: &Ctx<'_>,
    state: &mut RunState,
    job: &Job<'_>,
    created: &mut Vec<(bool, String)>,
) -> Result<Pair, ExperimentError> {
    let Job {
        spec,
        runtime,
        index,
        images,
    } = *job;
    let cfg = ctx.cfg;
    let network = state
        .network(cfg, spec.driver)
        .await
        .map_err(ExperimentError::Network)?;
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
        cmd: agent_cmd(&AgentCommand::Serve(ServeOpts {
            port: cfg.port,
            max: Duration::from_secs(lifetime),
            ..ServeOpts::default()
        })),
        runtime: runtime.to_owned(),
        attach: Attach::Network(network.name.clone()),
        labels: scenario_labels("server"),
    };
    let server = start_agent(&state.engines.server, &server_spec, created, false).await?;
    let client_spec = ContainerSpec {
        name: format!("nb-{run}-{index:02}-client"),
        image: images.agent.tag.clone(),
        cmd: agent_cmd(&AgentCommand::Serve(ServeOpts {
            bind: Ipv4Addr::LOCALHOST.into(),
            port: keepalive_port(&run),
            max: Duration::from_secs(lifetime),
        })),
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
    .map_err(|source| ExperimentError::Plan {
        scenario: spec.id.clone(),
        source,
    })?;
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
        let target = measure::Target {
            engine: client_engine,
            client: &pair.client.id,
            server_ip: pair.server_ip,
            plan: &pair.plan,
            cfg,
            server_pid: Some(pair.server.pid)
                .filter(|_| cfg.sched.wanted(spec.stress == Stress::Cpu)),
        };
        let lat = measure::latency(
            &target,
            probe_run_id(&state.run, index, rep),
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
        let bw = measure::bandwidth(&target).await?;
        Ok::<_, ExperimentError>((lat, bw))
    }
    .await;
    if let Some(bg) = stress {
        container::stop_background(server_engine, &bg, Duration::from_secs(5)).await?;
    }
    measured
}

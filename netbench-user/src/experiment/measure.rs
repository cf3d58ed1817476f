//! One repetition's measurements on a running client/server pair: latency (agent `rr`
//! probes: a block traced at every hop and an untraced block, for the observer effect),
//! bandwidth (agent `stream`, tracing off or count-only),
//! and the CPU stress around them. The agent runs inside the containers (`docker exec`).
use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use netbench_common::protocol::{self, AgentCommand, Event, RrOpts, StreamOpts};

use super::{
    ExperimentError,
    matrix::{BandwidthTracing, RunConfig},
};
use crate::{
    agent::parse_rr_output,
    block::{self, Block},
    docker::{
        Engine,
        container::{self, BackgroundExec},
        image::{AGENT_PATH, STRESS_PATH},
    },
    path::TracedPath,
    trace::{KernelCounters, Session, SessionConfig, TraceMode},
};

/// Where one repetition measures: the client container (on its engine), the server's
/// address and traced path, the run's configuration, and the server process whose
/// scheduler events are traced (None: not traced).
pub struct Target<'a> {
    pub engine: &'a Engine,
    pub client: &'a str,
    pub server_ip: Ipv4Addr,
    pub plan: &'a TracedPath,
    pub cfg: &'a RunConfig,
    pub server_pid: Option<u32>,
}

/// Run one block of `rr` probes of `probes` in the client container, traced along the
/// path or not.
async fn rr_block(
    t: &Target<'_>,
    probes: u64,
    run_id: u32,
    traced: bool,
) -> Result<Block, ExperimentError> {
    let (plan, cfg) = (t.plan, t.cfg);
    let mut session = SessionConfig::new(block::mode(traced), vec![cfg.port], plan.devices());
    // Request and reply at every hop, and a few scheduler events per probe.
    session.expected_events = probes * (2 * plan.hops.len() as u64 + 16);
    // The server's threads (per-connection ones appear as the client connects: the
    // kernel's fork hook adds them) split its turnaround by its scheduler events.
    if plan.runqueue_stage().is_some() {
        session.track_pids = t.server_pid.into_iter().collect();
    }
    let session = Session::start(&session)?;
    // Bounded in time twice: the agent's own --max-seconds and the exec's timeout.
    let max_seconds = 30 + probes / 100;
    let cmd = agent_cmd(&AgentCommand::Rr(RrOpts {
        server: SocketAddr::new(t.server_ip.into(), cfg.port),
        proto: cfg.proto,
        count: u32::try_from(probes).unwrap_or(u32::MAX),
        rate: 0,
        size: u32::try_from(cfg.probe_size).unwrap_or(u32::MAX),
        timeout: Duration::from_secs(1),
        run_id,
        max: Duration::from_secs(max_seconds),
    }));
    // The agent prints its probes only after the last one: nothing crosses the exec's
    // stream while probes are in flight.
    let out = container::exec(
        t.engine,
        t.client,
        &cmd,
        Duration::from_secs(max_seconds + 30),
    )
    .await;
    let trace = session.finish().await?;
    let out = succeeded("rr", out?)?;
    let probes = parse_rr_output(&out.stdout).map_err(ExperimentError::Agent)?;
    if !probes.is_empty() && probes.iter().all(|p| p.rtt_ns.is_none()) {
        // A hung or dead server: the scenario fails with this rather than measuring
        // timeouts for the rest of its repetitions.
        return Err(ExperimentError::Agent(format!(
            "no reply to any of {} probes: the server agent does not answer",
            probes.len()
        )));
    }
    Ok(Block {
        run_id,
        traced,
        probes,
        trace,
    })
}

/// The agent's output if its `what` command exited 0; otherwise an error with its code
/// and stderr.
fn succeeded(
    what: &str,
    out: container::ExecOutput,
) -> Result<container::ExecOutput, ExperimentError> {
    if out.exit_code == Some(0) {
        Ok(out)
    } else {
        Err(ExperimentError::Agent(format!(
            "{what} exited with {:?}: {}",
            out.exit_code,
            out.stderr.trim()
        )))
    }
}

/// Pairs of a traced and an untraced block per repetition: enough pairs over a
/// scenario for a confidence interval of the observer effect.
pub const PAIRS_PER_REP: u32 = 2;

/// [`PAIRS_PER_REP`] pairs of a traced and an untraced block of `rr` probes (each mode
/// `cfg.probes` in all) in ABBA order, starting with a traced block when
/// `traced_first` (repetitions alternate it), on the same pair of containers.
///
/// # Errors
/// When tracing cannot attach, the agent fails, or its output is not understood.
pub async fn latency(
    t: &Target<'_>,
    run_id: u32,
    traced_first: bool,
) -> Result<Vec<Block>, ExperimentError> {
    let per_block = (t.cfg.probes / u64::from(PAIRS_PER_REP)).max(1);
    let mut blocks = Vec::new();
    for (i, traced) in block::order(PAIRS_PER_REP).into_iter().enumerate() {
        // Distinct run ids: a late reply of one block is never taken for another's.
        let id = run_id ^ (u32::try_from(i).unwrap_or(0) << 28);
        blocks.push(rr_block(t, per_block, id, traced == traced_first).await?);
    }
    Ok(blocks)
}

/// What one bandwidth measurement produced.
#[derive(Clone, Copy, Debug, Default)]
pub struct BandwidthRep {
    pub gbps: f64,
    /// Kernel counters of the count-only tracer, when one ran.
    pub counters: Option<KernelCounters>,
}

/// Run `stream` to the server's sink for `cfg.duration_s` seconds.
///
/// # Errors
/// When the agent fails or prints no result.
pub async fn bandwidth(t: &Target<'_>) -> Result<BandwidthRep, ExperimentError> {
    let (plan, cfg) = (t.plan, t.cfg);
    let mode = match cfg.bandwidth_tracing {
        BandwidthTracing::Off => TraceMode::Off,
        BandwidthTracing::CountOnly => TraceMode::CountOnly,
    };
    let session = Session::start(&SessionConfig::new(
        mode,
        vec![cfg.port, cfg.port + 1],
        plan.devices(),
    ))?;
    let cmd = agent_cmd(&AgentCommand::Stream(StreamOpts {
        server: SocketAddr::new(t.server_ip.into(), cfg.port + 1),
        duration: Duration::from_secs(cfg.duration_s),
        size: 128 * 1024,
    }));
    let out = container::exec(
        t.engine,
        t.client,
        &cmd,
        Duration::from_secs(cfg.duration_s + 30),
    )
    .await;
    let counters = session
        .is_tracing()
        .then_some(session.finish().await?.counters);
    let out = succeeded("stream", out?)?;
    let gbps = parse_stream_gbps(&out.stdout).ok_or_else(|| {
        ExperimentError::Agent(format!("stream printed no result: {}", out.stdout.trim()))
    })?;
    Ok(BandwidthRep { gbps, counters })
}

/// The `gbps` of the agent's `stream` line.
#[must_use]
pub fn parse_stream_gbps(stdout: &str) -> Option<f64> {
    protocol::event(stdout, "stream", |e| match e {
        Event::Stream(s) => Some(s.gbps),
        _ => None,
    })
    .ok()
}

/// The command line that runs `c` in a container (the image's agent binary).
#[must_use]
pub fn agent_cmd(c: &AgentCommand) -> Vec<String> {
    std::iter::once(AGENT_PATH.to_owned())
        .chain(c.to_args())
        .collect()
}

/// stress-ng's command line: `cpus` workers (0 = one per CPU), ended by netbench or at
/// the latest after `bound_s` seconds.
#[must_use]
pub fn stress_cmd(cpus: u32, bound_s: u64) -> Vec<String> {
    [
        STRESS_PATH,
        "--cpu",
        &cpus.to_string(),
        "--timeout",
        &format!("{bound_s}s"),
        "--quiet",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Start CPU stress in the server container and give the workers a moment to spin up.
///
/// # Errors
/// When stress-ng cannot start or dies at once.
pub async fn start_stress(
    engine: &Engine,
    server: &str,
    cpus: u32,
    bound_s: u64,
) -> Result<BackgroundExec, ExperimentError> {
    let bg = container::exec_background(engine, server, &stress_cmd(cpus, bound_s)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !container::is_running(engine, &bg).await? {
        return Err(ExperimentError::Agent(
            "stress-ng stopped right after it started".to_owned(),
        ));
    }
    Ok(bg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_result_line() {
        for (out, gbps) in [
            (
                "{\"event\":\"ready\"}\n{\"event\":\"stream\",\"bytes\":10,\"seconds\":1.0,\"gbps\":12.5}\n",
                Some(12.5),
            ),
            ("garbage\n", None),
            ("", None),
        ] {
            assert_eq!(parse_stream_gbps(out), gbps, "{out:?}");
        }
    }

    #[test]
    fn stress_command_is_bounded() {
        assert_eq!(
            stress_cmd(0, 90),
            [
                "/usr/bin/stress-ng",
                "--cpu",
                "0",
                "--timeout",
                "90s",
                "--quiet"
            ]
        );
    }
}

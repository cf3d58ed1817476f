//! One repetition's measurements on a running client/server pair: latency (agent `rr`
//! probes, traced at every hop), bandwidth (agent `stream`, tracing off or count-only),
//! and the CPU stress around them. The agent runs inside the containers (`docker exec`).
use std::{collections::HashMap, net::Ipv4Addr, sync::Arc, time::Duration};

use netbench_common::HopEvent;

use super::{
    ExperimentError,
    matrix::{BandwidthTracing, RunConfig},
    path::{PathPlan, correlate_rep},
};
use crate::{
    agent::parse_rr_output,
    correlate::{AppProbe, CorrelationStats, Timeline},
    docker::{
        Engine,
        container::{self, BackgroundExec},
        image::{AGENT_PATH, STRESS_PATH},
    },
    trace::{KernelCounters, TcMode, TraceConfig, TraceMode, Tracer},
};

/// What one latency measurement produced.
#[derive(Clone, Debug, Default)]
pub struct LatencyRep {
    pub timelines: Vec<Timeline>,
    pub stats: CorrelationStats,
    /// Ring-buffer reserve failures plus events the reader had to drop.
    pub events_lost: u64,
    pub events: u64,
    /// The server stage split by the server's scheduler events (runc: the agent is the
    /// container's first process, on the host's scheduler).
    pub runqueue: Option<(crate::runqueue::Parts, crate::runqueue::SplitStats)>,
}

/// Index of the server's turnaround stage in a path, if it has one the host can see.
#[must_use]
pub fn server_stage(path: &crate::correlate::PathSpec) -> Option<usize> {
    path.stages.iter().position(|n| n == "server-stack-and-app")
}

/// Ring buffer size: 1000 probes x ~8 hops x 2 directions of 48-byte events fit many
/// times over.
const RING_BYTES: u32 = 1 << 23;
/// Time for the last events to reach userspace after the agent is done.
const SETTLE: Duration = Duration::from_millis(150);

/// Load the tracer and attach it to every hop of `plan`.
fn attach(plan: &PathPlan, ports: Vec<u16>, mode: TraceMode) -> Result<Tracer, ExperimentError> {
    let mut tracer = Tracer::load(&TraceConfig {
        ports,
        mode,
        ring_bytes: RING_BYTES,
    })?;
    for device in plan.devices() {
        tracer.attach(&device, TcMode::Auto)?;
    }
    Ok(tracer)
}

/// Run `rr` in the client container with the tracer attached along `plan`.
///
/// # Errors
/// When tracing cannot attach, the agent fails, or its output is not understood.
pub async fn latency(
    engine: &Engine,
    client: &str,
    server_ip: Ipv4Addr,
    plan: &PathPlan,
    cfg: &RunConfig,
    run_id: u32,
    server_pid: Option<u32>,
) -> Result<LatencyRep, ExperimentError> {
    let mut tracer = attach(plan, vec![cfg.port], TraceMode::Events)?;
    // The server's threads (per-connection ones appear as the client connects) are
    // traced with the sched tracepoints; without them there is simply no split.
    let poller = match (server_pid, server_stage(&plan.report_path())) {
        (Some(pid), Some(_)) => match tracer.trace_threads(&[]) {
            Ok(threads) => Some(tokio::spawn(async move {
                for _ in 0..30_000 {
                    let _ = threads.add_process(pid);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })),
            Err(e) => {
                eprintln!("netbench: run-queue split unavailable: {e}");
                None
            }
        },
        _ => None,
    };
    let reader = tracer.take_reader()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<HopEvent>>(4096);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    // The collector drains the channel while the reader runs, so it never fills.
    let collected = Arc::new(std::sync::Mutex::new(Vec::<HopEvent>::new()));
    let sink = Arc::clone(&collected);
    let collector = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            if let Ok(mut all) = sink.lock() {
                all.extend(batch);
            }
        }
    });
    let reader_task = tokio::spawn(reader.run(tx, stop_rx));

    // Bounded in time twice: the agent's own --max-seconds and the exec's timeout.
    let max_seconds = 30 + cfg.probes / 100;
    let cmd: Vec<String> = [
        AGENT_PATH,
        "rr",
        "--server",
        &format!("{server_ip}:{}", cfg.port),
        "--proto",
        cfg.proto,
        "--count",
        &cfg.probes.to_string(),
        "--size",
        &cfg.probe_size.to_string(),
        "--run-id",
        &run_id.to_string(),
        "--timeout-ms",
        "1000",
        "--max-seconds",
        &max_seconds.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let out = container::exec(engine, client, &cmd, Duration::from_secs(max_seconds + 30)).await;
    if let Some(poller) = poller {
        poller.abort();
    }
    tokio::time::sleep(SETTLE).await;
    let _ = stop_tx.send(());
    let reader_stats = reader_task.await??;
    collector.await?;
    let counters = tracer.counters()?;
    tracer.detach_all()?;
    drop(tracer);
    let out = out?;
    if out.exit_code != Some(0) {
        return Err(ExperimentError::Agent(format!(
            "rr exited with {:?}: {}",
            out.exit_code,
            out.stderr.trim()
        )));
    }
    let probes = parse_rr_output(&out.stdout).map_err(ExperimentError::Agent)?;
    let app: Vec<AppProbe> = probes
        .iter()
        .map(|p| AppProbe {
            seq: p.seq,
            send_ns: p.send_ns,
            recv_ns: if p.lost { None } else { p.recv_ns },
        })
        .collect();
    let rtt: HashMap<u64, u64> = probes
        .iter()
        .filter_map(|p| p.rtt_ns.map(|r| (p.seq, r)))
        .collect();
    let events = std::mem::take(
        &mut *collected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let (timelines, stats) = correlate_rep(plan, run_id, &app, &rtt, &events);
    let runqueue = server_stage(&plan.report_path())
        .filter(|_| server_pid.is_some())
        .map(|i| crate::runqueue::split_parts(&timelines, i, &events));
    Ok(LatencyRep {
        timelines,
        stats,
        events_lost: counters.events_lost + reader_stats.dropped,
        events: events.len() as u64,
        runqueue,
    })
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
pub async fn bandwidth(
    engine: &Engine,
    client: &str,
    server_ip: Ipv4Addr,
    plan: &PathPlan,
    cfg: &RunConfig,
) -> Result<BandwidthRep, ExperimentError> {
    let tracer = match cfg.bandwidth_tracing {
        BandwidthTracing::Off => None,
        BandwidthTracing::CountOnly => Some(attach(
            plan,
            vec![cfg.port, cfg.port + 1],
            TraceMode::CountOnly,
        )?),
    };
    let cmd: Vec<String> = [
        AGENT_PATH,
        "stream",
        "--server",
        &format!("{server_ip}:{}", cfg.port + 1),
        "--seconds",
        &cfg.duration_s.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let out = container::exec(
        engine,
        client,
        &cmd,
        Duration::from_secs(cfg.duration_s + 30),
    )
    .await;
    let counters = match tracer {
        Some(mut t) => {
            let c = t.counters().ok();
            t.detach_all()?;
            c
        }
        None => None,
    };
    let out = out?;
    if out.exit_code != Some(0) {
        return Err(ExperimentError::Agent(format!(
            "stream exited with {:?}: {}",
            out.exit_code,
            out.stderr.trim()
        )));
    }
    let gbps = parse_stream_gbps(&out.stdout).ok_or_else(|| {
        ExperimentError::Agent(format!("stream printed no result: {}", out.stdout.trim()))
    })?;
    Ok(BandwidthRep { gbps, counters })
}

/// The `gbps` of the agent's `{"event":"stream",...}` line.
#[must_use]
pub fn parse_stream_gbps(stdout: &str) -> Option<f64> {
    stdout.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v.get("event")?.as_str()? == "stream")
            .then(|| v.get("gbps")?.as_f64())
            .flatten()
    })
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
        let out = "{\"event\":\"ready\"}\n{\"event\":\"stream\",\"bytes\":10,\"seconds\":1.0,\"gbps\":12.5}\n";
        assert_eq!(parse_stream_gbps(out), Some(12.5));
        assert_eq!(parse_stream_gbps("garbage\n"), None);
        assert_eq!(parse_stream_gbps(""), None);
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

//! `netbench lab`: build a path, trace it, send probes, split each round trip into stages.
use std::{path::PathBuf, time::Duration};

use netbench_common::HopEvent;
use serde::Serialize;

use super::LabTopology;
use crate::{
    agent::{AgentError, AgentServer, RrSpec, run_rr},
    correlate::{AppProbe, CorrelationStats, correlate},
    netlink::NetlinkError,
    report::{Env, ReportError, Results, Rtt, Scenario, Status},
    stages::{BRIDGE_STAGES, PathHook, StageResult, VETH_STAGES, alternating_path, stage_results},
    stats::{Summary, summarize},
    trace::{TcMode, TraceConfig, TraceError, Tracer, tc::ifindex_of},
};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("building the topology: {0}")]
    Topology(#[from] NetlinkError),
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Agent(#[from] AgentError),
    #[error("writing results: {0}")]
    Output(#[from] ReportError),
    #[error("reader task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct LabConfig {
    /// `veth` or `bridge` (the tap path comes with the lab issue).
    pub path: String,
    pub probes: u64,
    pub size: usize,
    /// `udp` or `tcp`.
    pub proto: &'static str,
    pub port: u16,
}

/// The outcome of one lab run.
#[derive(Clone, Debug, Serialize)]
pub struct LabResult {
    pub config: LabConfig,
    pub rtt_us: Summary,
    pub stages: Vec<StageResult>,
    pub correlation: CorrelationStats,
    pub events_lost: u64,
    pub events: u64,
}

/// The lab path's stage names.
fn stage_names(path: &str) -> &'static [&'static str] {
    match path {
        "bridge" => BRIDGE_STAGES,
        _ => VETH_STAGES,
    }
}

/// Run one lab experiment.
///
/// # Errors
/// When the topology, the tracer or the agent fails; everything created is removed.
pub async fn run_lab(config: &LabConfig) -> Result<LabResult, LabError> {
    let topo = match config.path.as_str() {
        "bridge" => LabTopology::bridge("lab").await?,
        _ => LabTopology::veth("lab").await?,
    };
    let mut hooks = Vec::new();
    for h in &topo.hooks {
        hooks.push(PathHook {
            name: format!("{}@{}", h.ifname, h.netns),
            ifindex: ifindex_of(h)?,
        });
    }
    let path = alternating_path(&hooks, stage_names(topo.path));

    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![config.port],
        ..TraceConfig::default()
    })?;
    for hook in &topo.hooks {
        tracer.attach(hook, TcMode::Auto)?;
    }
    let reader = tracer.take_reader()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<HopEvent>>(1024);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    // The aggregator drains the channel while the reader runs, so it never fills.
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    });
    let reader_task = tokio::spawn(reader.run(tx, stop_rx));

    let server = AgentServer::start(&topo.server.netns_ref(), config.port, 600).await?;
    let run_id = std::process::id() ^ 0x4e42_0000;
    let spec = RrSpec {
        server: topo.server.ip.into(),
        port: config.port,
        proto: config.proto,
        count: config.probes,
        size: config.size,
        run_id,
        timeout_ms: 1000,
        max_seconds: 300,
    };
    let probes = run_rr(&topo.client.netns_ref(), &spec).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let reader_stats = reader_task.await??;
    let events = collector.await?;
    let counters = tracer.counters()?;
    tracer.detach_all()?;
    drop(tracer);
    drop(topo);
    let probes = probes?;

    let app: Vec<AppProbe> = probes
        .iter()
        .map(|p| AppProbe {
            seq: p.seq,
            send_ns: p.send_ns,
            recv_ns: if p.lost { None } else { p.recv_ns },
        })
        .collect();
    let (timelines, correlation) = correlate(&path, run_id, &app, &events);
    let rtts: Vec<u64> = timelines
        .iter()
        .map(crate::correlate::Timeline::rtt_ns)
        .collect();
    let rtt = summarize(&rtts);
    let stages = stage_results(&path, &timelines, rtt.mean);
    Ok(LabResult {
        config: config.clone(),
        rtt_us: rtt,
        stages,
        correlation,
        events_lost: counters.events_lost + reader_stats.dropped,
        events: events.len() as u64,
    })
}

/// The run as a results document (one scenario).
#[must_use]
pub fn to_results(r: &LabResult) -> Results {
    let config = serde_json::to_value(&r.config).unwrap_or_default();
    let mut results = Results::new(Env::local(), config);
    results.scenarios.push(Scenario {
        id: format!("lab-{}-{}", r.config.path, r.config.proto),
        runtime: format!("lab-{}", r.config.path),
        client_driver: "lab".into(),
        server_driver: "lab".into(),
        stress: "none".into(),
        status: Status::Ok,
        reason: None,
        model: None,
        bandwidth_gbps: None,
        rtt_us: Some(Rtt {
            summary: r.rtt_us,
            per_rep_p50: vec![r.rtt_us.p50],
        }),
        stages: r.stages.clone(),
        breakdown: Vec::new(),
        probes_sent: r.correlation.probes_sent,
        probes_matched: r.correlation.probes_matched,
        events_lost: r.events_lost,
        bandwidth_tracing: None,
    });
    results
}

/// The terminal table of stages.
#[must_use]
pub fn render_table(r: &LabResult) -> String {
    crate::report::render(&to_results(r))
}

/// Write the results directory (`results.json`, `summary.csv`) into `dir`.
///
/// # Errors
/// When the directory or a file cannot be written.
pub fn write_results(dir: &std::path::Path, r: &LabResult) -> Result<PathBuf, LabError> {
    Ok(to_results(r).write(dir)?)
}

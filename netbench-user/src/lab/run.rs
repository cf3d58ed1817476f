//! `netbench lab`: build a path, trace it, send probes, split each round trip into stages.
use std::{path::PathBuf, time::Duration};

use netbench_common::HopEvent;
use serde::Serialize;

use super::{
    LabTopology,
    vmm::{StandIn, Vmm},
};
use crate::{
    agent::{AgentError, AgentServer, RrSpec, run_rr},
    correlate::{AppProbe, CorrelationStats, PathSpec, Timeline, correlate},
    netlink::NetlinkError,
    report::{Env, ReportError, Results, Rtt, Scenario, Status},
    runqueue,
    stages::{BRIDGE_STAGES, PathHook, StageResult, VETH_STAGES, alternating_path, stage_results},
    stats::{Summary, summarize},
    stress::CpuStress,
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
    #[error("no probe crossed every hop (nothing to report): {0}")]
    NothingMatched(String),
    #[error("{0}")]
    Stress(#[from] crate::stress::StressError),
    #[error("VMM stand-in: {0}")]
    Vmm(#[source] std::io::Error),
    #[error("reader task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct LabConfig {
    /// `veth`, `bridge` or `tap` (Kata's tc-redirect + tap model).
    pub path: String,
    pub probes: u64,
    pub size: usize,
    /// `udp` or `tcp`.
    pub proto: &'static str,
    pub port: u16,
    /// `none` or `cpu` (stress-ng on every CPU while the probes run).
    #[serde(default)]
    pub stress: String,
}

/// The outcome of one lab run.
#[derive(Clone, Debug, Serialize)]
pub struct LabResult {
    pub config: LabConfig,
    pub rtt_us: Summary,
    pub stages: Vec<StageResult>,
    /// Finer split of `vm` on the tap path (stand-in guest only; not in the stage sum).
    pub breakdown: Vec<StageResult>,
    /// Set when the path is a model (the tap path): what it models.
    pub model: Option<String>,
    /// How many probes the run-queue split covers.
    pub runqueue: Option<runqueue::SplitStats>,
    pub correlation: CorrelationStats,
    pub events_lost: u64,
    pub events: u64,
}

/// The tap path as traced: client nbc0, sandbox eth0, sandbox `tap0_kata`, guest NIC.
/// The guest-side stages exist only because the stand-in guest shares the host kernel;
/// from the host a real VM is the single stage `vm` (see [`TAP_STAGES`]).
pub const TAP_TRACED_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth",
    "tc-redirect-in",
    "vmm-in",
    "guest-stack-and-app",
    "vmm-out",
    "tc-redirect-out",
    "veth-reply",
    "client-rx-stack",
];

/// The tap path's stages as reported: the guest-side points merged into `vm`.
pub const TAP_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth",
    "tc-redirect-in",
    "vm",
    "tc-redirect-out",
    "veth-reply",
    "client-rx-stack",
];

/// Points of the traced tap path that belong to the guest (its NIC, request and reply).
const TAP_GUEST_POINTS: [usize; 2] = [4, 5];

/// The lab path's stage names as traced.
fn stage_names(path: &str) -> &'static [&'static str] {
    match path {
        "bridge" => BRIDGE_STAGES,
        "tap" => TAP_TRACED_STAGES,
        _ => VETH_STAGES,
    }
}

/// Drop the points at `drop` from a path and its timelines, naming the new stages
/// `names`: consecutive stages around a dropped point merge into one.
fn without_points(
    path: &PathSpec,
    timelines: &[Timeline],
    drop: &[usize],
    names: &[&str],
) -> (PathSpec, Vec<Timeline>) {
    let keep = |i: &usize| !drop.contains(i);
    let points = (0..path.points.len())
        .filter(keep)
        .map(|i| path.points[i].clone())
        .collect();
    let spec = PathSpec::new(points, names.iter().map(|n| (*n).to_owned()).collect());
    let tls = timelines
        .iter()
        .map(|t| Timeline {
            seq: t.seq,
            ts_ns: (0..t.ts_ns.len())
                .filter(keep)
                .map(|i| t.ts_ns[i])
                .collect(),
        })
        .collect();
    (spec, tls)
}

/// Run one lab experiment.
///
/// # Errors
/// When the topology, the tracer or the agent fails; everything created is removed.
pub async fn run_lab(config: &LabConfig) -> Result<LabResult, LabError> {
    let topo = match config.path.as_str() {
        "bridge" => LabTopology::bridge("lab").await?,
        "tap" => LabTopology::tap("lab").await?,
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
    let topo_path = topo.path;

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

    // The tap path needs its VMM before anything can reach the guest.
    let vmm = match topo.vmm_spec(600) {
        Some(spec) => Some(StandIn::start(&spec).await.map_err(LabError::Vmm)?),
        None => None,
    };
    let model = vmm.as_ref().map(Vmm::model_label);
    let server = AgentServer::start(&topo.server.netns_ref(), config.port, 600).await?;
    // Scheduler events of the server's threads split its turnaround (run-queue wait).
    // Per-connection threads appear once the client connects, so keep adding them.
    let poller = match tracer.trace_threads(&[]) {
        Ok(threads) => server.pid().map(|pid| {
            tokio::spawn(async move {
                for _ in 0..15_000 {
                    let _ = threads.add_process(pid);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        }),
        Err(e) => {
            eprintln!("netbench: run-queue split unavailable: {e}");
            None
        }
    };
    let stress = if config.stress == "cpu" {
        Some(CpuStress::start(0, Duration::from_secs(330)).await?)
    } else {
        None
    };
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
    if let Some(poller) = poller {
        poller.abort();
    }
    if let Some(stress) = stress {
        stress.stop().await;
    }
    server.stop().await;
    if let Some(vmm) = vmm {
        vmm.stop().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let reader_stats = reader_task.await??;
    let events = collector.await?;
    let counters = tracer.counters()?;
    tracer.detach_all()?;
    drop(tracer);
    drop(topo);
    let probes = probes?;

    let mut result = analyze(topo_path, &path, run_id, &probes, &events)?;
    result.config = config.clone();
    result.model = model;
    // Lost = events the kernel could not reserve, events the reader had to drop, and
    // answered probes with a hop missing (the definition).
    result.events_lost =
        counters.events_lost + reader_stats.dropped + result.correlation.probes_missing_hops;
    Ok(result)
}

/// Correlate the agent's probes with the hop events along `path` and compute the stage
/// statistics (pure: no kernel, no processes).
///
/// # Errors
/// When no probe crossed every hop.
pub fn analyze(
    path_name: &str,
    path: &PathSpec,
    run_id: u32,
    probes: &[crate::agent::RrProbe],
    events: &[HopEvent],
) -> Result<LabResult, LabError> {
    let app: Vec<AppProbe> = probes
        .iter()
        .map(|p| AppProbe {
            seq: p.seq,
            send_ns: p.send_ns,
            recv_ns: if p.lost { None } else { p.recv_ns },
        })
        .collect();
    let (timelines, correlation) = correlate(path, run_id, &app, events);
    if timelines.is_empty() {
        return Err(LabError::NothingMatched(format!("{correlation:?}")));
    }
    let rtts: Vec<u64> = timelines.iter().map(Timeline::rtt_ns).collect();
    let rtt = summarize(&rtts);
    let (stages, mut breakdown) = if path_name == "tap" {
        let all = stage_results(path, &timelines, rtt.mean);
        let (main_path, main_tl) = without_points(path, &timelines, &TAP_GUEST_POINTS, TAP_STAGES);
        (
            stage_results(&main_path, &main_tl, rtt.mean),
            all[3..6].to_vec(),
        )
    } else {
        (stage_results(path, &timelines, rtt.mean), Vec::new())
    };
    // The server's turnaround split by its scheduler events, where they were traced.
    let server_stage = path
        .stages
        .iter()
        .position(|n| n == "server-stack-and-app" || n == "guest-stack-and-app");
    let runqueue = server_stage.map(|i| {
        let (split, stats) = runqueue::split(&timelines, i, events, rtt.mean, &path.stages[i]);
        breakdown.extend(split);
        stats
    });
    Ok(LabResult {
        config: LabConfig {
            path: path_name.to_owned(),
            probes: probes.len() as u64,
            size: 0,
            proto: "udp",
            port: 0,
            stress: "none".into(),
        },
        rtt_us: rtt,
        stages,
        breakdown,
        runqueue,
        model: None,
        correlation,
        events_lost: 0,
        events: events.len() as u64,
    })
}

/// The run as a results document (one scenario).
#[must_use]
pub fn to_results(r: &LabResult) -> Results {
    let config = serde_json::to_value(&r.config).unwrap_or_default();
    let mut results = Results::new(Env::local(), config);
    results.scenarios.push(Scenario {
        id: format!(
            "lab-{}-{}-{}",
            r.config.path, r.config.proto, r.config.stress
        ),
        runtime: format!("lab-{}", r.config.path),
        client_driver: "lab".into(),
        server_driver: "lab".into(),
        stress: r.config.stress.clone(),
        status: Status::Ok,
        reason: None,
        model: r.model.clone(),
        bandwidth_gbps: None,
        rtt_us: Some(Rtt {
            summary: r.rtt_us,
            per_rep_p50: vec![r.rtt_us.p50],
        }),
        stages: r.stages.clone(),
        breakdown: r.breakdown.clone(),
        runqueue: r.runqueue,
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

#[cfg(test)]
mod tests {
    use netbench_common::{Direction, EVENT_VERSION, HookKind, PROTO_UDP};

    use super::*;
    use crate::{agent::RrProbe, stages::PathHook};

    fn ev(seq: u64, hook: HookKind, dir: Direction, ifindex: u32, ts: u64) -> HopEvent {
        HopEvent {
            version: EVENT_VERSION,
            proto: PROTO_UDP,
            _pad0: 0,
            hook: hook as u32,
            ifindex,
            cpu: 0,
            netns_cookie: 0,
            run_id: 9,
            dir: dir as u32,
            seq,
            ts_ns: ts,
            pkt_len: 64,
            tid: 0,
        }
    }

    #[test]
    fn tap_path_merges_the_guest_into_vm_and_keeps_the_breakdown() {
        use Direction::{Reply, Request};
        use HookKind::{TcEgress as E, TcIngress as I};
        let hooks: Vec<PathHook> = [(2, "nbc0"), (3, "eth0"), (4, "tap0_kata"), (5, "nbgtap0")]
            .into_iter()
            .map(|(i, n)| PathHook {
                name: n.into(),
                ifindex: i,
            })
            .collect();
        let path = alternating_path(&hooks, TAP_TRACED_STAGES);
        // Request: nbc0 E, eth0 I, tap E, guest I; reply: guest E, tap I, eth0 E, nbc0 I.
        let events = vec![
            ev(0, E, Request, 2, 110),
            ev(0, I, Request, 3, 120),
            ev(0, E, Request, 4, 121),
            ev(0, I, Request, 5, 140),
            ev(0, E, Reply, 5, 170),
            ev(0, I, Reply, 4, 200),
            ev(0, E, Reply, 3, 210),
            ev(0, I, Reply, 2, 215),
        ];
        let probes = vec![RrProbe {
            seq: 0,
            run_id: 9,
            send_ns: 100,
            recv_ns: Some(230),
            rtt_ns: Some(130),
            lost: false,
        }];
        let r = analyze("tap", &path, 9, &probes, &events).unwrap();
        let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, TAP_STAGES);
        let us = |name: &str| r.stages.iter().find(|s| s.name == name).unwrap().mean_us;
        assert!((us("tc-redirect-in") - 0.001).abs() < 1e-9);
        assert!(
            (us("vm") - 0.079).abs() < 1e-9,
            "tap egress 121 -> tap ingress 200"
        );
        assert!((us("tc-redirect-out") - 0.010).abs() < 1e-9);
        let b: f64 = r
            .breakdown
            .iter()
            .filter(|s| ["vmm-in", "guest-stack-and-app", "vmm-out"].contains(&s.name.as_str()))
            .map(|s| s.mean_us)
            .sum();
        assert!(
            (b - us("vm")).abs() < 1e-9,
            "the breakdown splits vm exactly"
        );
        let sum: f64 = r.stages.iter().map(|s| s.mean_us).sum();
        assert!((sum - r.rtt_us.mean).abs() < 1e-9);
        assert!(
            analyze("tap", &path, 9, &probes, &events[1..]).is_err(),
            "nothing matched is an error"
        );
    }
}

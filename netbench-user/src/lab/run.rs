//! `netbench lab`: build a path, trace it, send probes, split each round trip into stages.
use std::{path::PathBuf, time::Duration};

use serde::Serialize;

use super::{
    LabTopology,
    vmm::{StandIn, Vmm},
};
use crate::{
    agent::{AgentError, AgentServer, RrSpec, run_rr},
    block::{self, Block},
    observer::{ObserverEffect, observer_effect},
    correlate::{CorrelationStats, PathSpec, Timeline, correlate},
    netlink::NetlinkError,
    report::{Env, ProbeCounts, ReportError, Results, Rtt, Scenario, decide_status},
    runqueue,
    stages::{BRIDGE_STAGES, PathHook, StageResult, VETH_STAGES, alternating_path, stage_results},
    stats::{Summary, summarize},
    stress::CpuStress,
    trace::{Session, SessionConfig, SessionOutcome, TraceError, tc::ifindex_of},
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
    #[error("{0}")]
    Placement(String),
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
    /// Pairs of a traced and an untraced block the probes are split into.
    #[serde(default)]
    pub pairs: u32,
    /// Where the client and server agents run.
    #[serde(default)]
    pub placement: Placement,
}

/// CPU placement of the lab's client and server agents. A round trip between two
/// CPUs pays a cross-CPU wake-up (an IPI, a VM exit on a virtual machine) that one on a
/// shared CPU does not: left to the scheduler, blocks of probes land in either mode, and
/// that difference swamps what the tracer adds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Client on CPU 0, server on CPU 1 (like two containers on two cores).
    #[default]
    Split,
    /// Client and server on CPU 0.
    Same,
    /// Unpinned: the scheduler decides (and may change its mind between blocks).
    Any,
}

impl Placement {
    /// (client CPU, server CPU).
    ///
    /// # Errors
    /// `split` on a machine with one CPU.
    pub fn cpus(self) -> Result<(Option<usize>, Option<usize>), LabError> {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        match self {
            Self::Split if n < 2 => Err(LabError::Placement(
                "--cpus split needs two CPUs; this machine has one (use --cpus same)".into(),
            )),
            Self::Split => Ok((Some(0), Some(1))),
            Self::Same => Ok((Some(0), Some(0))),
            Self::Any => Ok((None, None)),
        }
    }
}

/// The outcome of one lab run.
#[derive(Clone, Debug, Serialize)]
pub struct LabResult {
    pub config: LabConfig,
    /// Round trips of the traced probes that crossed every hop (what the stages add up to).
    pub rtt_us: Summary,
    /// The same percentiles over the untraced probes: the round trip to quote.
    pub rtt_untraced_us: Option<Summary>,
    /// Traced / untraced round trip, per block pair.
    pub observer_effect: Option<ObserverEffect>,
    pub stages: Vec<StageResult>,
    /// Finer split of `vm` on the tap path (stand-in guest only; not in the stage sum).
    pub breakdown: Vec<StageResult>,
    /// Set when the path is a model (the tap path): what it models.
    pub model: Option<String>,
    /// How many probes the run-queue split covers.
    pub runqueue: Option<runqueue::SplitStats>,
    pub correlation: CorrelationStats,
    /// Events lost (ring full, or dropped by the reader); probes with missing hops are
    /// counted in `correlation`.
    pub events_lost: u64,
    pub events: u64,
    pub trace: TraceTotals,
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

/// Run one lab experiment: `config.pairs` pairs of a traced and an untraced block of
/// `config.probes / config.pairs` probes each, back to back on the same path.
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

    // The tap path needs its VMM before anything can reach the guest.
    let vmm = match topo.vmm_spec(600) {
        Some(spec) => Some(StandIn::start(&spec).await.map_err(LabError::Vmm)?),
        None => None,
    };
    let model = vmm.as_ref().map(Vmm::model_label);
    let (client_cpu, server_cpu) = config.placement.cpus()?;
    let server =
        AgentServer::start_on(&topo.server.netns_ref(), config.port, 600, server_cpu).await?;
    let stress = if config.stress == "cpu" {
        Some(CpuStress::start(0, Duration::from_secs(330)).await?)
    } else {
        None
    };
    let pairs = config.pairs.max(1);
    let per_block = (config.probes / u64::from(pairs)).max(1);
    let base_id = std::process::id() ^ 0x4e42_0000;
    let mut blocks = Vec::new();
    let mut failure = None;
    for (i, traced) in block::order(pairs).into_iter().enumerate() {
        let run_id = base_id.wrapping_add(u32::try_from(i).unwrap_or(0) << 20);
        let spec = RrSpec {
            server: topo.server.ip.into(),
            port: config.port,
            proto: config.proto,
            count: per_block,
            size: config.size,
            run_id,
            timeout_ms: 1000,
            max_seconds: 300,
            cpu: client_cpu,
        };
        let mut session = SessionConfig::new(
            block::mode(traced),
            vec![config.port],
            topo.hooks.clone(),
        );
        // Request and reply at every device, and a few scheduler events per probe.
        session.expected_events = per_block * (4 * topo.hooks.len() as u64 + 16);
        session.track_pids = server.pid().into_iter().collect();
        let block = async {
            let session = Session::start(&session)?;
            let probes = run_rr(&topo.client.netns_ref(), &spec).await;
            let trace = session.finish().await?;
            Ok::<_, LabError>(Block {
                run_id,
                traced,
                probes: probes?,
                trace,
            })
        }
        .await;
        match block {
            Ok(b) => blocks.push(b),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(stress) = stress {
        stress.stop().await;
    }
    server.stop().await;
    if let Some(vmm) = vmm {
        vmm.stop().await;
    }
    drop(topo);
    if let Some(e) = failure {
        return Err(e);
    }
    let mut result = analyze(topo_path, &path, &blocks)?;
    result.config = config.clone();
    result.model = model;
    Ok(result)
}

/// Correlate each traced block's probes with its hop events along `path`, compute the
/// stage statistics over all traced blocks, the untraced round trip and the observer
/// effect from the block pairs (pure: no kernel, no processes).
///
/// # Errors
/// When no probe crossed every hop.
pub fn analyze(path_name: &str, path: &PathSpec, blocks: &[Block]) -> Result<LabResult, LabError> {
    let mut timelines = Vec::new();
    let mut correlation = CorrelationStats::default();
    let mut events = Vec::new();
    let mut trace = TraceTotals::default();
    for b in blocks.iter().filter(|b| b.traced) {
        let (tl, stats) = correlate(path, b.run_id, &b.app_probes(), &b.trace.events);
        timelines.extend(tl);
        correlation.absorb(stats);
        events.extend_from_slice(&b.trace.events);
        trace.add(&b.trace);
    }
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
        let (split, stats) = runqueue::split(&timelines, i, &events, rtt.mean, &path.stages[i]);
        breakdown.extend(split);
        stats
    });
    let pairs = block::pairs(blocks);
    let untraced: Vec<u64> = blocks
        .iter()
        .filter(|b| !b.traced)
        .flat_map(Block::rtts_ns)
        .collect();
    Ok(LabResult {
        config: LabConfig {
            path: path_name.to_owned(),
            probes: correlation.probes_sent,
            size: 0,
            proto: "udp",
            port: 0,
            stress: "none".into(),
            pairs: u32::try_from(pairs.len()).unwrap_or(0),
            placement: Placement::default(),
        },
        rtt_us: rtt,
        rtt_untraced_us: (!untraced.is_empty()).then(|| summarize(&untraced)),
        observer_effect: observer_effect(&pairs),
        stages,
        breakdown,
        runqueue,
        model: None,
        correlation,
        events_lost: trace.events_lost,
        events: trace.events,
        trace,
    })
}

/// What the tracer did over all traced blocks of a run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TraceTotals {
    pub events: u64,
    /// Events lost in the kernel (ring full) or dropped by the reader.
    pub events_lost: u64,
    /// Times the reader ran while probes could be in flight (timer or forced wake-up).
    pub reader_wakeups: u64,
    pub ring_bytes: u32,
}

impl TraceTotals {
    fn add(&mut self, o: &SessionOutcome) {
        self.events += o.delivered;
        self.events_lost += o.events_lost();
        self.reader_wakeups += o.reader.wakeups();
        self.ring_bytes = self.ring_bytes.max(o.ring_bytes);
    }
}

/// The run as a results document (one scenario).
#[must_use]
pub fn to_results(r: &LabResult) -> Results {
    let config = serde_json::to_value(&r.config).unwrap_or_default();
    let mut results = Results::new(Env::local(), config);
    let counts = ProbeCounts::from(&r.correlation);
    let (status, reason) = decide_status(&counts, None);
    results.scenarios.push(Scenario {
        id: format!(
            "lab-{}-{}-{}",
            r.config.path, r.config.proto, r.config.stress
        ),
        runtime: format!("lab-{}", r.config.path),
        client_driver: "lab".into(),
        server_driver: "lab".into(),
        stress: r.config.stress.clone(),
        status,
        reason,
        model: r.model.clone(),
        bandwidth_gbps: None,
        rtt_us: Some(Rtt {
            summary: r.rtt_us,
            per_rep_p50: vec![Some(r.rtt_us.p50)],
        }),
        rtt_untraced_us: r.rtt_untraced_us.map(|summary| Rtt {
            summary,
            per_rep_p50: vec![Some(summary.p50)],
        }),
        observer_effect: r.observer_effect.clone(),
        stages: r.stages.clone(),
        breakdown: r.breakdown.clone(),
        runqueue: r.runqueue,
        probes_sent: counts.sent,
        probes_matched: counts.matched,
        probes_timed_out: counts.timed_out,
        probes_non_causal: counts.non_causal,
        probes_missing_hops: counts.missing_hops,
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
    use netbench_common::{Direction, EVENT_VERSION, HookKind, HopEvent, PROTO_UDP};

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
        let block = |events: &[HopEvent]| Block {
            run_id: 9,
            traced: true,
            probes: probes.clone(),
            trace: SessionOutcome {
                events: events.to_vec(),
                ..SessionOutcome::default()
            },
        };
        let r = analyze("tap", &path, &[block(&events)]).unwrap();
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
            analyze("tap", &path, &[block(&events[1..])]).is_err(),
            "nothing matched is an error"
        );
    }
}

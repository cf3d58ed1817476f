//! `netbench lab`: build a path, trace it, send probes, split each round trip into stages.
use std::{path::PathBuf, time::Duration};

use netbench_common::protocol::Proto;
use serde::Serialize;

use super::{
    LabPath, LabTopology,
    vmm::{StandIn, Vmm},
};
use crate::{
    agent::{AgentError, AgentServer, RrSpec, run_rr},
    analysis::{TraceTotals, analyze},
    block::{self, Block},
    correlate::CorrelationStats,
    netlink::NetlinkError,
    observer::ObserverEffect,
    path::{Merge, TracedPath},
    results::{Env, ProbeCounts, ReportError, Results, Rtt, Scenario, decide_status},
    runqueue,
    stages::{
        BRIDGE_STAGES, StageResult, TAP_STAGES, TAP_TRACED_STAGES, TAP_VM_MERGE, VETH_STAGES,
    },
    stats::Summary,
    stress::{CpuStress, Stress},
    trace::{Session, SessionConfig, TraceError, sched::SchedTracing, tc::ifindex_of},
};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("building the topology")]
    Topology(#[from] NetlinkError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("writing results")]
    Output(#[from] ReportError),
    #[error("no probe crossed every hop (nothing to report): {0}")]
    NothingMatched(String),
    #[error(transparent)]
    Stress(#[from] crate::stress::StressError),
    #[error("VMM stand-in")]
    Vmm(#[source] std::io::Error),
    #[error("reader task")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Placement(String),
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct LabConfig {
    pub path: LabPath,
    pub probes: u64,
    pub size: usize,
    pub proto: Proto,
    pub port: u16,
    /// stress-ng on every CPU while the probes run, or not.
    #[serde(default)]
    pub stress: Stress,
    /// Pairs of a traced and an untraced block the probes are split into.
    #[serde(default)]
    pub pairs: u32,
    /// Where the client and server agents run.
    #[serde(default)]
    pub placement: Placement,
    /// When the server's scheduler events are traced (its run-queue split).
    #[serde(default)]
    pub sched: SchedTracing,
}

/// CPU placement of the lab's client and server agents. A round trip between two
/// CPUs pays a cross-CPU wake-up (an IPI, a VM exit on a virtual machine) that one on a
/// shared CPU does not: left to the scheduler, blocks of probes land in either mode, and
/// that difference swamps what the tracer adds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[derive(Serialize, serde::Deserialize, clap::ValueEnum)]
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

/// The path a lab topology builds, as traced and reported.
///
/// # Errors
/// When a device's index cannot be read.
pub fn lab_path(topo: &LabTopology) -> Result<TracedPath, TraceError> {
    let mut hops = Vec::new();
    for h in &topo.hooks {
        hops.push((
            format!("{}@{}", h.ifname, h.netns),
            h.clone(),
            ifindex_of(h)?,
        ));
    }
    let stages = match topo.path {
        LabPath::Bridge => BRIDGE_STAGES,
        LabPath::Tap => TAP_TRACED_STAGES,
        LabPath::Veth => VETH_STAGES,
    };
    let mut path = TracedPath::alternating(format!("lab-{}", topo.path.name()), hops, stages);
    if topo.path == LabPath::Tap {
        // The stand-in guest shares the host kernel, so its NIC is traced too; a real
        // VM is one stage `vm` from the host: report it so, keep the parts as a breakdown.
        path.merges.push(Merge {
            into: TAP_STAGES[TAP_VM_MERGE.0].to_owned(),
            from: TAP_VM_MERGE.0,
            to: TAP_VM_MERGE.1,
        });
    }
    Ok(path)
}

/// Run one lab experiment: `config.pairs` pairs of a traced and an untraced block of
/// `config.probes / config.pairs` probes each, back to back on the same path.
///
/// # Errors
/// When the topology, the tracer or the agent fails; everything created is removed.
pub async fn run_lab(config: &LabConfig) -> Result<LabResult, LabError> {
    let topo = match config.path {
        LabPath::Bridge => LabTopology::bridge("lab").await?,
        LabPath::Tap => LabTopology::tap("lab").await?,
        LabPath::Veth => LabTopology::veth("lab").await?,
    };
    let path = lab_path(&topo)?;

    // The tap path needs its VMM before anything can reach the guest.
    let vmm = match topo.vmm_spec(600) {
        Some(spec) => Some(StandIn::start(&spec).await.map_err(LabError::Vmm)?),
        None => None,
    };
    let model = vmm.as_ref().map(Vmm::model_label);
    let (client_cpu, server_cpu) = config.placement.cpus()?;
    let server =
        AgentServer::start_on(&topo.server.netns_ref(), config.port, 600, server_cpu).await?;
    let stress = if config.stress == Stress::Cpu {
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
            size: config.size,
            max_seconds: 300,
            cpu: client_cpu,
            ..RrSpec::new(topo.server.ip, config.port, config.proto, per_block, run_id)
        };
        let mut session =
            SessionConfig::new(block::mode(traced), vec![config.port], topo.hooks.clone());
        // Request and reply at every device, and a few scheduler events per probe.
        session.expected_events = per_block * (4 * topo.hooks.len() as u64 + 16);
        if config.sched.wanted(config.stress == Stress::Cpu) {
            session.track_pids = server.pid().into_iter().collect();
        }
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
    let a = analyze(&path, &[blocks]);
    let Some(rtt) = a.rtt else {
        return Err(LabError::NothingMatched(format!("{:?}", a.correlation)));
    };
    Ok(LabResult {
        config: config.clone(),
        rtt_us: rtt,
        rtt_untraced_us: a.rtt_untraced,
        observer_effect: a.observer_effect,
        stages: a.stages,
        breakdown: a.breakdown,
        model,
        runqueue: a.runqueue,
        correlation: a.correlation,
        events_lost: a.trace.events_lost,
        events: a.trace.events,
        trace: a.trace,
    })
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
            r.config.path.name(),
            r.config.proto.name(),
            r.config.stress.name()
        ),
        runtime: format!("lab-{}", r.config.path.name()),
        client_driver: "lab".into(),
        server_driver: "lab".into(),
        stress: r.config.stress.name().to_owned(),
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
    crate::results::render(&to_results(r))
}

/// Write the results directory (`results.json`, `summary.csv`) into `dir`.
///
/// # Errors
/// When the directory or a file cannot be written.
pub fn write_results(dir: &std::path::Path, r: &LabResult) -> Result<PathBuf, LabError> {
    Ok(to_results(r).write(dir)?)
}

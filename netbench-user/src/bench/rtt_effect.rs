//! The observer effect on the lab paths: what tracing does to the round trip it
//! measures. Interleaved blocks of traced and untraced `rr` probes (ABBA order, see
//! [`crate::block::order`]) on the same namespaces and the same server, traced as
//! `netbench lab` traces (events mode at every hook into the recorder, read after each
//! block; the scheduler programs only where `--sched auto` runs them, so not on these
//! idle paths), on the veth and the bridge path, with client and server on one CPU and on
//! two; traced / untraced p50 and p99 with a 95% CI from the per-pair ratios
//! ([`crate::observer::observer_effect`]).
use serde::{Serialize, Serializer, ser::SerializeStruct as _};

use super::{BenchConfig, BenchError, ECHO_PORT, Placed, echo_of, progress, run_id, topology};
use crate::{
    block::{self, Block},
    lab::LabTopology,
    observer::{ObserverEffect, observer_effect},
    stats::{Summary, summarize},
    trace::SessionConfig,
};

/// A round trip's p50 and p99, us.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
}

impl From<Summary> for Percentiles {
    fn from(s: Summary) -> Self {
        Self {
            p50_us: s.p50,
            p99_us: s.p99,
        }
    }
}

/// The percentiles of all traced and of all untraced probes pooled; written flat, as
/// `traced_p50_us`, `traced_p99_us`, `untraced_p50_us` and `untraced_p99_us`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pooled {
    pub traced: Percentiles,
    pub untraced: Percentiles,
}

impl Pooled {
    /// `p50 <traced> / <untraced> us, p99 <traced> / <untraced> us (traced / untraced)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let (t, u) = (self.traced, self.untraced);
        format!(
            "p50 {:.1} / {:.1} us, p99 {:.1} / {:.1} us (traced / untraced)",
            t.p50_us, u.p50_us, t.p99_us, u.p99_us
        )
    }
}

impl Serialize for Pooled {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Pooled", 4)?;
        s.serialize_field("traced_p50_us", &self.traced.p50_us)?;
        s.serialize_field("traced_p99_us", &self.traced.p99_us)?;
        s.serialize_field("untraced_p50_us", &self.untraced.p50_us)?;
        s.serialize_field("untraced_p99_us", &self.untraced.p99_us)?;
        s.end()
    }
}

/// What the traced blocks of one run delivered.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TracedBlocks {
    /// Events delivered and lost, and the reader's wake-ups while probes were in
    /// flight (timer or forced), over all of them, and the most wake-ups in one.
    pub events: u64,
    pub events_lost: u64,
    pub reader_wakeups: u64,
    pub max_block_wakeups: u64,
    /// The fewest events one of them delivered.
    pub min_block_events: u64,
}

impl TracedBlocks {
    fn of(blocks: &[Block]) -> Self {
        let traced: Vec<_> = blocks
            .iter()
            .filter(|b| b.traced)
            .map(|b| &b.trace)
            .collect();
        let wakeups = || traced.iter().map(|t| t.reader.wakeups());
        Self {
            events: traced.iter().map(|t| t.delivered).sum(),
            events_lost: traced.iter().map(|t| t.events_lost()).sum(),
            reader_wakeups: wakeups().sum(),
            max_block_wakeups: wakeups().max().unwrap_or(0),
            min_block_events: traced.iter().map(|t| t.delivered).min().unwrap_or(0),
        }
    }
}

/// One path and placement.
#[derive(Clone, Debug, Serialize)]
pub struct EffectRun {
    pub path: &'static str,
    #[serde(flatten)]
    pub at: Placed,
    pub pairs: u32,
    pub probes_per_block: u64,
    #[serde(flatten)]
    pub pooled: Pooled,
    pub effect: Option<ObserverEffect>,
    #[serde(flatten)]
    pub blocks: TracedBlocks,
}

#[derive(Clone, Debug, Serialize)]
pub struct EffectFigures {
    pub runs: Vec<EffectRun>,
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<EffectFigures, BenchError> {
    let mut runs = Vec::new();
    for path in ["veth", "bridge"] {
        let topo = topology(path, if path == "veth" { "bobsv" } else { "bobsb" }).await?;
        let result = on_path(config, &topo, path, program_ids, &mut runs).await;
        drop(topo);
        result?;
    }
    Ok(EffectFigures { runs })
}

async fn on_path(
    config: &BenchConfig,
    topo: &LabTopology,
    path: &'static str,
    program_ids: &mut Vec<u32>,
    runs: &mut Vec<EffectRun>,
) -> Result<(), BenchError> {
    let server =
        super::workload::serve(&topo.server.netns_ref(), config.placement.server_cpu).await?;
    let mut result = Ok(());
    for at in config.placement.both() {
        progress(&format!(
            "  {path} path, {}: {} pairs of {} probes",
            at.placement, config.observer_pairs, config.observer_probes
        ));
        match placement_run(config, topo, path, at, server.pid(), program_ids).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    server.stop().await;
    result
}

async fn placement_run(
    config: &BenchConfig,
    topo: &LabTopology,
    path: &'static str,
    at: Placed,
    server_pid: Option<u32>,
    program_ids: &mut Vec<u32>,
) -> Result<EffectRun, BenchError> {
    let client = topo.client.netns_ref();
    let client_cpu = at.cpus.client_cpu;
    let per_block = config.observer_probes.max(1);
    // Not recorded: the first probes after the server starts (or the client moves) run
    // cold.
    super::workload::rr(&client, echo_of(topo), 500, run_id(0x400), client_cpu).await?;
    let mut blocks = Vec::new();
    for (i, traced) in block::order(config.observer_pairs.max(1))
        .into_iter()
        .enumerate()
    {
        let id = run_id(0x1000 + (u32::try_from(i).unwrap_or(0) << 4));
        // As `netbench lab` traces: events at every hook, the server's scheduling.
        let mut trace =
            SessionConfig::new(block::mode(traced), vec![ECHO_PORT], topo.hooks.clone());
        trace.expected_events = per_block * (4 * topo.hooks.len() as u64 + 16);
        // As `netbench lab` traces by default: an idle path without the sched programs
        // (see `SchedTracing`).
        if crate::trace::sched::SchedTracing::default().wanted(false) {
            trace.track_pids = server_pid.into_iter().collect();
        }
        let tracing = super::workload::session(&trace, program_ids)?;
        let probes = super::workload::rr(&client, echo_of(topo), per_block, id, client_cpu).await;
        let outcome = tracing.finish().await?;
        blocks.push(Block {
            run_id: id,
            traced,
            probes: probes?,
            trace: outcome,
        });
    }
    let pooled = |traced: bool| {
        let rtts: Vec<u64> = blocks
            .iter()
            .filter(|b| b.traced == traced)
            .flat_map(Block::rtts_ns)
            .collect();
        Percentiles::from(summarize(&rtts))
    };
    let run = EffectRun {
        path,
        at,
        pairs: config.observer_pairs.max(1),
        probes_per_block: per_block,
        pooled: Pooled {
            traced: pooled(true),
            untraced: pooled(false),
        },
        effect: observer_effect(&block::pairs(&blocks)),
        blocks: TracedBlocks::of(&blocks),
    };
    progress(&format!(
        "    {}: {}",
        run.pooled.describe(),
        run.effect
            .as_ref()
            .map_or_else(|| "no pair".to_owned(), ObserverEffect::describe)
    ));
    Ok(run)
}

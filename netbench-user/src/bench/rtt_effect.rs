//! The observer effect on the lab paths: what tracing does to the round trip it
//! measures. Interleaved blocks of traced and untraced `rr` probes (ABBA order, see
//! [`crate::block::order`]) on the same namespaces and the same server, traced as
//! `netbench lab` traces (events mode at every hook into the recorder, read after each
//! block; the scheduler programs only where `--sched auto` runs them, so not on these
//! idle paths), on the veth and the bridge path, with client and server on one CPU and on
//! two; traced / untraced p50 and p99 with a 95% CI from the per-pair ratios
//! ([`crate::observer::observer_effect`]).
use serde::Serialize;

use super::{BenchConfig, BenchError, ECHO_PORT, echo_of, progress, run_id, topology};
use crate::{
    block::{self, Block},
    lab::LabTopology,
    observer::{ObserverEffect, observer_effect},
    stats::summarize,
    trace::SessionConfig,
};

/// One path and placement.
#[derive(Clone, Debug, Serialize)]
pub struct EffectRun {
    pub path: &'static str,
    /// `same-cpu` or `cross-cpu`.
    pub placement: &'static str,
    pub client_cpu: Option<usize>,
    pub server_cpu: Option<usize>,
    pub pairs: u32,
    pub probes_per_block: u64,
    /// Pooled percentiles of all traced and all untraced probes, us.
    pub traced_p50_us: f64,
    pub traced_p99_us: f64,
    pub untraced_p50_us: f64,
    pub untraced_p99_us: f64,
    pub effect: Option<ObserverEffect>,
    /// Over the traced blocks: events delivered, lost, and the reader's wake-ups while
    /// probes were in flight (timer or forced), and the most of them in one block.
    pub events: u64,
    pub events_lost: u64,
    pub reader_wakeups: u64,
    pub max_block_wakeups: u64,
    /// The fewest events a traced block delivered.
    pub min_block_events: u64,
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
    let server_cpu = config.placement.server_cpu;
    let server = super::workload::serve(&topo.server.netns_ref(), server_cpu).await?;
    let mut result = Ok(());
    for (placement, client_cpu) in [
        ("same-cpu", server_cpu),
        ("cross-cpu", config.placement.client_cpu),
    ] {
        progress(&format!(
            "  {path} path, {placement}: {} pairs of {} probes",
            config.observer_pairs, config.observer_probes
        ));
        match placement_run(
            config,
            topo,
            path,
            placement,
            client_cpu,
            server.pid(),
            program_ids,
        )
        .await
        {
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
    placement: &'static str,
    client_cpu: Option<usize>,
    server_pid: Option<u32>,
    program_ids: &mut Vec<u32>,
) -> Result<EffectRun, BenchError> {
    let client = topo.client.netns_ref();
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
        summarize(&rtts)
    };
    let (t, u) = (pooled(true), pooled(false));
    let traced: Vec<&Block> = blocks.iter().filter(|b| b.traced).collect();
    let effect = observer_effect(&block::pairs(&blocks));
    let run = EffectRun {
        path,
        placement,
        client_cpu,
        server_cpu: config.placement.server_cpu,
        pairs: config.observer_pairs.max(1),
        probes_per_block: per_block,
        traced_p50_us: t.p50,
        traced_p99_us: t.p99,
        untraced_p50_us: u.p50,
        untraced_p99_us: u.p99,
        events: traced.iter().map(|b| b.trace.delivered).sum(),
        events_lost: traced.iter().map(|b| b.trace.events_lost()).sum(),
        reader_wakeups: traced.iter().map(|b| b.trace.reader.wakeups()).sum(),
        max_block_wakeups: traced
            .iter()
            .map(|b| b.trace.reader.wakeups())
            .max()
            .unwrap_or(0),
        min_block_events: traced.iter().map(|b| b.trace.delivered).min().unwrap_or(0),
        effect,
    };
    progress(&format!(
        "    p50 {:.1} / {:.1} us, p99 {:.1} / {:.1} us (traced / untraced): {}",
        run.traced_p50_us,
        run.untraced_p50_us,
        run.traced_p99_us,
        run.untraced_p99_us,
        run.effect
            .as_ref()
            .map_or_else(|| "no pair".to_owned(), ObserverEffect::describe)
    ));
    Ok(run)
}

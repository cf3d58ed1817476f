//! Per-program cost: the kernel's BPF run-time statistics (`run_time_ns`, `run_cnt` of
//! `bpf_prog_info`) of every netbench tc program, under rr load and under stream load,
//! on the lab bridge path. Statistics are on only while this section runs.
use std::time::Duration;

use aya::{
    Ebpf,
    programs::Program,
    sys::{Stats, enable_stats},
};
use netbench_common::names;
use serde::Serialize;

use super::{
    BLAST_PORT, BenchConfig, BenchError, ECHO_PORT, MSG_SIZE, SINK_PORT, echo_of,
    figures::{ProgramCost, TARGET_COST_NS, TARGET_PROBE_COST_NS, cost_between},
    progress, run_id, sink_of, topology,
    workload::{blast, blast_opts, rr, serve, session, stream},
};
use crate::{
    lab::LabTopology,
    stats::{RepStats, rep_stats},
    trace::{EBPF_OBJECT, ProgramStats, SessionConfig, TraceMode},
};

/// A tc program's cost over the repetitions of one load.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCostStats {
    pub program: String,
    /// Runs summed over the repetitions.
    pub run_cnt: u64,
    /// `run_time_ns / run_cnt` per repetition, with its mean and 95% CI.
    pub ns_per_run: RepStats,
}

/// One load under one tracer set-up, repeated.
#[derive(Clone, Debug, Serialize)]
pub struct CostRun {
    /// `rr`, `stream` or `blast`.
    pub load: &'static str,
    pub mode: TraceMode,
    /// `count-only`, `events` or `other-port` (the load is not on a probe port).
    pub variant: &'static str,
    pub probe_ports: Vec<u16>,
    /// What ran, in words.
    pub what: String,
    /// The target per run of each tc program, and what kind of packet it is for.
    pub target_ns: Option<f64>,
    pub target_for: &'static str,
    pub reps: u32,
    pub programs: Vec<ProgramCostStats>,
    /// Hop events delivered to userspace, summed over the repetitions.
    pub events: u64,
    /// Probe packets the programs saw and events lost (kernel + reader), summed.
    pub probes_seen: u64,
    pub events_lost: u64,
    /// Times the reader ran while the load was on (timer or forced wake-up), summed.
    pub reader_wakeups: u64,
    /// Wall time between the two samples, summed over the repetitions.
    pub seconds: f64,
    /// Share of one CPU spent in all the programs together, percent (as measured:
    /// including the statistics' own clock reads), per repetition.
    pub cpu_pct: RepStats,
}

#[derive(Clone, Debug, Serialize)]
pub struct CostFigures {
    pub path: &'static str,
    pub reps: u32,
    pub runs: Vec<CostRun>,
    /// An empty tracepoint program (`net:net_dev_queue`, returns at once) measured the
    /// same way during the other-port stream: the floor of the method (the clock reads
    /// the kernel adds around every run while statistics are on).
    pub floor: Option<ProgramCostStats>,
    pub floor_error: Option<String>,
}

impl CostRun {
    /// The tc programs among this run's programs, each with its side.
    pub fn tc_programs(&self) -> impl Iterator<Item = (&'static str, &ProgramCostStats)> {
        self.programs.iter().filter_map(|p| {
            let side = match p.program.as_str() {
                names::TC_INGRESS => "ingress",
                names::TC_EGRESS => "egress",
                _ => return None,
            };
            Some((side, p))
        })
    }
}

/// `/proc/sys/kernel/bpf_stats_enabled` now.
pub fn stats_sysctl() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<CostFigures, BenchError> {
    // Closing the fd (end of this function, also on error) turns statistics off again
    // unless someone else holds them on.
    let stats_fd = enable_stats(Stats::RunTime).map_err(|e| BenchError::Stats(e.to_string()))?;
    let result = measure_with_stats(config, program_ids).await;
    drop(stats_fd);
    result
}

async fn measure_with_stats(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<CostFigures, BenchError> {
    let topo = topology("bridge", "bcost").await?;
    let server = serve(&topo.server.netns_ref(), config.placement.server_cpu).await?;
    let result = cost_runs(config, &topo, program_ids).await;
    server.stop().await;
    drop(topo);
    result
}

/// What one cost run loads and how the tracer is set up for it.
#[derive(Clone, Copy)]
struct Variant {
    load: &'static str,
    mode: TraceMode,
    /// Whether the load's port is a probe port (the programs then read the payload).
    on_probe_port: bool,
    label: &'static str,
    what: &'static str,
    /// The target per run for this kind of packet, if it has one.
    target_ns: Option<f64>,
    target_for: &'static str,
}

const VARIANTS: [Variant; 6] = [
    Variant {
        load: "rr",
        mode: TraceMode::CountOnly,
        on_probe_port: true,
        label: "count-only",
        what: "every packet is a probe: parse to the payload, header read, per-CPU counter",
        target_ns: None,
        target_for: "probe packets, count-only: no target",
    },
    Variant {
        load: "rr",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "every packet is a probe: as count-only, plus clock and CPU id, and the event \
               written to a per-CPU recorder slot (read after the run: no ring, no reader)",
        target_ns: Some(TARGET_PROBE_COST_NS),
        target_for: "probe packets, events mode",
    },
    Variant {
        load: "stream",
        mode: TraceMode::CountOnly,
        on_probe_port: false,
        label: "other-port",
        what: "the stream is not on a probe port: parse Ethernet/IP down to the L4 ports, \
               return (what bulk traffic beside the probes costs)",
        target_ns: Some(TARGET_COST_NS),
        target_for: "packets that are not probes",
    },
    Variant {
        load: "stream",
        mode: TraceMode::CountOnly,
        on_probe_port: true,
        label: "count-only",
        what: "the stream is on a probe port: parse to the payload, 24-byte header read, \
               no magic, per-CPU counter",
        target_ns: Some(TARGET_COST_NS),
        target_for: "packets that are not probes",
    },
    Variant {
        load: "stream",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "as count-only: bulk packets carry no probe header, so no event is written",
        target_ns: Some(TARGET_COST_NS),
        target_for: "packets that are not probes",
    },
    Variant {
        load: "blast",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "one-way probe datagrams at a steady rate: every packet is a probe, its event \
               written to a per-CPU recorder slot as under rr (no reader runs)",
        target_ns: Some(TARGET_PROBE_COST_NS),
        target_for: "probe packets, events mode",
    },
];

/// One repetition of one variant.
struct Sample {
    programs: Vec<ProgramCost>,
    events: u64,
    probes_seen: u64,
    events_lost: u64,
    reader_wakeups: u64,
    seconds: f64,
    cpu_pct: f64,
}

/// Every variant `config.cost_reps` times (variants in the same order each time, so
/// every repetition sees the same sequence), then the statistics per program.
async fn cost_runs(
    config: &BenchConfig,
    topo: &LabTopology,
    program_ids: &mut Vec<u32>,
) -> Result<CostFigures, BenchError> {
    let reps = config.cost_reps.max(1);
    let mut samples: Vec<Vec<Sample>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    let mut floor: Vec<ProgramCost> = Vec::new();
    let mut floor_error = None;
    for rep in 0..reps {
        for (i, v) in VARIANTS.into_iter().enumerate() {
            // The empty program rides along with the other-port stream.
            let with_floor = v.load == "stream" && !v.on_probe_port;
            let (sample, f) = one_run(config, topo, v, rep, with_floor, program_ids).await?;
            samples[i].push(sample);
            match f {
                Some(Ok(Some(f))) => floor.push(f),
                Some(Err(e)) => floor_error = Some(e),
                _ => {}
            }
        }
    }
    let runs = VARIANTS
        .iter()
        .zip(&samples)
        .map(|(v, s)| combine(config, *v, s))
        .collect();
    Ok(CostFigures {
        path: "bridge",
        reps,
        runs,
        floor: program_stats(&floor).into_iter().next(),
        floor_error,
    })
}

/// Per program (by name): runs summed, ns per run over the repetitions in which it ran.
fn program_stats(costs: &[ProgramCost]) -> Vec<ProgramCostStats> {
    let mut names: Vec<&str> = costs.iter().map(|c| c.program.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let of: Vec<&ProgramCost> = costs.iter().filter(|c| c.program == name).collect();
            let per_rep: Vec<f64> = of.iter().filter_map(|c| c.ns_per_run).collect();
            ProgramCostStats {
                program: name.to_owned(),
                run_cnt: of.iter().map(|c| c.run_cnt).sum(),
                ns_per_run: rep_stats(&per_rep),
            }
        })
        .collect()
}

fn combine(config: &BenchConfig, v: Variant, samples: &[Sample]) -> CostRun {
    let all: Vec<ProgramCost> = samples
        .iter()
        .flat_map(|s| s.programs.iter().cloned())
        .collect();
    let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_pct).collect();
    CostRun {
        load: v.load,
        mode: v.mode,
        variant: v.label,
        probe_ports: ports_of(v),
        what: format!("{} {}: {}", v.load, amount(config, v), v.what),
        target_ns: v.target_ns,
        target_for: v.target_for,
        reps: u32::try_from(samples.len()).unwrap_or(u32::MAX),
        programs: program_stats(&all),
        events: samples.iter().map(|s| s.events).sum(),
        probes_seen: samples.iter().map(|s| s.probes_seen).sum(),
        events_lost: samples.iter().map(|s| s.events_lost).sum(),
        reader_wakeups: samples.iter().map(|s| s.reader_wakeups).sum(),
        seconds: samples.iter().map(|s| s.seconds).sum(),
        cpu_pct: rep_stats(&cpu),
    }
}

fn amount(config: &BenchConfig, v: Variant) -> String {
    match v.load {
        "rr" => format!("{} udp probes of {MSG_SIZE} B", config.cost_rr_probes),
        "blast" => format!(
            "{} datagrams/s of {MSG_SIZE} B for {} s",
            config.cost_blast_rate, config.cost_blast_seconds
        ),
        _ => format!("{} s", config.cost_stream_seconds),
    }
}

fn ports_of(v: Variant) -> Vec<u16> {
    match (v.load, v.on_probe_port) {
        ("blast", _) => vec![BLAST_PORT],
        (_, true) => vec![ECHO_PORT, SINK_PORT],
        (_, false) => vec![ECHO_PORT],
    }
}

/// Events a variant's load produces (sizes the recorder so none is lost to its size).
fn expected_events(config: &BenchConfig, v: Variant, hooks: u64) -> u64 {
    match (v.load, v.mode) {
        // Request and reply at every hook.
        ("rr", TraceMode::Events) => config.cost_rr_probes * 2 * hooks,
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "small positive values"
        )]
        ("blast", _) => {
            (f64::from(config.cost_blast_rate) * config.cost_blast_seconds) as u64 * hooks
        }
        _ => 0,
    }
}

/// One load under one tracer set-up; with `with_floor`, the empty program is measured
/// alongside (`Some(Ok(cost))`, or why not).
async fn one_run(
    config: &BenchConfig,
    topo: &LabTopology,
    v: Variant,
    rep: u32,
    with_floor: bool,
    program_ids: &mut Vec<u32>,
) -> Result<(Sample, Option<Result<Option<ProgramCost>, String>>), BenchError> {
    progress(&format!(
        "  rep {}/{}: {} {}, {}",
        rep + 1,
        config.cost_reps.max(1),
        v.load,
        amount(config, v),
        v.label
    ));
    let mut trace = SessionConfig::new(v.mode, ports_of(v), topo.hooks.clone());
    trace.expected_events = expected_events(config, v, topo.hooks.len() as u64);
    trace.keep_events = false;
    let tracing = session(&trace, program_ids)?;
    let empty = with_floor.then(EmptyProgram::attach);
    let floor_before = empty
        .as_ref()
        .and_then(|e| e.as_ref().ok())
        .and_then(EmptyProgram::sample);
    let before = tracing.program_stats();
    let started = std::time::Instant::now();
    let client = topo.client.netns_ref();
    let cpu = config.placement.client_cpu;
    let load = match v.load {
        "rr" => rr(
            &client,
            echo_of(topo),
            config.cost_rr_probes,
            run_id(1 + (rep << 4)),
            cpu,
        )
        .await
        .map(|_| ()),
        "blast" => {
            let rate = config.cost_blast_rate;
            let opts = blast_opts(
                topo,
                rate,
                u64::from(rate) * 10,
                Duration::from_secs_f64(config.cost_blast_seconds),
                run_id(2 + (rep << 4)),
            );
            blast(&client, opts, &[cpu]).await.map(|_| ())
        }
        _ => stream(
            &client,
            sink_of(topo),
            f64::from(config.cost_stream_seconds),
            cpu,
        )
        .await
        .map(|_| ()),
    };
    let after = tracing.program_stats();
    let seconds = started.elapsed().as_secs_f64();
    let floor = empty.map(|e| {
        e.map(|p| {
            program_ids.push(p.id);
            floor_before
                .zip(p.sample())
                .and_then(|(b, a)| cost_between(&[b], &[a]).pop())
        })
    });
    let outcome = tracing.finish().await?;
    load?;
    let programs = ran_or_tc(cost_between(&before, &after));
    #[expect(clippy::cast_precision_loss, reason = "ns totals fit f64 well")]
    let busy_ns = programs.iter().map(|p| p.run_time_ns).sum::<u64>() as f64;
    let sample = Sample {
        programs,
        events: outcome.delivered,
        probes_seen: outcome.counters.probes_seen,
        events_lost: outcome.events_lost(),
        reader_wakeups: outcome.reader.wakeups(),
        seconds,
        cpu_pct: busy_ns / (seconds * 1e9) * 100.0,
    };
    Ok((sample, floor))
}

/// The tc programs always (a zero count there is a problem to report), others (e.g.
/// the tracer's sched programs) only when they ran.
fn ran_or_tc(costs: Vec<ProgramCost>) -> Vec<ProgramCost> {
    costs
        .into_iter()
        .filter(|c| {
            c.run_cnt > 0 || [names::TC_INGRESS, names::TC_EGRESS].contains(&c.program.as_str())
        })
        .collect()
}

/// netbench's empty tracepoint program, attached to `net:net_dev_queue`.
struct EmptyProgram {
    ebpf: Ebpf,
    id: u32,
}

impl EmptyProgram {
    fn attach() -> Result<Self, String> {
        let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(|e| format!("loading: {e}"))?;
        let Some(Program::TracePoint(prog)) = ebpf.program_mut(names::TP_NET_DEV_QUEUE) else {
            return Err("no empty tracepoint program in the object".into());
        };
        prog.load().map_err(|e| format!("load: {e}"))?;
        prog.attach("net", "net_dev_queue")
            .map_err(|e| format!("attach net:net_dev_queue: {e}"))?;
        let id = prog.info().map_err(|e| format!("info: {e}"))?.id();
        Ok(Self { ebpf, id })
    }

    fn sample(&self) -> Option<ProgramStats> {
        let info = self.ebpf.program(names::TP_NET_DEV_QUEUE)?.info().ok()?;
        Some(ProgramStats {
            program: format!("{} (empty)", names::TP_NET_DEV_QUEUE),
            id: info.id(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_cnt: info.run_count(),
        })
    }
}

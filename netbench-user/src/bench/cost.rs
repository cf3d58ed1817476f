//! Per-program cost: the kernel's BPF run-time statistics (`run_time_ns`, `run_cnt` of
//! `bpf_prog_info`) of every netbench tc program, under rr load and under stream load,
//! on the lab bridge path. Statistics are on only while this section runs.
use std::net::SocketAddr;

use aya::{
    Ebpf,
    programs::TracePoint,
    sys::{Stats, enable_stats},
};
use netbench_common::names;
use serde::Serialize;

use super::{
    BLAST_PORT, BenchConfig, BenchError, ECHO_PORT, MSG_SIZE, SINK_PORT, echo_of,
    figures::{ProgramCost, cost_between},
    progress, run_id, sink_of, topology,
    workload::{BlastSpec, Tracing, blast, rr, serve, stream},
};
use crate::{
    lab::LabTopology,
    trace::{EBPF_OBJECT, TraceConfig, TraceMode},
};

/// One load with the programs' cost over it.
#[derive(Clone, Debug, Serialize)]
pub struct CostRun {
    /// `rr` or `stream`.
    pub load: &'static str,
    pub mode: TraceMode,
    /// `count-only`, `events` or `other-port` (the load is not on a probe port).
    pub variant: &'static str,
    pub probe_ports: Vec<u16>,
    /// What ran, in words.
    pub what: String,
    pub programs: Vec<ProgramCost>,
    /// Hop events delivered to userspace during the load.
    pub events: u64,
    /// Wall time between the two samples.
    pub seconds: f64,
    /// Share of one CPU spent in all the programs together over that time, percent
    /// (as measured: including the statistics' own clock reads).
    pub cpu_pct: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CostFigures {
    pub path: &'static str,
    pub runs: Vec<CostRun>,
    /// An empty tracepoint program (`net:net_dev_queue`, returns at once) measured the
    /// same way during the count-only stream: the floor of the method (the two clock
    /// reads the kernel adds around every run while statistics are on).
    pub floor: Option<ProgramCost>,
    pub floor_error: Option<String>,
    /// Highest ns per run of any program in any load.
    pub max_ns_per_run: Option<f64>,
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
}

const VARIANTS: [Variant; 6] = [
    Variant {
        load: "rr",
        mode: TraceMode::CountOnly,
        on_probe_port: true,
        label: "count-only",
        what: "every packet is a probe: parse to the payload, header read, per-CPU counter",
    },
    Variant {
        load: "rr",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "every packet is a probe: as count-only, plus clock, netns cookie, ring-buffer \
               reserve and submit (which wakes the reader when it is idle)",
    },
    Variant {
        load: "stream",
        mode: TraceMode::CountOnly,
        on_probe_port: false,
        label: "other-port",
        what: "the stream is not on a probe port: parse Ethernet/IP down to the L4 ports, \
               return (what bulk traffic beside the probes costs)",
    },
    Variant {
        load: "stream",
        mode: TraceMode::CountOnly,
        on_probe_port: true,
        label: "count-only",
        what: "the stream is on a probe port: parse to the payload, 24-byte header read, \
               no magic, per-CPU counter",
    },
    Variant {
        load: "stream",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "as count-only: bulk packets carry no probe header, so no event is written",
    },
    Variant {
        load: "blast",
        mode: TraceMode::Events,
        on_probe_port: true,
        label: "events",
        what: "one-way probe datagrams at a steady rate: every packet is a probe; the reader \
               keeps up, so most submits find it caught up and wake it",
    },
];

async fn cost_runs(
    config: &BenchConfig,
    topo: &LabTopology,
    program_ids: &mut Vec<u32>,
) -> Result<CostFigures, BenchError> {
    let mut runs = Vec::new();
    let mut floor = None;
    let mut floor_error = None;
    for v in VARIANTS {
        // The empty program rides along with the first stream run.
        let with_floor = v.load == "stream" && !v.on_probe_port;
        let (run, f) = one_run(config, topo, v, with_floor, program_ids).await?;
        runs.push(run);
        match f {
            Some(Ok(f)) => floor = f,
            Some(Err(e)) => floor_error = Some(e),
            None => {}
        }
    }
    let max_ns_per_run = max_ns(runs.iter());
    Ok(CostFigures {
        path: "bridge",
        runs,
        floor,
        floor_error,
        max_ns_per_run,
    })
}

/// The highest ns per run of any program in `runs`.
pub fn max_ns<'a>(runs: impl Iterator<Item = &'a CostRun>) -> Option<f64> {
    runs.flat_map(|r| r.programs.iter().filter_map(|p| p.ns_per_run))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// One load under one tracer set-up; with `with_floor`, the empty program is measured
/// alongside (`Some(Ok(cost))`, or why not).
async fn one_run(
    config: &BenchConfig,
    topo: &LabTopology,
    v: Variant,
    with_floor: bool,
    program_ids: &mut Vec<u32>,
) -> Result<(CostRun, Option<Result<Option<ProgramCost>, String>>), BenchError> {
    let amount = match v.load {
        "rr" => format!("{} udp probes of {MSG_SIZE} B", config.cost_rr_probes),
        "blast" => format!(
            "{} datagrams/s of {MSG_SIZE} B for {} s",
            config.cost_blast_rate, config.cost_blast_seconds
        ),
        _ => format!("{} s", config.stream_seconds),
    };
    progress(&format!("  {}: {amount}, {}", v.load, v.label));
    let ports = match (v.load, v.on_probe_port) {
        ("blast", _) => vec![BLAST_PORT],
        (_, true) => vec![ECHO_PORT, SINK_PORT],
        (_, false) => vec![ECHO_PORT],
    };
    let trace_config = TraceConfig {
        ports: ports.clone(),
        mode: v.mode,
        ..TraceConfig::default()
    };
    let tracing = Tracing::start(&trace_config, &topo.hooks)?;
    program_ids.extend(&tracing.program_ids);
    let empty = with_floor.then(EmptyProgram::attach);
    let floor_before = empty
        .as_ref()
        .and_then(|e| e.as_ref().ok())
        .and_then(EmptyProgram::sample);
    let before = tracing.samples();
    let started = std::time::Instant::now();
    let client = topo.client.netns_ref();
    let cpu = config.placement.client_cpu;
    let load = match v.load {
        "rr" => rr(
            &client,
            echo_of(topo),
            config.cost_rr_probes,
            run_id(1),
            cpu,
        )
        .await
        .map(|rtts| format!("{} round trips", rtts.len())),
        "blast" => {
            let spec = BlastSpec {
                target: SocketAddr::new(topo.server.ip.into(), BLAST_PORT),
                rate: config.cost_blast_rate,
                count: u64::from(config.cost_blast_rate) * 10,
                seconds: config.cost_blast_seconds,
                size: MSG_SIZE,
                run_id: run_id(2),
            };
            blast(&client, &spec, &[cpu])
                .await
                .map(|l| format!("{} datagrams", l.iter().map(|l| l.sent).sum::<u64>()))
        }
        _ => stream(
            &client,
            sink_of(topo),
            f64::from(config.stream_seconds),
            cpu,
        )
        .await
        .map(|s| format!("{:.1} Gbit/s", s.gbps)),
    };
    let after = tracing.samples();
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
    let load = load?;
    let mut run = CostRun {
        load: v.load,
        mode: v.mode,
        variant: v.label,
        probe_ports: ports,
        what: format!("{} {amount} ({load}): {}", v.load, v.what),
        programs: ran_or_tc(cost_between(&before, &after)),
        events: outcome.delivered,
        seconds,
        cpu_pct: 0.0,
    };
    #[expect(clippy::cast_precision_loss, reason = "ns totals fit f64 well")]
    let busy_ns = run.programs.iter().map(|p| p.run_time_ns).sum::<u64>() as f64;
    run.cpu_pct = busy_ns / (seconds * 1e9) * 100.0;
    Ok((run, floor))
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
        let prog: &mut TracePoint = ebpf
            .program_mut(names::TP_NET_DEV_QUEUE)
            .ok_or("no empty tracepoint program in the object")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        prog.load().map_err(|e| format!("load: {e}"))?;
        prog.attach("net", "net_dev_queue")
            .map_err(|e| format!("attach net:net_dev_queue: {e}"))?;
        let id = prog.info().map_err(|e| format!("info: {e}"))?.id();
        Ok(Self { ebpf, id })
    }

    fn sample(&self) -> Option<super::figures::ProgramSample> {
        let info = self.ebpf.program(names::TP_NET_DEV_QUEUE)?.info().ok()?;
        Some(super::figures::ProgramSample {
            program: format!("{} (empty)", names::TP_NET_DEV_QUEUE),
            id: info.id(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_cnt: info.run_count(),
        })
    }
}

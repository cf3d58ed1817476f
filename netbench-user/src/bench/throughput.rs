//! Throughput impact: the agent's TCP stream over the lab bridge path with tracing off,
//! count-only and full, in rotating order over several repetitions; and the tracer's
//! share of the path's CPU time per packet (a count-only stream with BPF statistics
//! on: the programs' run time against the CPU time the sender and the receiver spent),
//! which varies far less between repetitions than the throughput does.
use aya::sys::{Stats, enable_stats};
use netbench_common::names;
use serde::Serialize;

use super::{
    BenchConfig, BenchError, ECHO_PORT, SINK_PORT,
    figures::{cost_between, median, paired_losses},
    progress, sink_of, topology,
    workload::{STREAM_WRITE_BYTES, serve, session, stream},
};
use crate::{
    lab::LabTopology,
    stats::{RepStats, rep_stats},
    trace::{SessionConfig, SessionOutcome, TraceMode},
};

/// What each mode does per packet (printed and written with the figures).
pub const OFF_WHAT: &str = "no netbench program attached";
pub const COUNT_ONLY_WHAT: &str = "tc programs on ingress and egress of the path's 4 devices, \
     count-only: every packet is parsed down to its L4 ports; the stream's packets (on a probe \
     port) also get the 24-byte payload header check and a per-CPU counter; no event is \
     written";
pub const FULL_WHAT: &str = "the same attachments in events mode, events to the recorder \
     (per-CPU slots read after the stream; no reader runs): a probe packet (payload header) \
     would also read the clock and write a 56-byte slot; bulk stream packets carry no header, \
     so per packet this is the same parse, header check and counter as count-only";
pub const STATS_WHAT: &str = "count-only with BPF run-time statistics on (two clock reads \
     more per run): gives the programs' run time for the CPU share; not used for a loss";

#[derive(Clone, Debug, Serialize)]
pub struct ModeThroughput {
    pub mode: &'static str,
    pub what: &'static str,
    pub gbps: RepStats,
    #[serde(flatten)]
    pub loss: PairedLoss,
    /// CPU time of the sender and the receiver per KiB streamed, ns.
    pub cpu_ns_per_kib: RepStats,
    #[serde(flatten)]
    pub counters: StreamCounters,
}

/// Loss against tracing off, percent (negative: faster): the mean over repetitions of
/// `1 - this mode / off` within the same repetition (paired, so slow drift and other
/// work on the machine cancel out), the half-width of its 95% confidence interval, and
/// the median of the per-repetition losses. None of them for tracing off.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PairedLoss {
    #[serde(rename = "loss_pct")]
    pub mean: Option<f64>,
    #[serde(rename = "loss_ci95_pct")]
    pub ci95: Option<f64>,
    #[serde(rename = "loss_median_pct")]
    pub median: Option<f64>,
}

impl PairedLoss {
    /// Of the per-repetition losses (none without any).
    fn of(losses: &[f64]) -> Self {
        if losses.is_empty() {
            return Self::default();
        }
        let stats = rep_stats(losses);
        Self {
            mean: Some(stats.mean),
            ci95: stats.ci95,
            median: median(losses),
        }
    }
}

/// Kernel counters summed over the repetitions (zero when off).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StreamCounters {
    pub probes_seen: u64,
    pub not_probe: u64,
    pub events: u64,
}

impl StreamCounters {
    fn add(&mut self, o: &SessionOutcome) {
        self.probes_seen += o.counters.probes_seen;
        self.not_probe += o.counters.not_probe;
        self.events += o.delivered;
    }
}

/// The tracer's share of the path's CPU time, per packet, from the count-only streams
/// with statistics on. A packet (data segment or ACK) runs one program at each of the
/// path's devices, so packets = program runs / devices.
#[derive(Clone, Debug, Serialize)]
pub struct CpuShare {
    /// Programs' run time / (sender + receiver CPU time), percent, per repetition.
    pub share_pct: RepStats,
    /// The programs' run time per packet, ns (as measured: including the statistics'
    /// own clock reads, so an upper bound).
    pub tracer_ns_per_packet: RepStats,
    /// The sender's and the receiver's CPU time per packet, ns (their own threads,
    /// softirq work done in their context included; work in ksoftirqd is not).
    pub path_ns_per_packet: RepStats,
    pub packets: u64,
    pub devices: usize,
}

/// The repetitions of the CPU share, as measured.
#[derive(Default)]
struct ShareSamples {
    share_pct: Vec<f64>,
    tracer_ns_per_packet: Vec<f64>,
    path_ns_per_packet: Vec<f64>,
    packets: u64,
}

impl ShareSamples {
    /// One stream: `tracer_ns` of program runs and `path_ns` of sender and receiver CPU
    /// over `packets`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "ns and packet counts fit f64 well"
    )]
    fn push(&mut self, tracer_ns: u64, path_ns: u64, packets: u64) {
        self.packets += packets;
        self.share_pct
            .push(tracer_ns as f64 / path_ns as f64 * 100.0);
        self.tracer_ns_per_packet
            .push(tracer_ns as f64 / packets as f64);
        self.path_ns_per_packet
            .push(path_ns as f64 / packets as f64);
    }

    fn stats(&self, devices: usize) -> Option<CpuShare> {
        (!self.share_pct.is_empty()).then(|| CpuShare {
            share_pct: rep_stats(&self.share_pct),
            tracer_ns_per_packet: rep_stats(&self.tracer_ns_per_packet),
            path_ns_per_packet: rep_stats(&self.path_ns_per_packet),
            packets: self.packets,
            devices,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ThroughputFigures {
    pub path: &'static str,
    pub seconds: u32,
    pub reps: u32,
    pub write_bytes: u32,
    pub modes: Vec<ModeThroughput>,
    pub cpu_share: Option<CpuShare>,
}

impl ThroughputFigures {
    #[must_use]
    pub fn mode(&self, mode: &str) -> Option<&ModeThroughput> {
        self.modes.iter().find(|m| m.mode == mode)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    CountOnly,
    Full,
    /// Count-only with BPF statistics on.
    Stats,
}

const MODES: [Mode; 4] = [Mode::Off, Mode::CountOnly, Mode::Full, Mode::Stats];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::CountOnly => "count-only",
            Self::Full => "full",
            Self::Stats => "count-only+stats",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Off => OFF_WHAT,
            Self::CountOnly => COUNT_ONLY_WHAT,
            Self::Full => FULL_WHAT,
            Self::Stats => STATS_WHAT,
        }
    }

    fn trace_mode(self) -> TraceMode {
        match self {
            Self::Off => TraceMode::Off,
            Self::CountOnly | Self::Stats => TraceMode::CountOnly,
            Self::Full => TraceMode::Events,
        }
    }
}

/// The order of the modes in repetition `rep`: rotated, so slow drift (thermal, other
/// load) does not always hit the same mode.
fn order(rep: u32) -> [Mode; 4] {
    let mut o = MODES;
    o.rotate_left(rep as usize % MODES.len());
    o
}

/// One mode's streams, as measured.
#[derive(Default)]
struct Acc {
    gbps: Vec<f64>,
    cpu_ns_per_kib: Vec<f64>,
    counters: StreamCounters,
    /// With statistics on only.
    share: ShareSamples,
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<ThroughputFigures, BenchError> {
    let topo = topology("bridge", "bthru").await?;
    let server = serve(&topo.server.netns_ref(), config.placement.server_cpu).await?;
    let result = all_reps(config, &topo, server.pid(), program_ids).await;
    server.stop().await;
    let devices = topo.hooks.len();
    drop(topo);
    let acc = result?;
    let modes = MODES
        .iter()
        .zip(&acc)
        .map(|(mode, a)| ModeThroughput {
            mode: mode.name(),
            what: mode.what(),
            loss: if *mode == Mode::Off {
                PairedLoss::default()
            } else {
                PairedLoss::of(&paired_losses(&a.gbps, &acc[0].gbps))
            },
            gbps: rep_stats(&a.gbps),
            cpu_ns_per_kib: rep_stats(&a.cpu_ns_per_kib),
            counters: a.counters,
        })
        .collect();
    let cpu_share = acc[3].share.stats(devices);
    Ok(ThroughputFigures {
        path: "bridge",
        seconds: config.throughput_seconds,
        reps: config.throughput_reps,
        write_bytes: STREAM_WRITE_BYTES,
        modes,
        cpu_share,
    })
}

/// A warm-up stream, then every repetition of every mode; per mode, in [`MODES`] order.
async fn all_reps(
    config: &BenchConfig,
    topo: &LabTopology,
    server_pid: Option<u32>,
    program_ids: &mut Vec<u32>,
) -> Result<[Acc; 4], BenchError> {
    // Not recorded: the first stream after building the path runs cold.
    stream(
        &topo.client.netns_ref(),
        sink_of(topo),
        1.0,
        config.placement.client_cpu,
    )
    .await?;
    let mut acc: [Acc; 4] = Default::default();
    for rep in 0..config.throughput_reps {
        for mode in order(rep) {
            let slot = &mut acc[MODES.iter().position(|m| *m == mode).unwrap_or(0)];
            let gbps = one_stream(config, topo, mode, server_pid, slot, program_ids).await?;
            progress(&format!(
                "  rep {}/{} {:>16}: {gbps:.2} Gbit/s",
                rep + 1,
                config.throughput_reps,
                mode.name(),
            ));
        }
    }
    Ok(acc)
}

/// One stream under `mode`, recorded into `slot`.
async fn one_stream(
    config: &BenchConfig,
    topo: &LabTopology,
    mode: Mode,
    server_pid: Option<u32>,
    slot: &mut Acc,
    program_ids: &mut Vec<u32>,
) -> Result<f64, BenchError> {
    // Statistics on only for this mode's streams (closing the fd turns them off).
    let stats_fd = if mode == Mode::Stats {
        Some(enable_stats(Stats::RunTime).map_err(|e| BenchError::Stats(e.to_string()))?)
    } else {
        None
    };
    let mut trace = SessionConfig::new(
        mode.trace_mode(),
        vec![ECHO_PORT, SINK_PORT],
        topo.hooks.clone(),
    );
    trace.keep_events = false;
    let tracing = session(&trace, program_ids)?;
    let before = tracing.program_stats();
    let cpu_before = (children_cpu_ns(), server_pid.and_then(task_cpu_ns));
    let result = stream(
        &topo.client.netns_ref(),
        sink_of(topo),
        f64::from(config.throughput_seconds),
        config.placement.client_cpu,
    )
    .await;
    let cpu_after = (children_cpu_ns(), server_pid.and_then(task_cpu_ns));
    let after = tracing.program_stats();
    let o = tracing.finish().await?;
    drop(stats_fd);
    slot.counters.add(&o);
    let line = result?;
    slot.gbps.push(line.gbps);
    let path_ns = match (cpu_before, cpu_after) {
        ((Some(c0), Some(s0)), (Some(c1), Some(s1))) => {
            Some(c1.saturating_sub(c0) + s1.saturating_sub(s0))
        }
        _ => None,
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "ns and byte counts fit f64 well"
    )]
    if let Some(path_ns) = path_ns.filter(|&n| n > 0) {
        if line.bytes > 0 {
            slot.cpu_ns_per_kib
                .push(path_ns as f64 / (line.bytes as f64 / 1024.0));
        }
        if mode == Mode::Stats {
            let costs: Vec<_> = cost_between(&before, &after)
                .into_iter()
                .filter(|c| [names::TC_INGRESS, names::TC_EGRESS].contains(&c.program.as_str()))
                .collect();
            let runs: u64 = costs.iter().map(|c| c.run_cnt).sum();
            let tracer_ns: u64 = costs.iter().map(|c| c.run_time_ns).sum();
            let packets = runs / topo.hooks.len().max(1) as u64;
            if packets > 0 {
                slot.share.push(tracer_ns, path_ns, packets);
            }
        }
    }
    Ok(line.gbps)
}

/// CPU time (user + system) of this process's waited-for children, ns.
fn children_cpu_ns() -> Option<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the pointer it is given, which points
    // to a zeroed value of that type.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so the value is initialised (it was zeroed anyway).
    let u = unsafe { usage.assume_init() };
    let ns = |t: libc::timeval| -> Option<u64> {
        Some(u64::try_from(t.tv_sec).ok()? * 1_000_000_000 + u64::try_from(t.tv_usec).ok()? * 1000)
    };
    Some(ns(u.ru_utime)? + ns(u.ru_stime)?)
}

/// CPU time of every thread of `pid` (the scheduler's own ns count, `schedstat`).
fn task_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for t in tasks.filter_map(Result::ok) {
        let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += parse_schedstat(&text).unwrap_or(0);
    }
    Some(total)
}

/// The first field of `schedstat`: ns on the CPU.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rep_runs_each_mode_once_in_rotating_order() {
        let first: Vec<_> = (0..4).map(|r| order(r)[0].name()).collect();
        assert_eq!(first, ["off", "count-only", "full", "count-only+stats"]);
        for rep in 0..8 {
            let mut names: Vec<_> = order(rep).iter().map(|m| m.name()).collect();
            names.sort_unstable();
            assert_eq!(names, ["count-only", "count-only+stats", "full", "off"]);
        }
    }

    #[test]
    fn cpu_time_sources() {
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123_456));
        assert_eq!(parse_schedstat(""), None);
        assert!(children_cpu_ns().is_some());
        assert!(task_cpu_ns(std::process::id()).is_some_and(|n| n > 0));
    }
}

//! Throughput impact: the agent's TCP stream over the lab bridge path with tracing off,
//! count-only and full, in rotating order over several repetitions.
use serde::Serialize;

use super::{
    BenchConfig, BenchError, ECHO_PORT, SINK_PORT,
    figures::{median, paired_losses},
    progress, sink_of, topology,
    workload::{Tracing, serve, stream},
};
use crate::{
    lab::LabTopology,
    stats::{RepStats, rep_stats},
    trace::{TraceConfig, TraceMode},
};

/// What each mode does per packet (printed and written with the figures).
pub const OFF_WHAT: &str = "no netbench program attached";
pub const COUNT_ONLY_WHAT: &str = "tc programs on ingress and egress of the path's 4 devices, \
     count-only: every packet is parsed down to its L4 ports; the stream's packets (on a probe \
     port) also get the 24-byte payload header check and a per-CPU counter; nothing goes to \
     the ring buffer";
pub const FULL_WHAT: &str = "the same attachments in events mode with the ring-buffer reader \
     running: a probe packet (payload header) would also reserve and submit a 56-byte event; \
     bulk stream packets carry no header, so per packet this is the same parse, header check \
     and counter as count-only";

#[derive(Clone, Debug, Serialize)]
pub struct ModeThroughput {
    pub mode: &'static str,
    pub what: &'static str,
    pub gbps: RepStats,
    /// Loss against tracing off, percent (negative: faster): the mean over repetitions
    /// of `1 - this mode / off` within the same repetition (paired, so slow drift and
    /// other work on the machine cancel out), the half-width of its 95% confidence
    /// interval, and the median of the per-repetition losses.
    pub loss_pct: Option<f64>,
    pub loss_ci95_pct: Option<f64>,
    pub loss_median_pct: Option<f64>,
    /// Kernel counters summed over the repetitions (zero when off).
    pub probes_seen: u64,
    pub not_probe: u64,
    pub events: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThroughputFigures {
    pub path: &'static str,
    pub seconds: u32,
    pub reps: u32,
    pub write_bytes: u32,
    pub modes: Vec<ModeThroughput>,
}

impl ThroughputFigures {
    #[must_use]
    pub fn loss_of(&self, mode: &str) -> Option<f64> {
        self.modes
            .iter()
            .find(|m| m.mode == mode)
            .and_then(|m| m.loss_pct)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    CountOnly,
    Full,
}

const MODES: [Mode; 3] = [Mode::Off, Mode::CountOnly, Mode::Full];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::CountOnly => "count-only",
            Self::Full => "full",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Off => OFF_WHAT,
            Self::CountOnly => COUNT_ONLY_WHAT,
            Self::Full => FULL_WHAT,
        }
    }

    fn trace_mode(self) -> Option<TraceMode> {
        match self {
            Self::Off => None,
            Self::CountOnly => Some(TraceMode::CountOnly),
            Self::Full => Some(TraceMode::Events),
        }
    }
}

/// The order of the modes in repetition `rep`: rotated, so slow drift (thermal, other
/// load) does not always hit the same mode.
fn order(rep: u32) -> [Mode; 3] {
    let mut o = MODES;
    o.rotate_left(rep as usize % MODES.len());
    o
}

#[derive(Default)]
struct Acc {
    gbps: Vec<f64>,
    probes_seen: u64,
    not_probe: u64,
    events: u64,
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<ThroughputFigures, BenchError> {
    let topo = topology("bridge", "bthru").await?;
    let server = serve(&topo.server.netns_ref(), config.placement.server_cpu).await?;
    let result = all_reps(config, &topo, program_ids).await;
    server.stop().await;
    drop(topo);
    let acc = result?;
    let modes = MODES
        .iter()
        .zip(&acc)
        .map(|(mode, a)| {
            let losses = paired_losses(&a.gbps, &acc[0].gbps);
            let stats = rep_stats(&losses);
            let off = *mode == Mode::Off || losses.is_empty();
            ModeThroughput {
                mode: mode.name(),
                what: mode.what(),
                loss_pct: (!off).then_some(stats.mean),
                loss_ci95_pct: stats.ci95.filter(|_| !off && losses.len() > 1),
                loss_median_pct: (!off).then(|| median(&losses)).flatten(),
                gbps: rep_stats(&a.gbps),
                probes_seen: a.probes_seen,
                not_probe: a.not_probe,
                events: a.events,
            }
        })
        .collect();
    Ok(ThroughputFigures {
        path: "bridge",
        seconds: config.throughput_seconds,
        reps: config.throughput_reps,
        write_bytes: 131_072,
        modes,
    })
}

/// A warm-up stream, then every repetition of every mode; per mode, in [`MODES`] order.
async fn all_reps(
    config: &BenchConfig,
    topo: &LabTopology,
    program_ids: &mut Vec<u32>,
) -> Result<[Acc; 3], BenchError> {
    // Not recorded: the first stream after building the path runs cold.
    stream(
        &topo.client.netns_ref(),
        sink_of(topo),
        1.0,
        config.placement.client_cpu,
    )
    .await?;
    let mut acc: [Acc; 3] = Default::default();
    for rep in 0..config.throughput_reps {
        for mode in order(rep) {
            let slot = &mut acc[MODES.iter().position(|m| *m == mode).unwrap_or(0)];
            let gbps = one_stream(config, topo, mode, slot, program_ids).await?;
            progress(&format!(
                "  rep {}/{} {:>10}: {gbps:.2} Gbit/s",
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
    slot: &mut Acc,
    program_ids: &mut Vec<u32>,
) -> Result<f64, BenchError> {
    let tracing = match mode.trace_mode() {
        None => None,
        Some(m) => {
            let config = TraceConfig {
                ports: vec![ECHO_PORT, SINK_PORT],
                mode: m,
                ..TraceConfig::default()
            };
            let t = Tracing::start(&config, &topo.hooks)?;
            program_ids.extend(&t.program_ids);
            Some(t)
        }
    };
    let result = stream(
        &topo.client.netns_ref(),
        sink_of(topo),
        f64::from(config.throughput_seconds),
        config.placement.client_cpu,
    )
    .await;
    if let Some(t) = tracing {
        let o = t.finish().await?;
        slot.probes_seen += o.counters.probes_seen;
        slot.not_probe += o.counters.not_probe;
        slot.events += o.delivered;
    }
    let gbps = result?.gbps;
    slot.gbps.push(gbps);
    Ok(gbps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rep_runs_each_mode_once_in_rotating_order() {
        let first: Vec<_> = (0..3).map(|r| order(r)[0].name()).collect();
        assert_eq!(first, ["off", "count-only", "full"]);
        for rep in 0..6 {
            let mut names: Vec<_> = order(rep).iter().map(|m| m.name()).collect();
            names.sort_unstable();
            assert_eq!(names, ["count-only", "full", "off"]);
        }
    }
}

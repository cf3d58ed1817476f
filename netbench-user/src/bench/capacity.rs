//! Capacity: how many hop events per second reach userspace without loss. The agent's
//! `blast` sends one-way probe datagrams across a lab path at stepped rates; every
//! datagram produces one event at each traced hop it crosses. Each step loads a fresh
//! tracer (clean counters) with the ring size under test and reads it with the real
//! reader; loss is the kernel's reserve failures plus the reader's channel drops.
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BLAST_PORT, BenchConfig, BenchError, MSG_SIZE,
    figures::{CapacityStep, CapacitySummary, summarize_capacity},
    progress, run_id, server_ip, topology,
    workload::{BlastSpec, Tracing, blast},
};
use crate::{
    lab::LabTopology,
    trace::{TraceConfig, TraceMode},
};

/// The path the datagrams cross: on the bridge path each one is seen at 4 hooks
/// (client eth0 egress, host veth ingress, host veth egress, server eth0 ingress), so
/// a sender produces twice the events per datagram of the veth path.
pub const PATH: &str = "bridge";

/// Bytes of one event in the ring: the 56-byte event behind the ring's 8-byte header.
const RECORD_BYTES: u64 = 64;

#[derive(Clone, Debug, Serialize)]
pub struct RingCapacity {
    pub ring_bytes: u32,
    /// Events the ring holds (a 56-byte event behind an 8-byte header): the largest
    /// burst it absorbs while the reader is away.
    pub ring_events: u64,
    pub steps: Vec<CapacityStep>,
    #[serde(flatten)]
    pub summary: CapacitySummary,
    /// What ended the ladder: loss (and whose), or the senders' own limit.
    pub limited_by: String,
}

/// The reader's own pace: the ring is filled while the reader is held back, then the
/// reader starts and the time until the consumer has every event is taken. This is
/// what the delivery path (ring -> reader -> channel -> consumer) can take, whatever
/// the senders manage.
#[derive(Clone, Debug, Serialize)]
pub struct DrainFigure {
    pub ring_bytes: u32,
    /// Events waiting in the ring when the reader started.
    pub events: u64,
    pub kernel_lost: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapacityFigures {
    pub path: &'static str,
    pub events_per_datagram: usize,
    pub datagram_bytes: u32,
    pub step_seconds: f64,
    pub rings: Vec<RingCapacity>,
    pub drain: Option<DrainFigure>,
}

impl CapacityFigures {
    /// The default ring's highest loss-free rate.
    #[must_use]
    pub fn default_ring_lossless(&self) -> Option<f64> {
        self.rings.first()?.summary.max_lossless_events_per_s
    }
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<CapacityFigures, BenchError> {
    let topo = topology(PATH, "bcap").await?;
    let target = std::net::SocketAddr::new(server_ip(&topo).into(), BLAST_PORT);
    let mut rings = Vec::new();
    for &ring_bytes in &config.ring_bytes {
        let mut steps: Vec<CapacityStep> = Vec::new();
        for &(rate, senders) in &config.capacity_steps {
            // Once a paced step fell short of its rate, the senders are saturated: higher
            // paced rates would only repeat it. The unpaced steps still run.
            let saturated = steps
                .iter()
                .any(|s| s.offered_per_sender > 0 && s.datagram_rate < 0.9 * offered(s));
            if rate > 0 && saturated {
                continue;
            }
            let tracing = Tracing::start(
                &TraceConfig {
                    ports: vec![BLAST_PORT],
                    mode: TraceMode::Events,
                    ring_bytes,
                },
                &topo.hooks,
            )?;
            program_ids.extend(&tracing.program_ids);
            let spec = BlastSpec {
                target,
                rate,
                count: count_bound(rate, config.capacity_seconds),
                seconds: config.capacity_seconds,
                size: MSG_SIZE,
                run_id: run_id(0x100 + rate),
            };
            let cpus = sender_cpus(config, senders);
            let lines = blast(&topo.client.netns_ref(), &spec, &cpus).await;
            let outcome = tracing.finish().await?;
            let lines = lines?;
            let seconds = lines.iter().map(|l| l.seconds).fold(0.0, f64::max);
            let datagrams: u64 = lines.iter().map(|l| l.sent).sum();
            let lost = outcome.counters.events_lost + outcome.reader.dropped;
            #[expect(clippy::cast_precision_loss, reason = "event counts fit f64 well")]
            let step = CapacityStep {
                offered_per_sender: rate,
                senders,
                seconds,
                datagrams,
                datagram_rate: datagrams as f64 / seconds,
                probes_seen: outcome.counters.probes_seen,
                delivered: outcome.delivered,
                kernel_lost: outcome.counters.events_lost,
                reader_dropped: outcome.reader.dropped,
                event_rate: outcome.delivered as f64 / seconds,
                produced_rate: (outcome.delivered + lost) as f64 / seconds,
            };
            progress(&format!(
                "  ring {} MiB, {} x {}: {:.0} datagrams/s -> {:.0} events/s delivered, {} lost",
                ring_bytes >> 20,
                senders,
                if rate == 0 {
                    "unpaced".to_owned()
                } else {
                    format!("{rate}/s")
                },
                step.datagram_rate,
                step.event_rate,
                lost
            ));
            steps.push(step);
        }
        let summary = summarize_capacity(&steps);
        let limited_by = limited_by(&summary);
        rings.push(RingCapacity {
            ring_bytes,
            ring_events: u64::from(ring_bytes) / RECORD_BYTES,
            steps,
            summary,
            limited_by,
        });
    }
    let events_per_datagram = topo.hooks.len();
    let drain = drain(config, &topo, config.drain_ring_bytes, program_ids).await;
    drop(topo);
    Ok(CapacityFigures {
        drain: Some(drain?),
        path: PATH,
        events_per_datagram,
        datagram_bytes: MSG_SIZE,
        step_seconds: config.capacity_seconds,
        rings,
    })
}

/// Fill 80% of a `ring_bytes` ring with the reader held back, then time the reader.
async fn drain(
    config: &BenchConfig,
    topo: &LabTopology,
    ring_bytes: u32,
    program_ids: &mut Vec<u32>,
) -> Result<DrainFigure, BenchError> {
    let per_datagram = topo.hooks.len().max(1) as u64;
    let datagrams = u64::from(ring_bytes) / RECORD_BYTES * 8 / 10 / per_datagram;
    progress(&format!(
        "  reader drain: {} MiB ring, {datagrams} datagrams sent while the reader waits",
        ring_bytes >> 20
    ));
    let mut tracing = Tracing::start_held(
        &TraceConfig {
            ports: vec![BLAST_PORT],
            mode: TraceMode::Events,
            ring_bytes,
        },
        &topo.hooks,
    )?;
    program_ids.extend(&tracing.program_ids);
    let spec = BlastSpec {
        target: std::net::SocketAddr::new(server_ip(topo).into(), BLAST_PORT),
        rate: 0,
        count: datagrams,
        seconds: 60.0,
        size: MSG_SIZE,
        run_id: run_id(0x300),
    };
    let sent = blast(
        &topo.client.netns_ref(),
        &spec,
        &[config.placement.client_cpu],
    )
    .await;
    let counters = tracing.counters()?;
    let waiting = counters.probes_seen - counters.events_lost.min(counters.probes_seen);
    let start = Instant::now();
    tracing.resume();
    let deadline = start + Duration::from_secs(30);
    while tracing.delivered() < waiting && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let outcome = tracing.finish().await?;
    sent?;
    #[expect(clippy::cast_precision_loss, reason = "event counts fit f64 well")]
    let events_per_s = outcome.delivered.min(waiting) as f64 / seconds;
    progress(&format!(
        "  reader drain: {waiting} events in {seconds:.3} s = {events_per_s:.0} events/s"
    ));
    Ok(DrainFigure {
        ring_bytes,
        events: waiting,
        kernel_lost: counters.events_lost,
        seconds,
        events_per_s,
    })
}

/// One sender pinned to the client CPU; a second one on the server CPU (there is no
/// server process here: blast datagrams go to a port nobody listens on).
fn sender_cpus(config: &BenchConfig, senders: u32) -> Vec<Option<usize>> {
    let p = config.placement;
    (0..senders.max(1))
        .map(|i| {
            if i % 2 == 0 {
                p.client_cpu
            } else {
                p.server_cpu
            }
        })
        .collect()
}

fn offered(s: &CapacityStep) -> f64 {
    f64::from(s.offered_per_sender) * f64::from(s.senders)
}

/// The count limit of a step: twice what its rate needs (the time limit ends it), or a
/// generous bound when unpaced.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "small positive values"
)]
fn count_bound(rate: u32, seconds: f64) -> u64 {
    let per_second = if rate == 0 {
        10_000_000.0
    } else {
        2.0 * f64::from(rate)
    };
    ((per_second * seconds) as u64 + 1000).min(100_000_000)
}

fn limited_by(s: &CapacitySummary) -> String {
    match &s.loss_starts {
        Some(onset) if onset.kernel_lost > 0 => format!(
            "loss from {:.0} events/s: the ring buffer filled (kernel reserve failures), the \
             reader did not keep up",
            onset.produced_rate
        ),
        Some(onset) => format!(
            "loss from {:.0} events/s: the reader's channel to its consumer was full",
            onset.produced_rate
        ),
        None => format!(
            "no loss at any step: the senders produced at most {:.0} events/s on this machine",
            s.max_produced_events_per_s
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_bounds() {
        assert_eq!(count_bound(1000, 2.0), 5000);
        assert_eq!(count_bound(0, 2.0), 20_001_000);
        assert_eq!(count_bound(0, 60.0), 100_000_000);
    }
}

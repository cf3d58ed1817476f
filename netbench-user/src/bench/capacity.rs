//! Capacity: how many hop events per second reach userspace without loss. The agent's
//! `blast` sends one-way probe datagrams across a lab path at stepped rates; every
//! datagram produces one event at each traced hop it crosses. Each step runs a fresh
//! trace session (clean counters) streaming through the ring buffer (`streaming`: the
//! reader drains it while the senders run) with the ring size under test; loss is the
//! kernel's reserve failures plus the reader's channel drops. The ladder shows where loss
//! starts; the target is decided on repetitions of the top steps (the highest
//! loss-free rate of each repetition, with its 95% CI).
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    BLAST_PORT, BenchConfig, BenchError, MSG_SIZE,
    figures::{CapacityStep, CapacitySummary, summarize_capacity},
    progress, run_id, topology,
    workload::{blast, blast_opts, session},
};
use crate::{
    lab::LabTopology,
    stats::{RepStats, rep_stats},
    trace::{SessionConfig, Streaming, TraceMode, session::RING_RECORD_BYTES},
};

/// The path the datagrams cross: on the bridge path each one is seen at 4 hooks
/// (client eth0 egress, host veth ingress, host veth egress, server eth0 ingress), so
/// a sender produces twice the events per datagram of the veth path.
pub const PATH: &str = "bridge";

#[derive(Clone, Debug, Serialize)]
pub struct RingCapacity {
    pub ring_bytes: u32,
    /// Events the ring holds: the largest burst it absorbs while the reader is away.
    pub ring_events: u64,
    pub steps: Vec<CapacityStep>,
    #[serde(flatten)]
    pub summary: CapacitySummary,
    /// What ended the ladder: loss (and whose), or the senders' own limit.
    pub limited_by: String,
}

/// The top steps repeated: each repetition's highest loss-free delivered rate.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReps {
    pub ring_bytes: u32,
    /// (datagrams per second per sender, senders); 0 = unpaced.
    pub steps: Vec<(u32, u32)>,
    pub seconds: f64,
    /// Per repetition: its highest loss-free delivered rate (`None`: every step lost).
    pub per_rep: Vec<Option<f64>>,
    /// Over the repetitions that had a loss-free step.
    pub lossless_events_per_s: RepStats,
    pub runs: Vec<CapacityStep>,
}

impl CapacityReps {
    /// Repetitions in which every step lost events.
    #[must_use]
    pub fn reps_without_lossless_step(&self) -> usize {
        self.per_rep.iter().filter(|r| r.is_none()).count()
    }
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
    pub reps: Option<CapacityReps>,
    pub drain: Option<DrainFigure>,
}

pub async fn measure(
    config: &BenchConfig,
    program_ids: &mut Vec<u32>,
) -> Result<CapacityFigures, BenchError> {
    let topo = topology(PATH, "bcap").await?;
    let mut ladder = Ladder {
        config,
        topo: &topo,
        program_ids,
    };
    let result = ladder.all_steps().await;
    drop(topo);
    result
}

/// The runs of this section on its path; every session's programs go to `program_ids`.
struct Ladder<'a> {
    config: &'a BenchConfig,
    topo: &'a LabTopology,
    program_ids: &'a mut Vec<u32>,
}

impl Ladder<'_> {
    async fn all_steps(&mut self) -> Result<CapacityFigures, BenchError> {
        let config = self.config;
        let mut rings = Vec::new();
        for &ring_bytes in &config.ring_bytes {
            let mut steps: Vec<CapacityStep> = Vec::new();
            for &(rate, senders) in &config.capacity_steps {
                // Once a paced step fell short of its rate, the senders are saturated:
                // higher paced rates would only repeat it. The unpaced steps still run.
                let saturated = steps
                    .iter()
                    .any(|s| s.offered_per_sender > 0 && s.datagram_rate < 0.9 * offered(s));
                if rate > 0 && saturated {
                    continue;
                }
                let seconds = config.capacity_seconds;
                steps.push(self.one_step(ring_bytes, (rate, senders), seconds).await?);
            }
            let summary = summarize_capacity(&steps);
            let limited_by = limited_by(&summary);
            rings.push(RingCapacity {
                ring_bytes,
                ring_events: u64::from(ring_bytes) / RING_RECORD_BYTES,
                steps,
                summary,
                limited_by,
            });
        }
        let reps = match config.ring_bytes.first() {
            Some(&ring) if config.capacity_reps > 0 && !config.capacity_rep_steps.is_empty() => {
                Some(self.repeat_top(ring).await?)
            }
            _ => None,
        };
        let drain = self.drain(config.drain_ring_bytes).await?;
        Ok(CapacityFigures {
            drain: Some(drain),
            path: PATH,
            events_per_datagram: self.topo.hooks.len(),
            datagram_bytes: MSG_SIZE,
            step_seconds: config.capacity_seconds,
            rings,
            reps,
        })
    }

    /// The top steps, `config.capacity_reps` times on `ring_bytes`.
    async fn repeat_top(&mut self, ring_bytes: u32) -> Result<CapacityReps, BenchError> {
        let config = self.config;
        let mut per_rep = Vec::new();
        let mut runs = Vec::new();
        for rep in 0..config.capacity_reps {
            progress(&format!(
                "  capacity rep {}/{}",
                rep + 1,
                config.capacity_reps
            ));
            let mut best: Option<f64> = None;
            for &step in &config.capacity_rep_steps {
                let s = self
                    .one_step(ring_bytes, step, config.capacity_rep_seconds)
                    .await?;
                if s.lossless() {
                    best = Some(best.map_or(s.event_rate, |b: f64| b.max(s.event_rate)));
                }
                runs.push(s);
            }
            per_rep.push(best);
        }
        let values: Vec<f64> = per_rep.iter().flatten().copied().collect();
        Ok(CapacityReps {
            ring_bytes,
            steps: config.capacity_rep_steps.clone(),
            seconds: config.capacity_rep_seconds,
            per_rep,
            lossless_events_per_s: rep_stats(&values),
            runs,
        })
    }

    /// A streaming session on a `ring_bytes` ring that counts the events it delivers.
    fn trace(&self, ring_bytes: u32) -> SessionConfig {
        let hooks = self.topo.hooks.clone();
        let mut trace = SessionConfig::new(TraceMode::Events, vec![BLAST_PORT], hooks);
        trace.streaming = Some(Streaming {
            ring_bytes: Some(ring_bytes),
            ..Streaming::default()
        });
        trace.keep_events = false;
        trace
    }

    /// One step: a fresh session on `ring_bytes`, the senders, the counts.
    async fn one_step(
        &mut self,
        ring_bytes: u32,
        (rate, senders): (u32, u32),
        seconds: f64,
    ) -> Result<CapacityStep, BenchError> {
        let tracing = session(&self.trace(ring_bytes), self.program_ids)?;
        let opts = blast_opts(
            self.topo,
            rate,
            count_bound(rate, seconds),
            Duration::from_secs_f64(seconds),
            run_id(0x100 + rate),
        );
        let cpus = sender_cpus(self.config, senders);
        let lines = blast(&self.topo.client.netns_ref(), opts, &cpus).await;
        let outcome = tracing.finish().await?;
        let lines = lines?;
        let seconds = lines.iter().map(|l| l.seconds).fold(0.0, f64::max);
        let datagrams: u64 = lines.iter().map(|l| l.sent).sum();
        let lost = outcome.events_lost();
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
            forced_wakeups: outcome.reader.forced_wakeups,
            timer_drains: outcome.reader.timer_drains,
            event_rate: outcome.delivered as f64 / seconds,
            produced_rate: (outcome.delivered + lost) as f64 / seconds,
        };
        progress(&format!(
            "  ring {} MiB, {} x {}: {:.0} datagrams/s -> {:.0} events/s delivered, {} lost, \
             {} forced wake-ups, {} timer drains",
            ring_bytes >> 20,
            senders,
            if rate == 0 {
                "unpaced".to_owned()
            } else {
                format!("{rate}/s")
            },
            step.datagram_rate,
            step.event_rate,
            lost,
            step.forced_wakeups,
            step.timer_drains,
        ));
        Ok(step)
    }

    /// Fill 80% of a `ring_bytes` ring with the reader held back, then time the reader.
    async fn drain(&mut self, ring_bytes: u32) -> Result<DrainFigure, BenchError> {
        let topo = self.topo;
        let per_datagram = topo.hooks.len().max(1) as u64;
        let datagrams = u64::from(ring_bytes) / RING_RECORD_BYTES * 8 / 10 / per_datagram;
        progress(&format!(
            "  reader drain: {} MiB ring, {datagrams} datagrams sent while the reader waits",
            ring_bytes >> 20
        ));
        let mut trace = self.trace(ring_bytes);
        trace.streaming = Some(Streaming {
            ring_bytes: Some(ring_bytes),
            hold_reader: true,
            // Past the watermark the ring has signalled the (held) reader, so it runs at
            // once when resumed; the short timer is only a fallback.
            drain_every: Duration::from_millis(1),
            ..Streaming::default()
        });
        let mut tracing = session(&trace, self.program_ids)?;
        let opts = blast_opts(topo, 0, datagrams, Duration::from_mins(1), run_id(0x300));
        let cpu = self.config.placement.client_cpu;
        let sent = blast(&topo.client.netns_ref(), opts, &[cpu]).await;
        let counters = tracing.counters()?;
        let waiting = counters.probes_seen - counters.events_lost.min(counters.probes_seen);
        let start = Instant::now();
        tracing.resume_reader();
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
        // Twice what the rate needs, or 10 M/s unpaced; plus 1000, at most 100 M.
        for (rate, seconds, bound) in [
            (1000, 2.0, 5000),
            (0, 2.0, 20_001_000),
            (0, 60.0, 100_000_000),
        ] {
            assert_eq!(
                count_bound(rate, seconds),
                bound,
                "{rate}/s for {seconds} s"
            );
        }
    }
}

//! The userspace end of the ring buffer. The programs submit without waking anyone
//! (`BPF_RB_NO_WAKEUP`) unless the ring is past its fill watermark, so the reader drains
//! on its own schedule: on a slow timer, on a forced wake-up (`AsyncFd` readiness, the
//! watermark), and at the end. Each drain decodes every record through the common type
//! and hands one batch on. Nothing slow runs here.
use std::time::Duration;

use aya::maps::{Map, MapData, RingBuf};
use netbench_common::HopEvent;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};

use super::TraceError;
use crate::error::Aya;

/// Counters of the reader itself (the kernel's own loss counter is separate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReaderStats {
    /// Records decoded into events.
    pub decoded: u64,
    /// Records with a wrong size or version.
    pub malformed: u64,
    /// Events dropped because the consumer's channel was full.
    pub dropped: u64,
    /// Times the kernel woke the reader (a submit past the fill watermark).
    pub forced_wakeups: u64,
    /// Times the reader's own timer fired.
    pub timer_drains: u64,
}

impl ReaderStats {
    /// Every time the reader ran while the session was live (not the final drain).
    #[must_use]
    pub fn wakeups(&self) -> u64 {
        self.forced_wakeups + self.timer_drains
    }
}

pub struct EventReader {
    fd: AsyncFd<RingBuf<MapData>>,
    stats: ReaderStats,
}

impl EventReader {
    pub(super) fn new(map: Map) -> Result<Self, TraceError> {
        let ring = RingBuf::try_from(map).map_err(|source| TraceError::Map {
            name: netbench_common::names::EVENTS,
            source: Aya::from(source),
        })?;
        // SAFETY: the fd belongs to `ring`, which the AsyncFd owns from here on; the map fd
        // stays open and unchanged until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| TraceError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Self {
            fd,
            stats: ReaderStats::default(),
        })
    }

    #[must_use]
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Append whatever is in the ring buffer now to `out`, without waiting.
    pub fn drain_into(&mut self, out: &mut Vec<HopEvent>) -> usize {
        let before = out.len();
        let ring = self.fd.get_mut();
        while let Some(item) = ring.next() {
            match HopEvent::from_bytes(&item) {
                Some(ev) => {
                    out.push(ev);
                    self.stats.decoded += 1;
                }
                None => self.stats.malformed += 1,
            }
        }
        out.len() - before
    }

    /// Run until `stop` fires, draining every `drain_every` and whenever the kernel
    /// forces a wake-up; forward each drain as one batch to `tx` (never blocking on it: a
    /// full channel drops the batch and counts it); then drain once more and return the
    /// stats.
    ///
    /// # Errors
    /// When polling the ring buffer's fd fails.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Vec<HopEvent>>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        drain_every: Duration,
    ) -> Result<ReaderStats, TraceError> {
        let mut batch = Vec::with_capacity(1024);
        let mut timer = tokio::time::interval_at(Instant::now() + drain_every, drain_every);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                guard = self.fd.readable_mut() => {
                    guard?.clear_ready();
                    self.stats.forced_wakeups += 1;
                }
                _ = timer.tick() => self.stats.timer_drains += 1,
                _ = &mut stop => break,
            }
            self.drain_into(&mut batch);
            self.forward(&tx, &mut batch);
        }
        self.drain_into(&mut batch);
        self.forward(&tx, &mut batch);
        Ok(self.stats)
    }

    fn forward(&mut self, tx: &mpsc::Sender<Vec<HopEvent>>, batch: &mut Vec<HopEvent>) {
        if batch.is_empty() {
            return;
        }
        let full = std::mem::replace(batch, Vec::with_capacity(1024));
        if let Err(e) = tx.try_send(full) {
            let lost = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.len()
                }
            };
            self.stats.dropped += lost as u64;
        }
    }
}

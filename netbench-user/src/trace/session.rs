//! One trace session: the whole sequence every measurement needs (load, attach to the
//! hook devices in a mode, start the reader, track the processes whose scheduler events
//! matter, stop, drain) and what it returns (events, kernel counters, reader stats,
//! losses). `lab`, `run` and `bench` all trace through it.
//!
//! Nothing of the session wakes a CPU while probes run: the programs submit without
//! waking the reader unless the ring passes its fill watermark, the ring is sized so a
//! measurement fits without reaching it, the reader drains on a slow timer, and the
//! traced thread set grows in the kernel (fork hook), not by polling `/proc`.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use netbench_common::HopEvent;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    EventReader, EventSink, HookDevice, KernelCounters, ReaderStats, TcMode, TraceConfig,
    TraceError, TraceMode, Tracer,
};

/// Bytes one event takes in the ring: the record plus the ring's 8-byte header.
pub const RING_RECORD_BYTES: u64 = (size_of::<HopEvent>() as u64 + 8 + 7) & !7;
/// Smallest and largest ring a session sizes on its own.
const MIN_RING: u64 = 1 << 20;
const MAX_RING: u64 = 1 << 30;
/// The reader's timer: rare enough that a probe burst (tens of ms) rarely sees it, often
/// enough that a long run drains before the watermark.
pub const DEFAULT_DRAIN_EVERY: Duration = Duration::from_millis(500);

/// Most memory the recorder takes (all CPUs).
const MAX_RECORDER_BYTES: u64 = 256 << 20;

/// Recorder slots per CPU for `expected` events on `cpus` possible CPUs: room for all
/// of them on any one CPU (a block's events may all land on one), at least 1024, and
/// at most [`MAX_RECORDER_BYTES`] in all.
#[must_use]
pub fn recorder_slots_for(expected: u64, cpus: u32) -> u32 {
    let regions = u64::from(netbench_common::RECORD_REGIONS);
    let per_cpu_cap =
        MAX_RECORDER_BYTES / (size_of::<HopEvent>() as u64 * regions * u64::from(cpus.max(1)));
    u32::try_from(expected.max(1024).min(per_cpu_cap)).unwrap_or(u32::MAX)
}

/// Ring size for `expected` events: twice what they take (so the fill watermark at half
/// the ring is not reached), as a power of two within 1 MiB .. 1 GiB.
#[must_use]
pub fn ring_bytes_for(expected: u64) -> u32 {
    let want = expected
        .saturating_mul(RING_RECORD_BYTES)
        .saturating_mul(2)
        .clamp(MIN_RING, MAX_RING);
    u32::try_from(want.next_power_of_two().min(MAX_RING)).unwrap_or(1 << 30)
}

/// What to trace, where and how.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub mode: TraceMode,
    /// Probe ports (source or destination), e.g. the agent's UDP/TCP port and its sink.
    pub ports: Vec<u16>,
    pub devices: Vec<HookDevice>,
    pub tc_mode: TcMode,
    /// Events the measurement is expected to produce (probes x hook points, plus
    /// scheduler events): sizes the recorder, or the ring when streaming (unless
    /// [`Streaming::ring_bytes`] is set).
    pub expected_events: u64,
    /// Processes whose threads' scheduler events are traced (with every thread they
    /// create while the session runs).
    pub track_pids: Vec<u32>,
    /// Keep the events (otherwise they are only counted, e.g. for capacity runs).
    pub keep_events: bool,
    /// Stream events through the ring buffer while the programs run (long or unbounded
    /// runs, the capacity benchmark) instead of recording them in per-CPU slots that are
    /// read at the end (`None`, the default: cheapest in the measured path, nothing to
    /// drain).
    pub streaming: Option<Streaming>,
}

/// How a streaming session's ring buffer and reader run.
#[derive(Clone, Debug)]
pub struct Streaming {
    /// An explicit ring size (power of two, page multiple), e.g. to test losses.
    pub ring_bytes: Option<u32>,
    /// Fill watermark override (bytes waiting that force a wake-up); default half the ring.
    pub wakeup_bytes: Option<u64>,
    /// Start with the reader held back: events stay in the ring until
    /// [`Session::resume_reader`] (or the end).
    pub hold_reader: bool,
    pub drain_every: Duration,
}

impl Default for Streaming {
    fn default() -> Self {
        Self {
            ring_bytes: None,
            wakeup_bytes: None,
            hold_reader: false,
            drain_every: DEFAULT_DRAIN_EVERY,
        }
    }
}

impl SessionConfig {
    /// Events mode on `devices` for probes on `ports`, keeping the events.
    #[must_use]
    pub fn new(mode: TraceMode, ports: Vec<u16>, devices: Vec<HookDevice>) -> Self {
        Self {
            mode,
            ports,
            devices,
            tc_mode: TcMode::Auto,
            expected_events: 0,
            track_pids: Vec::new(),
            keep_events: true,
            streaming: None,
        }
    }
}

/// Cumulative run statistics of one loaded program (meaningful while BPF stats are on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub program: String,
    pub id: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// What a session saw.
#[derive(Clone, Debug, Default)]
pub struct SessionOutcome {
    /// The events, when the session kept them (sorted by nothing: correlate sorts).
    pub events: Vec<HopEvent>,
    /// Events that reached the consumer (kept or not).
    pub delivered: u64,
    pub counters: KernelCounters,
    pub reader: ReaderStats,
    pub ring_bytes: u32,
    /// Recorder slots per CPU (0 when streaming).
    pub record_slots: u32,
    /// Threads whose scheduler events were traced, at the end.
    pub tracked_threads: usize,
}

impl SessionOutcome {
    /// Events lost: not reserved in the kernel (ring full) or dropped by the reader.
    #[must_use]
    pub fn events_lost(&self) -> u64 {
        self.counters.events_lost + self.reader.dropped
    }
}

type ReaderTask = JoinHandle<Result<ReaderStats, TraceError>>;
type HeldReader = Box<(
    EventReader,
    mpsc::Sender<Vec<HopEvent>>,
    oneshot::Receiver<()>,
)>;

enum ReaderState {
    Running(ReaderTask),
    Held(HeldReader),
    Gone,
}

struct Live {
    tracer: Tracer,
    reader: ReaderState,
    stop: Option<oneshot::Sender<()>>,
    consumer: JoinHandle<Vec<HopEvent>>,
    delivered: Arc<AtomicU64>,
    drain_every: Duration,
    ring_bytes: u32,
    /// Recording instead of streaming: slots per CPU.
    record_slots: Option<u32>,
    keep_events: bool,
}

/// A running trace session. Mode off holds nothing: its outcome is empty, so callers
/// measure traced and untraced probes through one code path.
pub struct Session {
    live: Option<Live>,
}

impl Session {
    /// Load, attach to every device, track the processes, start the reader (unless held).
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When loading, attaching or tracking fails (whatever was attached is detached).
    pub fn start(config: &SessionConfig) -> Result<Self, TraceError> {
        if config.mode == TraceMode::Off {
            return Ok(Self { live: None });
        }
        let record_slots = config
            .streaming
            .is_none()
            .then(|| recorder_slots_for(config.expected_events, super::possible_cpus()));
        let streaming = config.streaming.clone().unwrap_or_default();
        let ring_bytes = match &config.streaming {
            None => 0,
            Some(s) => s
                .ring_bytes
                .unwrap_or_else(|| ring_bytes_for(config.expected_events)),
        };
        let mut tracer = Tracer::load(&TraceConfig {
            ports: config.ports.clone(),
            mode: config.mode,
            ring_bytes: ring_bytes.max(4096),
            wakeup_bytes: streaming.wakeup_bytes,
            sink: match record_slots {
                Some(slots_per_cpu) => EventSink::Recorder { slots_per_cpu },
                None => EventSink::Ring,
            },
        })?;
        for device in &config.devices {
            tracer.attach(device, config.tc_mode)?;
        }
        if !config.track_pids.is_empty() {
            tracer.track_processes(&config.track_pids)?;
        }
        let reader = tracer.take_reader()?;
        let (tx, mut rx) = mpsc::channel::<Vec<HopEvent>>(1024);
        let (stop, stop_rx) = oneshot::channel();
        let delivered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&delivered);
        let keep = config.keep_events;
        // Runs only when the reader forwards a batch, i.e. never during a burst.
        let consumer = tokio::spawn(async move {
            let mut all = Vec::new();
            while let Some(batch) = rx.recv().await {
                count.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if keep {
                    all.extend(batch);
                }
            }
            all
        });
        let mut live = Live {
            tracer,
            reader: ReaderState::Held(Box::new((reader, tx, stop_rx))),
            stop: Some(stop),
            consumer,
            delivered,
            drain_every: streaming.drain_every,
            ring_bytes,
            record_slots,
            keep_events: config.keep_events,
        };
        // Recording: nothing to drain while the programs run, so no reader runs at all.
        if config.streaming.as_ref().is_some_and(|s| !s.hold_reader) {
            live.resume_reader();
        }
        Ok(Self { live: Some(live) })
    }

    /// Whether anything is attached (false in mode off).
    #[must_use]
    pub fn is_tracing(&self) -> bool {
        self.live.is_some()
    }

    /// Start a reader held back by [`SessionConfig::hold_reader`].
    pub fn resume_reader(&mut self) {
        if let Some(live) = &mut self.live {
            live.resume_reader();
        }
    }

    /// Track more processes' scheduling (see [`Tracer::track_processes`]).
    ///
    /// # Errors
    /// As [`Tracer::track_processes`].
    pub fn track_processes(&mut self, pids: &[u32]) -> Result<(), TraceError> {
        match &mut self.live {
            Some(live) => live.tracer.track_processes(pids),
            None => Ok(()),
        }
    }

    /// Events the consumer has received so far.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.live
            .as_ref()
            .map_or(0, |l| l.delivered.load(Ordering::Relaxed))
    }

    /// The kernel-side counters now.
    ///
    /// # Errors
    /// When the maps cannot be read.
    pub fn counters(&self) -> Result<KernelCounters, TraceError> {
        match &self.live {
            Some(live) => live.tracer.counters(),
            None => Ok(KernelCounters::default()),
        }
    }

    /// Ring size in bytes (0 in mode off).
    #[must_use]
    pub fn ring_bytes(&self) -> u32 {
        self.live.as_ref().map_or(0, |l| l.ring_bytes)
    }

    /// The loaded programs' cumulative statistics now, by program name.
    #[must_use]
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let Some(live) = &self.live else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, program) in live.tracer.ebpf.programs() {
            // Only loaded programs have an fd (the object also holds the doctor's probes).
            let Ok(info) = program.info() else { continue };
            out.push(ProgramStats {
                program: name.to_owned(),
                id: info.id(),
                run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                run_cnt: info.run_count(),
            });
        }
        out.sort_by(|a, b| a.program.cmp(&b.program));
        out
    }

    /// Detach (nothing new arrives after this), read the counters, drain the ring to the
    /// end, and return everything. No settle time is needed: an event is in the ring
    /// before the packet it describes moves on.
    ///
    /// # Errors
    /// When a detach, the counters or the reader fail.
    pub async fn finish(mut self) -> Result<SessionOutcome, TraceError> {
        let Some(mut live) = self.live.take() else {
            return Ok(SessionOutcome::default());
        };
        let tracked_threads = live.tracer.tracked_threads().len();
        live.tracer.detach_all()?;
        let counters = live.tracer.counters()?;
        if let Some(slots) = live.record_slots {
            let events = live.tracer.read_recorder(slots)?;
            let n = events.len() as u64;
            return Ok(SessionOutcome {
                delivered: n,
                events: if live.keep_events { events } else { Vec::new() },
                counters,
                reader: ReaderStats {
                    decoded: n,
                    ..ReaderStats::default()
                },
                ring_bytes: 0,
                record_slots: slots,
                tracked_threads,
            });
        }
        live.resume_reader();
        if let Some(stop) = live.stop.take() {
            let _ = stop.send(());
        }
        let reader = match std::mem::replace(&mut live.reader, ReaderState::Gone) {
            ReaderState::Running(task) => task.await??,
            _ => ReaderStats::default(),
        };
        let events = (&mut live.consumer).await?;
        Ok(SessionOutcome {
            delivered: live.delivered.load(Ordering::Relaxed),
            events,
            counters,
            reader,
            ring_bytes: live.ring_bytes,
            record_slots: 0,
            tracked_threads,
        })
    }
}

impl Live {
    fn resume_reader(&mut self) {
        match std::mem::replace(&mut self.reader, ReaderState::Gone) {
            ReaderState::Held(held) => {
                let (reader, tx, stop_rx) = *held;
                self.reader =
                    ReaderState::Running(tokio::spawn(reader.run(tx, stop_rx, self.drain_every)));
            }
            other => self.reader = other,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A session dropped without `finish` (an error, Ctrl-C): stop its tasks; the
        // tracer's own Drop detaches everything.
        if let ReaderState::Running(task) = &self.reader {
            task.abort();
        }
        self.consumer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_has_room_for_every_expected_event_on_one_cpu() {
        assert_eq!(recorder_slots_for(0, 2), 1024);
        assert_eq!(recorder_slots_for(50_000, 2), 50_000);
        // 256 MiB over 64 CPUs x 2 regions of 56-byte events.
        assert_eq!(recorder_slots_for(u64::MAX, 64), 37_449);
    }

    #[test]
    fn ring_fits_twice_the_expected_events() {
        assert_eq!(RING_RECORD_BYTES, 64);
        assert_eq!(ring_bytes_for(0), 1 << 20);
        // 100k events x 64 B x 2 = 12.8 MB -> 16 MiB.
        assert_eq!(ring_bytes_for(100_000), 1 << 24);
        assert_eq!(ring_bytes_for(u64::MAX), 1 << 30);
        for n in [1_000, 8_192, 8_193, 50_000, 3_000_000] {
            let r = u64::from(ring_bytes_for(n));
            assert!(r.is_power_of_two());
            assert!(
                r >= n * RING_RECORD_BYTES * 2,
                "{n} events fit below the watermark"
            );
        }
    }
}

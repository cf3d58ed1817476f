//! What the benchmark runs: the agent's `stream` and `blast` clients, and a tracing
//! session (the real tracer, attached to every hook of a lab path, with the real
//! ring-buffer reader feeding a consumer that only counts).
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use netbench_common::HopEvent;
use serde::Deserialize;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use tokio::process::Command;

use super::{
    BenchError, ECHO_PORT, MSG_SIZE,
    figures::ProgramSample,
    process::{self, Server},
};
use crate::{
    agent::{self, AgentError},
    netns::NetnsRef,
    trace::{
        EventReader, HookDevice, KernelCounters, ReaderStats, TcMode, TraceConfig, TraceError,
        Tracer,
    },
};

/// The agent's `stream` line.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct StreamLine {
    pub bytes: u64,
    pub seconds: f64,
    pub gbps: f64,
}

/// The agent's `blast` line.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct BlastLine {
    pub sent: u64,
    pub refused: u64,
    pub no_buffer: u64,
    pub seconds: f64,
}

/// The first JSON line of `text` whose `"event"` is `event`, decoded.
///
/// # Errors
/// When there is no such line or it does not decode.
pub fn parse_event_line<T: serde::de::DeserializeOwned>(
    text: &str,
    event: &str,
) -> Result<T, String> {
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("event").and_then(serde_json::Value::as_str) == Some(event) {
            return serde_json::from_value(v)
                .map_err(|e| format!("bad {event} line {line:?}: {e}"));
        }
    }
    Err(format!("no {event:?} line in the agent's output"))
}

fn protocol(ns: &NetnsRef, msg: String) -> BenchError {
    BenchError::Agent(AgentError::Protocol {
        netns: ns.to_string(),
        msg,
    })
}

fn agent_command(
    ns: &NetnsRef,
    args: &[String],
    cpu: Option<usize>,
) -> Result<Command, BenchError> {
    let bin = agent::locate().map_err(AgentError::NotFound)?;
    process::command(ns, bin, "netbench-agent", args, cpu)
}

/// `netbench-agent serve` in `ns` on [`ECHO_PORT`] (sink on the next port).
///
/// # Errors
/// When it cannot start or does not become ready.
pub async fn serve(ns: &NetnsRef, cpu: Option<usize>) -> Result<Server, BenchError> {
    let args = [
        "serve",
        "--port",
        &ECHO_PORT.to_string(),
        "--max-seconds",
        "3600",
    ]
    .map(str::to_owned);
    Server::start(
        agent_command(ns, &args, cpu)?,
        "netbench-agent",
        "\"ready\"",
    )
    .await
}

/// Run the agent with `args` in `ns` to completion, at most `limit`; its stdout.
async fn run_agent(
    ns: &NetnsRef,
    args: &[String],
    limit: Duration,
    cpu: Option<usize>,
) -> Result<String, BenchError> {
    process::run_client(agent_command(ns, args, cpu)?, "netbench-agent", limit).await
}

/// `netbench-agent rr` (UDP, back to back) from `ns`: the probes' round trips in ns.
///
/// # Errors
/// When the agent fails or prints garbage.
pub async fn rr(
    ns: &NetnsRef,
    server: SocketAddr,
    count: u64,
    run_id: u32,
    cpu: Option<usize>,
) -> Result<Vec<u64>, BenchError> {
    let args = [
        "rr".to_owned(),
        "--server".to_owned(),
        server.to_string(),
        "--proto".to_owned(),
        "udp".to_owned(),
        "--count".to_owned(),
        count.to_string(),
        "--size".to_owned(),
        MSG_SIZE.to_string(),
        "--run-id".to_owned(),
        run_id.to_string(),
        "--timeout-ms".to_owned(),
        "1000".to_owned(),
        "--max-seconds".to_owned(),
        "600".to_owned(),
    ];
    let out = run_agent(ns, &args, Duration::from_secs(610), cpu).await?;
    let probes = agent::parse_rr_output(&out).map_err(|m| protocol(ns, m))?;
    Ok(probes.iter().filter_map(|p| p.rtt_ns).collect())
}

/// `netbench-agent stream` from `ns` to the sink at `sink` for `seconds`.
///
/// # Errors
/// When the agent fails or reports nothing.
pub async fn stream(
    ns: &NetnsRef,
    sink: SocketAddr,
    seconds: f64,
    cpu: Option<usize>,
) -> Result<StreamLine, BenchError> {
    let args = [
        "stream".to_owned(),
        "--server".to_owned(),
        sink.to_string(),
        "--seconds".to_owned(),
        format!("{seconds}"),
    ];
    let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(30);
    let out = run_agent(ns, &args, limit, cpu).await?;
    parse_event_line(&out, "stream").map_err(|m| protocol(ns, m))
}

/// One `netbench-agent blast` sender.
#[derive(Clone, Debug)]
pub struct BlastSpec {
    pub target: SocketAddr,
    /// Datagrams per second (0 = as fast as possible).
    pub rate: u32,
    pub count: u64,
    pub seconds: f64,
    pub size: u32,
    pub run_id: u32,
}

/// Run one blast per entry of `cpus` in parallel from `ns` (each pinned there, or not
/// for `None`); their lines, in order.
///
/// # Errors
/// When a sender fails.
pub async fn blast(
    ns: &NetnsRef,
    spec: &BlastSpec,
    cpus: &[Option<usize>],
) -> Result<Vec<BlastLine>, BenchError> {
    let args = [
        "blast".to_owned(),
        "--server".to_owned(),
        spec.target.to_string(),
        "--rate".to_owned(),
        spec.rate.to_string(),
        "--count".to_owned(),
        spec.count.to_string(),
        "--seconds".to_owned(),
        format!("{}", spec.seconds),
        "--size".to_owned(),
        spec.size.to_string(),
        "--run-id".to_owned(),
        spec.run_id.to_string(),
    ];
    let limit = Duration::from_secs_f64(spec.seconds) + Duration::from_secs(30);
    let runs = cpus.iter().map(|&cpu| run_agent(ns, &args, limit, cpu));
    let outs = futures::future::try_join_all(runs).await?;
    outs.iter()
        .map(|o| parse_event_line(o, "blast").map_err(|m| protocol(ns, m)))
        .collect()
}

/// The tracer attached to a path, its reader feeding a consumer that only counts.
pub struct Tracing {
    tracer: Tracer,
    stop: oneshot::Sender<()>,
    reader: ReaderState,
    consumer: JoinHandle<()>,
    delivered: Arc<AtomicU64>,
    /// Ids of the programs this session loaded (for the leftover check).
    pub program_ids: Vec<u32>,
}

type ReaderTask = JoinHandle<Result<ReaderStats, TraceError>>;

/// The reader runs from the start, or is held back (events pile up in the ring) until
/// [`Tracing::resume`].
enum ReaderState {
    Running(ReaderTask),
    Held(
        Box<(
            EventReader,
            mpsc::Sender<Vec<HopEvent>>,
            oneshot::Receiver<()>,
        )>,
    ),
    Gone,
}

/// What a tracing session saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracingOutcome {
    pub counters: KernelCounters,
    pub reader: ReaderStats,
    /// Events that reached the consumer.
    pub delivered: u64,
}

impl Tracing {
    /// Load the tracer with `config`, attach it to every hook, start the reader.
    ///
    /// # Errors
    /// When loading or attaching fails (whatever was attached is detached).
    pub fn start(config: &TraceConfig, hooks: &[HookDevice]) -> Result<Self, BenchError> {
        let mut t = Self::start_held(config, hooks)?;
        t.resume();
        Ok(t)
    }

    /// Like [`Self::start`], but the reader only starts at [`Self::resume`].
    ///
    /// # Errors
    /// When loading or attaching fails (whatever was attached is detached).
    pub fn start_held(config: &TraceConfig, hooks: &[HookDevice]) -> Result<Self, BenchError> {
        let mut tracer = Tracer::load(config)?;
        for hook in hooks {
            tracer.attach(hook, TcMode::Auto)?;
        }
        let program_ids = program_samples(&tracer).iter().map(|s| s.id).collect();
        let reader = tracer.take_reader()?;
        // The channel the lab uses: bounded, drained by a task that never blocks.
        let (tx, mut rx) = mpsc::channel::<Vec<HopEvent>>(1024);
        let (stop, stop_rx) = oneshot::channel();
        let delivered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&delivered);
        let consumer = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                count.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        });
        Ok(Self {
            tracer,
            stop,
            reader: ReaderState::Held(Box::new((reader, tx, stop_rx))),
            consumer,
            delivered,
            program_ids,
        })
    }

    /// Start the reader if it is held back.
    pub fn resume(&mut self) {
        if let ReaderState::Held(held) = std::mem::replace(&mut self.reader, ReaderState::Gone) {
            let (reader, tx, stop_rx) = *held;
            self.reader = ReaderState::Running(tokio::spawn(reader.run(tx, stop_rx)));
        }
    }

    /// Events the consumer has counted so far.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The kernel-side counters now.
    ///
    /// # Errors
    /// When the maps cannot be read.
    pub fn counters(&self) -> Result<KernelCounters, BenchError> {
        Ok(self.tracer.counters()?)
    }

    /// The tracer's programs' cumulative statistics now.
    #[must_use]
    pub fn samples(&self) -> Vec<ProgramSample> {
        program_samples(&self.tracer)
    }

    /// Let the reader drain what is in the ring, stop it, read the counters, detach.
    ///
    /// # Errors
    /// When the reader failed or the counters cannot be read.
    pub async fn finish(mut self) -> Result<TracingOutcome, BenchError> {
        self.resume();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.stop.send(());
        let reader = match std::mem::replace(&mut self.reader, ReaderState::Gone) {
            ReaderState::Running(task) => task.await??,
            _ => ReaderStats::default(),
        };
        self.consumer.await?;
        let delivered = self.delivered.load(Ordering::Relaxed);
        let counters = self.tracer.counters()?;
        self.tracer.detach_all()?;
        Ok(TracingOutcome {
            counters,
            reader,
            delivered,
        })
    }
}

/// Run-time statistics of the tracer's programs (meaningful while BPF stats are on).
fn program_samples(tracer: &Tracer) -> Vec<ProgramSample> {
    let mut out = Vec::new();
    for (name, program) in tracer.ebpf.programs() {
        // Only loaded programs have an fd (the object also holds the doctor's probes).
        let Ok(info) = program.info() else { continue };
        out.push(ProgramSample {
            program: name.to_owned(),
            id: info.id(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_cnt: info.run_count(),
        });
    }
    out.sort_by(|a, b| a.program.cmp(&b.program));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agent_lines() {
        let text = r#"{"event":"sink","bytes":5}
{"event":"stream","bytes":1250000000,"seconds":1.000100,"gbps":9.999000}
"#;
        let s: StreamLine = parse_event_line(text, "stream").unwrap();
        assert_eq!(
            s,
            StreamLine {
                bytes: 1_250_000_000,
                seconds: 1.0001,
                gbps: 9.999
            }
        );
        let b: BlastLine = parse_event_line(
            r#"{"event":"blast","sent":100,"refused":1,"no_buffer":0,"seconds":0.5,"rate":200.0}"#,
            "blast",
        )
        .unwrap();
        assert_eq!((b.sent, b.refused, b.seconds), (100, 1, 0.5));
        assert!(parse_event_line::<StreamLine>("garbage\n{}", "stream").is_err());
        assert!(
            parse_event_line::<StreamLine>(r#"{"event":"stream","bytes":"x"}"#, "stream")
                .unwrap_err()
                .contains("bad stream line")
        );
    }
}

//! `netbench bench`: measure the measurer. Side by side in one run, on lab paths
//! netbench builds itself:
//!
//! 1. per-program cost (BPF run-time statistics) under rr, stream and blast load,
//! 2. throughput impact of tracing (off, count-only, full) on an agent TCP stream,
//! 3. capacity: the highest hop-event rate delivered to userspace without loss, and
//!    where loss starts, for the default and a larger ring buffer; the reader's own
//!    drain rate,
//! 4. accuracy: agent rr (untraced) against `sockperf ping-pong` (client and server
//!    on one CPU, and on two), agent stream against iperf3,
//! 5. the observer effect on the lab veth and bridge paths (traced / untraced round
//!    trips, interleaved blocks, one CPU and two),
//! 6. the observer effect of the default Docker experiment's bridge pair,
//! 7. wall time of the default experiment.
//!
//! Every run traces through [`crate::trace::Session`], as `lab` and `run` do. Figures
//! are decided against the targets on their 95% CI (met / NOT met /
//! unresolved), never asserted. `--short` (CI) uses small counts and checks that every
//! figure is sane (finite, non-zero), that the kernel's event count equals delivered +
//! lost, that the reader was not woken per event, and that nothing is left behind.
mod accuracy;
mod capacity;
mod checks;
mod cost;
mod docker;
pub mod figures;
#[cfg(test)]
mod fixture;
mod host;
mod process;
mod render;
mod rtt_effect;
mod throughput;
pub mod tools;
mod verdicts;
mod walltime;
pub mod workload;

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Instant,
};

pub use accuracy::AccuracyFigures;
pub use capacity::CapacityFigures;
pub use cost::CostFigures;
pub use docker::DockerEffect;
pub use render::render;
pub use rtt_effect::EffectFigures;
use serde::Serialize;
pub use throughput::ThroughputFigures;
pub use walltime::WallTime;

use crate::{
    agent::AgentError, lab::LabTopology, netlink::NetlinkError, results::Env, trace::TraceError,
};

/// Agent echo port (UDP+TCP); its bandwidth sink listens on the next port.
pub const ECHO_PORT: u16 = 7301;
pub const SINK_PORT: u16 = ECHO_PORT + 1;
/// Where blast datagrams go: nothing listens there, so they are dropped right after the
/// server's device (the hops before that are traced).
pub const BLAST_PORT: u16 = 7303;
pub const SOCKPERF_PORT: u16 = 7311;
pub const IPERF_PORT: u16 = 7312;
/// Probe size of every latency comparison.
pub const MSG_SIZE: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("building the lab {path} path")]
    Topology {
        path: &'static str,
        #[source]
        source: NetlinkError,
    },
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("{tool}: {msg}")]
    Tool { tool: &'static str, msg: String },
    #[error("BPF run-time statistics: {0}")]
    Stats(String),
    #[error("task")]
    Join(#[from] tokio::task::JoinError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The measurements, in the order they run.
pub const SECTIONS: [&str; 7] = [
    "cost",
    "throughput",
    "capacity",
    "accuracy",
    "observer",
    "docker",
    "walltime",
];

/// Sizes of one run: `short()` for CI, `full()` by hand.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    pub short: bool,
    /// Repetitions of every load of the cost section.
    pub cost_reps: u32,
    /// rr probes while measuring per-program cost.
    pub cost_rr_probes: u64,
    /// Blast load while measuring per-program cost: datagrams per second, seconds.
    pub cost_blast_rate: u32,
    pub cost_blast_seconds: f64,
    /// Seconds of each stream of the cost section.
    pub cost_stream_seconds: u32,
    /// Seconds of each stream of the iperf3 comparison.
    pub stream_seconds: u32,
    /// Seconds of each stream of the throughput section, and its repetitions per mode.
    pub throughput_seconds: u32,
    pub throughput_reps: u32,
    /// Capacity ladder: (datagrams per second per sender, senders); 0 = unpaced.
    pub capacity_steps: Vec<(u32, u32)>,
    pub capacity_seconds: f64,
    /// Repetitions of the top steps (on the first ring) that decide the target.
    pub capacity_reps: u32,
    pub capacity_rep_steps: Vec<(u32, u32)>,
    pub capacity_rep_seconds: f64,
    /// Ring sizes to test: the default first.
    pub ring_bytes: Vec<u32>,
    /// Ring filled for the reader's drain rate.
    pub drain_ring_bytes: u32,
    /// Repetitions of the round-trip comparison, and of the bandwidth comparison.
    pub accuracy_reps: u32,
    pub accuracy_stream_reps: u32,
    pub sockperf_seconds: u32,
    /// Observer effect on the lab paths: block pairs per path and placement, probes
    /// per block.
    pub observer_pairs: u32,
    pub observer_probes: u64,
    /// The Docker experiment's bridge pair: repetitions (one block pair each), probes
    /// per block, bandwidth seconds.
    pub docker_reps: u32,
    pub docker_probes: u64,
    pub docker_seconds: u64,
    /// CPUs of the client and the server of every pair.
    pub placement: Placement,
    /// Which measurements run: [`SECTIONS`] by default.
    pub sections: Vec<String>,
    /// The default experiment's command line (netbench arguments) to time; empty: skip.
    #[serde(skip)]
    pub default_cmd: Vec<OsString>,
}

/// Where clients and servers run: pinned to two different CPUs, the same for every
/// tool, so that scheduler placement never decides a comparison. `None`: unpinned.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Placement {
    pub client_cpu: Option<usize>,
    pub server_cpu: Option<usize>,
}

impl Placement {
    /// The first two CPUs this process may use; unpinned on a one-CPU machine.
    #[must_use]
    pub fn detect() -> Self {
        process::client_server_cpus().map_or_else(Self::default, |(c, s)| Self {
            client_cpu: Some(c),
            server_cpu: Some(s),
        })
    }

    /// The two placements of every round-trip comparison: the client on the server's
    /// CPU, then on its own.
    #[must_use]
    pub fn both(self) -> [Placed; 2] {
        let with_client_on = |placement, client_cpu| Placed {
            placement,
            cpus: Self {
                client_cpu,
                server_cpu: self.server_cpu,
            },
        };
        [
            with_client_on("same-cpu", self.server_cpu),
            with_client_on("cross-cpu", self.client_cpu),
        ]
    }
}

/// One comparison's placement, named.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Placed {
    /// `same-cpu` (client and server share a CPU: no cross-CPU wake-up in the round
    /// trip, the tools' own work dominates) or `cross-cpu` (two wake-ups across CPUs,
    /// which on a VM dominate the round trip and vary with its timing).
    pub placement: &'static str,
    #[serde(flatten)]
    pub cpus: Placement,
}

impl BenchConfig {
    #[must_use]
    pub fn short() -> Self {
        Self {
            short: true,
            cost_reps: 2,
            cost_rr_probes: 300,
            cost_blast_rate: 20_000,
            cost_blast_seconds: 0.3,
            cost_stream_seconds: 1,
            stream_seconds: 1,
            throughput_seconds: 1,
            throughput_reps: 1,
            capacity_steps: vec![(20_000, 1), (50_000, 1)],
            capacity_seconds: 0.3,
            capacity_reps: 2,
            capacity_rep_steps: vec![(50_000, 1)],
            capacity_rep_seconds: 0.3,
            drain_ring_bytes: 1 << 22,
            ring_bytes: vec![1 << 22, 1 << 26],
            accuracy_reps: 1,
            accuracy_stream_reps: 1,
            // sockperf --no-rdtsc finds no valid observation in 1 s (its warm-up eats it).
            sockperf_seconds: 2,
            observer_pairs: 2,
            observer_probes: 200,
            docker_reps: 2,
            docker_probes: 200,
            docker_seconds: 1,
            placement: Placement::detect(),
            // The Docker experiment takes longer than the rest of short mode: by hand
            // (`--only docker`).
            sections: SECTIONS
                .iter()
                .filter(|s| **s != "docker")
                .map(|s| (*s).to_owned())
                .collect(),
            default_cmd: Vec::new(),
        }
    }

    #[must_use]
    pub fn full() -> Self {
        Self {
            short: false,
            cost_reps: 5,
            cost_rr_probes: 10_000,
            cost_blast_rate: 100_000,
            cost_blast_seconds: 1.5,
            cost_stream_seconds: 2,
            stream_seconds: 5,
            throughput_seconds: 3,
            throughput_reps: 8,
            capacity_steps: vec![
                (50_000, 1),
                (100_000, 1),
                (150_000, 1),
                (200_000, 1),
                (250_000, 1),
                (300_000, 1),
                (400_000, 1),
                (0, 1),
                (0, 2),
            ],
            capacity_seconds: 1.0,
            capacity_reps: 6,
            capacity_rep_steps: vec![(0, 1), (0, 2)],
            capacity_rep_seconds: 1.5,
            drain_ring_bytes: 1 << 26,
            ring_bytes: vec![1 << 22, 1 << 26],
            accuracy_reps: 10,
            accuracy_stream_reps: 5,
            sockperf_seconds: 2,
            observer_pairs: 12,
            observer_probes: 3000,
            docker_reps: 8,
            docker_probes: 2000,
            docker_seconds: 1,
            placement: Placement::detect(),
            sections: SECTIONS.map(str::to_owned).to_vec(),
            default_cmd: Vec::new(),
        }
    }

    /// Whether `section` (one of [`SECTIONS`]) is to run.
    #[must_use]
    pub fn wants(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

/// A section that failed: the rest of the run goes on.
#[derive(Clone, Debug, Serialize)]
pub struct SectionError {
    pub section: &'static str,
    pub error: String,
}

/// `kernel.bpf_stats_enabled` around the run: statistics are switched on with a
/// `BPF_ENABLE_STATS` fd (reference-counted; closing it restores the previous state).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsToggle {
    pub method: &'static str,
    pub sysctl_before: Option<u8>,
    pub sysctl_after: Option<u8>,
}

/// Everything one run measured: written as JSON, rendered as text.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub schema: u32,
    pub kind: &'static str,
    pub mode: &'static str,
    pub env: Env,
    pub config: BenchConfig,
    #[serde(flatten)]
    pub measured: Measured,
    pub wall_time: WallTime,
    pub targets: Vec<figures::Verdict>,
    pub bpf_stats: StatsToggle,
    /// How busy the machine was apart from the benchmark.
    pub machine_load: host::MachineLoad,
    pub errors: Vec<SectionError>,
    /// Namespaces, programs or processes of this run still present at its end.
    pub leftovers: Vec<String>,
    /// Sanity problems (non-finite or zero figures, errors, leftovers): empty = ok.
    pub problems: Vec<String>,
    pub elapsed_s: f64,
}

impl BenchReport {
    /// Write the report as pretty JSON (creating the parent directory).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        let io = |source| BenchError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, text + "\n").map_err(io)
    }
}

/// Progress lines go to stderr so stdout carries only the figures.
fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

/// Build a lab path for one section.
async fn topology(path: &'static str, tag: &str) -> Result<LabTopology, BenchError> {
    let built = match path {
        "bridge" => LabTopology::bridge(tag).await,
        _ => LabTopology::veth(tag).await,
    };
    built.map_err(|source| BenchError::Topology { path, source })
}

fn sink_of(topo: &LabTopology) -> SocketAddr {
    SocketAddr::new(topo.server.ip.into(), SINK_PORT)
}

fn echo_of(topo: &LabTopology) -> SocketAddr {
    SocketAddr::new(topo.server.ip.into(), ECHO_PORT)
}

/// A run id for this process's probes.
fn run_id(salt: u32) -> u32 {
    std::process::id().rotate_left(8) ^ 0x4e42_0000 ^ salt
}

/// A section's figures, or its error noted in `errors`.
fn keep<T>(
    errors: &mut Vec<SectionError>,
    section: &'static str,
    result: Result<T, BenchError>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let error = crate::error::one_line(&e);
            progress(&format!("{section} failed: {error}"));
            errors.push(SectionError { section, error });
            None
        }
    }
}

/// The figures of the sections that ran (`None`: not selected, or failed).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    pub cost: Option<CostFigures>,
    pub throughput: Option<ThroughputFigures>,
    pub capacity: Option<CapacityFigures>,
    pub accuracy: Option<AccuracyFigures>,
    pub observer: Option<EffectFigures>,
    pub docker: Option<DockerEffect>,
}

/// The progress line that starts a section.
fn heading(section: &str) -> &'static str {
    match section {
        "cost" => "1. per-program cost (rr, stream and blast load, lab bridge path)",
        "throughput" => "2. throughput impact (agent stream, lab bridge path)",
        "capacity" => "3. capacity (blast datagrams, lab bridge path)",
        "accuracy" => "4. accuracy (sockperf and iperf3, lab bridge path)",
        "observer" => "5. observer effect (traced / untraced blocks, lab veth and bridge paths)",
        "docker" => "6. observer effect of the Docker experiment's bridge pair (netbench run)",
        _ => "",
    }
}

/// Runs the selected sections; failures go to `errors`.
struct Sections<'a> {
    config: &'a BenchConfig,
    errors: &'a mut Vec<SectionError>,
}

impl Sections<'_> {
    /// `measure`'s figures when `section` is selected and succeeds; its error is noted.
    async fn run<T>(
        &mut self,
        section: &'static str,
        measure: impl Future<Output = Result<T, BenchError>>,
    ) -> Option<T> {
        if !self.config.wants(section) {
            return None;
        }
        progress(heading(section));
        keep(self.errors, section, measure.await)
    }
}

/// Every selected section but the wall time, in order; failures go to `errors`.
async fn measure_sections(
    config: &BenchConfig,
    errors: &mut Vec<SectionError>,
    ids: &mut Vec<u32>,
) -> Measured {
    let mut s = Sections { config, errors };
    Measured {
        cost: s.run("cost", cost::measure(config, ids)).await,
        throughput: s.run("throughput", throughput::measure(config, ids)).await,
        capacity: s.run("capacity", capacity::measure(config, ids)).await,
        accuracy: s.run("accuracy", accuracy::measure(config)).await,
        observer: s.run("observer", rtt_effect::measure(config, ids)).await,
        // A whole `netbench run`: its future is large, so it goes on the heap.
        docker: s
            .run(
                "docker",
                Box::pin(async { Ok(docker::measure(config).await) }),
            )
            .await,
    }
}

/// Run every selected measurement in order. Section failures are recorded, not fatal.
pub async fn run(config: &BenchConfig) -> BenchReport {
    let mut machine_load = host::MachineLoad {
        busy_pct_before: host::busy_pct(std::time::Duration::from_secs(1)).await,
        loadavg_1m_before: host::loadavg(),
        loadavg_1m_after: None,
    };
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut program_ids = Vec::new();

    let mut toggle = StatsToggle {
        method: "BPF_ENABLE_STATS fd (reference-counted; held during the cost section and the \
                 count-only+stats streams only)",
        sysctl_before: cost::stats_sysctl(),
        ..StatsToggle::default()
    };
    let measured = measure_sections(config, &mut errors, &mut program_ids).await;
    toggle.sysctl_after = cost::stats_sysctl();

    let wall_time = if config.wants("walltime") {
        walltime::measure(&config.default_cmd).await
    } else {
        WallTime {
            skipped: Some("not selected (--only)".into()),
            ..WallTime::default()
        }
    };
    if let Some(e) = &wall_time.error {
        errors.push(SectionError {
            section: "wall time",
            error: e.clone(),
        });
    }

    let leftovers = host::leftovers(&program_ids, &toggle).await;
    machine_load.loadavg_1m_after = host::loadavg();
    let mut report = BenchReport {
        schema: 2,
        kind: "netbench-bench",
        mode: if config.short { "short" } else { "full" },
        env: Env::local(),
        config: config.clone(),
        measured,
        wall_time,
        targets: Vec::new(),
        bpf_stats: toggle,
        machine_load,
        errors,
        leftovers,
        problems: Vec::new(),
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    report.targets = verdicts::verdicts(&report);
    report.problems = checks::problems(&report);
    report
}

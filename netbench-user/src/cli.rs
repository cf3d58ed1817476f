//! The `netbench` command line as clap parses it (part of the binary, not the library).
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netbench",
    version,
    about = "Where does container network latency go? Per-hop eBPF breakdown of container round trips."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// What this host can run, each item checked for real.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Internal: the KVM probe child process.
        #[arg(long, hide = true)]
        kvm_probe_child: bool,
    },
    /// Trace a path netbench builds itself (no Docker) and split round trips into stages.
    Lab(LabArgs),
    /// Internal: the VMM stand-in of the lab's tap path (relays frames between taps).
    #[command(hide = true)]
    VmmRelay {
        #[arg(long)]
        sandbox_netns: std::path::PathBuf,
        #[arg(long)]
        tap: String,
        #[arg(long)]
        guest_netns: std::path::PathBuf,
        #[arg(long)]
        guest_tap: String,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
    /// Run the study's matrix on real containers (runtimes x driver pairs x CPU stress x
    /// repetitions), every probe traced at every hop. Root; Docker.
    Run(RunArgs),
    /// Re-render tables from a results directory's results.json.
    Report {
        /// The results directory.
        dir: std::path::PathBuf,
    },
    /// Measure the measurer: tracer cost, throughput impact, capacity, and accuracy
    /// against sockperf and iperf3, on lab paths of its own (root). Prints figures and
    /// writes them as JSON.
    Bench {
        /// Small counts; only checks that every figure is sane and nothing is left (CI).
        #[arg(long)]
        short: bool,
        /// JSON file for the figures (default: results/bench-<unix seconds>.json).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Run only these measurements.
        #[arg(long, value_delimiter = ',', value_parser = netbench::bench::SECTIONS)]
        only: Vec<String>,
        /// After `--`: the default experiment's netbench arguments, to time.
        #[arg(last = true)]
        default_cmd: Vec<std::ffi::OsString>,
    },
    /// Remove everything netbench created: namespaces (by their `nb-` prefix), Docker
    /// containers and networks (by their `netbench=1` label), the swarm netbench
    /// initialised, macvlan parent links (by their alias).
    Cleanup {
        /// Also remove netbench's images (rebuilt on the next run).
        #[arg(long)]
        images: bool,
    },
}

/// `netbench run`'s options.
#[derive(clap::Args)]
pub struct RunArgs {
    /// OCI runtimes, comma-separated: runc, kata (or io.containerd.kata.v2), or any
    /// runtime dockerd has registered. Missing ones are reported unsupported.
    #[arg(long, default_value = "runc")]
    pub runtimes: String,
    /// Driver pairs by client driver, comma-separated: bridge = (bridge, bridge),
    /// host = (host, bridge), macvlan = (macvlan, macvlan), overlay = (overlay, overlay).
    #[arg(long, default_value = "bridge,host,macvlan,overlay")]
    pub drivers: String,
    /// CPU stress on the server container, comma-separated: none, cpu.
    #[arg(long, default_value = "none,cpu")]
    pub stress: String,
    /// Repetitions per scenario (1..=1000).
    #[arg(long, default_value_t = 15, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,
    /// Request/response probes per repetition (1..=1000000).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub probes: u64,
    /// Seconds of TCP bulk transfer per repetition (1..=3600).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Results directory (default: results/run-<UTC time>).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// For overlay: initialise a single-node swarm when the engine is not in one
    /// (netbench leaves it again at the end).
    #[arg(long)]
    pub allow_swarm_init: bool,
    /// Parent interface for macvlan (default: a veth pair netbench creates).
    #[arg(long)]
    pub macvlan_parent: Option<String>,
    /// stress-ng CPU workers in the server container (0 = one per CPU).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub stress_cpus: u32,
    /// Tracing while bandwidth is measured: off (detached) or count-only.
    #[arg(long, value_enum, default_value = "off")]
    pub bandwidth_tracing: netbench::experiment::matrix::BandwidthTracing,
    /// Trace the server's scheduler events (run-queue split of its stage): `auto` only
    /// in stressed scenarios (they add to what tracing moves), `on`, `off`.
    #[arg(long, value_enum, default_value = "auto")]
    pub sched: netbench::trace::sched::SchedTracing,
}

/// `netbench lab`'s options.
#[derive(clap::Args)]
pub struct LabArgs {
    /// The path to build.
    #[arg(long, value_enum, default_value = "veth")]
    pub path: netbench::lab::LabPath,
    /// Request/response probes to send (1..=1000000).
    #[arg(long, default_value_t = 2000, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub probes: u64,
    /// Probe message size in bytes (24..=1400).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(24..=1400))]
    pub size: u64,
    /// Transport of the probes.
    #[arg(long, value_parser = ["udp", "tcp"], default_value = "udp")]
    pub proto: String,
    /// Directory for results.json.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// CPU stress while the probes run: `none`, or `cpu` (stress-ng on every CPU).
    #[arg(long, value_enum, default_value = "none")]
    pub stress: netbench::stress::Stress,
    /// Pairs of traced and untraced blocks (ABBA order) the probes are split into;
    /// each mode sends `--probes` in all. The untraced blocks give the round trip
    /// and, against the traced ones, the observer effect.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pairs: u32,
    /// CPUs of the client and server agents: `split` (CPU 0 and 1), `same` (both on
    /// CPU 0) or `any` (unpinned; blocks may land on different placements).
    #[arg(long, value_enum, default_value = "split")]
    pub cpus: netbench::lab::run::Placement,
    /// Trace the server's scheduler events (run-queue split of its stage): `auto` only
    /// with `--stress cpu` (they add to what tracing moves), `on`, `off`.
    #[arg(long, value_enum, default_value = "auto")]
    pub sched: netbench::trace::sched::SchedTracing,
}

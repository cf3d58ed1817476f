//! The `netbench` command line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netbench",
    version,
    about = "Where does container network latency go? Per-hop eBPF breakdown of container round trips."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Lab {
        /// The path to build.
        #[arg(long, value_parser = ["veth", "bridge", "tap"], default_value = "veth")]
        path: String,
        /// Request/response probes to send (1..=1000000).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        probes: u64,
        /// Probe message size in bytes (24..=1400).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(24..=1400))]
        size: u64,
        /// Transport of the probes.
        #[arg(long, value_parser = ["udp", "tcp"], default_value = "udp")]
        proto: String,
        /// Directory for results.json.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// CPU stress while the probes run: `none`, or `cpu` (stress-ng on every CPU).
        #[arg(long, value_parser = ["none", "cpu"], default_value = "none")]
        stress: String,
    },
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
    /// Re-render tables from a results directory's results.json.
    Report {
        /// The results directory.
        dir: std::path::PathBuf,
    },
    /// Remove every namespace netbench created (by its `nb-` prefix).
    Cleanup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One clear line, no backtrace.
            eprintln!("netbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Doctor {
            kvm_probe_child: true,
            ..
        } => Ok(ExitCode::from(
            u8::try_from(netbench::doctor::kvm::child_main()).unwrap_or(1),
        )),
        Command::Doctor { json, .. } => {
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(netbench::doctor::collect());
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render_table());
            }
            Ok(if report.can_run_default() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Lab {
            path,
            probes,
            size,
            proto,
            out,
            stress,
        } => {
            let config = netbench::lab::run::LabConfig {
                path,
                probes,
                size: usize::try_from(size)?,
                proto: if proto == "tcp" { "tcp" } else { "udp" },
                port: 7301,
                stress,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let result = rt.block_on(netbench::lab::run::run_lab(&config))?;
            print!("{}", netbench::lab::run::render_table(&result));
            if let Some(dir) = out {
                let file = netbench::lab::run::write_results(&dir, &result)?;
                println!("results: {}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::VmmRelay {
            sandbox_netns,
            tap,
            guest_netns,
            guest_tap,
            max_seconds,
        } => {
            netbench::lab::vmm::relay_main(
                &sandbox_netns,
                &tap,
                &guest_netns,
                &guest_tap,
                std::time::Duration::from_secs(max_seconds.min(86_400)),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { dir } => {
            let results = netbench::report::Results::load(&dir)?;
            print!("{}", netbench::report::render(&results));
            Ok(ExitCode::SUCCESS)
        }
        Command::Cleanup => {
            let names = netbench::netns::list_owned();
            for name in &names {
                netbench::netns::remove_owned(name)?;
                println!("removed netns {name}");
            }
            if names.is_empty() {
                println!("nothing to clean up");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

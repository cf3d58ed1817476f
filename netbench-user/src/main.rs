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

#[expect(
    clippy::needless_pass_by_value,
    reason = "the parsed command line is consumed here"
)]
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

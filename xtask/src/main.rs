//! `cargo xtask`: what cargo alone cannot do for netbench: install the toolchain pieces
//! and system tools, build the static agent, run every test tier, run the tool as root.

mod apt;
mod bench;
mod build;
mod cmd;
mod elf;
mod setup;
mod test;

use std::{ffi::OsString, os::unix::process::CommandExt as _, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use netbench_common::stamp::utc_timestamp;

use crate::build::Profile;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "netbench developer tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: the eBPF nightly, bpf-linker, Debian packages, tracefs and
    /// bpffs mounts, a running dockerd. Idempotent.
    Setup,
    /// Build `netbench` (with its eBPF object) and the static `netbench-agent` (debug
    /// unless --release).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, lint, build, then run the unit, privileged and end-to-end test tiers.
    Test {
        /// Stop after the unit tests: nothing that needs root.
        #[arg(long)]
        unit_only: bool,
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Set up, build (release), then exec netbench with `NETBENCH_AGENT` set.
    /// Without ARGS: the default experiment, `run` over runc and kata x the four driver
    /// pairs x no/CPU stress, 3 repetitions of 1000 probes and 5 s of bandwidth each,
    /// results in results/<UTC time> (under 10 minutes on 2 cores). ARGS that start with
    /// a subcommand go to netbench as they are; ARGS that start with a flag go to `run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, build (release), then run `netbench bench` as root: tracer cost, throughput
    /// impact, capacity, accuracy against sockperf/iperf3, and (full mode) the default
    /// experiment's wall time. Prints figures; writes JSON (default
    /// results/bench-<UTC time>.json). No timed assertions.
    Bench {
        /// Small counts; checks only that every figure is sane and nothing is left (CI).
        #[arg(long)]
        short: bool,
        /// Where to write the figures as JSON.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_task(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::all(),
        Task::Build { release } => {
            setup::toolchains()?;
            let profile = if release {
                Profile::Release
            } else {
                Profile::Debug
            };
            println!("build ({})", profile.dir());
            build::build(profile).map(drop)
        }
        Task::Test { unit_only, no_lint } => test::test(test::Options { unit_only, no_lint }),
        Task::Run { args } => run_netbench(args),
        Task::Bench { short, out } => bench::bench(bench::Options { short, out }),
    }
}

/// Replaces xtask with netbench, so signals and the exit code are netbench's own.
fn run_netbench(mut args: Vec<OsString>) -> Result<()> {
    setup::all()?;
    println!("build (release)");
    let bins = build::build(Profile::Release)?;
    if args.is_empty() {
        args = default_run_args(cmd::workspace_root().join("results").join(utc_timestamp()));
    } else if args[0].to_string_lossy().starts_with('-') {
        args.insert(0, "run".into());
    }
    let mut netbench = cmd::command(&bins.netbench);
    netbench.args(args).env("NETBENCH_AGENT", &bins.agent);
    println!("$ {}", cmd::display(&netbench));
    let err = netbench.exec();
    Err(err).with_context(|| format!("exec {}", bins.netbench.display()))
}

/// netbench's arguments for the default experiment, writing its results to `out`
/// (`cargo xtask bench` times exactly this).
fn default_run_args(out: std::path::PathBuf) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "run",
        "--runtimes",
        "runc,kata",
        "--drivers",
        "bridge,host,macvlan,overlay",
        "--stress",
        "none,cpu",
        "--reps",
        "3",
        "--probes",
        "1000",
        "--duration",
        "5",
        "--allow-swarm-init",
        "--out",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(out.into());
    args
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_passes_arguments_through() {
        for argv in [
            &["xtask", "run", "--", "--reps", "3"][..],
            &["xtask", "run", "--reps", "3"][..],
        ] {
            let Task::Run { args } = Cli::parse_from(argv).task else {
                panic!("not run");
            };
            assert_eq!(args, ["--reps", "3"]);
        }
    }
}

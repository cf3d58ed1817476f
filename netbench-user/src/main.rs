//! The `netbench` command line.
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};

mod cli;

use cli::{Cli, Command, LabArgs, RunArgs};

fn main() -> ExitCode {
    tighten_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    if !matches!(
        cli.command,
        Command::VmmRelay { .. }
            | Command::Cleanup { .. }
            | Command::Doctor {
                kvm_probe_child: true,
                ..
            }
    ) && let Some(notice) = netbench::ledger::stale_notice()
    {
        netbench::out::eprintln(&notice);
    }
    let code = run(cli);
    // Every exit path ends here: what the ledger still lists goes (normally nothing).
    let left = netbench::exit::sweep();
    match code {
        Ok(code) if left > 0 && code == ExitCode::SUCCESS => ExitCode::FAILURE,
        Ok(code) => code,
        Err(e) => {
            // One clear line, no backtrace.
            netbench::out::eprintln(&format!("netbench: {}", one_line(&e)));
            if e.is::<Usage>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Bad input found after clap's parsing (a list item, a path): exit code 2, as clap's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Nothing netbench writes (results, plots, figures) is group- or world-writable,
/// whatever umask it was started with.
fn tighten_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o022));
    umask(old | Mode::S_IWGRP | Mode::S_IWOTH);
}

/// `--help` and `--version` as clap prints them (stdout, exit 0); any other parse error
/// as one line on stderr (no usage dump), exit 2.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed stdout (`| head`) is not an error here.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            netbench::out::eprintln(&format!("netbench: {}", usage_line(e)));
            ExitCode::from(2)
        }
    }
}

/// A clap error as one line: its first paragraph (the error, with the possible values
/// clap lists under it) and its tips, without the usage and the `--help` hint.
fn usage_line(e: &clap::Error) -> String {
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .collect();
        return format!(
            "missing subcommand ({}); see 'netbench --help'",
            names.join(", ")
        );
    }
    one_line_of(&e.render().to_string())
}

/// The one-line form of clap's rendered error text (see [`usage_line`]).
fn one_line_of(text: &str) -> String {
    let flat = |para: &str| {
        para.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut paras = text.split("\n\n").map(flat).filter(|p| !p.is_empty());
    let first = paras.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(&first).to_owned();
    for tip in paras.filter(|p| p.starts_with("tip:")) {
        line.push_str(" (");
        line.push_str(&tip);
        line.push(')');
    }
    line
}

fn run_lab(a: LabArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "lab needs root (eBPF, network namespaces): run it with sudo"
    );
    if let Some(dir) = &a.out {
        // Before the measurement: a directory that cannot take the results would lose it.
        netbench::results::check_writable(dir)?;
    }
    let config = netbench::lab::run::LabConfig {
        path: a.path,
        probes: a.probes,
        size: usize::try_from(a.size)?,
        proto: if a.proto == "tcp" {
            netbench_common::protocol::Proto::Tcp
        } else {
            netbench_common::protocol::Proto::Udp
        },
        port: 7301,
        stress: a.stress,
        pairs: a.pairs,
        placement: a.cpus,
        sched: a.sched,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let result = match rt.block_on(netbench::exit::or_signal(netbench::lab::run::run_lab(
        &config,
    ))) {
        Ok(result) => result?,
        Err(signal) => return Ok(interrupted(signal)),
    };
    netbench::out::print(&netbench::lab::run::render_table(&result));
    if let Some(dir) = a.out {
        let file = netbench::lab::run::write_results(&dir, &result)?;
        netbench::out::println(&format!("results: {}", file.display()));
    }
    Ok(ExitCode::SUCCESS)
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
                netbench::out::println(&report.to_json());
            } else {
                netbench::out::print(&report.render_table());
            }
            Ok(if report.can_run_default() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Lab(args) => run_lab(args),
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
        Command::Run(args) => run_experiment(args),
        Command::Report { dir } => {
            let results = netbench::results::Results::load(&dir)?;
            netbench::out::print(&netbench::results::render(&results));
            for plot in netbench::plot::write_all(&results, &dir)? {
                netbench::out::println(&format!("plot: {}", plot.display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            short,
            out,
            only,
            default_cmd,
        } => run_bench(short, out, only, default_cmd),
        Command::Cleanup { images } => {
            let stale = cleanup_stale()?;
            let names = netbench::netns::list_owned();
            for name in &names {
                netbench::netns::remove_owned(name)?;
                netbench::out::println(&format!("removed netns {name}"));
            }
            let (docker_removed, failures) = cleanup_docker(images)?;
            let failures = failures + stale.failed.len();
            if stale.removed.is_empty() && names.is_empty() && docker_removed == 0 && failures == 0
            {
                netbench::out::println("nothing to clean up");
            }
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A lab or bench stopped by SIGINT/SIGTERM: its future was dropped (destructors ran);
/// the ledger sweep in `main` removes the rest. Exit 128 + the signal.
fn interrupted(signal: i32) -> ExitCode {
    netbench::out::eprintln(&format!(
        "netbench: interrupted ({}): cleaned up, nothing written",
        if signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "Ctrl-C"
        }
    ));
    ExitCode::from(netbench::exit::signal_exit_code(signal))
}

/// The ledger part of `netbench cleanup`: remove exactly what the state files of killed
/// netbench processes name, one line per object.
fn cleanup_stale() -> anyhow::Result<netbench::reclaim::Swept> {
    for (path, file) in netbench::ledger::others() {
        match file {
            Ok(f) if f.owner_alive() => netbench::out::println(&format!(
                "netbench pid {} is still running: left its objects alone ({})",
                f.pid,
                f.summary()
            )),
            Ok(_) => {}
            Err(why) => netbench::out::eprintln(&format!(
                "netbench: cleanup: unreadable state file {}: {why}",
                path.display()
            )),
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    let swept = rt.block_on(netbench::reclaim::clean_stale());
    for line in swept.lines() {
        netbench::out::println(&line);
    }
    for (what, why) in &swept.failed {
        netbench::out::eprintln(&format!(
            "netbench: cleanup: could not remove {what}: {why}"
        ));
    }
    Ok(swept)
}

/// `netbench run`: the matrix, then the table, the findings and where the results are.
/// Exit code: 0 when every supported scenario ran, 1 when one failed, 130 on Ctrl-C.
fn run_experiment(args: RunArgs) -> anyhow::Result<ExitCode> {
    let out = args.out.unwrap_or_else(|| {
        std::path::PathBuf::from("results")
            .join(format!("run-{}", netbench_common::stamp::utc_timestamp()))
    });
    let config = &netbench::experiment::matrix::RunConfig::from_lists(
        &args.runtimes,
        &args.drivers,
        &args.stress,
        args.reps,
        args.probes,
        args.duration,
        out,
        args.allow_swarm_init,
        args.macvlan_parent,
        args.stress_cpus,
        args.bandwidth_tracing,
        args.sched,
    )
    .map_err(Usage)?;
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "run needs root (eBPF, network namespaces, Docker): run `cargo xtask run`"
    );
    // Before the matrix: a directory that cannot take the results would lose the run.
    netbench::results::check_writable(&config.out)?;
    let rt = tokio::runtime::Runtime::new()?;
    let outcome = rt.block_on(async {
        let cancel = netbench::experiment::Cancel::new();
        cancel.on_signals();
        netbench::experiment::run(config, &cancel).await
    })?;
    netbench::out::println("");
    netbench::out::print(&netbench::results::summary::table(&outcome.results));
    let findings = netbench::results::summary::findings(&outcome.results);
    if !findings.is_empty() {
        netbench::out::println("\nfindings:");
        for f in &findings {
            netbench::out::println(&format!("  - {f}"));
        }
    }
    for failure in &outcome.cleanup.failures {
        netbench::out::eprintln(&format!("cleanup: {failure}"));
    }
    netbench::out::println(&format!(
        "\nresults: {} (results.json, summary.csv{}); stage tables: netbench report {}",
        outcome.dir.join("results.json").display(),
        if outcome.plots.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                outcome
                    .plots
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        outcome.dir.display()
    ));
    Ok(if outcome.interrupted {
        ExitCode::from(outcome.exit_code)
    } else if outcome.failed() > 0 || !outcome.cleanup.failures.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The Docker and host-link part of `netbench cleanup`: (objects removed, failures).
/// A daemon that is not running has nothing of netbench's to remove: that is said, and
/// is not an error.
fn cleanup_docker(images: bool) -> anyhow::Result<(usize, usize)> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut engine = match netbench::docker::Engine::connect_local().await {
            Ok(e) => e,
            Err(e) => {
                netbench::out::println(&format!(
                    "docker: skipped ({})",
                    netbench::error::one_line(&e)
                ));
                // Links netbench created for macvlan do not need the daemon.
                let links = netbench::docker::cleanup::links(None).await?;
                for line in links.lines() {
                    netbench::out::println(&line);
                }
                return Ok((links.links.len(), links.failures.len()));
            }
        };
        let removed = netbench::docker::cleanup::everything(&mut engine, None, images).await;
        for line in removed.lines() {
            netbench::out::println(&line);
        }
        for failure in &removed.failures {
            netbench::out::eprintln(&format!("netbench: cleanup: {failure}"));
        }
        Ok((removed.lines().len(), removed.failures.len()))
    })
}

/// `netbench bench`: run every measurement, print the figures, write the JSON. Exits
/// non-zero when a figure is not sane or something was left behind (never on a figure's
/// value: no timed assertions).
fn run_bench(
    short: bool,
    out: Option<std::path::PathBuf>,
    only: Vec<String>,
    default_cmd: Vec<std::ffi::OsString>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "bench needs root (eBPF, network namespaces): run `cargo xtask bench`"
    );
    let mut config = if short {
        netbench::bench::BenchConfig::short()
    } else {
        netbench::bench::BenchConfig::full()
    };
    config.default_cmd = default_cmd;
    if !only.is_empty() {
        config.sections = only;
    }
    let out = out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::path::PathBuf::from(format!("results/bench-{secs}.json"))
    });
    // Before the measurements: a file that cannot be written would lose the figures.
    if out.is_dir() {
        return Err(Usage(format!(
            "--out: {} is a directory, not a file",
            out.display()
        ))
        .into());
    }
    netbench::results::check_writable(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    )?;
    let rt = tokio::runtime::Runtime::new()?;
    let report = match rt.block_on(netbench::exit::or_signal(netbench::bench::run(&config))) {
        Ok(report) => report,
        Err(signal) => return Ok(interrupted(signal)),
    };
    netbench::out::print(&netbench::bench::render(&report));
    report.write(&out)?;
    netbench::out::println(&format!("figures: {}", out.display()));
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The error and its causes on one line (each says only its own context: see
/// docs/architecture.md, "Errors").
fn one_line(e: &anyhow::Error) -> String {
    netbench::error::one_line(e.as_ref())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, one_line, usage_line};

    fn parse_error(args: &[&str]) -> String {
        let Err(e) = Cli::try_parse_from(std::iter::once("netbench").chain(args.iter().copied()))
        else {
            panic!("{args:?} parsed");
        };
        usage_line(&e)
    }

    #[test]
    fn clap_errors_are_one_line_with_the_valid_values_and_tips() {
        for (args, want) in [
            (
                &["lab", "--path", "x"][..],
                "invalid value 'x' for '--path <PATH>' [possible values: veth, bridge, tap]",
            ),
            (
                &["run", "--reps", "-1"],
                "invalid value '-1' for '--reps <REPS>': -1 is not in 1..=1000",
            ),
            (
                &["run", "--rep", "3"],
                "unexpected argument '--rep' found (tip: a similar argument exists: '--reps')",
            ),
            (
                &["report"],
                "the following required arguments were not provided: <DIR>",
            ),
            (
                &[],
                "missing subcommand (doctor, lab, run, report, bench, cleanup); see 'netbench --help'",
            ),
        ] {
            assert_eq!(parse_error(args), want, "{args:?}");
        }
    }

    #[test]
    fn an_error_chain_is_one_line() {
        let e = anyhow::Error::new(netbench::trace::TraceError::Netns {
            netns: "nb-client".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        })
        .context("lab veth");
        assert_eq!(
            one_line(&e),
            "lab veth: entering netns nb-client: No such file or directory (os error 2)"
        );
    }
}

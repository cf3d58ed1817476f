//! netbench-agent: the tiny static workload binary netbench runs inside containers,
//! network namespaces and VM guests. See `cli::USAGE`.

mod blast;
mod cli;
mod json;
mod probe;
mod rr;
mod serve;
mod stream;
mod sys;

#[cfg(test)]
mod loopback_tests;

use std::{io::Write as _, process::ExitCode, sync::atomic::Ordering};

use cli::Command;
use sys::{STOP, Stop};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => return usage_error(&format!("argument {} is not UTF-8", a.display())),
        }
    }
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = sys::install_stop_signals() {
        return fail(&format!("installing signal handlers: {e}"));
    }
    let result = match cmd {
        // Write errors (e.g. `| head`) are not worth a panic here.
        Command::Help => {
            let _ = std::io::stdout().write_all(cli::USAGE.as_bytes());
            Ok(())
        }
        Command::Version => {
            let _ = writeln!(
                std::io::stdout(),
                "netbench-agent {}",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Command::Serve(o) => {
            serve::bind(&o).map(|server| server.run(&Stop::new(&STOP, o.max), &emit_stdout))
        }
        Command::Rr(o) => rr::run(&o, &Stop::new(&STOP, o.max), &emit_stdout),
        Command::Stream(o) => stream::run(&o, &Stop::new(&STOP, o.duration), &emit_stdout),
        Command::Blast(o) => blast::run(&o, &Stop::new(&STOP, o.max), &emit_stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One JSON line to stdout, flushed at once so a parent sees e.g. "ready" immediately.
/// If stdout is gone nobody can read the results: stop like on SIGTERM.
fn emit_stdout(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        STOP.store(true, Ordering::SeqCst);
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("netbench-agent: {msg} (see netbench-agent --help)");
    ExitCode::from(2)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("netbench-agent: {msg}");
    ExitCode::FAILURE
}

//! How a netbench command ends, whatever ends it.
//!
//! - [`or_signal`]: SIGINT or SIGTERM stops a command's future; dropping it runs its
//!   destructors (namespaces, agents, stress-ng, tc links).
//! - [`sweep`]: the last step of every exit path (normal, error, signal): removes what
//!   the [ledger](crate::ledger) still lists for this process and says what it removed.
//! - [`failpoint`]: named points where a test can make netbench signal itself
//!   (`NETBENCH_FAILPOINT=<point>:<INT|TERM|KILL>`), so that faults at every phase are
//!   tested for real rather than guessed at by timing.
use std::future::Future;

/// Run `f` until it ends or SIGINT/SIGTERM arrives: `Err(signal number)` then, with `f`
/// dropped. Call inside a runtime.
///
/// # Errors
/// The signal that stopped `f`.
pub async fn or_signal<F: Future>(f: F) -> Result<F::Output, i32> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Ok(f.await);
    };
    tokio::select! {
        out = f => Ok(out),
        _ = int.recv() => Err(libc::SIGINT),
        _ = term.recv() => Err(libc::SIGTERM),
    }
}

/// The exit code of a command stopped by `signal`: 128 + its number.
#[must_use]
pub fn signal_exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}

/// Remove what this process still has in the ledger; one stderr line per removed object
/// and per failure. Returns the number of failures. Needs no runtime of its own when the
/// ledger is empty (the usual case).
#[must_use]
pub fn sweep() -> usize {
    if crate::ledger::listed().is_empty() {
        return 0;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("netbench: cleanup: no runtime; run `netbench cleanup`");
        return 1;
    };
    let swept = rt.block_on(crate::reclaim::sweep_own());
    for line in swept.lines() {
        eprintln!("netbench: cleanup: {line}");
    }
    for (what, why) in &swept.failed {
        eprintln!("netbench: cleanup: could not remove {what}: {why}; run `netbench cleanup`");
    }
    swept.failed.len()
}

/// A named point of a run where a test may inject a fault (see the module docs).
pub fn failpoint(point: &str) {
    let Ok(spec) = std::env::var("NETBENCH_FAILPOINT") else {
        return;
    };
    let Some((at, sig)) = spec.split_once(':') else {
        return;
    };
    if at != point {
        return;
    }
    let sig = match sig {
        "INT" => nix::sys::signal::Signal::SIGINT,
        "TERM" => nix::sys::signal::Signal::SIGTERM,
        "KILL" => nix::sys::signal::Signal::SIGKILL,
        _ => return,
    };
    eprintln!("netbench: failpoint {point}: raising {sig}");
    let _ = nix::sys::signal::raise(sig);
    // Let the signal handler task see it before the code goes on, as it would a signal
    // arriving a moment earlier.
    std::thread::sleep(std::time::Duration::from_millis(100));
}

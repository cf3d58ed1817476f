//! The few places the agent talks to libc directly: the monotonic clock, stop signals
//! and `poll`.

use std::{
    io,
    os::fd::RawFd,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// Set by SIGINT/SIGTERM (and when stdout goes away); every loop in the agent checks it.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // An atomic store is async-signal-safe; everything else happens in the loops.
    STOP.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`STOP`] so the agent ends its loops, prints its closing
/// line and exits cleanly instead of dying mid-output.
pub fn install_stop_signals() -> io::Result<()> {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is a valid starting value; the handler only does
        // an atomic store. No SA_RESTART on purpose: a blocking recv then returns EINTR
        // and the loop notices the stop at once instead of after its timeout.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(sig, &raw const sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; the clock ids used here always exist.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// `CLOCK_MONOTONIC` in ns: the clock `bpf_ktime_get_ns` reads, so the agent's send and
/// receive stamps line up with the kernel's hop events on the same host.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// A run id that differs between runs and processes (wall clock mixed with the pid);
/// never 0 so it cannot be mistaken for "unset".
pub fn random_run_id() -> u32 {
    let mut x = clock_ns(libc::CLOCK_REALTIME) ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finalizer: spreads nearby times/pids over all 32 bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let id = u32::try_from(x >> 32).unwrap_or(1);
    if id == 0 { 1 } else { id }
}

/// When a loop must end: a stop flag (signal, or a test) or its time limit.
#[derive(Clone, Copy)]
pub struct Stop<'a> {
    flag: &'a AtomicBool,
    deadline: Instant,
}

impl<'a> Stop<'a> {
    pub fn new(flag: &'a AtomicBool, limit: Duration) -> Self {
        let now = Instant::now();
        // Limits are capped by argument parsing; the fallback only guards the arithmetic.
        let deadline = now
            .checked_add(limit)
            .unwrap_or_else(|| now + Duration::from_hours(1));
        Self { flag, deadline }
    }

    /// Stopped by the flag or out of time.
    pub fn is_set(&self) -> bool {
        self.signalled() || Instant::now() >= self.deadline
    }

    /// Stopped by the flag only (a signal): ends waits that are allowed to run past
    /// the time limit, e.g. the reply wait of a probe already sent.
    pub fn signalled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// Wait up to `timeout` for any of `fds` to become readable; returns one flag per fd.
/// EINTR counts as "nothing ready" so callers re-check their stop condition.
pub fn wait_readable<const N: usize>(fds: [RawFd; N], timeout: Duration) -> io::Result<[bool; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    let nfds = libc::nfds_t::try_from(N).unwrap_or(0);
    // SAFETY: pfds is a valid array of N pollfd structs that outlives the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), nfds, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok([false; N])
        } else {
            Err(err)
        };
    }
    Ok(pfds.map(|p| p.revents != 0))
}

/// Errors that only mean "nothing arrived yet" on a socket with a timeout.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_advances_and_run_ids_are_nonzero() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 1_000_000, "{a} -> {b}");
        assert_ne!(random_run_id(), 0);
    }

    #[test]
    fn stop_by_flag_or_time() {
        let flag = AtomicBool::new(false);
        let s = Stop::new(&flag, Duration::from_mins(1));
        assert!(!s.is_set());
        flag.store(true, Ordering::Relaxed);
        assert!(s.is_set() && s.signalled());
        let flag = AtomicBool::new(false);
        let s = Stop::new(&flag, Duration::ZERO);
        assert!(s.is_set() && !s.signalled());
    }
}

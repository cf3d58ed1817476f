//! Progress: one bar for the whole matrix (repetitions, with ETA) and one for the
//! scenario running now (its repetitions and phase). When stderr is not a terminal the
//! bars stay hidden and each finished scenario is one plain line instead. Also the
//! Ctrl-C handling: the first one asks the run to stop and clean up, a second one exits
//! at once.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::Notify;

const TICK: Duration = Duration::from_millis(500);

/// The matrix's progress display.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    current: Option<ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// `total_reps`: repetitions of every scenario that will run.
    #[must_use]
    pub fn new(total_reps: u64) -> Self {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(total_reps));
        overall.set_style(style(
            "matrix   [{bar:30}] {pos}/{len} reps  {elapsed_precise} elapsed, ETA {eta_precise}  {msg}",
        ));
        overall.enable_steady_tick(TICK);
        Self {
            multi,
            overall,
            current: None,
        }
    }

    /// A scenario starts (`n` of `total`).
    pub fn start_scenario(&mut self, id: &str, n: usize, total: usize, reps: u32) {
        self.overall.set_message(format!("scenario {n}/{total}"));
        let bar = self.multi.add(ProgressBar::new(u64::from(reps)));
        bar.set_style(style(
            "{prefix:32} [{bar:20}] {pos}/{len} reps, ETA {eta}  {msg}",
        ));
        bar.set_prefix(id.to_owned());
        bar.set_message("setting up");
        bar.enable_steady_tick(TICK);
        self.current = Some(bar);
    }

    /// What the current scenario is doing.
    pub fn phase(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.current {
            bar.set_message(msg.into());
        }
    }

    /// Probes are about to run (`true`) or are done (`false`): the bars' steady ticks (a
    /// thread waking every 500 ms) stop for the burst, so nothing of netbench's wakes a
    /// CPU while probes are in flight. Messages set meanwhile show at the next tick.
    pub fn measuring(&self, on: bool) {
        for bar in std::iter::once(&self.overall).chain(self.current.as_ref()) {
            if on {
                bar.disable_steady_tick();
            } else {
                bar.enable_steady_tick(TICK);
            }
        }
    }

    pub fn rep_done(&self) {
        self.overall.inc(1);
        if let Some(bar) = &self.current {
            bar.inc(1);
        }
    }

    /// The current scenario ended; `line` summarises it. Repetitions it did not run
    /// (`skipped`) are taken off the total so the ETA stays right.
    pub fn finish_scenario(&mut self, line: &str, skipped: u64) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if skipped > 0 {
            let len = self.overall.length().unwrap_or(0);
            self.overall.set_length(len.saturating_sub(skipped));
        }
        self.println(line);
    }

    /// A line above the bars (plain stdout when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            crate::out::println(line);
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// A cancellation flag the whole run checks, set by Ctrl-C.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
    /// The signal that cancelled the run (0: none, or cancelled by the code).
    signal: Arc<AtomicI32>,
}

impl Cancel {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Cancel::cancel`] has been called.
    pub async fn cancelled(&self) {
        loop {
            // Registered before the check, so a cancel in between is not missed.
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// What stopped the run, for its results: `Ctrl-C` or `SIGTERM`.
    #[must_use]
    pub fn what(&self) -> &'static str {
        if self.signal.load(Ordering::SeqCst) == libc::SIGTERM {
            "SIGTERM"
        } else {
            "Ctrl-C"
        }
    }

    /// The exit code of a run stopped by a signal: 128 + its number (130 for Ctrl-C,
    /// 143 for SIGTERM).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self.signal.load(Ordering::SeqCst) {
            libc::SIGTERM => 143,
            _ => 130,
        }
    }

    /// Turn Ctrl-C (SIGINT) and SIGTERM (e.g. from `timeout` or a service manager) into
    /// cancellation: the first stops the run after cleanup, a second exits at once
    /// (leaving objects for `netbench cleanup`). Call inside a runtime.
    pub fn on_signals(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        let cancel = self.clone();
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let first = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            cancel.signal.store(first, Ordering::SeqCst);
            eprintln!(
                "\ninterrupted ({}): stopping, cleaning up and writing results (Ctrl-C again to exit at once)",
                cancel.what()
            );
            cancel.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("exiting without cleanup: run `netbench cleanup` to remove what is left");
            std::process::exit(i32::from(cancel.exit_code()));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_wakes_waiters_and_stays_set() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.cancelled().await })
        };
        tokio::task::yield_now().await;
        c.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(c.is_cancelled());
        // Already cancelled: returns at once.
        c.cancelled().await;
    }
}

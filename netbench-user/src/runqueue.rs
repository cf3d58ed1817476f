//! Run-queue wait of the server: split the server's turnaround (its request ingress to
//! its reply egress) with the scheduler events of its threads.
//!
//! For each probe, window = [request reaches the server's device, reply leaves it]. The
//! first `sched_switch` onto a traced thread inside the window is when the server got a
//! CPU to handle the probe (S); the last `sched_wakeup` of that thread before S is when it
//! became runnable (W). Three cases, counted separately:
//! - woken: W inside the window: the thread slept; `server-rx-to-wakeup` = W - start,
//!   `runqueue-wait` = S - W;
//! - runnable: W before the window (the thread was preempted, still on a run queue):
//!   `server-rx-to-wakeup` = 0, `runqueue-wait` = S - start;
//! - running: no switch-in inside the window (the thread was on a CPU throughout):
//!   both 0.
//!
//! In every case `server-run-to-reply` = end - S (or the whole window), so the three
//! parts add up to the server stage for every probe. Pure functions over events.
use netbench_common::{HookKind, HopEvent};
use serde::{Deserialize, Serialize};

use crate::{correlate::Timeline, stages::StageResult};

/// Names of the split, in order (they sum to the server stage they split).
pub const SPLIT: [&str; 3] = [
    "server-rx-to-wakeup",
    "runqueue-wait",
    "server-run-to-reply",
];

/// How the probes split (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitStats {
    /// The server thread slept and was woken inside the window.
    pub probes_woken: u64,
    /// The server thread was already runnable (preempted) when the request arrived.
    pub probes_runnable: u64,
    /// The server thread was running throughout (no switch-in inside the window).
    pub probes_running: u64,
}

#[derive(Clone, Copy)]
struct Sched {
    ts: u64,
    tid: u32,
    switch_in: bool,
}

/// Split the stage between points `from` and `from + 1` of each timeline.
#[must_use]
pub fn split(
    timelines: &[Timeline],
    from: usize,
    events: &[HopEvent],
    mean_rtt_us: f64,
    server_stage: &str,
) -> (Vec<StageResult>, SplitStats) {
    let (parts, stats) = split_parts(timelines, from, events);
    (results(&parts, mean_rtt_us, server_stage), stats)
}

/// Per-probe parts of the split (ns), in [`SPLIT`] order, to accumulate across runs.
pub type Parts = [Vec<u64>; 3];

impl SplitStats {
    /// Add another run's counts.
    pub fn add(&mut self, other: Self) {
        self.probes_woken += other.probes_woken;
        self.probes_runnable += other.probes_runnable;
        self.probes_running += other.probes_running;
    }
}

/// The per-probe split without statistics.
#[must_use]
pub fn split_parts(
    timelines: &[Timeline],
    from: usize,
    events: &[HopEvent],
) -> (Parts, SplitStats) {
    let mut sched: Vec<Sched> = events
        .iter()
        .filter_map(|e| match HookKind::try_from(e.hook) {
            Ok(HookKind::SchedWakeup) => Some(Sched {
                ts: e.ts_ns,
                tid: e.tid,
                switch_in: false,
            }),
            Ok(HookKind::SchedSwitchIn) => Some(Sched {
                ts: e.ts_ns,
                tid: e.tid,
                switch_in: true,
            }),
            _ => None,
        })
        .collect();
    sched.sort_by_key(|s| s.ts);
    let mut parts: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut stats = SplitStats::default();
    for t in timelines {
        let (t_in, t_out) = (t.ts_ns[from], t.ts_ns[from + 1]);
        let start = sched.partition_point(|s| s.ts < t_in);
        let in_window = sched[start..].iter().take_while(|s| s.ts <= t_out);
        // The thread that handled the probe: prefer one that was woken inside the
        // window and then switched in; else the first one switched in.
        let last_wake = |run: &Sched| {
            let end = sched.partition_point(|s| s.ts <= run.ts);
            sched[..end]
                .iter()
                .rev()
                .find(|s| !s.switch_in && s.tid == run.tid)
                .map(|s| s.ts)
        };
        let switch_ins = in_window.filter(|s| s.switch_in);
        let woken = switch_ins
            .clone()
            .find_map(|run| last_wake(run).filter(|&w| w >= t_in).map(|w| (run, w)));
        let (run, ready) = if let Some((run, w)) = woken {
            stats.probes_woken += 1;
            (run, w)
        } else if let Some(run) = switch_ins.clone().next() {
            stats.probes_runnable += 1;
            (run, t_in)
        } else {
            stats.probes_running += 1;
            parts[0].push(0);
            parts[1].push(0);
            parts[2].push(t_out - t_in);
            continue;
        };
        parts[0].push(ready - t_in);
        parts[1].push(run.ts - ready);
        parts[2].push(t_out - run.ts);
    }
    (parts, stats)
}

/// Statistics of accumulated parts; empty when there are none.
#[must_use]
pub fn results(parts: &Parts, mean_rtt_us: f64, server_stage: &str) -> Vec<StageResult> {
    if parts[0].is_empty() {
        return Vec::new();
    }
    let bounds = [
        (format!("{server_stage}:start"), "sched_wakeup".to_owned()),
        ("sched_wakeup".to_owned(), "sched_switch".to_owned()),
        ("sched_switch".to_owned(), format!("{server_stage}:end")),
    ];
    SPLIT
        .iter()
        .zip(parts.iter())
        .zip(bounds)
        .map(|((name, v), (from_hook, to_hook))| {
            StageResult::from_samples((*name).to_owned(), from_hook, to_hook, v, mean_rtt_us)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use netbench_common::EVENT_VERSION;

    use super::*;

    fn sched(hook: HookKind, tid: u32, ts: u64) -> HopEvent {
        HopEvent {
            version: EVENT_VERSION,
            proto: 0,
            _pad0: 0,
            hook: hook as u32,
            ifindex: 0,
            cpu: 0,
            netns_cookie: 0,
            run_id: 0,
            dir: 0,
            seq: 0,
            ts_ns: ts,
            pkt_len: 0,
            tid,
        }
    }

    /// The split's three means (in us) times `scale` are `want`.
    fn assert_means(split: &[StageResult], scale: f64, want: [f64; 3]) {
        let got: Vec<f64> = split.iter().map(|s| s.mean_us * scale).collect();
        assert!(
            got.len() == 3 && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
            "{got:?}, want {want:?}"
        );
    }

    #[test]
    fn woken_runnable_and_running_probes() {
        let t = vec![
            Timeline {
                seq: 0,
                ts_ns: vec![0, 1000, 2000, 3000],
            },
            Timeline {
                seq: 1,
                ts_ns: vec![0, 5000, 6000, 7000],
            },
            Timeline {
                seq: 2,
                ts_ns: vec![0, 8000, 9000, 9500],
            },
        ];
        let ev = vec![
            // probe 0: woken at 1200, on CPU at 1700 (another thread's switch ignored)
            sched(HookKind::SchedWakeup, 7, 1200),
            sched(HookKind::SchedSwitchIn, 8, 1300),
            sched(HookKind::SchedSwitchIn, 7, 1700),
            // probe 1: preempted before the window (woken at 4000), back on CPU at 5600
            sched(HookKind::SchedWakeup, 7, 4000),
            sched(HookKind::SchedSwitchIn, 7, 5600),
            // probe 2: nothing in its window: running throughout
        ];
        let (r, st) = split(&t, 1, &ev, 10.0, "server-stack-and-app");
        assert_eq!(
            st,
            SplitStats {
                probes_woken: 1,
                probes_runnable: 1,
                probes_running: 1
            }
        );
        // means over 3 probes: rx (200+0+0)/3, rq (500+600+0)/3, run (300+400+1000)/3 ns
        assert_means(&r, 3000.0, [200.0, 1100.0, 1700.0]);
        assert_eq!(r[1].name, "runqueue-wait");
    }

    #[test]
    fn a_woken_server_splits_at_its_wakeup_and_switch_in() {
        let t = vec![Timeline {
            seq: 0,
            ts_ns: vec![0, 1000, 2000, 3000],
        }];
        let ev = vec![
            sched(HookKind::SchedWakeup, 1, 1500),
            sched(HookKind::SchedSwitchIn, 1, 1800),
        ];
        let (r, st) = split(&t, 1, &ev, 1.0, "x");
        assert_eq!(st.probes_woken, 1);
        // Request in at 1000, woken at 1500, running at 1800, reply out at 2000.
        assert_means(&r, 1000.0, [500.0, 300.0, 200.0]);
    }

    #[test]
    fn no_timelines_no_split() {
        let (r, st) = split(&[], 1, &[], 1.0, "x");
        assert!(r.is_empty());
        assert_eq!(st, SplitStats::default());
    }
}

//! The figures of the benchmark and the pure arithmetic behind them: per-program cost
//! from BPF run-time statistics, throughput loss, capacity (highest loss-free event rate
//! and where loss starts), ratios against the reference tools, targets and the sanity
//! checks of short mode. Nothing here touches the system, so all of it is unit-tested.
use serde::Serialize;

use crate::stats::RepStats;

/// The issue's targets.
pub const TARGET_COST_NS: f64 = 100.0;
pub const TARGET_COUNT_ONLY_LOSS_PCT: f64 = 3.0;
pub const TARGET_EVENTS_PER_S: f64 = 1_000_000.0;
pub const TARGET_RATIO_PCT: f64 = 5.0;

/// Cumulative BPF statistics of one program at one moment (`bpf_prog_info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramSample {
    pub program: String,
    pub id: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// What one program cost over an interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// `run_time_ns / run_cnt`; `None` when the program did not run.
    pub ns_per_run: Option<f64>,
}

/// Cost per program between two samples of the same programs (matched by id).
#[must_use]
pub fn cost_between(before: &[ProgramSample], after: &[ProgramSample]) -> Vec<ProgramCost> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.id == a.id);
            let run_cnt = a.run_cnt - b.map_or(0, |b| b.run_cnt.min(a.run_cnt));
            let run_time_ns = a.run_time_ns - b.map_or(0, |b| b.run_time_ns.min(a.run_time_ns));
            ProgramCost {
                program: a.program.clone(),
                run_cnt,
                run_time_ns,
                ns_per_run: ratio(run_time_ns, run_cnt),
            }
        })
        .collect()
}

#[expect(clippy::cast_precision_loss, reason = "counts and ns fit f64 well")]
fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `value / reference`.
#[must_use]
pub fn ratio_of(value: f64, reference: f64) -> Option<f64> {
    (reference.is_finite() && reference > 0.0 && value.is_finite()).then(|| value / reference)
}

/// A ratio of two means with the half-width of its 95% confidence interval, from the
/// per-repetition values (first-order propagation of the two means' relative CIs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RatioCi {
    pub ratio: f64,
    /// `None` with fewer than two repetitions on either side.
    pub ci95: Option<f64>,
}

#[must_use]
pub fn ratio_ci(values: &[f64], reference: &[f64]) -> Option<RatioCi> {
    let (a, b) = (
        crate::stats::rep_stats(values),
        crate::stats::rep_stats(reference),
    );
    let ratio = ratio_of(a.mean, b.mean)?;
    (a.mean != 0.0).then_some(())?;
    let rel = ((a.ci95.unwrap_or(0.0) / a.mean).powi(2) + (b.ci95.unwrap_or(0.0) / b.mean).powi(2)).sqrt();
    let enough = values.len() > 1 && reference.len() > 1;
    Some(RatioCi {
        ratio,
        ci95: enough.then_some(ratio * rel),
    })
}

/// Per-repetition losses in percent, `1 - value / baseline` of the same repetition.
#[must_use]
pub fn paired_losses(values: &[f64], baseline: &[f64]) -> Vec<f64> {
    values
        .iter()
        .zip(baseline)
        .filter_map(|(v, b)| ratio_of(*v, *b).map(|r| (1.0 - r) * 100.0))
        .collect()
}

/// The median (mean of the middle two for an even count).
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        f64::midpoint(v[mid - 1], v[mid])
    } else {
        v[mid]
    })
}

/// One step of the capacity ladder: datagrams offered at one rate for a fixed time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityStep {
    /// Offered datagrams per second per sender (0 = as fast as it can).
    pub offered_per_sender: u32,
    pub senders: u32,
    /// The senders' own time (the longest of them).
    pub seconds: f64,
    pub datagrams: u64,
    pub datagram_rate: f64,
    /// Probe packets the programs saw (kernel counter): each is one event to deliver.
    pub probes_seen: u64,
    /// Events that reached the consumer of the reader's channel.
    pub delivered: u64,
    /// Ring-buffer reserve failures (kernel `NETBENCH_LOST`).
    pub kernel_lost: u64,
    /// Events the reader dropped because its channel was full.
    pub reader_dropped: u64,
    /// Delivered events per second of sending.
    pub event_rate: f64,
    /// Events produced (delivered or lost) per second of sending.
    pub produced_rate: f64,
}

impl CapacityStep {
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.kernel_lost + self.reader_dropped
    }

    #[must_use]
    pub fn lossless(&self) -> bool {
        self.lost() == 0 && self.delivered > 0
    }

    /// Lost share of the produced events, in percent.
    #[must_use]
    pub fn loss_pct(&self) -> f64 {
        let produced = self.delivered + self.lost();
        ratio(self.lost() * 100, produced).unwrap_or(0.0)
    }
}

/// Where loss first appeared on the ladder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossOnset {
    /// Events produced per second at the first step with loss.
    pub produced_rate: f64,
    pub loss_pct: f64,
    pub kernel_lost: u64,
    pub reader_dropped: u64,
}

/// The capacity of one ring size, from its ladder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacitySummary {
    /// Highest delivered event rate of a step without any loss.
    pub max_lossless_events_per_s: Option<f64>,
    /// The lowest-rate step (by events produced per second) that lost events.
    pub loss_starts: Option<LossOnset>,
    /// Highest event rate produced at all (delivered or lost): what the senders reached.
    pub max_produced_events_per_s: f64,
}

#[must_use]
pub fn summarize_capacity(steps: &[CapacityStep]) -> CapacitySummary {
    let max_lossless = steps
        .iter()
        .filter(|s| s.lossless())
        .map(|s| s.event_rate)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let loss_starts = steps
        .iter()
        .filter(|s| s.lost() > 0)
        .min_by(|a, b| a.produced_rate.total_cmp(&b.produced_rate))
        .map(|s| LossOnset {
            produced_rate: s.produced_rate,
            loss_pct: s.loss_pct(),
            kernel_lost: s.kernel_lost,
            reader_dropped: s.reader_dropped,
        });
    CapacitySummary {
        max_lossless_events_per_s: max_lossless,
        loss_starts,
        max_produced_events_per_s: steps.iter().map(|s| s.produced_rate).fold(0.0, f64::max),
    }
}

/// Percentiles of one round-trip measurement, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RttSample {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// One figure against its target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub figure: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub target: String,
    pub met: Option<bool>,
}

impl Verdict {
    /// `value <= limit`.
    #[must_use]
    pub fn at_most(figure: &str, value: Option<f64>, limit: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.to_owned(),
            value,
            unit,
            target: format!("<= {limit} {unit}"),
            met: value.map(|v| v <= limit),
        }
    }

    /// `value >= limit`.
    #[must_use]
    pub fn at_least(figure: &str, value: Option<f64>, limit: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.to_owned(),
            value,
            unit,
            target: format!(">= {limit} {unit}"),
            met: value.map(|v| v >= limit),
        }
    }

    /// A ratio within `pct` percent of 1.
    #[must_use]
    pub fn ratio_within(figure: &str, value: Option<f64>, pct: f64) -> Self {
        Self {
            figure: figure.to_owned(),
            value,
            unit: "x",
            target: format!("1 +- {pct}%"),
            met: value.map(|v| (v - 1.0).abs() * 100.0 <= pct),
        }
    }
}

/// Problems with a figure that must be finite and positive (short mode's checks).
pub fn check_positive(problems: &mut Vec<String>, what: &str, value: Option<f64>) {
    match value {
        Some(v) if v.is_finite() && v > 0.0 => {}
        Some(v) => problems.push(format!("{what} is {v}, expected a finite figure > 0")),
        None => problems.push(format!("{what} is missing")),
    }
}

/// Problems with repetition statistics: at least one repetition, all finite and > 0.
pub fn check_reps(problems: &mut Vec<String>, what: &str, reps: &RepStats) {
    if reps.per_rep.is_empty() {
        problems.push(format!("{what}: no repetitions"));
    }
    for (i, v) in reps.per_rep.iter().enumerate() {
        check_positive(problems, &format!("{what} rep {i}"), Some(*v));
    }
    if !reps.stddev.is_finite() {
        problems.push(format!("{what}: stddev is {}", reps.stddev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: u32, t: u64, n: u64) -> ProgramSample {
        ProgramSample {
            program: format!("p{id}"),
            id,
            run_time_ns: t,
            run_cnt: n,
        }
    }

    #[test]
    fn cost_is_the_delta_per_run() {
        let before = [sample(1, 1000, 10), sample(2, 0, 0)];
        let after = [sample(1, 5000, 50), sample(2, 0, 0), sample(3, 900, 3)];
        let c = cost_between(&before, &after);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].run_cnt, c[0].run_time_ns), (40, 4000));
        assert_eq!(c[0].ns_per_run, Some(100.0));
        assert_eq!(c[1].ns_per_run, None, "did not run");
        // A program first seen afterwards counts from zero.
        assert_eq!(c[2].ns_per_run, Some(300.0));
        // Counters never go backwards; if they seem to, the delta is zero, not a wrap.
        let c = cost_between(&[sample(1, 10, 10)], &[sample(1, 5, 5)]);
        assert_eq!((c[0].run_cnt, c[0].ns_per_run), (0, None));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio_of(21.0, 20.0), Some(1.05));
        assert_eq!(ratio_of(1.0, 0.0), None);
    }

    fn step(produced: f64, delivered: u64, kernel_lost: u64, dropped: u64) -> CapacityStep {
        CapacityStep {
            offered_per_sender: 0,
            senders: 1,
            seconds: 1.0,
            datagrams: delivered / 2,
            datagram_rate: produced / 2.0,
            probes_seen: delivered + kernel_lost,
            delivered,
            kernel_lost,
            reader_dropped: dropped,
            #[expect(clippy::cast_precision_loss, reason = "test values")]
            event_rate: delivered as f64,
            produced_rate: produced,
        }
    }

    #[test]
    fn capacity_is_the_best_lossless_step_and_loss_starts_at_the_lowest_lossy_one() {
        let steps = [
            step(100_000.0, 100_000, 0, 0),
            step(400_000.0, 400_000, 0, 0),
            step(900_000.0, 800_000, 100_000, 0),
            step(600_000.0, 590_000, 0, 10_000),
            step(500_000.0, 500_000, 0, 0),
        ];
        let s = summarize_capacity(&steps);
        assert_eq!(s.max_lossless_events_per_s, Some(500_000.0));
        let onset = s.loss_starts.unwrap();
        assert!((onset.produced_rate - 600_000.0).abs() < 1e-6);
        assert_eq!(onset.reader_dropped, 10_000);
        assert!(
            (onset.loss_pct - 10_000.0 / 6000.0).abs() < 1e-9,
            "{}",
            onset.loss_pct
        );
        assert!((s.max_produced_events_per_s - 900_000.0).abs() < 1e-6);

        let none = summarize_capacity(&[step(5.0, 0, 0, 0)]);
        assert_eq!(none.max_lossless_events_per_s, None, "nothing delivered");
        assert!(none.loss_starts.is_none());
        let all_lossy = summarize_capacity(&[step(5.0, 1, 1, 0)]);
        assert_eq!(all_lossy.max_lossless_events_per_s, None);
        assert!((all_lossy.loss_starts.unwrap().loss_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn paired_losses_and_median() {
        let l = paired_losses(&[9.0, 19.0, 5.0], &[10.0, 20.0, 0.0]);
        assert_eq!(l.len(), 2, "a zero baseline has no ratio");
        assert!(
            (l[0] - 10.0).abs() < 1e-9 && (l[1] - 5.0).abs() < 1e-9,
            "{l:?}"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn ratio_with_confidence() {
        let r = ratio_ci(&[11.0, 11.0], &[10.0, 10.0]).unwrap();
        assert!((r.ratio - 1.1).abs() < 1e-12 && r.ci95.unwrap().abs() < 1e-12);
        // a = 1, 3 (mean 2, sd 1.414, ci 12.706 * 1); b exact: ci of the ratio = 12.706/2.
        let r = ratio_ci(&[1.0, 3.0], &[4.0, 4.0]).unwrap();
        assert!((r.ratio - 0.5).abs() < 1e-12);
        assert!((r.ci95.unwrap() - 0.5 * 12.706 / 2.0).abs() < 1e-9, "{r:?}");
        assert_eq!(
            ratio_ci(&[2.0], &[4.0]).unwrap().ci95,
            None,
            "one rep: no interval"
        );
        assert_eq!(ratio_ci(&[], &[1.0]), None);
        assert_eq!(ratio_ci(&[1.0], &[0.0]), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            Verdict::at_most("c", Some(99.0), 100.0, "ns").met,
            Some(true)
        );
        assert_eq!(
            Verdict::at_most("c", Some(101.0), 100.0, "ns").met,
            Some(false)
        );
        assert_eq!(Verdict::at_most("c", None, 100.0, "ns").met, None);
        assert_eq!(Verdict::at_least("e", Some(1e6), 1e6, "/s").met, Some(true));
        assert_eq!(Verdict::ratio_within("r", Some(0.951), 5.0).met, Some(true));
        assert_eq!(Verdict::ratio_within("r", Some(1.06), 5.0).met, Some(false));
        assert_eq!(Verdict::ratio_within("r", Some(1.0), 5.0).target, "1 +- 5%");
    }

    #[test]
    fn sanity_checks_flag_missing_zero_and_nan() {
        let mut p = Vec::new();
        check_positive(&mut p, "a", Some(1.0));
        assert!(p.is_empty());
        check_positive(&mut p, "b", Some(0.0));
        check_positive(&mut p, "c", Some(f64::NAN));
        check_positive(&mut p, "d", None);
        check_reps(&mut p, "e", &RepStats::default());
        check_reps(&mut p, "f", &crate::stats::rep_stats(&[1.0, f64::INFINITY]));
        assert_eq!(p.len(), 6, "{p:?}");
        assert!(p[0].starts_with("b is 0"));
        assert!(p[2].contains("missing"));
        assert!(p[3].contains("no repetitions"));
    }
}

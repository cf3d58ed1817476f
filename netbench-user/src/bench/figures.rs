//! The figures of the benchmark and the pure arithmetic behind them: per-program cost
//! from BPF run-time statistics, throughput loss, capacity (highest loss-free event rate
//! and where loss starts), ratios against the reference tools, targets and the sanity
//! checks of short mode. Nothing here touches the system, so all of it is unit-tested.
use serde::Serialize;

use crate::{
    stats::{RepStats, rep_stats},
    trace::ProgramStats,
};

/// The issue's targets.
/// ns per run of a tc program for a packet that is not a probe.
pub const TARGET_COST_NS: f64 = 100.0;
/// ns per run of a tc program for a probe packet in events mode.
pub const TARGET_PROBE_COST_NS: f64 = 150.0;
pub const TARGET_COUNT_ONLY_LOSS_PCT: f64 = 3.0;
pub const TARGET_EVENTS_PER_S: f64 = 1_000_000.0;
pub const TARGET_RATIO_PCT: f64 = 5.0;

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
pub fn cost_between(before: &[ProgramStats], after: &[ProgramStats]) -> Vec<ProgramCost> {
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

#[must_use]
#[expect(clippy::cast_precision_loss, reason = "counts and ns fit f64 well")]
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `value / reference`.
#[must_use]
pub fn ratio_of(value: f64, reference: f64) -> Option<f64> {
    (reference.is_finite() && reference > 0.0 && value.is_finite()).then(|| value / reference)
}

/// A ratio with the half-width of its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RatioCi {
    pub ratio: f64,
    /// `None` with fewer than two repetitions.
    pub ci95: Option<f64>,
}

/// `values[i] / reference[i]` per repetition (the two measured back to back, so drift
/// between repetitions cancels): the mean of those ratios and its Student's t interval.
#[must_use]
pub fn paired_ratio(values: &[f64], reference: &[f64]) -> Option<RatioCi> {
    let per_rep: Vec<f64> = values
        .iter()
        .zip(reference)
        .filter_map(|(v, r)| ratio_of(*v, *r))
        .collect();
    if per_rep.is_empty() {
        return None;
    }
    let s = rep_stats(&per_rep);
    Some(RatioCi {
        ratio: s.mean,
        ci95: s.ci95,
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
    /// Times the kernel woke the reader (ring past its fill watermark), and times the
    /// reader's own timer drained it.
    pub forced_wakeups: u64,
    pub timer_drains: u64,
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

/// What a target asks of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    AtMost {
        limit: f64,
    },
    AtLeast {
        limit: f64,
    },
    /// Within `pct` percent of `centre`.
    Within {
        centre: f64,
        pct: f64,
    },
    /// No target: reported as measured.
    None,
}

impl Target {
    fn describe(self, unit: &str) -> String {
        let unit = if unit == "x" { "" } else { unit };
        match self {
            Self::AtMost { limit } => format!("<= {limit} {unit}").trim_end().to_owned(),
            Self::AtLeast { limit } => format!(">= {limit} {unit}").trim_end().to_owned(),
            Self::Within { centre, pct } => format!("{centre} +- {pct}%"),
            Self::None => "as measured".to_owned(),
        }
    }

    /// The interval of allowed values.
    fn bounds(self) -> Option<(f64, f64)> {
        match self {
            Self::AtMost { limit } => Some((f64::NEG_INFINITY, limit)),
            Self::AtLeast { limit } => Some((limit, f64::INFINITY)),
            Self::Within { centre, pct } => {
                Some((centre * (1.0 - pct / 100.0), centre * (1.0 + pct / 100.0)))
            }
            Self::None => None,
        }
    }
}

/// A figure against its target, decided on the figure's 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The whole interval lies inside the target.
    Met,
    /// The whole interval lies outside it.
    NotMet,
    /// The interval straddles the target's edge, or there is no interval.
    Unresolved,
    /// No figure.
    NotMeasured,
    /// The figure has no target.
    AsMeasured,
}

impl Decision {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "NOT met",
            Self::Unresolved => "unresolved",
            Self::NotMeasured => "not measured",
            Self::AsMeasured => "-",
        }
    }
}

/// Decide `value +- ci95` against `target`: met only when the whole interval lies
/// inside, not met only when it lies wholly outside, otherwise unresolved (also when
/// there is no interval: one repetition proves nothing either way).
#[must_use]
pub fn decide(value: Option<f64>, ci95: Option<f64>, target: Target) -> Decision {
    let Some(bounds) = target.bounds() else {
        return Decision::AsMeasured;
    };
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return Decision::NotMeasured;
    };
    let Some(ci) = ci95.filter(|c| c.is_finite() && *c >= 0.0) else {
        return Decision::Unresolved;
    };
    let (lo, hi) = (v - ci, v + ci);
    if lo >= bounds.0 && hi <= bounds.1 {
        Decision::Met
    } else if hi < bounds.0 || lo > bounds.1 {
        Decision::NotMet
    } else {
        Decision::Unresolved
    }
}

/// One figure against its target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub figure: String,
    pub value: Option<f64>,
    /// Half-width of the figure's 95% confidence interval.
    pub ci95: Option<f64>,
    pub unit: &'static str,
    pub target: String,
    pub decision: Decision,
    /// Why a figure is missing, or what qualifies it.
    pub note: Option<String>,
}

impl Verdict {
    #[must_use]
    pub fn new(
        figure: &str,
        value: Option<f64>,
        ci95: Option<f64>,
        unit: &'static str,
        target: Target,
    ) -> Self {
        Self {
            figure: figure.to_owned(),
            value,
            ci95,
            unit,
            target: target.describe(unit),
            decision: decide(value, ci95, target),
            note: None,
        }
    }

    /// From repetition statistics (`None` or no repetition: not measured).
    #[must_use]
    pub fn of_reps(
        figure: &str,
        reps: Option<&RepStats>,
        unit: &'static str,
        target: Target,
    ) -> Self {
        let reps = reps.filter(|r| !r.per_rep.is_empty());
        Self::new(
            figure,
            reps.map(|r| r.mean),
            reps.and_then(|r| r.ci95),
            unit,
            target,
        )
    }

    /// A ratio within `pct` percent of 1.
    #[must_use]
    pub fn ratio_within(figure: &str, ratio: Option<RatioCi>, pct: f64) -> Self {
        Self::new(
            figure,
            ratio.map(|r| r.ratio),
            ratio.and_then(|r| r.ci95),
            "x",
            Target::Within { centre: 1.0, pct },
        )
    }

    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
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

    fn sample(id: u32, t: u64, n: u64) -> ProgramStats {
        ProgramStats {
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
            forced_wakeups: 0,
            timer_drains: 0,
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
    fn paired_ratio_is_the_mean_of_per_rep_ratios() {
        let r = paired_ratio(&[11.0, 22.0], &[10.0, 20.0]).unwrap();
        assert!((r.ratio - 1.1).abs() < 1e-12 && r.ci95.unwrap().abs() < 1e-12);
        // Ratios 1.0 and 1.2: mean 1.1, sd 0.1414, t(1) 12.706: half-width 1.2706.
        let r = paired_ratio(&[10.0, 12.0], &[10.0, 10.0]).unwrap();
        assert!((r.ratio - 1.1).abs() < 1e-12);
        assert!((r.ci95.unwrap() - 12.706 * 0.1).abs() < 1e-3, "{r:?}");
        assert_eq!(paired_ratio(&[2.0], &[4.0]).unwrap().ci95, None, "one rep");
        assert_eq!(paired_ratio(&[], &[1.0]), None);
        assert_eq!(paired_ratio(&[1.0], &[0.0]), None);
    }

    #[test]
    fn met_only_when_the_whole_interval_is_inside() {
        let at_most = Target::AtMost { limit: 3.0 };
        // The case that used to print "met": -11.0% +- 23.2.
        assert_eq!(
            decide(Some(-11.0), Some(23.2), at_most),
            Decision::Unresolved
        );
        assert_eq!(decide(Some(1.0), Some(1.9), at_most), Decision::Met);
        assert_eq!(decide(Some(5.0), Some(1.9), at_most), Decision::NotMet);
        assert_eq!(
            decide(Some(1.0), None, at_most),
            Decision::Unresolved,
            "no CI"
        );
        assert_eq!(decide(None, Some(1.0), at_most), Decision::NotMeasured);
        assert_eq!(
            decide(Some(f64::NAN), Some(1.0), at_most),
            Decision::NotMeasured
        );
        let at_least = Target::AtLeast { limit: 1e6 };
        assert_eq!(decide(Some(1.2e6), Some(1e5), at_least), Decision::Met);
        assert_eq!(
            decide(Some(1.05e6), Some(1e5), at_least),
            Decision::Unresolved
        );
        assert_eq!(decide(Some(0.8e6), Some(1e5), at_least), Decision::NotMet);
        let within = Target::Within {
            centre: 1.0,
            pct: 5.0,
        };
        assert_eq!(decide(Some(1.01), Some(0.02), within), Decision::Met);
        assert_eq!(decide(Some(0.96), Some(0.02), within), Decision::Unresolved);
        assert_eq!(decide(Some(1.10), Some(0.02), within), Decision::NotMet);
        assert_eq!(decide(Some(0.90), Some(0.02), within), Decision::NotMet);
        assert_eq!(
            decide(Some(1.0), Some(0.0), Target::None),
            Decision::AsMeasured
        );
        let v = Verdict::ratio_within(
            "r",
            Some(RatioCi {
                ratio: 1.0,
                ci95: Some(0.01),
            }),
            5.0,
        );
        assert_eq!((v.target.as_str(), v.decision), ("1 +- 5%", Decision::Met));
        let limit = Target::AtMost { limit: 100.0 };
        assert_eq!(
            Verdict::new("c", Some(1.0), Some(0.1), "ns", limit).target,
            "<= 100 ns"
        );
        let reps = rep_stats(&[90.0, 92.0, 91.0]);
        assert_eq!(
            Verdict::of_reps("c", Some(&reps), "ns", limit).decision,
            Decision::Met
        );
        assert_eq!(
            Verdict::of_reps("c", None, "ns", limit).decision,
            Decision::NotMeasured
        );
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
        check_reps(&mut p, "f", &rep_stats(&[1.0, f64::INFINITY]));
        assert_eq!(p.len(), 6, "{p:?}");
        assert!(p[0].starts_with("b is 0"));
        assert!(p[2].contains("missing"));
        assert!(p[3].contains("no repetitions"));
    }
}

//! The observer effect: how much tracing moves the round trip it measures.
//!
//! Traced and untraced probes are sent in blocks, back to back on the same path; each
//! pair of blocks gives one traced/untraced ratio of the p50 (and of the p99). The
//! headline ratio pools every traced sample against every untraced one; the confidence
//! interval comes from the spread of the per-pair ratios (Student's t), so drift between
//! blocks (a busier host later in the run) widens it instead of hiding in it.
//!
//! Percentiles go through [`crate::stats::summarize`] (the HDR histogram), so they agree
//! with every other figure of the tool.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::{rep_stats, summarize};

/// One traced block and the untraced block measured next to it on the same path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockPair {
    /// Round trips of the traced probes, in nanoseconds.
    pub traced_ns: Vec<u64>,
    /// Round trips of the untraced probes, in nanoseconds.
    pub untraced_ns: Vec<u64>,
}

impl From<(Vec<u64>, Vec<u64>)> for BlockPair {
    fn from((traced_ns, untraced_ns): (Vec<u64>, Vec<u64>)) -> Self {
        Self {
            traced_ns,
            untraced_ns,
        }
    }
}

/// Traced / untraced for one percentile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Pooled: the percentile of all traced samples over that of all untraced samples.
    pub ratio: f64,
    /// The mean of the per-pair ratios.
    pub mean_of_pairs: f64,
    /// Half-width of the 95% confidence interval of the ratio, from the per-pair ratios
    /// (Student's t); `None` with fewer than two pairs.
    pub ci95: Option<f64>,
    /// One ratio per usable block pair, in input order.
    pub per_pair: Vec<f64>,
}

impl Ratio {
    fn new(pooled: f64, per_pair: Vec<f64>) -> Self {
        let stats = rep_stats(&per_pair);
        Self {
            ratio: pooled,
            mean_of_pairs: stats.mean,
            ci95: stats.ci95,
            per_pair,
        }
    }

    /// `x1.07 (95% CI 1.02..1.12)`, or `x1.07 (n/a)` without an interval. The interval
    /// is centred on the pooled ratio.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = format!("x{:.2}", self.ratio);
        match self.ci95.filter(|c| c.is_finite()) {
            Some(ci) => {
                let _ = write!(
                    out,
                    " (95% CI {:.2}..{:.2})",
                    self.ratio - ci,
                    self.ratio + ci
                );
            }
            None => out.push_str(" (n/a)"),
        }
        out
    }
}

/// How tracing moved the round trip's p50 and p99.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObserverEffect {
    pub p50: Ratio,
    pub p99: Ratio,
    /// Block pairs used.
    pub pairs: usize,
    /// Block pairs left out because one side had no sample.
    #[serde(default)]
    pub pairs_skipped: usize,
}

impl ObserverEffect {
    /// Whether tracing slowed the p50 or the p99 by more than `limit` (0.05 = 5%).
    #[must_use]
    pub fn exceeds(&self, limit: f64) -> bool {
        self.p50.ratio > 1.0 + limit || self.p99.ratio > 1.0 + limit
    }

    /// `tracing moved p50 x1.07 (95% CI 1.02..1.12), p99 x1.21 (n/a)`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "tracing moved p50 {}, p99 {}",
            self.p50.describe(),
            self.p99.describe()
        )
    }
}

/// The observer effect over `blocks`. Pairs with an empty side are skipped (counted in
/// `pairs_skipped`); `None` when no pair is left.
#[must_use]
pub fn observer_effect(blocks: &[BlockPair]) -> Option<ObserverEffect> {
    let usable: Vec<&BlockPair> = blocks
        .iter()
        .filter(|b| !b.traced_ns.is_empty() && !b.untraced_ns.is_empty())
        .collect();
    if usable.is_empty() {
        return None;
    }
    let all_traced: Vec<u64> = usable
        .iter()
        .flat_map(|b| b.traced_ns.iter().copied())
        .collect();
    let all_untraced: Vec<u64> = usable
        .iter()
        .flat_map(|b| b.untraced_ns.iter().copied())
        .collect();
    let (t, u) = (summarize(&all_traced), summarize(&all_untraced));
    // Non-empty samples have percentiles of at least 1 ns (the histogram's floor), so
    // no ratio divides by zero.
    let pairs: Vec<(f64, f64)> = usable
        .iter()
        .map(|b| {
            let (bt, bu) = (summarize(&b.traced_ns), summarize(&b.untraced_ns));
            (bt.p50 / bu.p50, bt.p99 / bu.p99)
        })
        .collect();
    Some(ObserverEffect {
        p50: Ratio::new(t.p50 / u.p50, pairs.iter().map(|p| p.0).collect()),
        p99: Ratio::new(t.p99 / u.p99, pairs.iter().map(|p| p.1).collect()),
        pairs: usable.len(),
        pairs_skipped: blocks.len() - usable.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 samples: 1..=100 us scaled by `scale` (p50 = 50 * scale us, p99 = 99 * scale).
    fn block(scale: u64) -> Vec<u64> {
        (1..=100).map(|i| i * 1000 * scale).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 2e-3
    }

    #[test]
    fn pooled_ratio_per_pair_ratios_and_t_interval() {
        // Pair 1: traced p50 55 us vs 50 us (x1.10); pair 2: 60 vs 50 (x1.20), built by
        // shifting the whole traced block.
        let shifted = |add: u64| -> Vec<u64> { block(1).iter().map(|v| v + add).collect() };
        let blocks = [
            BlockPair::from((shifted(5_000), block(1))),
            BlockPair::from((shifted(10_000), block(1))),
        ];
        let e = observer_effect(&blocks).unwrap();
        assert_eq!((e.pairs, e.pairs_skipped), (2, 0));
        assert!(close(e.p50.per_pair[0], 1.10), "{:?}", e.p50);
        assert!(close(e.p50.per_pair[1], 1.20), "{:?}", e.p50);
        assert!(close(e.p50.mean_of_pairs, 1.15), "{:?}", e.p50);
        // Two pairs: t(1) = 12.706, sd of {1.1, 1.2} = 0.0707, half-width 0.635.
        let ci = e.p50.ci95.unwrap();
        assert!(
            (ci - 12.706 * 0.05_f64.hypot(0.05) / 2f64.sqrt()).abs() < 0.01,
            "{ci}"
        );
        // Pooled p50: traced samples are 6..105 and 11..110 us; their median is ~57.5.
        assert!((e.p50.ratio - 57.5 / 50.0).abs() < 0.02, "{:?}", e.p50);
        // p99 per pair: (99 + 5) / 99 and (99 + 10) / 99.
        assert!(close(e.p99.per_pair[0], 104.0 / 99.0), "{:?}", e.p99);
        assert!(close(e.p99.per_pair[1], 109.0 / 99.0), "{:?}", e.p99);
    }

    #[test]
    fn no_effect_gives_one_and_a_zero_interval() {
        let e = observer_effect(&[
            BlockPair::from((block(1), block(1))),
            BlockPair::from((block(1), block(1))),
        ])
        .unwrap();
        assert!(close(e.p50.ratio, 1.0) && close(e.p99.ratio, 1.0), "{e:?}");
        assert!(e.p50.ci95.unwrap().abs() < 1e-12);
        assert!(!e.exceeds(0.05));
    }

    #[test]
    fn empty_sides_are_skipped_and_nothing_left_is_none() {
        let blocks = [
            BlockPair::from((block(2), block(1))),
            BlockPair::from((Vec::new(), block(1))),
            BlockPair::from((block(1), Vec::new())),
        ];
        let e = observer_effect(&blocks).unwrap();
        assert_eq!((e.pairs, e.pairs_skipped), (1, 2));
        assert!(close(e.p50.ratio, 2.0), "{e:?}");
        assert_eq!(e.p50.ci95, None);
        assert_eq!(observer_effect(&blocks[1..]), None);
        assert_eq!(observer_effect(&[]), None);
    }

    #[test]
    fn exceeds_on_either_percentile_only_above_the_limit() {
        // The p99 moved by 10%, the p50 not at all: traced = untraced with the top two
        // samples (the p99 and above) scaled up.
        let mut tail = block(1);
        tail[98] = 108_900;
        tail[99] = 110_000;
        let e = observer_effect(&[BlockPair::from((tail, block(1)))]).unwrap();
        assert!(close(e.p50.ratio, 1.0), "{e:?}");
        assert!(close(e.p99.ratio, 1.1), "{e:?}");
        assert!(e.exceeds(0.05));
        assert!(!e.exceeds(0.15));
        // 4% on the p50 is within 5%.
        let slow: Vec<u64> = block(1).iter().map(|v| v * 104 / 100).collect();
        let e = observer_effect(&[BlockPair::from((slow, block(1)))]).unwrap();
        assert!(close(e.p50.ratio, 1.04), "{e:?}");
        assert!(!e.exceeds(0.05));
        assert!(e.exceeds(0.03));
    }

    #[test]
    fn describe_gives_ratio_and_interval_or_na() {
        let r = |ratio, ci95| Ratio {
            ratio,
            mean_of_pairs: ratio,
            ci95,
            per_pair: Vec::new(),
        };
        let e = ObserverEffect {
            p50: r(1.07, Some(0.05)),
            p99: r(1.213, None),
            pairs: 1,
            pairs_skipped: 0,
        };
        assert_eq!(
            e.describe(),
            "tracing moved p50 x1.07 (95% CI 1.02..1.12), p99 x1.21 (n/a)"
        );
        let back: ObserverEffect =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}

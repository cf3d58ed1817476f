//! Summary statistics over nanosecond samples, reported in microseconds.
use serde::Serialize;

/// Mean and percentiles (nearest rank) of a sample, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanosecond samples fit f64 well"
)]
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Nearest-rank percentile `q` (0..=1) of sorted `v`.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "rank is within 1..=len"
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Summarize nanosecond samples.
#[must_use]
pub fn summarize(samples_ns: &[u64]) -> Summary {
    if samples_ns.is_empty() {
        return Summary::default();
    }
    let mut v = samples_ns.to_vec();
    v.sort_unstable();
    let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
    #[expect(clippy::cast_precision_loss, reason = "sums of ns fit f64 well")]
    let mean = sum as f64 / v.len() as f64 / 1000.0;
    Summary {
        count: v.len() as u64,
        mean,
        p50: us(percentile(&v, 0.50)),
        p90: us(percentile(&v, 0.90)),
        p99: us(percentile(&v, 0.99)),
        p999: us(percentile(&v, 0.999)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_mean() {
        let v: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let s = summarize(&v);
        assert_eq!(s.count, 1000);
        assert!((s.mean - 500.5).abs() < 1e-9);
        assert!((s.p50 - 500.0).abs() < 1e-9);
        assert!((s.p99 - 990.0).abs() < 1e-9);
        assert!((s.p999 - 999.0).abs() < 1e-9);
        assert_eq!(summarize(&[]), Summary::default());
    }
}

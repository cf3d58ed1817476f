//! Summary statistics: HDR histograms over nanosecond samples (3 significant digits),
//! reported in microseconds; and mean / stddev / 95% confidence interval over
//! per-repetition values.
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Mean and percentiles of a sample, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

#[expect(clippy::cast_precision_loss, reason = "nanosecond values fit f64 well")]
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// An HDR histogram of nanosecond samples (1 ns .. 1 h, 3 significant digits).
#[must_use]
pub fn histogram(samples_ns: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid"))
    });
    for &v in samples_ns {
        // Values are clamped into range; 0 ns (same-tick stamps) counts as 1 ns.
        h.saturating_record(v.max(1));
    }
    h
}

/// Summarize nanosecond samples. The mean is exact (from the samples); percentiles come
/// from the HDR histogram.
#[must_use]
pub fn summarize(samples_ns: &[u64]) -> Summary {
    if samples_ns.is_empty() {
        return Summary::default();
    }
    let h = histogram(samples_ns);
    let sum: u128 = samples_ns.iter().map(|&x| u128::from(x)).sum();
    #[expect(clippy::cast_precision_loss, reason = "sums of ns fit f64 well")]
    let mean = sum as f64 / samples_ns.len() as f64 / 1000.0;
    Summary {
        count: samples_ns.len() as u64,
        mean,
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
    }
}

/// Mean, sample standard deviation and the half-width of a 95% confidence interval
/// (Student's t) over per-repetition values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepStats {
    pub mean: f64,
    pub stddev: f64,
    pub ci95: f64,
    pub per_rep: Vec<f64>,
}

/// Two-sided 97.5% quantile of Student's t for `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96,
    }
}

/// Statistics over per-repetition values.
#[must_use]
pub fn rep_stats(per_rep: &[f64]) -> RepStats {
    let n = per_rep.len();
    if n == 0 {
        return RepStats::default();
    }
    #[expect(clippy::cast_precision_loss, reason = "repetition counts are small")]
    let nf = n as f64;
    let mean = per_rep.iter().sum::<f64>() / nf;
    let (stddev, ci95) = if n > 1 {
        let var = per_rep.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
        let sd = var.sqrt();
        (sd, t975(n - 1) * sd / nf.sqrt())
    } else {
        (0.0, 0.0)
    };
    RepStats {
        mean,
        stddev,
        ci95,
        per_rep: per_rep.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_hdr_precision_and_exact_mean() {
        let v: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let s = summarize(&v);
        assert_eq!(s.count, 1000);
        assert!((s.mean - 500.5).abs() < 1e-9);
        assert!((s.p50 - 500.0).abs() <= 0.5, "{}", s.p50);
        assert!((s.p99 - 990.0).abs() <= 1.0, "{}", s.p99);
        assert!((s.p999 - 999.0).abs() <= 1.0, "{}", s.p999);
        assert_eq!(summarize(&[]), Summary::default());
    }

    #[test]
    fn rep_stats_mean_sd_ci() {
        let r = rep_stats(&[1.0, 2.0, 3.0]);
        assert!((r.mean - 2.0).abs() < 1e-12);
        assert!((r.stddev - 1.0).abs() < 1e-12);
        assert!((r.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(rep_stats(&[5.0]).ci95.abs() < f64::EPSILON);
        assert_eq!(rep_stats(&[]), RepStats::default());
    }
}

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

/// The p50 of a sample (ns in, us out); `None` without samples (never 0.0).
#[must_use]
pub fn p50_us(samples_ns: &[u64]) -> Option<f64> {
    (!samples_ns.is_empty()).then(|| summarize(samples_ns).p50)
}

/// Mean, sample standard deviation and the half-width of a 95% confidence interval
/// (Student's t) over per-repetition values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepStats {
    pub mean: f64,
    pub stddev: f64,
    /// Half-width of the 95% confidence interval of the mean; `None` ("n/a") with fewer
    /// than two repetitions, where there is no interval to give.
    pub ci95: Option<f64>,
    pub per_rep: Vec<f64>,
}

/// Two-sided 95% (upper 97.5%) quantile of Student's t with `df` degrees of freedom;
/// `None` for `df == 0`. The published 3-decimal table for `df <= 30` (error < 5e-4);
/// above, the Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun
/// 26.7.5), whose error there is below 1e-6.
#[must_use]
pub fn t975(df: usize) -> Option<f64> {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => None,
        1..=30 => Some(T[df - 1]),
        _ => {
            #[expect(clippy::cast_precision_loss, reason = "degrees of freedom are small")]
            let v = df as f64;
            Some(t975_expansion(v))
        }
    }
}

/// Cornish-Fisher expansion of the 97.5% t quantile in powers of `1/v` (four terms).
fn t975_expansion(v: f64) -> f64 {
    const Z: f64 = 1.959_963_984_540_054;
    let z2 = Z * Z;
    let g1 = Z * (z2 + 1.0) / 4.0;
    let g2 = Z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = Z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = Z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    Z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v
}

/// A confidence half-width for display: `+/- 0.20`, or `n/a` when there is none (one
/// repetition), never `+/- 0`.
#[must_use]
pub fn pm(ci95: Option<f64>, digits: usize) -> String {
    ci95.filter(|c| c.is_finite())
        .map_or_else(|| "n/a".to_owned(), |c| format!("+/- {c:.digits$}"))
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
        (sd, t975(n - 1).map(|t| t * sd / nf.sqrt()))
    } else {
        (0.0, None)
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
        assert!((r.ci95.unwrap() - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        // One repetition has no interval: n/a, not +/- 0.
        let one = rep_stats(&[5.0]);
        assert_eq!((one.mean, one.ci95), (5.0, None));
        assert_eq!(pm(one.ci95, 2), "n/a");
        assert_eq!(pm(r.ci95, 2), "+/- 2.48");
        assert_eq!(rep_stats(&[]), RepStats::default());
        // 41 repetitions: t(40) = 2.021, not the normal 1.96.
        let many: Vec<f64> = (0..41).map(|i| f64::from(i % 2)).collect();
        let m = rep_stats(&many);
        let expected = 2.021_075 * m.stddev / 41f64.sqrt();
        assert!((m.ci95.unwrap() - expected).abs() < 1e-5, "{m:?}");
    }

    #[test]
    fn t_quantile_matches_published_values() {
        assert_eq!(t975(0), None);
        for (df, want) in [
            (1, 12.706),
            (2, 4.303),
            (10, 2.228),
            (30, 2.042),
            (31, 2.040),
            (40, 2.021),
            (60, 2.000),
            (100, 1.984),
            (120, 1.980),
            (1000, 1.962),
            (100_000, 1.960),
        ] {
            let got = t975(df).unwrap();
            assert!((got - want).abs() < 1e-3, "df {df}: {got} vs {want}");
        }
    }

    #[test]
    fn t_expansion_agrees_with_the_table_where_both_apply() {
        // The expansion is what serves df > 30; check it against the table (rounded to
        // 3 decimals) where it is not used, from df 10 (its worst there) to 30.
        for df in 10..=30u32 {
            let table = t975(df as usize).unwrap();
            let approx = t975_expansion(f64::from(df));
            assert!(
                (table - approx).abs() < 6e-4,
                "df {df}: {table} vs {approx}"
            );
        }
        // At df 5 it would be off by 3e-4, at df 3 by 4e-3: hence the table below 31.
        assert!((t975_expansion(3.0) - 3.182).abs() > 3e-3);
        // Decreasing towards z with no jump at the table's end.
        assert!(t975(30).unwrap() > t975(31).unwrap());
        assert!(t975(31).unwrap() - t975(32).unwrap() < 3e-3);
    }
}

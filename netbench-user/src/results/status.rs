//! A scenario's status (ok / degraded / failed / unsupported) and the probe counts it is
//! decided from.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::correlate::CorrelationStats;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Ran, but under 99% of the sent probes matched on every hop: the figures cover
    /// only part of the probes (the reason says which were lost, and how).
    Degraded,
    Unsupported,
    Failed,
}

impl Status {
    /// The name results.json and summary.csv use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Unsupported => "unsupported",
            Self::Failed => "failed",
        }
    }

    /// Whether a scenario with this status shows figures. A failed or unsupported one
    /// shows its reason only, whatever partial figures it carries.
    #[must_use]
    pub const fn has_figures(self) -> bool {
        matches!(self, Self::Ok | Self::Degraded)
    }
}

/// Share of the sent probes that must match on every hop for a scenario to be ok.
pub const MIN_MATCHED_PERCENT: u64 = 99;

/// What became of a scenario's probes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    pub sent: u64,
    /// Sent, never answered in time.
    pub timed_out: u64,
    /// Answered, with every hop present and in causal order.
    pub matched: u64,
    /// Answered, with at least one hop missing.
    pub missing_hops: u64,
    /// Answered, with hop timestamps out of causal order.
    pub non_causal: u64,
    /// How often each point was missing, by point name.
    pub missing_by_point: Vec<(String, u64)>,
}

impl From<&CorrelationStats> for ProbeCounts {
    fn from(c: &CorrelationStats) -> Self {
        Self {
            sent: c.probes_sent,
            timed_out: c.probes_timed_out,
            matched: c.probes_matched,
            missing_hops: c.probes_missing_hops,
            non_causal: c.probes_out_of_order,
            missing_by_point: c.missing_by_point.clone(),
        }
    }
}

impl ProbeCounts {
    /// Add another block's (or repetition's) counts to these.
    pub fn add(&mut self, o: &Self) {
        self.sent += o.sent;
        self.timed_out += o.timed_out;
        self.matched += o.matched;
        self.missing_hops += o.missing_hops;
        self.non_causal += o.non_causal;
        for (point, n) in &o.missing_by_point {
            match self.missing_by_point.iter_mut().find(|(p, _)| p == point) {
                Some((_, m)) => *m += n,
                None => self.missing_by_point.push((point.clone(), *n)),
            }
        }
    }

    /// Matched share in tenths of a percent, rounded down (so 98.99% reads 98.9%, never
    /// a 99.0% that is not ok). `None` when nothing was sent.
    #[must_use]
    pub fn matched_permille(&self) -> Option<u64> {
        (self.sent > 0).then(|| {
            let p = u128::from(self.matched) * 1000 / u128::from(self.sent);
            u64::try_from(p).unwrap_or(u64::MAX)
        })
    }

    /// `missing hops 12, timed out 3, non-causal 14` and, where known, the points that
    /// were missing: `; missing at a x3, b x9`.
    #[must_use]
    pub fn losses(&self) -> String {
        let mut out = format!(
            "missing hops {}, timed out {}, non-causal {}",
            self.missing_hops, self.timed_out, self.non_causal
        );
        if !self.missing_by_point.is_empty() {
            let mut points = self.missing_by_point.clone();
            points.sort();
            let points: Vec<String> = points.iter().map(|(p, n)| format!("{p} x{n}")).collect();
            let _ = write!(out, "; missing at {}", points.join(", "));
        }
        out
    }
}

/// A scenario's status from its probe counts and the error that stopped it, if any:
/// failed when there is an error or no probe matched, degraded when under 99% of the
/// sent probes matched, ok otherwise. The reason says why for anything but ok.
#[must_use]
pub fn decide_status(counts: &ProbeCounts, error: Option<String>) -> (Status, Option<String>) {
    if let Some(e) = error {
        return (Status::Failed, Some(e));
    }
    if counts.sent == 0 {
        return (Status::Failed, Some("no probe was sent".to_owned()));
    }
    if counts.matched == 0 {
        return (
            Status::Failed,
            Some(format!(
                "no probe was seen at every hop (of {} sent: {})",
                counts.sent,
                counts.losses()
            )),
        );
    }
    if u128::from(counts.matched) * 100 < u128::from(counts.sent) * u128::from(MIN_MATCHED_PERCENT)
    {
        let pm = counts.matched_permille().unwrap_or(0);
        return (
            Status::Degraded,
            Some(format!(
                "only {}.{}% of probes matched ({})",
                pm / 10,
                pm % 10,
                counts.losses()
            )),
        );
    }
    (Status::Ok, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures::measured;

    fn counts(sent: u64, matched: u64) -> ProbeCounts {
        // The rest of the probes: one third timed out, the others missing a hop.
        let rest = sent - matched;
        ProbeCounts {
            sent,
            timed_out: rest / 3,
            matched,
            missing_hops: rest - rest / 3,
            non_causal: 0,
            missing_by_point: Vec::new(),
        }
    }

    #[test]
    fn status_boundaries() {
        assert_eq!(decide_status(&counts(1000, 990), None), (Status::Ok, None));
        assert_eq!(decide_status(&counts(1000, 1000), None), (Status::Ok, None));
        assert_eq!(decide_status(&counts(100, 99), None), (Status::Ok, None));
        let (st, why) = decide_status(&counts(1000, 989), None);
        assert_eq!(st, Status::Degraded);
        assert_eq!(
            why.as_deref(),
            Some("only 98.9% of probes matched (missing hops 8, timed out 3, non-causal 0)")
        );
        // 98.99% is still under 99% and must not read "99.0%".
        let (st, why) = decide_status(&counts(10_000, 9_899), None);
        assert_eq!(st, Status::Degraded);
        assert!(why.unwrap().starts_with("only 98.9% "));
        let (st, why) = decide_status(&counts(200, 0), None);
        assert_eq!(st, Status::Failed);
        assert!(
            why.unwrap()
                .starts_with("no probe was seen at every hop (of 200 sent: ")
        );
        assert_eq!(
            decide_status(&counts(0, 0), None),
            (Status::Failed, Some("no probe was sent".into()))
        );
        // An error wins over any count.
        assert_eq!(
            decide_status(&counts(1000, 1000), Some("interrupted".into())),
            (Status::Failed, Some("interrupted".into()))
        );
    }

    #[test]
    fn degraded_reason_names_each_loss_and_the_missing_points() {
        let c = ProbeCounts {
            sent: 1000,
            timed_out: 3,
            matched: 971,
            missing_hops: 12,
            non_causal: 14,
            missing_by_point: vec![("server-eth-ingress".into(), 9), ("bridge-in".into(), 3)],
        };
        assert_eq!(
            decide_status(&c, None).1.as_deref(),
            Some(
                "only 97.1% of probes matched (missing hops 12, timed out 3, non-causal 14; \
                 missing at bridge-in x3, server-eth-ingress x9)"
            )
        );
    }

    #[test]
    fn counts_from_correlation_and_summed() {
        let stats = CorrelationStats {
            probes_sent: 10,
            probes_answered: 8,
            probes_timed_out: 2,
            probes_matched: 5,
            probes_missing_hops: 2,
            probes_out_of_order: 1,
            missing_by_point: vec![("x".into(), 2)],
            ..CorrelationStats::default()
        };
        let mut c = ProbeCounts::from(&stats);
        assert_eq!(
            (c.sent, c.timed_out, c.matched, c.missing_hops, c.non_causal),
            (10, 2, 5, 2, 1)
        );
        c.add(&ProbeCounts {
            sent: 4,
            timed_out: 0,
            matched: 3,
            missing_hops: 1,
            non_causal: 0,
            missing_by_point: vec![("x".into(), 1), ("y".into(), 1)],
        });
        assert_eq!((c.sent, c.matched, c.missing_hops), (14, 8, 3));
        assert_eq!(c.missing_by_point, vec![("x".into(), 3), ("y".into(), 1)]);
        let mut s = measured("a");
        s.set_counts(&c);
        assert_eq!(
            (
                s.probes_sent,
                s.probes_matched,
                s.probes_timed_out,
                s.probes_missing_hops,
                s.probes_non_causal
            ),
            (14, 8, 2, 3, 1)
        );
        assert_eq!(s.counts().matched, 8);
    }
}

//! Correlation: hop events + the agent's own stamps -> one timeline per probe -> stages.
//!
//! Pure functions over plain data, so they are tested without root and can be re-run
//! offline. Events are joined by (run id, seq, direction) from the probe header, never by
//! ring-buffer arrival order: each probe's points are placed by what they are (hook kind,
//! direction, device), and causality is checked on their timestamps.
use std::collections::HashMap;

use netbench_common::{Direction, HookKind, HopEvent};
use serde::Serialize;

/// A device as events name it: its ifindex. The tracer refuses to attach to two devices
/// with the same ifindex (in different namespaces), so within one trace the index is
/// unambiguous. The event's netns cookie cannot serve here: on ingress it names the
/// namespace of the socket that still owns the skb (the sender's, across a veth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeviceId {
    pub ifindex: u32,
}

/// Where a point of a timeline comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PointSource {
    /// The client agent's send stamp (`CLOCK_MONOTONIC`).
    ClientSend,
    /// The client agent's receive stamp.
    ClientRecv,
    /// A tc hook on a device, for one probe direction (`kind` is `TcIngress` or
    /// `TcEgress`).
    Tc {
        kind: HookKind,
        dir: Direction,
        device: DeviceId,
    },
}

/// One named point on a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Stable hook name, e.g. `client-eth0-egress`.
    pub name: String,
    pub source: PointSource,
}

/// A path: its points in causal order (client send first, client receive last) and the
/// names of the stages between consecutive points (`stages.len() == points.len() - 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathSpec {
    pub points: Vec<Point>,
    pub stages: Vec<String>,
}

impl PathSpec {
    /// Build a path; panics in debug builds when names and points do not line up.
    #[must_use]
    pub fn new(points: Vec<Point>, stages: Vec<String>) -> Self {
        debug_assert_eq!(points.len(), stages.len() + 1);
        Self { points, stages }
    }
}

/// The client agent's record of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppProbe {
    pub seq: u64,
    pub send_ns: u64,
    /// None when the probe was lost (timed out).
    pub recv_ns: Option<u64>,
}

/// One probe with every point present and in causal order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub seq: u64,
    /// One timestamp per [`PathSpec::points`] entry.
    pub ts_ns: Vec<u64>,
}

impl Timeline {
    /// Stage durations (consecutive differences); they sum to the round trip.
    #[must_use]
    pub fn stage_ns(&self) -> Vec<u64> {
        self.ts_ns.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[must_use]
    pub fn rtt_ns(&self) -> u64 {
        self.ts_ns.last().copied().unwrap_or(0) - self.ts_ns.first().copied().unwrap_or(0)
    }
}

/// What correlation found, beside the complete timelines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CorrelationStats {
    /// Probes the client sent.
    pub probes_sent: u64,
    /// Probes the client got an answer for.
    pub probes_answered: u64,
    /// Probes the client got no answer for in time (`probes_sent - probes_answered`).
    pub probes_timed_out: u64,
    /// Answered probes with every hop present and in causal order.
    pub probes_matched: u64,
    /// Answered probes with at least one hop missing (lost in the ring buffer, or never
    /// crossing that hook).
    pub probes_missing_hops: u64,
    /// Answered probes whose hop timestamps were not in causal order (non-causal; the
    /// results' `probes_non_causal`).
    pub probes_out_of_order: u64,
    /// Events seen more than once for the same probe and point (the first one is kept).
    pub duplicate_events: u64,
    /// Events of this run that match no point of the path (other devices, lost probes).
    pub unplaced_events: u64,
    /// How often each point was missing, by point name.
    pub missing_by_point: Vec<(String, u64)>,
}

impl CorrelationStats {
    /// Add another block's counts to these.
    pub fn absorb(&mut self, o: Self) {
        self.probes_sent += o.probes_sent;
        self.probes_answered += o.probes_answered;
        self.probes_timed_out += o.probes_timed_out;
        self.probes_matched += o.probes_matched;
        self.probes_missing_hops += o.probes_missing_hops;
        self.probes_out_of_order += o.probes_out_of_order;
        self.duplicate_events += o.duplicate_events;
        self.unplaced_events += o.unplaced_events;
        for (point, n) in o.missing_by_point {
            match self.missing_by_point.iter_mut().find(|(p, _)| *p == point) {
                Some((_, m)) => *m += n,
                None => self.missing_by_point.push((point, n)),
            }
        }
    }
}

/// Join `events` of run `run_id` with the agent's `probes` along `path`.
#[must_use]
pub fn correlate(
    path: &PathSpec,
    run_id: u32,
    probes: &[AppProbe],
    events: &[HopEvent],
) -> (Vec<Timeline>, CorrelationStats) {
    let n = path.points.len();
    let mut index_of_point: HashMap<PointSource, usize> = HashMap::new();
    for (i, p) in path.points.iter().enumerate() {
        index_of_point.insert(p.source, i);
    }
    let mut stats = CorrelationStats {
        probes_sent: probes.len() as u64,
        ..CorrelationStats::default()
    };
    // seq -> per-point timestamp
    let mut slots: HashMap<u64, Vec<Option<u64>>> = HashMap::with_capacity(probes.len());
    for p in probes {
        let mut v = vec![None; n];
        if let Some(i) = index_of_point.get(&PointSource::ClientSend) {
            v[*i] = Some(p.send_ns);
        }
        if let (Some(i), Some(r)) = (index_of_point.get(&PointSource::ClientRecv), p.recv_ns) {
            v[*i] = Some(r);
        }
        slots.insert(p.seq, v);
    }
    for ev in events.iter().filter(|e| e.run_id == run_id) {
        let (Ok(kind), Ok(dir)) = (HookKind::try_from(ev.hook), Direction::try_from(ev.dir)) else {
            stats.unplaced_events += 1;
            continue;
        };
        match kind {
            HookKind::TcIngress | HookKind::TcEgress => {}
            HookKind::AppSend | HookKind::AppRecv => {
                stats.unplaced_events += 1;
                continue;
            }
            // Scheduler events carry no probe identity: see `runqueue`.
            HookKind::SchedWakeup | HookKind::SchedSwitchIn => continue,
        }
        let source = PointSource::Tc {
            kind,
            dir,
            device: DeviceId {
                ifindex: ev.ifindex,
            },
        };
        let (Some(&i), Some(slot)) = (index_of_point.get(&source), slots.get_mut(&ev.seq)) else {
            stats.unplaced_events += 1;
            continue;
        };
        match slot[i] {
            None => slot[i] = Some(ev.ts_ns),
            Some(prev) => {
                stats.duplicate_events += 1;
                slot[i] = Some(prev.min(ev.ts_ns));
            }
        }
    }
    let mut missing = vec![0u64; n];
    let mut timelines = Vec::with_capacity(probes.len());
    for p in probes {
        if p.recv_ns.is_none() {
            stats.probes_timed_out += 1;
            continue;
        }
        stats.probes_answered += 1;
        let slot = &slots[&p.seq];
        if slot.iter().any(Option::is_none) {
            stats.probes_missing_hops += 1;
            for (i, s) in slot.iter().enumerate() {
                if s.is_none() {
                    missing[i] += 1;
                }
            }
            continue;
        }
        let ts: Vec<u64> = slot.iter().map(|s| s.unwrap_or(0)).collect();
        if ts.windows(2).any(|w| w[0] > w[1]) {
            stats.probes_out_of_order += 1;
            continue;
        }
        stats.probes_matched += 1;
        timelines.push(Timeline {
            seq: p.seq,
            ts_ns: ts,
        });
    }
    stats.missing_by_point = path
        .points
        .iter()
        .zip(missing)
        .filter(|(_, m)| *m > 0)
        .map(|(p, m)| (p.name.clone(), m))
        .collect();
    timelines.sort_by_key(|t| t.seq);
    (timelines, stats)
}

#[cfg(test)]
mod tests {
    use netbench_common::{EVENT_VERSION, PROTO_UDP};

    use super::*;

    const C: DeviceId = DeviceId { ifindex: 2 };
    const S: DeviceId = DeviceId { ifindex: 3 };

    fn tc(kind: HookKind, dir: Direction, device: DeviceId) -> PointSource {
        PointSource::Tc { kind, dir, device }
    }

    fn veth_path() -> PathSpec {
        let p = |name: &str, source| Point {
            name: name.into(),
            source,
        };
        PathSpec::new(
            vec![
                p("client-send", PointSource::ClientSend),
                p(
                    "client-eth-egress",
                    tc(HookKind::TcEgress, Direction::Request, C),
                ),
                p(
                    "server-eth-ingress",
                    tc(HookKind::TcIngress, Direction::Request, S),
                ),
                p(
                    "server-eth-egress",
                    tc(HookKind::TcEgress, Direction::Reply, S),
                ),
                p(
                    "client-eth-ingress",
                    tc(HookKind::TcIngress, Direction::Reply, C),
                ),
                p("client-recv", PointSource::ClientRecv),
            ],
            [
                "client-tx-stack",
                "veth",
                "server",
                "veth-reply",
                "client-rx-stack",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    fn ev(seq: u64, hook: HookKind, dir: Direction, dev: DeviceId, ts: u64) -> HopEvent {
        HopEvent {
            version: EVENT_VERSION,
            proto: PROTO_UDP,
            _pad0: 0,
            hook: hook as u32,
            ifindex: dev.ifindex,
            cpu: 0,
            netns_cookie: 0,
            run_id: 5,
            dir: dir as u32,
            seq,
            ts_ns: ts,
            pkt_len: 64,
            tid: 0,
        }
    }

    fn full_probe(seq: u64, base: u64) -> (AppProbe, Vec<HopEvent>) {
        let evs = vec![
            ev(seq, HookKind::TcEgress, Direction::Request, C, base + 10),
            ev(seq, HookKind::TcIngress, Direction::Request, S, base + 15),
            ev(seq, HookKind::TcEgress, Direction::Reply, S, base + 40),
            ev(seq, HookKind::TcIngress, Direction::Reply, C, base + 44),
        ];
        (
            AppProbe {
                seq,
                send_ns: base,
                recv_ns: Some(base + 60),
            },
            evs,
        )
    }

    #[test]
    fn complete_probes_give_stages_that_sum_to_rtt() {
        let (p, e) = full_probe(0, 1000);
        let (tl, st) = correlate(&veth_path(), 5, &[p], &e);
        assert_eq!(st.probes_matched, 1);
        assert_eq!(tl[0].stage_ns(), vec![10, 5, 25, 4, 16]);
        assert_eq!(tl[0].stage_ns().iter().sum::<u64>(), tl[0].rtt_ns());
        assert_eq!(tl[0].rtt_ns(), 60);
    }

    #[test]
    fn reordered_arrival_does_not_matter() {
        let (p0, mut e) = full_probe(0, 1000);
        let (p1, e1) = full_probe(1, 2000);
        e.extend(e1);
        e.reverse();
        let (tl, st) = correlate(&veth_path(), 5, &[p0, p1], &e);
        assert_eq!(st.probes_matched, 2);
        assert_eq!(tl.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn missing_hop_is_counted_per_point_not_matched() {
        let (p, mut e) = full_probe(3, 1000);
        e.remove(1);
        let (tl, st) = correlate(&veth_path(), 5, &[p], &e);
        assert!(tl.is_empty());
        assert_eq!(st.probes_missing_hops, 1);
        assert_eq!(
            st.missing_by_point,
            vec![("server-eth-ingress".to_owned(), 1)]
        );
    }

    #[test]
    fn duplicates_keep_the_earliest_and_are_counted() {
        let (p, mut e) = full_probe(0, 1000);
        e.push(ev(0, HookKind::TcIngress, Direction::Request, S, 1016));
        let (tl, st) = correlate(&veth_path(), 5, &[p], &e);
        assert_eq!(st.duplicate_events, 1);
        assert_eq!(tl[0].ts_ns[2], 1015);
    }

    #[test]
    fn lost_probes_other_runs_and_foreign_devices_are_not_matched() {
        let (mut p, mut e) = full_probe(0, 1000);
        p.recv_ns = None;
        let mut other = ev(0, HookKind::TcIngress, Direction::Request, S, 1);
        other.run_id = 6;
        e.push(other);
        e.push(ev(
            0,
            HookKind::TcIngress,
            Direction::Request,
            DeviceId { ifindex: 7 },
            1,
        ));
        let (tl, st) = correlate(&veth_path(), 5, &[p], &e);
        assert!(tl.is_empty());
        assert_eq!(
            (
                st.probes_sent,
                st.probes_answered,
                st.probes_timed_out,
                st.unplaced_events
            ),
            (1, 0, 1, 1)
        );
    }

    #[test]
    fn non_causal_timestamps_are_rejected() {
        let (p, mut e) = full_probe(0, 1000);
        e[1].ts_ns = 1005; // server ingress before client egress
        let (tl, st) = correlate(&veth_path(), 5, &[p], &e);
        assert!(tl.is_empty());
        assert_eq!(st.probes_out_of_order, 1);
        assert_eq!((st.probes_answered, st.probes_timed_out), (1, 0));
    }

    #[test]
    fn every_sent_probe_lands_in_exactly_one_count() {
        // Five probes: matched, timed out, missing a hop, non-causal, matched.
        let mut probes = Vec::new();
        let mut events = Vec::new();
        for seq in 0..5 {
            let (mut p, mut e) = full_probe(seq, 1000 * (seq + 1));
            match seq {
                1 => p.recv_ns = None,
                2 => {
                    e.remove(2);
                }
                3 => e[3].ts_ns = 1000 * (seq + 1) + 70, // after the client's receive
                _ => {}
            }
            probes.push(p);
            events.extend(e);
        }
        let (tl, st) = correlate(&veth_path(), 5, &probes, &events);
        assert_eq!(tl.len(), 2);
        assert_eq!(
            (
                st.probes_sent,
                st.probes_matched,
                st.probes_timed_out,
                st.probes_missing_hops,
                st.probes_out_of_order
            ),
            (5, 2, 1, 1, 1)
        );
        assert_eq!(st.probes_answered, 4);
    }
}

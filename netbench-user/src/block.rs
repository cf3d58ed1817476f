//! A block of request/response probes, sent traced or untraced, with what the tracer
//! saw: the unit both `lab` and `run` measure in, and the observer effect pairs.
use crate::{
    agent::RrProbe,
    correlate::AppProbe,
    observer::BlockPair,
    trace::{SessionOutcome, TraceMode},
};

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub run_id: u32,
    pub traced: bool,
    pub probes: Vec<RrProbe>,
    /// Empty for an untraced block.
    pub trace: SessionOutcome,
}

impl Block {
    /// The agent's round trips of the answered probes, in ns.
    #[must_use]
    pub fn rtts_ns(&self) -> Vec<u64> {
        self.probes
            .iter()
            .filter(|p| !p.lost)
            .filter_map(|p| p.rtt_ns)
            .collect()
    }

    /// The probes as correlation wants them.
    #[must_use]
    pub fn app_probes(&self) -> Vec<AppProbe> {
        self.probes
            .iter()
            .map(|p| AppProbe {
                seq: p.seq,
                send_ns: p.send_ns,
                recv_ns: if p.lost { None } else { p.recv_ns },
            })
            .collect()
    }
}

/// The trace mode of a block.
#[must_use]
pub fn mode(traced: bool) -> TraceMode {
    if traced {
        TraceMode::Events
    } else {
        TraceMode::Off
    }
}

/// Order of traced (true) and untraced blocks for `pairs` pairs, ABBA (T U, U T, T U,
/// ...), so a slow drift of the machine weighs on both sides alike. Pair k is blocks
/// 2k and 2k+1.
#[must_use]
pub fn order(pairs: u32) -> Vec<bool> {
    (0..pairs)
        .flat_map(|i| {
            if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            }
        })
        .collect()
}

/// The observer-effect pairs of `blocks` laid out as [`order`] does (blocks 2k, 2k+1 of
/// opposite kinds); an incomplete last pair is left out.
#[must_use]
pub fn pairs(blocks: &[Block]) -> Vec<BlockPair> {
    blocks
        .chunks(2)
        .filter(|c| c.len() == 2 && c[0].traced != c[1].traced)
        .map(|c| {
            let (t, u) = if c[0].traced {
                (&c[0], &c[1])
            } else {
                (&c[1], &c[0])
            };
            BlockPair {
                traced_ns: t.rtts_ns(),
                untraced_ns: u.rtts_ns(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(traced: bool, rtts: &[u64]) -> Block {
        Block {
            traced,
            probes: rtts
                .iter()
                .enumerate()
                .map(|(i, &r)| RrProbe {
                    seq: i as u64,
                    run_id: 1,
                    send_ns: 1000 * i as u64,
                    recv_ns: Some(1000 * i as u64 + r),
                    rtt_ns: Some(r),
                    lost: false,
                    proto: None,
                })
                .collect(),
            ..Block::default()
        }
    }

    #[test]
    fn abba_order_and_pairing() {
        assert_eq!(order(2), [true, false, false, true]);
        assert_eq!(order(3), [true, false, false, true, true, false]);
        let blocks = [
            block(true, &[130]),
            block(false, &[100]),
            block(false, &[200]),
            block(true, &[210]),
            block(true, &[1]),
        ];
        let p = pairs(&blocks);
        assert_eq!(p.len(), 2, "the unpaired last block is left out");
        assert_eq!(p[0].traced_ns, [130]);
        assert_eq!(p[0].untraced_ns, [100]);
        assert_eq!(p[1].traced_ns, [210], "pair 2 is untraced first");
        assert_eq!(p[1].untraced_ns, [200]);
    }

    #[test]
    fn lost_probes_have_no_round_trip() {
        let mut b = block(true, &[5, 6]);
        b.probes[1].lost = true;
        assert_eq!(b.rtts_ns(), [5]);
        assert_eq!(b.app_probes()[1].recv_ns, None);
    }
}

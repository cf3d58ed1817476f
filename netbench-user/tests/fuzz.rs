//! Properties over generated input through netbench's public functions (bounded: a
//! few hundred cases, seconds): what the tracer reads (event bytes -> `HopEvent` ->
//! the correlation) and what `netbench report` reads (results.json -> tables -> plots)
//! never panic or hang, whatever the input.
use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use netbench::{
    correlate::{AppProbe, DeviceId, PathSpec, Point, PointSource, correlate},
    results::Results,
};
use netbench_common::{Direction, EVENT_VERSION, HookKind, HopEvent, PROTO_UDP};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const C: DeviceId = DeviceId { ifindex: 2 };
const S: DeviceId = DeviceId { ifindex: 3 };
const RUN: u32 = 5;

/// The lab's veth path: client send, four tc points, client receive.
fn veth_path() -> PathSpec {
    let tc = |name: &str, kind, dir, device| Point {
        name: name.into(),
        source: PointSource::Tc { kind, dir, device },
    };
    let app = |name: &str, source| Point {
        name: name.into(),
        source,
    };
    PathSpec::new(
        vec![
            app("client-send", PointSource::ClientSend),
            tc("c-egress", HookKind::TcEgress, Direction::Request, C),
            tc("s-ingress", HookKind::TcIngress, Direction::Request, S),
            tc("s-egress", HookKind::TcEgress, Direction::Reply, S),
            tc("c-ingress", HookKind::TcIngress, Direction::Reply, C),
            app("client-recv", PointSource::ClientRecv),
        ],
        ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
    )
}

/// Event bytes as the kernel writes them: mostly plausible (this run, the path's
/// devices, few sequence numbers), sometimes anything; then cut or corrupted.
fn event_bytes() -> impl Strategy<Value = Vec<u8>> {
    let small = |max: u32| prop_oneof![4 => 0..max, 1 => any::<u32>()];
    (
        (small(8), small(3), small(5), small(2)),
        (prop_oneof![4 => 0u64..6, 1 => any::<u64>()], any::<u64>()),
        prop_oneof![8 => Just(None), 1 => (0usize..HopEvent::SIZE, any::<u8>()).prop_map(Some)],
        prop_oneof![8 => Just(HopEvent::SIZE), 1 => 0usize..HopEvent::SIZE + 8],
        prop_oneof![4 => Just(RUN), 1 => any::<u32>()],
    )
        .prop_map(
            |((hook, dir, ifindex, cpu), (seq, ts_ns), flip, len, run_id)| {
                let ev = HopEvent {
                    version: EVENT_VERSION,
                    proto: PROTO_UDP,
                    _pad0: 0,
                    hook,
                    ifindex,
                    cpu,
                    netns_cookie: 0,
                    run_id,
                    dir,
                    seq,
                    ts_ns,
                    pkt_len: 64,
                    tid: 0,
                };
                let mut b = vec![0u8; HopEvent::SIZE];
                // SAFETY: `b` holds SIZE bytes; write_unaligned makes no alignment assumption.
                unsafe { core::ptr::write_unaligned(b.as_mut_ptr().cast::<HopEvent>(), ev) };
                if let Some((at, byte)) = flip {
                    b[at] = byte;
                }
                b.resize(len, 0);
                b
            },
        )
}

fn probe() -> impl Strategy<Value = AppProbe> {
    (
        prop_oneof![4 => 0u64..6, 1 => any::<u64>()],
        any::<u64>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(seq, send_ns, recv_ns)| AppProbe {
            seq,
            send_ns,
            recv_ns,
        })
}

proptest! {
    #![proptest_config(config(400))]

    /// Bytes -> events (the reader's decoding) -> timelines: the counts agree, never a
    /// panic (u64 stamps anywhere, duplicate and foreign
    /// events, unknown hooks and directions).
    #[test]
    fn decoded_events_correlate_without_panic(
        raw in prop::collection::vec(event_bytes(), 0..40),
        probes in prop::collection::vec(probe(), 0..8),
    ) {
        let events: Vec<HopEvent> = raw.iter().filter_map(|b| HopEvent::from_bytes(b)).collect();
        let (timelines, stats) = correlate(&veth_path(), RUN, &probes, &events);
        // Every probe is counted once: matched (a timeline), missing a hop, out of
        // order, or not answered.
        prop_assert_eq!(timelines.len() as u64, stats.probes_matched);
        prop_assert_eq!(stats.probes_sent, probes.len() as u64);
        prop_assert!(stats.probes_matched + stats.probes_missing_hops + stats.probes_out_of_order
            <= stats.probes_answered);
        for t in &timelines {
            let _ = (t.stage_ns(), t.rtt_ns());
        }
    }
}

/// A real run's results.json (the reader's own test data).
const REAL: &str = include_str!("../src/results/testdata/run.json");

/// Every JSON pointer to a number in `v`.
fn numbers(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(_) => out.push(at.to_owned()),
        serde_json::Value::Object(m) => {
            for (k, c) in m {
                numbers(c, &format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                numbers(c, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn figure() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::from(0)),
        Just(serde_json::Value::from(-1.0)),
        Just(serde_json::Value::from(1e-300)),
        Just(serde_json::Value::from(1e12)),
        Just(serde_json::Value::from(-1e12)),
        Just(serde_json::Value::from(1e13)),
        Just(serde_json::Value::from(f64::MAX)),
        Just(serde_json::Value::Null),
        (0.0f64..1e6).prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
    ]
}

/// Fails the test run if a case does not end (a hang is worse than a panic: `netbench
/// report` would never return).
fn watchdog(limit: Duration) -> &'static AtomicBool {
    static DONE: AtomicBool = AtomicBool::new(false);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        if !DONE.load(Ordering::SeqCst) {
            eprintln!("a case has not ended after {limit:?}: hang in netbench report's path");
            std::process::abort();
        }
    });
    &DONE
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nb-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `netbench report DIR`: read, render, plot. Some(plots) when the file loads.
fn report(dir: &Path) -> Option<usize> {
    let r = Results::load(dir).ok()?;
    let _ = netbench::results::render(&r);
    Some(netbench::plot::write_all(&r, dir).map_or(0, |p| p.len()))
}

#[test]
fn report_of_mutated_figures_ends_without_panic() {
    let done = watchdog(Duration::from_mins(4));
    let dir = scratch("mutated");
    let mut runner = proptest::test_runner::TestRunner::new(config(60));
    let strategy = prop::collection::vec((any::<prop::sample::Index>(), figure()), 1..8);
    let result = runner.run(&strategy, |muts| {
        let mut doc: serde_json::Value = serde_json::from_str(REAL).unwrap();
        let mut at = Vec::new();
        numbers(&doc, "", &mut at);
        for (i, v) in &muts {
            let p = &at[i.index(at.len())];
            if let Some(slot) = doc.pointer_mut(p) {
                *slot = v.clone();
            }
        }
        std::fs::write(dir.join("results.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
        let _ = report(&dir);
        Ok(())
    });
    done.store(true, Ordering::SeqCst);
    std::fs::remove_dir_all(&dir).unwrap();
    result.unwrap();
}

#[test]
fn report_of_the_real_run_plots() {
    let dir = scratch("real");
    std::fs::write(dir.join("results.json"), REAL).unwrap();
    assert!(report(&dir).is_some_and(|n| n > 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

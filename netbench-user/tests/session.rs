//! Privileged tests of the one trace session (`trace::Session`) on real veths between
//! namespaces the tests create: its three modes, loss accounting when a burst overflows
//! the ring, and the in-kernel tracking of a server's new threads. Run as root through
//! `cargo xtask test`.

mod common;

use netbench::{
    agent::{AgentServer, RrProbe, RrSpec, run_rr},
    lab::LabTopology,
    trace::{Session, SessionConfig, SessionOutcome, TraceMode},
};
use netbench_common::{HookKind, protocol::Proto};

/// A veth pair, a server, `count` probes sent through a session in `config`'s mode.
async fn probes_through(
    tag: &str,
    port: u16,
    proto: Proto,
    count: u64,
    configure: impl FnOnce(&mut SessionConfig, u32),
) -> (Vec<RrProbe>, SessionOutcome, LabTopology) {
    let topo = LabTopology::veth(tag).await.expect("veth topology");
    let server = AgentServer::start(&topo.server.netns_ref(), port, 120)
        .await
        .expect("agent serve");
    let mut config = SessionConfig::new(TraceMode::Events, vec![port], topo.hooks.clone());
    config.expected_events = count * 4;
    configure(&mut config, server.pid().expect("server pid"));
    let mode = config.mode;
    let session = Session::start(&config).expect("trace session");
    assert_eq!(session.is_tracing(), mode != TraceMode::Off);
    if mode == TraceMode::Off {
        // Nothing attached at all: the untraced baseline is really untraced.
        for hook in &topo.hooks {
            common::assert_no_tc(&hook.netns, &hook.ifname).await;
        }
    }
    let spec = RrSpec::new(
        topo.server.ip,
        port,
        proto,
        count,
        0x5e55_0000 | u32::from(port),
    );
    let probes = run_rr(&topo.client.netns_ref(), &spec).await.expect("rr");
    let outcome = session.finish().await.expect("finish");
    server.stop().await;
    for hook in &topo.hooks {
        common::assert_no_tc(&hook.netns, &hook.ifname).await;
    }
    eprintln!(
        "{tag} {mode:?}: {} probes, {} events delivered, kernel {:?}, reader {:?}, ring {} B",
        probes.len(),
        outcome.delivered,
        outcome.counters,
        outcome.reader,
        outcome.ring_bytes
    );
    assert_eq!(
        outcome.reader.decoded, outcome.delivered,
        "the reader's own count agrees with what reached the consumer"
    );
    (probes, outcome, topo)
}

fn answered(probes: &[RrProbe]) -> u64 {
    probes.iter().filter(|p| !p.lost).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_only_counts_every_probe_packet_and_emits_no_event() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let (probes, outcome, _topo) = probes_through("sc", 7411, Proto::Udp, 500, |c, _| {
        c.mode = TraceMode::CountOnly;
    })
    .await;
    let n = answered(&probes);
    assert!(n * 100 >= 500 * 99, "answered {n} of 500");
    assert_eq!(outcome.delivered, 0, "count-only emits no event");
    assert_eq!(outcome.counters.events_lost, 0);
    // Each answered probe crosses 4 hook points (request out/in, reply out/in); a lost
    // one at least its request's egress.
    assert!(
        outcome.counters.probes_seen >= 4 * n && outcome.counters.probes_seen <= 4 * 500,
        "probe packets seen {} for {n} answered probes",
        outcome.counters.probes_seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_attaches_nothing_and_returns_nothing() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let (probes, outcome, _topo) = probes_through("so", 7421, Proto::Udp, 200, |c, _| {
        c.mode = TraceMode::Off;
    })
    .await;
    assert!(answered(&probes) >= 198);
    assert_eq!(outcome.delivered, 0);
    assert!(outcome.events.is_empty());
    assert_eq!(outcome.counters.probes_seen, 0);
    assert_eq!(outcome.ring_bytes, 0, "no ring buffer was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_ring_reports_its_loss() {
    let Some(_root) = common::require_root() else {
        return;
    };
    // 2000 probes x 4 events x 64 B = 512 KiB into a 64 KiB ring whose reader is held
    // back until the end: most events cannot be reserved.
    let (probes, outcome, _topo) = probes_through("sl", 7431, Proto::Udp, 2000, |c, _| {
        c.streaming = Some(netbench::trace::Streaming {
            ring_bytes: Some(1 << 16),
            hold_reader: true,
            ..netbench::trace::Streaming::default()
        });
    })
    .await;
    let n = answered(&probes);
    assert!(n * 100 >= 2000 * 99, "answered {n} of 2000");
    assert!(
        outcome.counters.events_lost > 0,
        "the overflow is counted: {:?}",
        outcome.counters
    );
    assert!(outcome.delivered > 0, "what fitted was delivered");
    assert!(outcome.delivered <= (1 << 16) / 64);
    // Every probe packet the programs saw is either a delivered event or a counted loss.
    assert_eq!(
        outcome.delivered + outcome.events_lost(),
        outcome.counters.probes_seen,
        "delivered + lost = seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_a_server_creates_are_traced_from_the_kernel() {
    let Some(_root) = common::require_root() else {
        return;
    };
    // The TCP server starts a thread per connection once the client connects, after the
    // session started: only the fork hook can add it (there is no poller).
    let mut seeded = Vec::new();
    let (probes, outcome, _topo) = probes_through("st", 7441, Proto::Tcp, 300, |c, server| {
        c.track_pids = vec![server];
        seeded = netbench::trace::sched::threads_of(server);
    })
    .await;
    assert!(answered(&probes) >= 297);
    assert!(!seeded.is_empty());
    assert!(
        outcome.tracked_threads > seeded.len(),
        "the connection's thread joined the traced set ({} tracked, {seeded:?} at start)",
        outcome.tracked_threads
    );
    let sched: Vec<_> = outcome
        .events
        .iter()
        .filter(|e| {
            e.hook == HookKind::SchedWakeup as u32 || e.hook == HookKind::SchedSwitchIn as u32
        })
        .collect();
    assert!(
        sched.iter().any(|e| !seeded.contains(&e.tid)),
        "scheduler events of a thread created after the session started: {} events",
        sched.len()
    );
    assert!(
        sched.len() as u64 >= answered(&probes),
        "the serving thread is woken at least once per probe: {} events",
        sched.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_recorder_reports_its_loss() {
    let Some(_root) = common::require_root() else {
        return;
    };
    // 2000 probes x 4 events into the recorder's smallest size (1024 slots per CPU for
    // tc events): what does not fit is counted, never overwritten.
    let (probes, outcome, _topo) = probes_through("sr", 7451, Proto::Udp, 2000, |c, _| {
        c.expected_events = 1;
    })
    .await;
    let n = answered(&probes);
    assert!(n * 100 >= 2000 * 99, "answered {n} of 2000");
    assert_eq!(outcome.record_slots, 1024);
    let cpus = u64::from(netbench::trace::possible_cpus());
    assert!(outcome.delivered <= 1024 * cpus, "{}", outcome.delivered);
    assert!(outcome.counters.events_lost > 0, "{:?}", outcome.counters);
    assert_eq!(
        outcome.delivered + outcome.events_lost(),
        outcome.counters.probes_seen,
        "delivered + lost = seen"
    );
    // Recorded events are whole: each is one of this run's probes at a traced device.
    assert!(
        outcome
            .events
            .iter()
            .all(|e| e.run_id == (0x5e55_0000 | u32::from(7451_u16)))
    );
}

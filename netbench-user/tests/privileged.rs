//! Privileged integration tests: real eBPF programs on real namespaces and veths that
//! each test creates and always tears down (the topology's namespaces are removed on
//! drop, even when an assertion panics). Run as root through `cargo xtask test`.
//!
//! When a kernel feature is missing, a test says so on stderr and in its name's output
//! ("SKIPPED: ...") instead of passing silently.

mod common;

use std::collections::HashMap;

use netbench::{
    agent::{AgentServer, RrSpec, run_rr},
    lab::{LabPath, LabTopology},
    netlink,
    netns::NetnsRef,
    trace::{Session, SessionConfig, TcMode, TraceConfig, TraceMode, Tracer},
};
use netbench_common::{Direction, HookKind, HopEvent, PROTO_TCP, PROTO_UDP, protocol::Proto};

/// The ifindex of a hook device, looked up independently of the tracer (netlink).
async fn device_id(ns: &NetnsRef, ifname: &str) -> u32 {
    let h = netlink::handle_in(ns).expect("netlink handle");
    netlink::index_of(&h, ifname).await.expect("ifindex")
}

#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn rr_across_veth(proto: Proto, port: u16, tag: &str, mode: TcMode, streaming: bool) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let topo = LabTopology::veth(tag)
        .await
        .expect("building the veth topology");
    let client_dev = device_id(&topo.client.netns_ref(), &topo.client.ifname).await;
    let server_dev = device_id(&topo.server.netns_ref(), &topo.server.ifname).await;
    assert_ne!(
        client_dev, server_dev,
        "the tracer needs distinct ifindexes"
    );

    let server = AgentServer::start(&topo.server.netns_ref(), port, 120)
        .await
        .expect("agent serve");
    let count = 300;
    let mut config = SessionConfig::new(TraceMode::Events, vec![port], topo.hooks.clone());
    config.tc_mode = mode;
    config.expected_events = count * 4;
    // Through the ring buffer (drained while probes run) or the recorder (read after).
    config.streaming = streaming.then(netbench::trace::Streaming::default);
    let session = Session::start(&config).expect("trace session");
    let spec = RrSpec::new(topo.server.ip, port, proto, count, 0x00c0_ffee);
    let probes = run_rr(&topo.client.netns_ref(), &spec)
        .await
        .expect("agent rr");
    let outcome = session.finish().await.expect("finishing the session");
    server.stop().await;
    let (events, stats, counters) = (outcome.events, outcome.reader, outcome.counters);
    for hook in &topo.hooks {
        common::assert_no_tc(&hook.netns, &hook.ifname).await;
    }
    eprintln!(
        "{}/{mode:?}: {} probes, {} events, reader {stats:?}, kernel {counters:?}",
        proto.name(),
        probes.len(),
        events.len()
    );

    assert_eq!(
        probes.len(),
        usize::try_from(count).unwrap(),
        "the agent reports every probe"
    );
    let answered: Vec<_> = probes.iter().filter(|p| !p.lost).collect();
    assert!(
        answered.len() * 100 >= probes.len() * 99,
        "at most 1% lost on a veth: {} of {}",
        answered.len(),
        probes.len()
    );
    assert_eq!(
        counters.events_lost, 0,
        "ring buffer never full at this rate"
    );
    assert_eq!(stats.dropped + stats.malformed, 0);
    // No wake-up per event: streaming, the reader ran on its timer only (a forced
    // wake-up would mean the ring passed its watermark, which a ring sized for the run
    // never does); recording, there is no reader at all.
    assert_eq!(stats.forced_wakeups, 0, "{stats:?}");
    assert!(
        stats.wakeups() * 20 < events.len() as u64,
        "the reader woke {} times for {} events",
        stats.wakeups(),
        events.len()
    );

    // Index the events by (seq, direction, hook, device).
    let mut by_probe: HashMap<(u64, Direction), Vec<HopEvent>> = HashMap::new();
    for ev in &events {
        assert_eq!(
            ev.run_id, spec.run_id,
            "only this run's probes are on this port"
        );
        let expect_proto = if proto == Proto::Udp {
            PROTO_UDP
        } else {
            PROTO_TCP
        };
        assert_eq!(ev.proto, expect_proto);
        let dir = Direction::try_from(ev.dir).expect("direction");
        by_probe.entry((ev.seq, dir)).or_default().push(*ev);
    }
    let find = |evs: &[HopEvent], hook: HookKind, dev: u32| -> Option<u64> {
        let hits: Vec<u64> = evs
            .iter()
            .filter(|e| e.hook == hook as u32 && e.ifindex == dev)
            .map(|e| e.ts_ns)
            .collect();
        assert!(
            hits.len() <= 1,
            "one event per hook and probe, got {hits:?}"
        );
        hits.first().copied()
    };
    for p in &answered {
        let req = by_probe
            .get(&(p.seq, Direction::Request))
            .unwrap_or_else(|| panic!("no request events for seq {}", p.seq));
        let rep = by_probe
            .get(&(p.seq, Direction::Reply))
            .unwrap_or_else(|| panic!("no reply events for seq {}", p.seq));
        // Request: client eth egress -> server eth ingress; reply the other way.
        let t1 = find(req, HookKind::TcEgress, client_dev)
            .unwrap_or_else(|| panic!("seq {}: no client egress", p.seq));
        let t2 = find(req, HookKind::TcIngress, server_dev)
            .unwrap_or_else(|| panic!("seq {}: no server ingress", p.seq));
        let t3 = find(rep, HookKind::TcEgress, server_dev)
            .unwrap_or_else(|| panic!("seq {}: no server egress", p.seq));
        let t4 = find(rep, HookKind::TcIngress, client_dev)
            .unwrap_or_else(|| panic!("seq {}: no client ingress", p.seq));
        let recv = p.recv_ns.expect("answered probes have a receive stamp");
        let chain = [p.send_ns, t1, t2, t3, t4, recv];
        assert!(
            chain.windows(2).all(|w| w[0] <= w[1]),
            "seq {}: hops out of causal order: {chain:?}",
            p.seq
        );
        // Each direction's events sit exactly on the expected devices: egress where the
        // message leaves, ingress where it arrives, never on a peer's index.
        let on = |evs: &[HopEvent], eg: u32, ing: u32| {
            evs.iter().all(|e| {
                (e.hook == HookKind::TcEgress as u32 && e.ifindex == eg)
                    || (e.hook == HookKind::TcIngress as u32 && e.ifindex == ing)
            })
        };
        assert!(
            on(req, client_dev, server_dev),
            "seq {}: request events on wrong devices: {req:?}",
            p.seq
        );
        assert!(
            on(rep, server_dev, client_dev),
            "seq {}: reply events on wrong devices: {rep:?}",
            p.seq
        );
    }
    let names: Vec<String> = topo.namespaces().iter().map(ToString::to_string).collect();
    drop(topo);
    common::assert_gone(&names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rr_across_veth_is_traced_at_both_ends() {
    rr_across_veth(Proto::Udp, 7311, "vu", TcMode::Auto, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_rr_across_veth_is_traced_at_both_ends() {
    rr_across_veth(Proto::Tcp, 7321, "vt", TcMode::Auto, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlink_attach_traces_and_leaves_no_qdisc() {
    rr_across_veth(Proto::Udp, 7331, "vn", TcMode::Netlink, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_device_fails_cleanly() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let topo = LabTopology::veth("vb").await.expect("topology");
    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![7341],
        ..TraceConfig::default()
    })
    .expect("load");
    let bad = netbench::trace::HookDevice::new(topo.client.netns_ref(), "nosuchdev0");
    let err = tracer
        .attach(&bad, TcMode::Auto)
        .expect_err("attaching to a missing device must fail");
    assert!(
        err.to_string().contains("nosuchdev0"),
        "the error names the device: {err}"
    );
    assert!(tracer.attachments().is_empty());
    let names: Vec<String> = topo.namespaces().iter().map(ToString::to_string).collect();
    drop(topo);
    common::assert_gone(&names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_ifindex_in_two_namespaces_is_refused() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let topo = LabTopology::veth("vi").await.expect("topology");
    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![7351],
        ..TraceConfig::default()
    })
    .expect("load");
    // `lo` is ifindex 1 in every namespace.
    let lo_c = netbench::trace::HookDevice::new(topo.client.netns_ref(), "lo");
    let lo_s = netbench::trace::HookDevice::new(topo.server.netns_ref(), "lo");
    tracer.attach(&lo_c, TcMode::Auto).expect("first lo");
    let err = tracer
        .attach(&lo_s, TcMode::Auto)
        .expect_err("second lo is ambiguous");
    assert!(err.to_string().contains("share ifindex 1"), "{err}");
    assert_eq!(
        tracer.attachments().len(),
        2,
        "only the first lo (ingress+egress)"
    );
    tracer.detach_all().expect("detach");
    common::assert_no_tc(&topo.client.netns_ref(), "lo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_veth_path_traced_and_untraced() {
    lab_path_traced_and_untraced(
        LabPath::Veth,
        7361,
        &[
            "client-tx-stack",
            "veth",
            "server-stack-and-app",
            "veth-reply",
            "client-rx-stack",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_bridge_path_traced_and_untraced() {
    lab_path_traced_and_untraced(
        LabPath::Bridge,
        7371,
        &[
            "client-tx-stack",
            "veth-client",
            "bridge",
            "veth-server",
            "server-stack-and-app",
            "veth-server-reply",
            "bridge-reply",
            "veth-client-reply",
            "client-rx-stack",
        ],
    )
    .await;
}

async fn lab_path_traced_and_untraced(path: LabPath, port: u16, stages: &[&str]) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = netbench::netns::list_owned();
    let config = netbench::lab::run::LabConfig {
        path,
        probes: 2000,
        size: 64,
        proto: Proto::Udp,
        port,
        stress: netbench::stress::Stress::None,
        pairs: 2,
        placement: netbench::lab::run::Placement::Split,
        sched: netbench::trace::sched::SchedTracing::On,
    };
    let r = netbench::lab::run::run_lab(&config).await.expect("lab run");
    eprint!("{}", netbench::lab::run::render_table(&r));
    assert_eq!(r.correlation.probes_sent, 2000);
    assert!(
        r.correlation.probes_matched * 100 >= 2000 * 99,
        "at least 99% matched with every hop: {:?}",
        r.correlation
    );
    let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, stages);
    assert_eq!(
        r.events_lost, 0,
        "a recorder sized for the run loses nothing"
    );
    // Scheduler tracing on: the server stage is split by its threads' events, and
    // every matched probe falls in one of the three cases.
    let rq = r.runqueue.expect("run-queue split with --sched on");
    assert_eq!(
        rq.probes_woken + rq.probes_runnable + rq.probes_running,
        r.correlation.probes_matched
    );
    assert!(
        r.breakdown.iter().any(|b| b.name == "runqueue-wait"),
        "{:?}",
        r.breakdown
    );
    // Half the probes went untraced, in blocks paired with the traced ones.
    let untraced = r.rtt_untraced_us.expect("untraced round trips");
    assert!(
        untraced.count * 100 >= 1000 * 99,
        "untraced probes answered: {}",
        untraced.count
    );
    let effect = r.observer_effect.expect("observer effect");
    assert_eq!(effect.pairs, 2, "two traced/untraced block pairs");
    assert!(effect.p50.ratio.is_finite() && effect.p50.ratio > 0.0);
    // Every stage was measured on every matched probe (a stage of a missing interval
    // would have fewer samples), and the reader never woke per event.
    assert!(
        r.trace.reader_wakeups * 20 < r.trace.events,
        "reader woke {} times for {} events",
        r.trace.reader_wakeups,
        r.trace.events
    );
    assert_eq!(
        netbench::netns::list_owned(),
        before,
        "no namespace left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_tap_path_traced_and_untraced() {
    lab_path_traced_and_untraced(LabPath::Tap, 7381, netbench::stages::TAP_STAGES).await;
}

/// Tracing the Kata-style path never steals packets from its mirred redirects, and
/// detaching leaves Kata's own qdiscs and filters exactly as they were (tcx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_the_tap_path_keeps_kata_redirects_working() {
    tap_path_keeps_kata_redirects_working(TcMode::Auto, 7391).await;
}

/// The same with legacy netlink filters, which share Kata's `ingress` qdisc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlink_tracing_the_tap_path_keeps_kata_redirects_working() {
    tap_path_keeps_kata_redirects_working(TcMode::Netlink, 7395).await;
}

async fn tap_path_keeps_kata_redirects_working(mode: TcMode, port: u16) {
    use netbench::lab::{tap, topology::TAP, vmm::StandIn};
    let Some(_root) = common::require_root() else {
        return;
    };
    let topo = LabTopology::tap("tk").await.expect("tap topology");
    let sandbox = topo.extra[0].reference();
    let h = netlink::handle_in(&sandbox).expect("netlink");
    let eth0 = netlink::index_of(&h, "eth0").await.expect("eth0");
    let tap0 = netlink::index_of(&h, TAP).await.expect("tap");
    let filters = |h: rtnetlink::Handle| async move {
        (
            tap::ingress_filter_count(&h, eth0).await.expect("filters"),
            tap::ingress_filter_count(&h, tap0).await.expect("filters"),
        )
    };
    let before = filters(h.clone()).await;
    assert!(
        before.0 >= 1 && before.1 >= 1,
        "Kata's redirects are installed: {before:?}"
    );

    let vmm = StandIn::start(&topo.vmm_spec(120).expect("tap path"))
        .await
        .expect("vmm stand-in");
    let server = AgentServer::start(&topo.server.netns_ref(), port, 120)
        .await
        .expect("serve in guest");
    let spec = RrSpec::new(topo.server.ip, port, Proto::Udp, 200, 77);
    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![port],
        ..TraceConfig::default()
    })
    .expect("load");
    for hook in &topo.hooks {
        tracer.attach(hook, mode).expect("attach");
    }
    let probes_traced = run_rr(&topo.client.netns_ref(), &spec)
        .await
        .expect("rr traced");
    let seen = tracer.counters().expect("counters").probes_seen;
    tracer.detach_all().expect("detach");
    drop(tracer);
    let untraced = run_rr(&topo.client.netns_ref(), &spec)
        .await
        .expect("rr after detach");
    server.stop().await;
    vmm.stop().await;

    let answered = |p: &[netbench::agent::RrProbe]| p.iter().filter(|x| !x.lost).count();
    assert_eq!(
        answered(&probes_traced),
        200,
        "every probe answered while traced"
    );
    assert_eq!(
        answered(&untraced),
        200,
        "every probe answered after detach"
    );
    assert!(seen >= 200 * 8, "each probe seen at 8 hook points: {seen}");
    assert_eq!(filters(h.clone()).await, before, "Kata's filters untouched");
    let kinds_eth = netlink::qdisc_kinds(&h, eth0).await.expect("qdiscs");
    assert!(kinds_eth.iter().any(|k| k == "ingress") && !kinds_eth.iter().any(|k| k == "clsact"));
    // Both devices still exist (the topology is alive): a failed query fails the test.
    for dev in ["eth0", TAP] {
        let progs = common::tcx_programs(&sandbox, dev)
            .unwrap_or_else(|| panic!("{dev} vanished from the sandbox"));
        assert_eq!(progs, 0, "no tcx program left on {dev}");
    }
    let names: Vec<String> = topo.namespaces().iter().map(ToString::to_string).collect();
    drop(topo);
    common::assert_gone(&names);
}

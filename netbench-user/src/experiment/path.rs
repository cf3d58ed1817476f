//! The traced path of a driver pair: the hook devices a request crosses, in order, with
//! the tc direction it crosses each one in, and the stage names between them. Stage
//! names are shared across pairs where the hop is the same kind (`client-tx-stack`,
//! `veth-client`, `bridge`, `veth-server`, `server-stack-and-app`, ...), and the reply
//! mirrors the request with `-reply` (Kata's redirects: `tc-redirect-in` on the way to
//! the VM, `tc-redirect-out` on the way back).
use std::collections::HashMap;

use super::matrix::Driver;
use crate::{
    correlate::{AppProbe, CorrelationStats, HookKindTag, PathSpec, Point, PointSource, Timeline},
    docker::hooks::{ContainerHooks, Interface},
    stages::{PathHook, explicit_path},
    trace::HookDevice,
};

pub const CLIENT_TX: &str = "client-tx-stack";
pub const CLIENT_RX: &str = "client-rx-stack";
pub const SERVER_TURN: &str = "server-stack-and-app";
/// Kata: the server VM (guest kernel + agent + VMM), between the tap's egress and ingress.
pub const VM_TURN: &str = "vm";
/// Kata client: the client VM's guest tx and rx (guest clock: a duration only).
pub const CLIENT_VM: &str = "client-vm";

/// One traced device on the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Display name, e.g. `client:eth0`, `host:veth1a2b3c4`, `overlay:veth…`.
    pub name: String,
    pub device: HookDevice,
    pub ifindex: u32,
    /// tc direction the request crosses it in, and the reply.
    pub request: HookKindTag,
    pub reply: HookKindTag,
}

/// The plan for tracing one pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPlan {
    pub hops: Vec<Hop>,
    /// Stage names of the full path (what results report).
    pub stages: Vec<String>,
    /// The client runs in a VM (Kata): its send/receive stamps are on the guest clock,
    /// so only its round-trip duration joins the host's timestamps.
    pub guest_client: bool,
    /// Kata's taps found on the path, with the qdiscs that carry their redirects.
    pub kata_taps: Vec<String>,
}

/// Names of the request segment between two hops and of its reply mirror.
type Segment = (&'static str, &'static str);

fn hop(role: &str, iface: &Interface, request: HookKindTag, reply: HookKindTag) -> Hop {
    Hop {
        name: format!("{role}:{}", iface.ifname),
        device: iface.device(),
        ifindex: iface.ifindex,
        request,
        reply,
    }
}

/// Build the plan of `driver` from the discovered hooks. `client` is None in host mode
/// (the client is in the host namespace), where `host_bridge` is the server network's
/// Linux bridge.
///
/// # Errors
/// When a hook the pair needs was not found (e.g. no veth peer on a bridge network).
pub fn plan(
    driver: Driver,
    client: Option<&ContainerHooks>,
    server: &ContainerHooks,
    host_bridge: Option<&Interface>,
) -> Result<PathPlan, String> {
    use HookKindTag::{Egress, Ingress};
    let mut hops: Vec<Hop> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut push = |h: Hop, seg: Option<Segment>, hops: &mut Vec<Hop>| {
        if let Some(s) = seg
            && !hops.is_empty()
        {
            segments.push(s);
        }
        hops.push(h);
    };
    let need_peer = |c: &ContainerHooks, who: &str| {
        c.peer
            .clone()
            .ok_or_else(|| format!("{who}'s {} has no veth peer", c.eth.ifname))
    };
    let guest_client = client.is_some_and(|c| c.kata_tap.is_some());
    // Client side.
    match (driver, client) {
        (Driver::Host, _) => {
            let br = host_bridge.ok_or("host pair without the server network's bridge")?;
            push(hop("host", br, Egress, Ingress), None, &mut hops);
        }
        (_, None) => return Err(format!("{} pair without a client container", driver.name())),
        (_, Some(c)) => {
            if let Some(tap) = &c.kata_tap {
                // From the client VM into the tap, redirected out of eth0.
                push(hop("client", &tap.iface, Ingress, Egress), None, &mut hops);
            }
            push(
                hop("client", &c.eth, Egress, Ingress),
                Some(("client-tc-redirect-out", "client-tc-redirect-in")),
                &mut hops,
            );
            if driver != Driver::Macvlan {
                let role = if driver == Driver::Overlay {
                    "overlay"
                } else {
                    "host"
                };
                push(
                    hop(role, &need_peer(c, "client")?, Ingress, Egress),
                    Some(("veth-client", "veth-client-reply")),
                    &mut hops,
                );
            }
        }
    }
    // Server side.
    if driver == Driver::Macvlan {
        push(
            hop("server", &server.eth, Ingress, Egress),
            Some(("macvlan", "macvlan-reply")),
            &mut hops,
        );
    } else {
        let role = if driver == Driver::Overlay {
            "overlay"
        } else {
            "host"
        };
        push(
            hop(role, &need_peer(server, "server")?, Egress, Ingress),
            Some(("bridge", "bridge-reply")),
            &mut hops,
        );
        push(
            hop("server", &server.eth, Ingress, Egress),
            Some(("veth-server", "veth-server-reply")),
            &mut hops,
        );
    }
    let turn = if let Some(tap) = &server.kata_tap {
        push(
            hop("server", &tap.iface, Egress, Ingress),
            Some(("tc-redirect-in", "tc-redirect-out")),
            &mut hops,
        );
        VM_TURN
    } else {
        SERVER_TURN
    };
    let mut stages: Vec<String> = Vec::new();
    if guest_client {
        stages.push(CLIENT_VM.to_owned());
    } else {
        stages.push(CLIENT_TX.to_owned());
    }
    stages.extend(segments.iter().map(|s| s.0.to_owned()));
    stages.push(turn.to_owned());
    stages.extend(segments.iter().rev().map(|s| s.1.to_owned()));
    if !guest_client {
        stages.push(CLIENT_RX.to_owned());
    }
    let kata_taps = describe_taps(client, server);
    Ok(PathPlan {
        hops,
        stages,
        guest_client,
        kata_taps,
    })
}

/// Kata's taps of the pair, each with the qdiscs that carry its redirect filters.
fn describe_taps(client: Option<&ContainerHooks>, server: &ContainerHooks) -> Vec<String> {
    [("client", client), ("server", Some(server))]
        .into_iter()
        .filter_map(|(who, c)| {
            let c = c?;
            let tap = c.kata_tap.as_ref()?;
            Some(format!(
                "{who} {} (qdiscs {:?}; {} qdiscs {:?})",
                tap.iface.ifname, tap.qdiscs, c.eth.ifname, tap.eth_qdiscs
            ))
        })
        .collect()
}

impl PathPlan {
    fn path_hooks(&self) -> (Vec<PathHook>, Vec<(HookKindTag, HookKindTag)>) {
        (
            self.hops
                .iter()
                .map(|h| PathHook {
                    name: h.name.clone(),
                    ifindex: h.ifindex,
                })
                .collect(),
            self.hops.iter().map(|h| (h.request, h.reply)).collect(),
        )
    }

    /// The path results report: every point, every stage.
    #[must_use]
    pub fn report_path(&self) -> PathSpec {
        let (hooks, kinds) = self.path_hooks();
        let names: Vec<&str> = self.stages.iter().map(String::as_str).collect();
        if !self.guest_client {
            return explicit_path(&hooks, &kinds, &names);
        }
        // Guest clock: a synthetic first point stands for the client VM's share.
        let mut p = explicit_path(&hooks, &kinds, &vec![""; 2 * hooks.len() + 1]);
        p.points.pop();
        p.points.remove(0);
        p.points.insert(
            0,
            Point {
                name: "client-vm-duration".into(),
                source: PointSource::ClientSend,
            },
        );
        PathSpec::new(p.points, self.stages.clone())
    }

    /// The path events are joined along: with the client's app stamps, or, for a guest
    /// client, host hooks only.
    #[must_use]
    pub fn correlation_path(&self) -> PathSpec {
        if !self.guest_client {
            return self.report_path();
        }
        let (hooks, kinds) = self.path_hooks();
        let mut p = explicit_path(&hooks, &kinds, &vec![""; 2 * hooks.len() + 1]);
        p.points.pop();
        p.points.remove(0);
        let stages = vec![String::new(); p.points.len() - 1];
        PathSpec::new(p.points, stages)
    }

    /// Where the path is traced, for results.json: each hop's device, namespace, index
    /// and the tc direction of request and reply.
    #[must_use]
    pub fn describe(&self) -> serde_json::Value {
        let kind = |k: HookKindTag| match k {
            HookKindTag::Egress => "egress",
            HookKindTag::Ingress => "ingress",
        };
        serde_json::json!({
            "guest_client": self.guest_client,
            "kata_taps": self.kata_taps,
            "stages": self.stages,
            "hops": self.hops.iter().map(|h| serde_json::json!({
                "name": h.name,
                "device": h.device.ifname,
                "netns": h.device.netns.to_string(),
                "ifindex": h.ifindex,
                "request": kind(h.request),
                "reply": kind(h.reply),
            })).collect::<Vec<_>>(),
        })
    }

    /// Devices to attach the tracer to.
    #[must_use]
    pub fn devices(&self) -> Vec<HookDevice> {
        self.hops.iter().map(|h| h.device.clone()).collect()
    }
}

/// Correlate one repetition: app stamps joined with host events along the plan's path.
/// For a guest client, each host-only timeline gets a first point `client-vm` earlier,
/// where the gap is the agent's round trip minus the host-observed span (a duration on
/// the guest clock), so stages still sum to the agent's round trip.
#[must_use]
pub fn correlate_rep<S: std::hash::BuildHasher>(
    plan: &PathPlan,
    run_id: u32,
    probes: &[AppProbe],
    rtt_ns: &HashMap<u64, u64, S>,
    events: &[netbench_common::HopEvent],
) -> (Vec<Timeline>, CorrelationStats) {
    let path = plan.correlation_path();
    let (mut timelines, mut stats) = crate::correlate::correlate(&path, run_id, probes, events);
    if plan.guest_client {
        timelines.retain_mut(|t| {
            let span = t.rtt_ns();
            match rtt_ns.get(&t.seq) {
                Some(&rtt) if rtt >= span => {
                    let first = t.ts_ns[0];
                    t.ts_ns.insert(0, first.saturating_sub(rtt - span));
                    true
                }
                _ => {
                    stats.probes_matched -= 1;
                    stats.probes_out_of_order += 1;
                    false
                }
            }
        });
    }
    (timelines, stats)
}

#[cfg(test)]
mod tests {
    use netbench_common::{Direction, EVENT_VERSION, HookKind, HopEvent, PROTO_UDP};

    use super::*;
    use crate::{docker::hooks::KataTap, netns::NetnsRef};

    fn iface(ns: &str, name: &str, index: u32) -> Interface {
        Interface {
            netns: NetnsRef::Path(ns.into()),
            ifname: name.into(),
            ifindex: index,
            kind: Some("veth".into()),
        }
    }

    fn side(who: &str, base: u32, kata: bool) -> ContainerHooks {
        ContainerHooks {
            netns: NetnsRef::Path(format!("/ns/{who}").into()),
            eth: iface(&format!("/ns/{who}"), "eth0", base),
            peer: Some(iface("/host", &format!("veth{who}"), base + 1)),
            kata_tap: kata.then(|| KataTap {
                iface: iface(&format!("/ns/{who}"), "tap0_kata", base + 2),
                qdiscs: vec!["ingress".into()],
                eth_qdiscs: vec!["ingress".into()],
            }),
        }
    }

    fn names(p: &PathPlan) -> Vec<&str> {
        p.stages.iter().map(String::as_str).collect()
    }

    #[test]
    fn bridge_and_overlay_share_the_runc_bridge_stage_names() {
        for driver in [Driver::Bridge, Driver::Overlay] {
            let p = plan(
                driver,
                Some(&side("c", 10, false)),
                &side("s", 20, false),
                None,
            )
            .unwrap();
            assert_eq!(names(&p), crate::stages::BRIDGE_STAGES);
            let hops: Vec<&str> = p.hops.iter().map(|h| h.name.as_str()).collect();
            let mid = if driver == Driver::Overlay {
                "overlay"
            } else {
                "host"
            };
            assert_eq!(
                hops,
                [
                    "client:eth0".to_owned(),
                    format!("{mid}:vethc"),
                    format!("{mid}:veths"),
                    "server:eth0".to_owned()
                ]
            );
            let r = p.report_path();
            assert_eq!(r.points.len(), r.stages.len() + 1);
            assert_eq!(r.points[1].name, "client:eth0-egress");
            assert_eq!(r.points[2].name, format!("{mid}:vethc-ingress"));
        }
    }

    #[test]
    fn host_pair_starts_at_the_bridge_in_the_host_namespace() {
        let br = iface("/host", "nbbr-1", 5);
        let p = plan(Driver::Host, None, &side("s", 20, false), Some(&br)).unwrap();
        assert_eq!(
            names(&p),
            [
                "client-tx-stack",
                "bridge",
                "veth-server",
                "server-stack-and-app",
                "veth-server-reply",
                "bridge-reply",
                "client-rx-stack"
            ]
        );
        assert_eq!(
            p.hops
                .iter()
                .map(|h| (h.request, h.reply))
                .collect::<Vec<_>>(),
            [
                (HookKindTag::Egress, HookKindTag::Ingress),
                (HookKindTag::Egress, HookKindTag::Ingress),
                (HookKindTag::Ingress, HookKindTag::Egress)
            ]
        );
        assert!(plan(Driver::Host, None, &side("s", 20, false), None).is_err());
    }

    #[test]
    fn macvlan_has_one_forwarding_hop() {
        let mut c = side("c", 10, false);
        let mut s = side("s", 20, false);
        c.peer = None;
        s.peer = None;
        let p = plan(Driver::Macvlan, Some(&c), &s, None).unwrap();
        assert_eq!(
            names(&p),
            [
                "client-tx-stack",
                "macvlan",
                "server-stack-and-app",
                "macvlan-reply",
                "client-rx-stack"
            ]
        );
        assert!(plan(Driver::Bridge, Some(&c), &s, None).is_err());
    }

    #[test]
    fn kata_adds_the_redirects_and_the_vm() {
        let p = plan(
            Driver::Bridge,
            Some(&side("c", 10, true)),
            &side("s", 20, true),
            None,
        )
        .unwrap();
        assert!(p.guest_client);
        assert_eq!(
            p.kata_taps,
            [
                "client tap0_kata (qdiscs [\"ingress\"]; eth0 qdiscs [\"ingress\"])",
                "server tap0_kata (qdiscs [\"ingress\"]; eth0 qdiscs [\"ingress\"])"
            ]
        );
        assert_eq!(
            names(&p),
            [
                "client-vm",
                "client-tc-redirect-out",
                "veth-client",
                "bridge",
                "veth-server",
                "tc-redirect-in",
                "vm",
                "tc-redirect-out",
                "veth-server-reply",
                "bridge-reply",
                "veth-client-reply",
                "client-tc-redirect-in"
            ]
        );
        let r = p.report_path();
        assert_eq!(r.points.len(), r.stages.len() + 1);
        assert_eq!(r.points[0].name, "client-vm-duration");
        assert_eq!(r.points[1].name, "client:tap0_kata-ingress");
        let c = p.correlation_path();
        assert_eq!(c.points.len(), r.points.len() - 1);
        assert!(
            c.points
                .iter()
                .all(|pt| matches!(pt.source, PointSource::Tc { .. }))
        );
    }

    #[test]
    fn guest_client_timelines_sum_to_the_agents_round_trip() {
        use Direction::{Reply, Request};
        use HookKind::{TcEgress, TcIngress};
        let mut c = side("c", 10, true);
        c.peer = None;
        let mut s = side("s", 20, false);
        s.peer = None;
        let p = plan(Driver::Macvlan, Some(&c), &s, None).unwrap();
        // Hops: client tap (in), client eth0 (out), server eth0 (in); reply mirrored.
        let ev = |hook: HookKind, dir: Direction, ifindex: u32, ts: u64| HopEvent {
            version: EVENT_VERSION,
            proto: PROTO_UDP,
            _pad0: 0,
            hook: hook as u32,
            ifindex,
            cpu: 0,
            netns_cookie: 0,
            run_id: 9,
            dir: dir as u32,
            seq: 0,
            ts_ns: ts,
            pkt_len: 64,
            tid: 0,
        };
        let events = vec![
            ev(TcIngress, Request, 12, 1000),
            ev(TcEgress, Request, 10, 1010),
            ev(TcIngress, Request, 20, 1020),
            ev(TcEgress, Reply, 20, 1100),
            ev(TcIngress, Reply, 10, 1110),
            ev(TcEgress, Reply, 12, 1120),
        ];
        // The agent's stamps are on another clock; only their difference counts.
        let probes = [AppProbe {
            seq: 0,
            send_ns: 5,
            recv_ns: Some(205),
        }];
        let (tl, st) = correlate_rep(&p, 9, &probes, &HashMap::from([(0, 200)]), &events);
        assert_eq!(st.probes_matched, 1);
        assert_eq!(tl[0].rtt_ns(), 200);
        assert_eq!(tl[0].stage_ns()[0], 80);
        assert_eq!(tl[0].stage_ns().len(), p.stages.len());
        // A round trip shorter than the host span is impossible: not matched.
        let (tl, st) = correlate_rep(&p, 9, &probes, &HashMap::from([(0, 50)]), &events);
        assert!(tl.is_empty());
        assert_eq!((st.probes_matched, st.probes_out_of_order), (0, 1));
    }
}

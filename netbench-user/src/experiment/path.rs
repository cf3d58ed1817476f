//! The traced path of a driver pair: the hook devices a request crosses, in order, with
//! the tc direction it crosses each one in, and the stage names between them. Stage
//! names are shared across pairs where the hop is the same kind (`client-tx-stack`,
//! `veth-client`, `bridge`, `veth-server`, `server-stack-and-app`, ...), and the reply
//! mirrors the request with `-reply` (Kata's redirects: `tc-redirect-in` on the way to
//! the VM, `tc-redirect-out` on the way back).
use super::matrix::Driver;
use netbench_common::HookKind;

use crate::{
    docker::hooks::{ContainerHooks, Interface},
    path::{Hop, TracedPath},
    stages::{CLIENT_RX, CLIENT_TX, CLIENT_VM, SERVER_TURN, VM_TURN},
};

/// Names of the request segment between two hops and of its reply mirror.
type Segment = (&'static str, &'static str);

fn hop(role: &str, iface: &Interface, request: HookKind, reply: HookKind) -> Hop {
    Hop {
        name: format!("{role}:{}", iface.ifname),
        device: iface.device(),
        ifindex: iface.ifindex,
        request,
        reply,
    }
}

/// A hook the pair needs that was not found.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{who}'s {ifname} has no veth peer")]
    NoPeer { who: &'static str, ifname: String },
    #[error("host pair without the server network's bridge")]
    NoBridge,
    #[error("{} pair without a client container", .0.name())]
    NoClient(Driver),
}

/// The veth peer of `c`'s interface (`who`: client or server).
/// Where a container's veth peer lives: the host, or the overlay's namespace.
fn peer_role(driver: Driver) -> &'static str {
    if driver == Driver::Overlay {
        "overlay"
    } else {
        "host"
    }
}

fn peer_of(c: &ContainerHooks, who: &'static str) -> Result<Interface, PlanError> {
    c.peer.clone().ok_or_else(|| PlanError::NoPeer {
        who,
        ifname: c.eth.ifname.clone(),
    })
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
) -> Result<TracedPath, PlanError> {
    use HookKind::{TcEgress as Egress, TcIngress as Ingress};
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
    let guest_client = client.is_some_and(|c| c.kata_tap.is_some());
    // Client side.
    match (driver, client) {
        (Driver::Host, _) => {
            let br = host_bridge.ok_or(PlanError::NoBridge)?;
            push(hop("host", br, Egress, Ingress), None, &mut hops);
        }
        (_, None) => return Err(PlanError::NoClient(driver)),
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
                push(
                    hop(peer_role(driver), &peer_of(c, "client")?, Ingress, Egress),
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
        push(
            hop(
                peer_role(driver),
                &peer_of(server, "server")?,
                Egress,
                Ingress,
            ),
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
    Ok(TracedPath {
        label: format!("{} pair", driver.name()),
        hops,
        stages,
        merges: Vec::new(),
        guest_client,
        model: None,
        kata_taps: describe_taps(client, server),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::PointSource;
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

    fn names(p: &TracedPath) -> Vec<&str> {
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
            let r = p.traced_path();
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
                (HookKind::TcEgress, HookKind::TcIngress),
                (HookKind::TcEgress, HookKind::TcIngress),
                (HookKind::TcIngress, HookKind::TcEgress)
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
        let r = p.traced_path();
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
}

//! The one path model: every traced path (the lab's veth, bridge and tap paths, each
//! Docker driver pair and runtime) is a [`TracedPath`]: the hook devices a request crosses, in
//! order, the tc direction it crosses each in, the stage names between the points, and
//! what is reported differently from what is traced (merged stages, a client on its own
//! clock). Lab topologies and Docker hook discovery both produce one; correlation and
//! [`crate::analysis::analyze`] consume it.
use netbench_common::HookKind;

use crate::{
    correlate::{PathSpec, Point, PointSource},
    stages::{GUEST_TURN, PathHook, SERVER_TURN, explicit_path},
    trace::HookDevice,
};

/// One traced device on the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Display name, e.g. `client:eth0`, `host:veth1a2b3c4`, `nbc0@nb-lab-c`.
    pub name: String,
    pub device: HookDevice,
    pub ifindex: u32,
    /// tc direction the request crosses it in, and the reply.
    pub request: HookKind,
    pub reply: HookKind,
}

/// Consecutive traced stages `[from, to)` reported as the one stage `into`; the parts
/// stay visible as a breakdown (e.g. the lab tap path's stand-in guest merged into
/// `vm`, which is all the host sees of a real VM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub into: String,
    pub from: usize,
    pub to: usize,
}

/// A traced path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedPath {
    /// What the path is, e.g. `lab-veth`, `runc bridge/bridge`.
    pub label: String,
    pub hops: Vec<Hop>,
    /// Stage names of the traced path: one per pair of consecutive points.
    pub stages: Vec<String>,
    /// Traced stages reported merged.
    pub merges: Vec<Merge>,
    /// The client runs in a VM (Kata): its send/receive stamps are on the guest clock,
    /// so only its round-trip duration joins the host's timestamps.
    pub guest_client: bool,
    /// Set when the path is a model: what it models. Shown wherever its figures appear.
    pub model: Option<String>,
    /// Kata's taps found on the path, with the qdiscs that carry their redirects.
    pub kata_taps: Vec<String>,
}

impl TracedPath {
    /// A path whose request leaves `hops[0]` (egress), enters `hops[1]` (ingress), leaves
    /// `hops[2]`, ... (devices linked pairwise, as the lab builds them).
    #[must_use]
    pub fn alternating(
        label: impl Into<String>,
        hops: Vec<(String, HookDevice, u32)>,
        stages: &[&str],
    ) -> Self {
        let hops = hops
            .into_iter()
            .enumerate()
            .map(|(i, (name, device, ifindex))| {
                let (request, reply) = if i % 2 == 0 {
                    (HookKind::TcEgress, HookKind::TcIngress)
                } else {
                    (HookKind::TcIngress, HookKind::TcEgress)
                };
                Hop {
                    name,
                    device,
                    ifindex,
                    request,
                    reply,
                }
            })
            .collect();
        Self {
            label: label.into(),
            hops,
            stages: stages.iter().map(|s| (*s).to_owned()).collect(),
            merges: Vec::new(),
            guest_client: false,
            model: None,
            kata_taps: Vec::new(),
        }
    }

    fn path_hooks(&self) -> (Vec<PathHook>, Vec<(HookKind, HookKind)>) {
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

    /// Every traced point and stage; for a guest client a synthetic first point stands
    /// for the client VM's share (see [`crate::analysis`]).
    #[must_use]
    pub fn traced_path(&self) -> PathSpec {
        let (hooks, kinds) = self.path_hooks();
        let names: Vec<&str> = self.stages.iter().map(String::as_str).collect();
        if !self.guest_client {
            return explicit_path(&hooks, &kinds, &names);
        }
        let mut p = self.host_points();
        p.insert(
            0,
            Point {
                name: "client-vm-duration".into(),
                source: PointSource::ClientSend,
            },
        );
        PathSpec::new(p, self.stages.clone())
    }

    fn host_points(&self) -> Vec<Point> {
        let (hooks, kinds) = self.path_hooks();
        let mut p = explicit_path(&hooks, &kinds, &vec![""; 2 * hooks.len() + 1]).points;
        p.pop();
        p.remove(0);
        p
    }

    /// The path events are joined along: with the client's app stamps, or, for a guest
    /// client, host hooks only.
    #[must_use]
    pub fn correlation_path(&self) -> PathSpec {
        if !self.guest_client {
            return self.traced_path();
        }
        let points = self.host_points();
        let stages = vec![String::new(); points.len() - 1];
        PathSpec::new(points, stages)
    }

    /// The stages as reported: each merge collapsed into its one stage.
    #[must_use]
    pub fn report_stages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.stages.len() {
            if let Some(m) = self.merges.iter().find(|m| m.from == i) {
                out.push(m.into.clone());
                i = m.to;
            } else {
                out.push(self.stages[i].clone());
                i += 1;
            }
        }
        out
    }

    /// Indexes of traced points hidden by merges (the points inside a merged range).
    #[must_use]
    pub fn hidden_points(&self) -> Vec<usize> {
        self.merges
            .iter()
            .flat_map(|m| (m.from + 1)..m.to)
            .collect()
    }

    /// The traced stage the server's scheduler events split (its turnaround), if the
    /// host can see one.
    #[must_use]
    pub fn runqueue_stage(&self) -> Option<usize> {
        self.stages
            .iter()
            .position(|n| n == SERVER_TURN || n == GUEST_TURN)
    }

    /// Devices to attach the tracer to.
    #[must_use]
    pub fn devices(&self) -> Vec<HookDevice> {
        self.hops.iter().map(|h| h.device.clone()).collect()
    }

    /// Where the path is traced, for results.json: each hop's device, namespace, index
    /// and the tc direction of request and reply.
    #[must_use]
    pub fn describe(&self) -> serde_json::Value {
        let kind = HookKind::name;
        serde_json::json!({
            "guest_client": self.guest_client,
            "kata_taps": self.kata_taps,
            "stages": self.report_stages(),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NetnsRef;

    fn dev(name: &str) -> HookDevice {
        HookDevice::new(NetnsRef::Path("/ns".into()), name)
    }

    #[test]
    fn merges_collapse_into_one_reported_stage_and_hide_their_inner_points() {
        let mut p = TracedPath::alternating(
            "t",
            vec![
                ("a".into(), dev("a"), 2),
                ("b".into(), dev("b"), 3),
                ("c".into(), dev("c"), 4),
            ],
            &["s0", "s1", "s2", "s3", "s4", "s5", "s6"],
        );
        assert_eq!(p.traced_path().points.len(), 8);
        assert_eq!(
            p.hops.iter().map(|h| h.request).collect::<Vec<_>>(),
            [HookKind::TcEgress, HookKind::TcIngress, HookKind::TcEgress]
        );
        p.merges.push(Merge {
            into: "m".into(),
            from: 2,
            to: 5,
        });
        assert_eq!(p.report_stages(), ["s0", "s1", "m", "s5", "s6"]);
        assert_eq!(p.hidden_points(), [3, 4]);
    }
}

//! The stage model: a path's hook devices in request order -> its points -> named
//! stages, and the per-stage statistics of a set of timelines. Every stage name the tool
//! reports is defined here.
use serde::{Deserialize, Serialize};

use netbench_common::{Direction, HookKind};

use crate::{
    correlate::{DeviceId, PathSpec, Point, PointSource, Timeline},
    stats::summarize,
};

/// The client's send path, from its app's send stamp to its first traced hook.
pub const CLIENT_TX: &str = "client-tx-stack";
/// The client's receive path, from its last traced hook to its app's receive stamp.
pub const CLIENT_RX: &str = "client-rx-stack";
/// The server's turnaround as the host sees it (stack, wake-up, app, stack).
pub const SERVER_TURN: &str = "server-stack-and-app";
/// The lab tap path's stand-in guest turnaround (host-visible only in the model).
pub const GUEST_TURN: &str = "guest-stack-and-app";
/// Kata: the server VM (guest kernel + agent + VMM), between the tap's egress and ingress.
pub const VM_TURN: &str = "vm";
/// Kata client: the client VM's guest tx and rx (guest clock: a duration only).
pub const CLIENT_VM: &str = "client-vm";

/// Stages of the veth path (client netns <-> server netns).
pub const VETH_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth",
    "server-stack-and-app",
    "veth-reply",
    "client-rx-stack",
];

/// Stages of the bridge path (client - veth - bridge - veth - server): runC's bridge.
pub const BRIDGE_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth-client",
    "bridge",
    "veth-server",
    "server-stack-and-app",
    "veth-server-reply",
    "bridge-reply",
    "veth-client-reply",
    "client-rx-stack",
];

/// The lab tap path as traced: client nbc0, sandbox eth0, sandbox `tap0_kata`, guest NIC.
/// The guest-side stages exist only because the stand-in guest shares the host kernel;
/// from the host a real VM is the single stage `vm` (see [`TAP_STAGES`]).
pub const TAP_TRACED_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth",
    "tc-redirect-in",
    "vmm-in",
    "guest-stack-and-app",
    "vmm-out",
    "tc-redirect-out",
    "veth-reply",
    "client-rx-stack",
];

/// The lab tap path's stages as reported: the guest-side stages merged into `vm`.
pub const TAP_STAGES: &[&str] = &[
    "client-tx-stack",
    "veth",
    "tc-redirect-in",
    "vm",
    "tc-redirect-out",
    "veth-reply",
    "client-rx-stack",
];

/// The traced tap stages `[3, 6)` (`vmm-in`, `guest-stack-and-app`, `vmm-out`) are
/// what [`TAP_STAGES`] reports as `vm`.
pub const TAP_VM_MERGE: (usize, usize) = (3, 6);

/// One hook device of a path: a display name and its ifindex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathHook {
    pub name: String,
    pub ifindex: u32,
}

fn tc_point(name: String, kind: HookKind, dir: Direction, ifindex: u32) -> Point {
    Point {
        name,
        source: PointSource::Tc {
            kind,
            dir,
            device: DeviceId { ifindex },
        },
    }
}

/// The points of a path whose request leaves `hooks[0]` (egress), enters `hooks[1]`
/// (ingress), leaves `hooks[2]`, ... and whose reply retraces them backwards:
/// client send, request points, reply points, client receive.
#[must_use]
pub fn alternating_path(hooks: &[PathHook], stage_names: &[&str]) -> PathSpec {
    let kinds: Vec<(HookKind, HookKind)> = (0..hooks.len())
        .map(|i| {
            if i % 2 == 0 {
                (HookKind::TcEgress, HookKind::TcIngress)
            } else {
                (HookKind::TcIngress, HookKind::TcEgress)
            }
        })
        .collect();
    explicit_path(hooks, &kinds, stage_names)
}

/// Like [`alternating_path`] with the (request, reply) hook kind of each device given.
#[must_use]
pub fn explicit_path(
    hooks: &[PathHook],
    kinds: &[(HookKind, HookKind)],
    stage_names: &[&str],
) -> PathSpec {
    let kind_name = HookKind::name;
    let mut points = vec![Point {
        name: "client-send".into(),
        source: PointSource::ClientSend,
    }];
    for (h, (req, _)) in hooks.iter().zip(kinds) {
        points.push(tc_point(
            format!("{}-{}", h.name, kind_name(*req)),
            *req,
            Direction::Request,
            h.ifindex,
        ));
    }
    for (h, (_, rep)) in hooks.iter().zip(kinds).rev() {
        points.push(tc_point(
            format!("{}-{}-reply", h.name, kind_name(*rep)),
            *rep,
            Direction::Reply,
            h.ifindex,
        ));
    }
    points.push(Point {
        name: "client-recv".into(),
        source: PointSource::ClientRecv,
    });
    PathSpec::new(
        points,
        stage_names.iter().map(|s| (*s).to_owned()).collect(),
    )
}

/// One stage's statistics (results contract).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub name: String,
    pub from_hook: String,
    pub to_hook: String,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Share of the mean round trip (stage means sum to the mean round trip).
    pub share: f64,
}

impl StageResult {
    /// Statistics of one stage's nanosecond samples; `share` of `mean_rtt_us`.
    #[must_use]
    pub fn from_samples(
        name: String,
        from_hook: String,
        to_hook: String,
        samples_ns: &[u64],
        mean_rtt_us: f64,
    ) -> Self {
        let s = summarize(samples_ns);
        Self {
            name,
            from_hook,
            to_hook,
            mean_us: s.mean,
            p50_us: s.p50,
            p90_us: s.p90,
            p99_us: s.p99,
            p999_us: s.p999,
            share: if mean_rtt_us > 0.0 {
                s.mean / mean_rtt_us
            } else {
                0.0
            },
        }
    }
}

/// Per-stage statistics of `timelines` along `path`.
#[must_use]
pub fn stage_results(
    path: &PathSpec,
    timelines: &[Timeline],
    mean_rtt_us: f64,
) -> Vec<StageResult> {
    path.stages
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let v: Vec<u64> = timelines
                .iter()
                .map(|t| t.ts_ns[i + 1] - t.ts_ns[i])
                .collect();
            StageResult::from_samples(
                name.clone(),
                path.points[i].name.clone(),
                path.points[i + 1].name.clone(),
                &v,
                mean_rtt_us,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(n: u32) -> Vec<PathHook> {
        (0..n)
            .map(|i| PathHook {
                name: format!("d{i}"),
                ifindex: 10 + i,
            })
            .collect()
    }

    #[test]
    fn bridge_path_alternates_egress_ingress_and_mirrors_the_reply() {
        let p = alternating_path(&hooks(4), BRIDGE_STAGES);
        assert_eq!(p.points.len(), 10);
        assert_eq!(p.stages.len(), 9);
        let names: Vec<&str> = p.points.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "client-send",
                "d0-egress",
                "d1-ingress",
                "d2-egress",
                "d3-ingress",
                "d3-egress-reply",
                "d2-ingress-reply",
                "d1-egress-reply",
                "d0-ingress-reply",
                "client-recv"
            ]
        );
        assert_eq!(p.stages[2], "bridge");
        assert_eq!(
            p.points[5].source,
            PointSource::Tc {
                kind: HookKind::TcEgress,
                dir: Direction::Reply,
                device: DeviceId { ifindex: 13 }
            }
        );
    }

    #[test]
    fn veth_path_has_five_stages() {
        let p = alternating_path(&hooks(2), VETH_STAGES);
        assert_eq!(p.points.len(), p.stages.len() + 1);
        assert_eq!(p.stages[1], "veth");
        assert_eq!(p.stages[3], "veth-reply");
    }

    #[test]
    fn stage_results_are_per_stage_differences() {
        let p = alternating_path(&hooks(2), VETH_STAGES);
        let t = vec![
            Timeline {
                seq: 0,
                ts_ns: vec![0, 1000, 3000, 7000, 8000, 10_000],
            },
            Timeline {
                seq: 1,
                ts_ns: vec![0, 2000, 4000, 9000, 9500, 12_000],
            },
        ];
        let r = stage_results(&p, &t, 11.0);
        let mean = |i: usize| r[i].mean_us;
        assert!((mean(0) - 1.5).abs() < 1e-9, "client-tx {}", mean(0));
        assert!((mean(2) - 4.5).abs() < 1e-9, "server {}", mean(2));
        assert!((mean(3) - 0.75).abs() < 1e-9, "veth-reply {}", mean(3));
        assert!((r[2].share - 4.5 / 11.0).abs() < 1e-9);
        assert_eq!(r[0].from_hook, "client-send");
        assert_eq!(r[2].to_hook, "d1-egress-reply");
    }
}

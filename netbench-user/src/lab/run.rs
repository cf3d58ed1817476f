//! `netbench lab`: build a path, trace it, send probes, split each round trip into stages.
use std::{path::PathBuf, time::Duration};

use netbench_common::HopEvent;
use serde::Serialize;

use super::LabTopology;
use crate::{
    agent::{AgentError, AgentServer, RrSpec, run_rr},
    correlate::{
        AppProbe, CorrelationStats, DeviceId, DirTag, HookKindTag, PathSpec, Point, PointSource,
        correlate,
    },
    netlink::NetlinkError,
    stats::{Summary, summarize},
    trace::{TcMode, TraceConfig, TraceError, Tracer, tc::ifindex_of},
};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("building the topology: {0}")]
    Topology(#[from] NetlinkError),
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Agent(#[from] AgentError),
    #[error("writing results to {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reader task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct LabConfig {
    /// `veth` or `bridge` (the tap path comes with the lab issue).
    pub path: String,
    pub probes: u64,
    pub size: usize,
    /// `udp` or `tcp`.
    pub proto: &'static str,
    pub port: u16,
}

/// One stage's statistics.
#[derive(Clone, Debug, Serialize)]
pub struct StageResult {
    pub name: String,
    pub from_hook: String,
    pub to_hook: String,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Share of the mean round trip.
    pub share: f64,
}

/// The outcome of one lab run.
#[derive(Clone, Debug, Serialize)]
pub struct LabResult {
    pub config: LabConfig,
    pub rtt_us: Summary,
    pub stages: Vec<StageResult>,
    pub correlation: CorrelationStats,
    pub events_lost: u64,
    pub events: u64,
}

fn tc_point(name: String, kind: HookKindTag, dir: DirTag, ifindex: u32) -> Point {
    Point {
        name,
        source: PointSource::Tc {
            kind,
            dir,
            device: DeviceId { ifindex },
        },
    }
}

/// Names of the stages between consecutive points, per path (request then reply).
fn stage_names(path: &str) -> &'static [&'static str] {
    match path {
        "bridge" => &[
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
        _ => &[
            "client-tx-stack",
            "veth",
            "server-stack-and-app",
            "veth-reply",
            "client-rx-stack",
        ],
    }
}

/// The path's points: client send; then along the hook devices (request order) the
/// packet leaves one device (egress) and enters the next (ingress); the reply retraces
/// them backwards; client receive last.
fn path_spec(path: &str, hooks: &[(String, u32)]) -> PathSpec {
    use DirTag::{Reply, Request};
    use HookKindTag::{Egress, Ingress};
    let mut points = vec![Point {
        name: "client-send".into(),
        source: PointSource::ClientSend,
    }];
    for (i, (name, ifindex)) in hooks.iter().enumerate() {
        let kind = if i % 2 == 0 { Egress } else { Ingress };
        let k = if i % 2 == 0 { "egress" } else { "ingress" };
        points.push(tc_point(format!("{name}-{k}"), kind, Request, *ifindex));
    }
    for (i, (name, ifindex)) in hooks.iter().enumerate().rev() {
        let kind = if i % 2 == 0 { Ingress } else { Egress };
        let k = if i % 2 == 0 { "ingress" } else { "egress" };
        points.push(tc_point(format!("{name}-{k}-reply"), kind, Reply, *ifindex));
    }
    points.push(Point {
        name: "client-recv".into(),
        source: PointSource::ClientRecv,
    });
    PathSpec::new(
        points,
        stage_names(path).iter().map(|s| (*s).to_owned()).collect(),
    )
}

/// Run one lab experiment.
///
/// # Errors
/// When the topology, the tracer or the agent fails; everything created is removed.
pub async fn run_lab(config: &LabConfig) -> Result<LabResult, LabError> {
    let topo = match config.path.as_str() {
        "bridge" => LabTopology::bridge("lab").await?,
        _ => LabTopology::veth("lab").await?,
    };
    let mut hooks = Vec::new();
    for h in &topo.hooks {
        hooks.push((format!("{}@{}", h.ifname, h.netns), ifindex_of(h)?));
    }
    let path = path_spec(topo.path, &hooks);

    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![config.port],
        ..TraceConfig::default()
    })?;
    for hook in &topo.hooks {
        tracer.attach(hook, TcMode::Auto)?;
    }
    let reader = tracer.take_reader()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<HopEvent>>(1024);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    // The aggregator drains the channel while the reader runs, so it never fills.
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    });
    let reader_task = tokio::spawn(reader.run(tx, stop_rx));

    let server = AgentServer::start(&topo.server.netns_ref(), config.port, 600).await?;
    let run_id = std::process::id() ^ 0x4e42_0000;
    let spec = RrSpec {
        server: topo.server.ip.into(),
        port: config.port,
        proto: config.proto,
        count: config.probes,
        size: config.size,
        run_id,
        timeout_ms: 1000,
        max_seconds: 300,
    };
    let probes = run_rr(&topo.client.netns_ref(), &spec).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let reader_stats = reader_task.await??;
    let events = collector.await?;
    let counters = tracer.counters()?;
    tracer.detach_all()?;
    drop(tracer);
    drop(topo);
    let probes = probes?;

    let app: Vec<AppProbe> = probes
        .iter()
        .map(|p| AppProbe {
            seq: p.seq,
            send_ns: p.send_ns,
            recv_ns: if p.lost { None } else { p.recv_ns },
        })
        .collect();
    let (timelines, correlation) = correlate(&path, run_id, &app, &events);
    let rtts: Vec<u64> = timelines
        .iter()
        .map(crate::correlate::Timeline::rtt_ns)
        .collect();
    let rtt = summarize(&rtts);
    let mut stages = Vec::new();
    for (i, name) in path.stages.iter().enumerate() {
        let v: Vec<u64> = timelines
            .iter()
            .map(|t| t.ts_ns[i + 1] - t.ts_ns[i])
            .collect();
        let s = summarize(&v);
        stages.push(StageResult {
            name: name.clone(),
            from_hook: path.points[i].name.clone(),
            to_hook: path.points[i + 1].name.clone(),
            mean_us: s.mean,
            p50_us: s.p50,
            p90_us: s.p90,
            p99_us: s.p99,
            p999_us: s.p999,
            share: if rtt.mean > 0.0 {
                s.mean / rtt.mean
            } else {
                0.0
            },
        });
    }
    Ok(LabResult {
        config: config.clone(),
        rtt_us: rtt,
        stages,
        correlation,
        events_lost: counters.events_lost + reader_stats.dropped,
        events: events.len() as u64,
    })
}

/// The terminal table of stages.
#[must_use]
pub fn render_table(r: &LabResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "path {} ({} {} B): {} probes sent, {} matched, {} events lost",
        r.config.path,
        r.config.proto,
        r.config.size,
        r.correlation.probes_sent,
        r.correlation.probes_matched,
        r.events_lost
    );
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:>10} {:>10} {:>7}",
        "stage", "mean us", "p50 us", "p99 us", "share"
    );
    for s in &r.stages {
        let _ = writeln!(
            out,
            "{:<22} {:>10.2} {:>10.2} {:>10.2} {:>6.1}%",
            s.name,
            s.mean_us,
            s.p50_us,
            s.p99_us,
            s.share * 100.0
        );
    }
    let _ = writeln!(
        out,
        "{:<22} {:>10.2} {:>10.2} {:>10.2} {:>6.1}%",
        "round trip", r.rtt_us.mean, r.rtt_us.p50, r.rtt_us.p99, 100.0
    );
    out
}

/// Write `results.json` into `dir`.
///
/// # Errors
/// When the directory or file cannot be written.
pub fn write_results(dir: &std::path::Path, r: &LabResult) -> Result<PathBuf, LabError> {
    let io = |source| LabError::Output {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join("results.json");
    let env = serde_json::json!({
        "kernel": nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "netbench_version": env!("CARGO_PKG_VERSION"),
    });
    let doc = serde_json::json!({
        "schema": 1,
        "env": env,
        "config": r.config,
        "scenarios": [{
            "id": format!("lab-{}-{}", r.config.path, r.config.proto),
            "runtime": format!("lab-{}", r.config.path),
            "client_driver": "lab",
            "server_driver": "lab",
            "stress": "none",
            "status": "ok",
            "reason": null,
            "bandwidth_gbps": null,
            "rtt_us": r.rtt_us,
            "stages": r.stages,
            "probes_sent": r.correlation.probes_sent,
            "probes_matched": r.correlation.probes_matched,
            "events_lost": r.events_lost,
            "correlation": r.correlation,
        }],
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| LabError::Output {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(n: u32) -> Vec<(String, u32)> {
        (0..n).map(|i| (format!("d{i}"), 10 + i)).collect()
    }

    #[test]
    fn bridge_path_alternates_egress_ingress_and_mirrors_the_reply() {
        let p = path_spec("bridge", &hooks(4));
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
                kind: HookKindTag::Egress,
                dir: DirTag::Reply,
                device: DeviceId { ifindex: 13 }
            }
        );
    }

    #[test]
    fn veth_path_has_five_stages() {
        let p = path_spec("veth", &hooks(2));
        assert_eq!(p.points.len(), p.stages.len() + 1);
        assert_eq!(p.stages[1], "veth");
        assert_eq!(p.stages[3], "veth-reply");
    }
}

//! Accuracy: the agent against the reference tools on the same lab bridge path. Round
//! trips: agent `rr`, untraced, against `sockperf ping-pong --full-rtt`, same message
//! size, both back to back with a blocking receive, the agent sending as many probes
//! as sockperf had observations. Bandwidth: agent `stream` against `iperf3` (one TCP
//! stream, 128 KiB writes, same duration). Repetitions alternate the tools' order; the
//! ratios are paired per repetition. (What tracing does to the round trip is the
//! observer section's.)
use serde::Serialize;

use super::{
    BenchConfig, BenchError, IPERF_PORT, MSG_SIZE, Placed, SOCKPERF_PORT, echo_of,
    figures::{RatioCi, RttSample, paired_ratio},
    progress, run_id, sink_of,
    tools::{Site, iperf3_client, iperf3_server, sockperf_ping_pong, sockperf_server},
    topology,
    workload::{rr, serve, stream},
};
use crate::{
    lab::LabTopology,
    stats::{RepStats, rep_stats, summarize},
};

/// One tool's round trips over the repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct ToolRtt {
    pub reps: Vec<RttSample>,
    pub p50_us: RepStats,
    pub p99_us: RepStats,
}

impl ToolRtt {
    fn new(reps: Vec<RttSample>) -> Self {
        let p50: Vec<f64> = reps.iter().map(|r| r.p50_us).collect();
        let p99: Vec<f64> = reps.iter().map(|r| r.p99_us).collect();
        Self {
            reps,
            p50_us: rep_stats(&p50),
            p99_us: rep_stats(&p99),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RttComparison {
    #[serde(flatten)]
    pub at: Placed,
    pub size: u32,
    pub sockperf: ToolRtt,
    pub agent: ToolRtt,
    /// agent / sockperf: the mean of the per-repetition ratios of the percentiles.
    pub ratio_p50: Option<RatioCi>,
    pub ratio_p99: Option<RatioCi>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamComparison {
    pub seconds: u32,
    pub reps: u32,
    pub iperf3_gbps: RepStats,
    pub agent_gbps: RepStats,
    /// agent / iperf3 (paired per repetition).
    pub ratio: Option<RatioCi>,
    pub iperf3_retransmits: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccuracyFigures {
    pub path: &'static str,
    pub reps: u32,
    /// Round trips with the client on the server's CPU, then on another CPU.
    pub rtt: Vec<RttComparison>,
    pub stream: StreamComparison,
}

pub async fn measure(config: &BenchConfig) -> Result<AccuracyFigures, BenchError> {
    let topo = topology("bridge", "bacc").await?;
    let server = serve(&topo.server.netns_ref(), config.placement.server_cpu).await?;
    let result = compare(config, &topo).await;
    server.stop().await;
    drop(topo);
    result
}

async fn compare(config: &BenchConfig, topo: &LabTopology) -> Result<AccuracyFigures, BenchError> {
    let server_cpu = config.placement.server_cpu;
    let sockperf = sockperf_server(&Site::server(topo, SOCKPERF_PORT, server_cpu)).await?;
    let mut rtt = Vec::new();
    for at in config.placement.both() {
        progress(&format!("  round trips, {}", at.placement));
        match compare_rtt(config, topo, at).await {
            Ok(r) => rtt.push(r),
            Err(e) => {
                sockperf.stop().await;
                return Err(e);
            }
        }
    }
    sockperf.stop().await;
    Ok(AccuracyFigures {
        path: "bridge",
        reps: config.accuracy_reps,
        rtt,
        stream: compare_stream(config, topo).await?,
    })
}

/// sockperf ping-pong and the agent, alternating which goes first (sockperf leads the
/// first repetition: its observation count sets the agent's probe count).
async fn compare_rtt(
    config: &BenchConfig,
    topo: &LabTopology,
    at: Placed,
) -> Result<RttComparison, BenchError> {
    let client_cpu = at.cpus.client_cpu;
    let sockperf_at = Site::client(topo, SOCKPERF_PORT, client_cpu);
    let (mut sp, mut agent) = (Vec::new(), Vec::new());
    let mut count = 10_000;
    for rep in 0..config.accuracy_reps {
        let sockperf_first = rep % 2 == 0;
        for sockperf_now in [sockperf_first, !sockperf_first] {
            if sockperf_now {
                let s = sockperf_ping_pong(&sockperf_at, MSG_SIZE, config.sockperf_seconds).await?;
                count = s.observations.clamp(100, 1_000_000);
                sp.push(RttSample {
                    count: s.observations,
                    p50_us: s.p50_us,
                    p99_us: s.p99_us,
                });
            } else {
                agent.push(agent_rtt(topo, count, rep, client_cpu).await?);
            }
        }
        let last = |v: &[RttSample], f: fn(&RttSample) -> f64| v.last().map_or(f64::NAN, f);
        progress(&format!(
            "  rtt rep {}/{}: p50/p99 us: sockperf {:.1}/{:.1} ({} obs), agent {:.1}/{:.1}",
            rep + 1,
            config.accuracy_reps,
            last(&sp, |r| r.p50_us),
            last(&sp, |r| r.p99_us),
            sp.last().map_or(0, |r| r.count),
            last(&agent, |r| r.p50_us),
            last(&agent, |r| r.p99_us),
        ));
    }
    let (sp, agent) = (ToolRtt::new(sp), ToolRtt::new(agent));
    Ok(RttComparison {
        at,
        size: MSG_SIZE,
        ratio_p50: paired_ratio(&agent.p50_us.per_rep, &sp.p50_us.per_rep),
        ratio_p99: paired_ratio(&agent.p99_us.per_rep, &sp.p99_us.per_rep),
        sockperf: sp,
        agent,
    })
}

/// iperf3 and the agent's stream, alternating which goes first, untraced.
async fn compare_stream(
    config: &BenchConfig,
    topo: &LabTopology,
) -> Result<StreamComparison, BenchError> {
    let cpus = config.placement;
    let iperf_server_at = Site::server(topo, IPERF_PORT, cpus.server_cpu);
    let iperf_client_at = Site::client(topo, IPERF_PORT, cpus.client_cpu);
    let (mut iperf, mut agent_bw, mut retransmits) = (Vec::new(), Vec::new(), 0);
    for rep in 0..config.accuracy_stream_reps {
        let iperf_first = rep % 2 == 0;
        for iperf_now in [iperf_first, !iperf_first] {
            if iperf_now {
                let srv = iperf3_server(&iperf_server_at).await?;
                let r = iperf3_client(&iperf_client_at, config.stream_seconds).await;
                srv.stop().await;
                let r = r?;
                retransmits += r.retransmits;
                iperf.push(r.received_gbps);
            } else {
                let r = stream(
                    &topo.client.netns_ref(),
                    sink_of(topo),
                    f64::from(config.stream_seconds),
                    cpus.client_cpu,
                )
                .await?;
                agent_bw.push(r.gbps);
            }
        }
        progress(&format!(
            "  stream rep {}/{}: iperf3 {:.2} Gbit/s, agent {:.2} Gbit/s",
            rep + 1,
            config.accuracy_stream_reps,
            iperf.last().copied().unwrap_or(f64::NAN),
            agent_bw.last().copied().unwrap_or(f64::NAN),
        ));
    }
    let (iperf3_gbps, agent_gbps) = (rep_stats(&iperf), rep_stats(&agent_bw));
    Ok(StreamComparison {
        seconds: config.stream_seconds,
        reps: config.accuracy_stream_reps,
        ratio: paired_ratio(&agent_gbps.per_rep, &iperf3_gbps.per_rep),
        iperf3_gbps,
        agent_gbps,
        iperf3_retransmits: retransmits,
    })
}

/// `count` back-to-back UDP rr probes, untraced.
async fn agent_rtt(
    topo: &LabTopology,
    count: u64,
    rep: u32,
    cpu: Option<usize>,
) -> Result<RttSample, BenchError> {
    let probes = rr(
        &topo.client.netns_ref(),
        echo_of(topo),
        count,
        run_id(0x200 + rep),
        cpu,
    )
    .await?;
    let rtts: Vec<u64> = probes
        .iter()
        .filter(|p| !p.lost)
        .filter_map(|p| p.rtt_ns)
        .collect();
    let s = summarize(&rtts);
    Ok(RttSample {
        count: s.count,
        p50_us: s.p50,
        p99_us: s.p99,
    })
}

//! Reports for the tests: one without any figure, one with every table filled (the
//! wide and the narrow cells, overflowing columns included).
use super::{
    AccuracyFigures, BenchConfig, BenchReport, CapacityFigures, CostFigures, EffectFigures,
    Measured, Placed, Placement, StatsToggle, ThroughputFigures, WallTime,
    accuracy::{RttComparison, StreamComparison, ToolRtt},
    capacity::{CapacityReps, DrainFigure, RingCapacity},
    cost::{CostRun, ProgramCostStats},
    figures::{CapacityStep, CapacitySummary, RatioCi, Target, Verdict},
    host::MachineLoad,
    rtt_effect::{EffectRun, Percentiles, Pooled, TracedBlocks},
    throughput::{CpuShare, ModeThroughput, PairedLoss, StreamCounters},
};
use crate::{stats::rep_stats, trace::TraceMode};

/// A report without any figure: every section skipped.
pub fn empty_report() -> BenchReport {
    BenchReport {
        schema: 1,
        kind: "netbench-bench",
        mode: "short",
        env: crate::results::Env::default(),
        config: BenchConfig::short(),
        measured: Measured::default(),
        wall_time: WallTime {
            skipped: Some("test".into()),
            ..WallTime::default()
        },
        targets: Vec::new(),
        bpf_stats: StatsToggle::default(),
        machine_load: MachineLoad::default(),
        errors: Vec::new(),
        leftovers: Vec::new(),
        problems: Vec::new(),
        elapsed_s: 0.0,
    }
}

/// A report with a figure in every table.
pub fn full_report() -> BenchReport {
    BenchReport {
        measured: Measured {
            cost: Some(cost()),
            throughput: Some(throughput()),
            capacity: Some(capacity()),
            accuracy: Some(accuracy()),
            observer: Some(observer()),
            docker: None,
        },
        targets: targets(),
        ..empty_report()
    }
}

fn program(name: &str, ns: &[f64]) -> ProgramCostStats {
    ProgramCostStats {
        program: name.into(),
        run_cnt: 123_456,
        ns_per_run: rep_stats(ns),
    }
}

fn cost() -> CostFigures {
    let run = |load, variant, target_ns| CostRun {
        load,
        mode: TraceMode::Events,
        variant,
        probe_ports: vec![7301],
        what: "rr probes, events".into(),
        target_ns,
        target_for: "probe",
        reps: 3,
        programs: vec![
            program("netbench_tc_ingress", &[80.5, 82.25, 79.0]),
            program("netbench_tc_egress_with_a_long_name", &[1200.0]),
        ],
        events: 6000,
        probes_seen: 6000,
        events_lost: 0,
        reader_wakeups: 0,
        seconds: 3.0,
        cpu_pct: rep_stats(&[0.5, 0.75]),
    };
    CostFigures {
        path: "bridge",
        reps: 3,
        runs: vec![
            run("rr", "events", Some(250.0)),
            run("stream", "other-port", None),
        ],
        floor: Some(program("empty", &[20.0, 21.0])),
        floor_error: None,
    }
}

fn throughput() -> ThroughputFigures {
    let mode = |mode, loss: Option<f64>| ModeThroughput {
        mode,
        what: "what it does",
        gbps: rep_stats(&[9.5, 10.25, 11.0]),
        loss: PairedLoss {
            mean: loss,
            ci95: loss.map(|_| 0.5),
            median: loss,
        },
        cpu_ns_per_kib: rep_stats(&[300.0, 310.0]),
        counters: StreamCounters::default(),
    };
    ThroughputFigures {
        path: "bridge",
        seconds: 2,
        reps: 3,
        write_bytes: 131_072,
        modes: vec![mode("off", None), mode("count-only", Some(1.25))],
        cpu_share: Some(CpuShare {
            share_pct: rep_stats(&[1.0, 1.5]),
            tracer_ns_per_packet: rep_stats(&[90.0, 95.0]),
            path_ns_per_packet: rep_stats(&[9000.0, 9500.0]),
            packets: 1000,
            devices: 4,
        }),
    }
}

fn step(offered: u32, senders: u32, lost: u64) -> CapacityStep {
    CapacityStep {
        offered_per_sender: offered,
        senders,
        seconds: 1.5,
        datagrams: 40_000,
        datagram_rate: 26_666.7,
        probes_seen: 160_000,
        delivered: 160_000 - lost,
        kernel_lost: lost,
        reader_dropped: 0,
        forced_wakeups: 3,
        timer_drains: 12,
        event_rate: 106_666.4,
        produced_rate: 106_667.2,
    }
}

fn capacity() -> CapacityFigures {
    let steps = vec![step(10_000, 1, 0), step(0, 2, 17), step(1_000_000, 12, 5)];
    CapacityFigures {
        path: "bridge",
        events_per_datagram: 4,
        datagram_bytes: 64,
        step_seconds: 1.5,
        rings: vec![RingCapacity {
            ring_bytes: 1 << 22,
            ring_events: 65_536,
            steps: steps.clone(),
            summary: CapacitySummary {
                max_lossless_events_per_s: Some(106_666.4),
                loss_starts: None,
                max_produced_events_per_s: 106_667.2,
            },
            limited_by: "the senders".into(),
        }],
        reps: Some(CapacityReps {
            ring_bytes: 1 << 26,
            steps: vec![(0, 1)],
            seconds: 1.5,
            per_rep: vec![Some(100_000.0), None],
            lossless_events_per_s: rep_stats(&[100_000.0]),
            runs: steps,
        }),
        drain: Some(DrainFigure {
            ring_bytes: 1 << 26,
            events: 1_000_000,
            kernel_lost: 0,
            seconds: 0.25,
            events_per_s: 4_000_000.0,
        }),
    }
}

fn tool(p50: &[f64], p99: &[f64]) -> ToolRtt {
    ToolRtt {
        reps: Vec::new(),
        p50_us: rep_stats(p50),
        p99_us: rep_stats(p99),
    }
}

fn accuracy() -> AccuracyFigures {
    AccuracyFigures {
        path: "bridge",
        reps: 2,
        rtt: vec![RttComparison {
            at: Placed {
                placement: "same-cpu",
                cpus: Placement {
                    client_cpu: Some(0),
                    server_cpu: None,
                },
            },
            size: 64,
            sockperf: tool(&[20.0, 21.0], &[30.0, 33.0]),
            agent: tool(&[22.0, 23.0], &[35.0, 36.0]),
            ratio_p50: Some(RatioCi {
                ratio: 1.1,
                ci95: Some(0.02),
            }),
            ratio_p99: None,
        }],
        stream: StreamComparison {
            seconds: 2,
            reps: 2,
            iperf3_gbps: rep_stats(&[10.0, 11.0]),
            agent_gbps: rep_stats(&[9.0, 9.5]),
            ratio: None,
            iperf3_retransmits: 0,
        },
    }
}

fn observer() -> EffectFigures {
    let percentiles = |p50_us, p99_us| Percentiles { p50_us, p99_us };
    let run = |path, placement| EffectRun {
        path,
        at: Placed {
            placement,
            cpus: Placement {
                client_cpu: Some(0),
                server_cpu: Some(1),
            },
        },
        pairs: 4,
        probes_per_block: 500,
        pooled: Pooled {
            traced: percentiles(25.0, 40.0),
            untraced: percentiles(24.0, 38.0),
        },
        effect: None,
        blocks: TracedBlocks {
            events: 16_000,
            events_lost: 0,
            reader_wakeups: 0,
            max_block_wakeups: 0,
            min_block_events: 4000,
        },
    };
    EffectFigures {
        runs: vec![run("veth", "same-cpu"), run("bridge", "cross-cpu")],
    }
}

fn targets() -> Vec<Verdict> {
    vec![
        Verdict::new(
            "cost/run, rr events, ingress (probe)",
            Some(80.5),
            Some(1.25),
            "ns",
            Target::AtMost { limit: 250.0 },
        ),
        Verdict::new("ratio", Some(1.1), None, "x", Target::None).with_note("a note"),
        Verdict::new(
            "a figure whose name is longer than the seventy-two characters of its column",
            None,
            None,
            "events/s",
            Target::AtLeast { limit: 1e6 },
        ),
    ]
}

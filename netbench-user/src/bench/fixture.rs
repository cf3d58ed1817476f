//! Reports for the tests.
use super::{BenchConfig, BenchReport, StatsToggle, WallTime, host::MachineLoad};

/// A report without any figure: every section skipped.
pub fn empty_report() -> BenchReport {
    BenchReport {
        schema: 1,
        kind: "netbench-bench",
        mode: "short",
        env: crate::results::Env::default(),
        config: BenchConfig::short(),
        cost: None,
        throughput: None,
        capacity: None,
        accuracy: None,
        observer: None,
        docker: None,
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

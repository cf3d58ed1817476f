//! The results contract (design.md): one directory per run with `results.json` (the
//! source of truth), `summary.csv` and a terminal summary. `netbench report DIR`
//! re-renders everything from `results.json` alone.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    stages::StageResult,
    stats::{RepStats, Summary},
};

pub const SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a netbench results.json: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where and with what a run happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Env {
    pub kernel: String,
    pub docker_version: Option<String>,
    pub runtimes_found: Vec<String>,
    pub cpu_model: String,
    pub cpus: usize,
    pub netbench_version: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
}

impl Env {
    /// What can be read from this host without Docker.
    #[must_use]
    pub fn local() -> Self {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            kernel,
            docker_version: None,
            runtimes_found: Vec::new(),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            netbench_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Unsupported,
    Failed,
}

/// Round-trip statistics: over all matched probes, plus each repetition's p50.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    #[serde(flatten)]
    pub summary: Summary,
    pub per_rep_p50: Vec<f64>,
}

/// One scenario: a runtime x driver pair x stress combination (or a lab path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub id: String,
    pub runtime: String,
    pub client_driver: String,
    pub server_driver: String,
    pub stress: String,
    pub status: Status,
    pub reason: Option<String>,
    /// Set when the datapath is a model (e.g. the lab's Kata-style tap path): the label
    /// says what is modelled. Shown wherever the scenario's figures appear.
    #[serde(default)]
    pub model: Option<String>,
    pub bandwidth_gbps: Option<RepStats>,
    pub rtt_us: Option<Rtt>,
    pub stages: Vec<StageResult>,
    /// Finer split of one stage (e.g. the lab's `vm`), not part of the stage sum.
    #[serde(default)]
    pub breakdown: Vec<StageResult>,
    pub probes_sent: u64,
    pub probes_matched: u64,
    pub events_lost: u64,
    /// How many probes the run-queue split in `breakdown` covers (server threads traced
    /// with sched tracepoints).
    #[serde(default)]
    pub runqueue: Option<crate::runqueue::SplitStats>,
    /// How tracing ran during the bandwidth measurement (`off`, `count-only`).
    #[serde(default)]
    pub bandwidth_tracing: Option<String>,
}

impl Scenario {
    /// A scenario that cannot run here, with the reason.
    #[must_use]
    pub fn unsupported(
        id: String,
        runtime: &str,
        client: &str,
        server: &str,
        stress: &str,
        reason: String,
    ) -> Self {
        Self {
            id,
            runtime: runtime.to_owned(),
            client_driver: client.to_owned(),
            server_driver: server.to_owned(),
            stress: stress.to_owned(),
            status: Status::Unsupported,
            reason: Some(reason),
            model: None,
            bandwidth_gbps: None,
            rtt_us: None,
            stages: Vec::new(),
            breakdown: Vec::new(),
            runqueue: None,
            probes_sent: 0,
            probes_matched: 0,
            events_lost: 0,
            bandwidth_tracing: None,
        }
    }
}

/// The whole of `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    pub env: Env,
    pub config: serde_json::Value,
    pub scenarios: Vec<Scenario>,
}

impl Results {
    #[must_use]
    pub fn new(env: Env, config: serde_json::Value) -> Self {
        Self {
            schema: SCHEMA,
            env,
            config,
            scenarios: Vec::new(),
        }
    }

    /// Read `DIR/results.json`.
    ///
    /// # Errors
    /// When the file is missing or not a results file.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Parse { path, source })
    }

    /// Write `results.json` and `summary.csv` into `dir` (created if needed). Writes
    /// go to a temporary name first, so an interrupted run never leaves half a file.
    ///
    /// # Errors
    /// When the directory or a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        let path = dir.join("results.json");
        write_atomic(&path, &json).map_err(io(&path))?;
        let csv_path = dir.join("summary.csv");
        write_atomic(&csv_path, &summary_csv(self)).map_err(io(&csv_path))?;
        Ok(path)
    }
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.3}"))
}

/// One row per scenario and stage (and one per scenario for the round trip).
#[must_use]
pub fn summary_csv(r: &Results) -> String {
    let mut out = String::from(
        "scenario,runtime,client_driver,server_driver,stress,status,model,row,mean_us,p50_us,p99_us,share,bandwidth_gbps,probes_sent,probes_matched,events_lost,reason\n",
    );
    for s in &r.scenarios {
        let status = match s.status {
            Status::Ok => "ok",
            Status::Unsupported => "unsupported",
            Status::Failed => "failed",
        };
        let model = s.model.as_deref().unwrap_or("");
        let reason = s.reason.as_deref().unwrap_or("").replace([',', '\n'], ";");
        let bw = fmt_opt(s.bandwidth_gbps.as_ref().map(|b| b.mean));
        let rtt = s.rtt_us.as_ref().map(|r| r.summary);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{status},{model},round-trip,{},{},{},1.000,{bw},{},{},{},{reason}",
            s.id,
            s.runtime,
            s.client_driver,
            s.server_driver,
            s.stress,
            fmt_opt(rtt.map(|r| r.mean)),
            fmt_opt(rtt.map(|r| r.p50)),
            fmt_opt(rtt.map(|r| r.p99)),
            s.probes_sent,
            s.probes_matched,
            s.events_lost
        );
        for st in &s.stages {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{status},{model},{},{:.3},{:.3},{:.3},{:.3},,,,,",
                s.id,
                s.runtime,
                s.client_driver,
                s.server_driver,
                s.stress,
                st.name,
                st.mean_us,
                st.p50_us,
                st.p99_us,
                st.share
            );
        }
    }
    out
}

/// The terminal summary: per scenario a header line and a stage table.
#[must_use]
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    for s in &r.scenarios {
        let model = s
            .model
            .as_ref()
            .map_or_else(String::new, |m| format!(" [MODEL: {m}]"));
        match s.status {
            Status::Ok => {}
            Status::Unsupported | Status::Failed => {
                let what = if s.status == Status::Unsupported {
                    "unsupported"
                } else {
                    "FAILED"
                };
                let _ = writeln!(
                    out,
                    "{}: {what}: {}",
                    s.id,
                    s.reason.as_deref().unwrap_or("")
                );
                continue;
            }
        }
        let _ = writeln!(
            out,
            "{}{model}: {} probes sent, {} matched, {} events lost",
            s.id, s.probes_sent, s.probes_matched, s.events_lost
        );
        if let Some(bw) = &s.bandwidth_gbps {
            let _ = writeln!(
                out,
                "  bandwidth {:.2} Gbit/s (sd {:.2}, 95% CI {}, {} reps, tracing {})",
                bw.mean,
                bw.stddev,
                crate::stats::pm(bw.ci95, 2),
                bw.per_rep.len(),
                s.bandwidth_tracing.as_deref().unwrap_or("off")
            );
        }
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>10} {:>10} {:>7}",
            "stage", "mean us", "p50 us", "p99 us", "share"
        );
        for st in &s.stages {
            let _ = writeln!(
                out,
                "  {:<24} {:>10.2} {:>10.2} {:>10.2} {:>6.1}%",
                st.name,
                st.mean_us,
                st.p50_us,
                st.p99_us,
                st.share * 100.0
            );
        }
        if let Some(rtt) = &s.rtt_us {
            let _ = writeln!(
                out,
                "  {:<24} {:>10.2} {:>10.2} {:>10.2} {:>6.1}%",
                "round trip", rtt.summary.mean, rtt.summary.p50, rtt.summary.p99, 100.0
            );
        }
        if !s.breakdown.is_empty() {
            let _ = writeln!(out, "  breakdown{model} (not part of the sum above):");
            if let Some(rq) = s.runqueue {
                let _ = writeln!(
                    out,
                    "    (server split from sched events: {} probes woken, {} runnable, {} running)",
                    rq.probes_woken, rq.probes_runnable, rq.probes_running
                );
            }
            for st in &s.breakdown {
                let _ = writeln!(
                    out,
                    "    {:<22} {:>10.2} {:>10.2} {:>10.2}",
                    st.name, st.mean_us, st.p50_us, st.p99_us
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut r = Results::new(Env::default(), serde_json::json!({"probes": 10}));
        r.scenarios.push(Scenario::unsupported(
            "kata-host-bridge".into(),
            "kata",
            "host",
            "bridge",
            "none",
            "Kata cannot use the host network driver".into(),
        ));
        let mut ok = Scenario::unsupported(
            "lab-tap".into(),
            "lab-tap",
            "lab",
            "lab",
            "none",
            String::new(),
        );
        ok.status = Status::Ok;
        ok.reason = None;
        ok.model = Some("Kata tc-redirect + tap, VMM stand-in".into());
        ok.rtt_us = Some(Rtt::default());
        ok.stages.push(StageResult {
            name: "vm".into(),
            from_hook: "a".into(),
            to_hook: "b".into(),
            mean_us: 5.0,
            p50_us: 4.0,
            p90_us: 6.0,
            p99_us: 9.0,
            p999_us: 9.5,
            share: 1.0,
        });
        r.scenarios.push(ok);
        r
    }

    #[test]
    fn json_round_trip_and_render_say_unsupported_and_model() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let shown = render(&r);
        assert!(
            shown
                .contains("kata-host-bridge: unsupported: Kata cannot use the host network driver")
        );
        assert!(shown.contains("[MODEL: Kata tc-redirect + tap, VMM stand-in]"));
        let csv = summary_csv(&r);
        assert!(
            csv.lines()
                .any(|l| l.starts_with("kata-host-bridge,") && l.contains(",unsupported,"))
        );
        assert!(
            csv.lines()
                .any(|l| l.starts_with("lab-tap,") && l.contains(",vm,5.000,"))
        );
    }

    #[test]
    fn write_then_load() {
        let dir = std::env::temp_dir().join(format!("nb-report-test-{}", std::process::id()));
        let r = sample();
        r.write(&dir).unwrap();
        assert_eq!(Results::load(&dir).unwrap(), r);
        assert!(dir.join("summary.csv").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Results::load(&dir).is_err());
    }
}

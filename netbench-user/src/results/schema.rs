//! The schema of `results.json`: the run's environment, its scenarios and their round
//! trips, and the file itself (written as [`SCHEMA`], read back from [`OLDEST_SCHEMA`]).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::{ProbeCounts, Status, summary_csv};
use crate::{
    observer::ObserverEffect,
    stages::StageResult,
    stats::{RepStats, Summary},
};

/// The schema this build writes. 2: `degraded` status, untraced round trip, observer
/// effect, probe counts by outcome, `ci95` and `per_rep_p50` entries may be null.
pub const SCHEMA: u32 = 2;
/// The oldest schema [`Results::load`] still reads.
pub const OLDEST_SCHEMA: u32 = 1;

/// Tracing may move the round trip by this much (0.05 = 5%) before the results say so.
pub const OBSERVER_LIMIT: f64 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a netbench results.json")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: results schema {schema}, this netbench reads {OLDEST_SCHEMA} to {SCHEMA}")]
    Schema { path: PathBuf, schema: u32 },
    #[error("{path}: not a netbench results.json: {at} is {value:e}, beyond any run's figures")]
    Range {
        path: PathBuf,
        at: String,
        value: f64,
    },
    #[error("serialising the results")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot write results in {path}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Check that results can be written in `dir` before any work starts: create it (as
/// [`Results::write`] would), create and remove a probe file, then remove the
/// directories the check created, so a run that fails later leaves nothing behind.
///
/// # Errors
/// [`ReportError::NotWritable`] naming `dir`: a file in the way, no permission, a
/// read-only or pseudo file system (`/proc`).
pub fn check_writable(dir: &Path) -> Result<(), ReportError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Innermost first, the order they are removed in.
    let missing = missing_dirs(dir);
    let probe = || -> std::io::Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        create_dirs(dir)?;
        let file = dir.join(format!(".netbench-write-check-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&file)?;
        std::fs::remove_file(&file)
    };
    let result = probe();
    for d in missing {
        let _ = std::fs::remove_dir(d);
    }
    result.map_err(|source| ReportError::NotWritable {
        path: dir.to_path_buf(),
        source,
    })
}

/// Results files: read by all, written by the owner only.
const FILE_MODE: u32 = 0o644;
/// Results directories netbench creates.
const DIR_MODE: u32 = 0o755;

/// The ancestors of `dir` (itself included) that do not exist, innermost first.
fn missing_dirs(dir: &Path) -> Vec<&Path> {
    let not_found = |p: &Path| matches!(std::fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    dir.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && not_found(a))
        .collect()
}

/// `create_dir_all`, each directory it creates [`DIR_MODE`] whatever the umask
/// (existing directories keep their permissions).
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let missing = missing_dirs(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    for d in missing {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Where and with what a run happened (flat in results.json).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Env {
    #[serde(flatten)]
    pub host: Host,
    #[serde(flatten)]
    pub docker: DockerFacts,
    pub netbench_version: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
}

/// The machine: what can be read without Docker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
}

/// What the Docker engine said (none for a lab run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerFacts {
    pub docker_version: Option<String>,
    pub runtimes_found: Vec<String>,
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
            host: Host {
                kernel,
                cpu_model,
                cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            },
            docker: DockerFacts::default(),
            netbench_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// Round-trip statistics: over all matched probes, plus each repetition's p50.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    #[serde(flatten)]
    pub summary: Summary,
    /// One p50 per repetition; `None` for a repetition without a single probe (schema
    /// 1 wrote 0 there, which reads back as `None`: no round trip takes 0 us).
    #[serde(deserialize_with = "per_rep_p50")]
    pub per_rep_p50: Vec<Option<f64>>,
}

fn per_rep_p50<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Option<f64>>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter()
        .map(|p| p.filter(|x| x.is_finite() && *x > 0.0))
        .collect())
}

/// Which probes a quoted round trip comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RttSource {
    /// Probes sent with the tracer off: the round trip as it is.
    Untraced,
    /// Traced probes (no untraced measurement): includes the tracer's own cost.
    Traced,
}

impl RttSource {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Untraced => "untraced",
            Self::Traced => "traced",
        }
    }
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
    /// Round trip of the traced probes, those the stages split (stage means sum to its
    /// mean).
    pub rtt_us: Option<Rtt>,
    /// Round trip of the untraced probes, sent with the tracer off in blocks between the
    /// traced ones: the round trip to quote.
    #[serde(default)]
    pub rtt_untraced_us: Option<Rtt>,
    /// How much tracing moved the round trip (traced / untraced, per block pair).
    #[serde(default)]
    pub observer_effect: Option<ObserverEffect>,
    /// Stages of the traced probes.
    pub stages: Vec<StageResult>,
    /// Finer split of one stage (e.g. the lab's `vm`), not part of the stage sum.
    #[serde(default)]
    pub breakdown: Vec<StageResult>,
    pub probes_sent: u64,
    /// Probes answered with every hop present and in causal order.
    pub probes_matched: u64,
    /// Probes sent but not answered in time.
    #[serde(default)]
    pub probes_timed_out: u64,
    /// Probes answered whose hop timestamps were out of causal order.
    #[serde(default)]
    pub probes_non_causal: u64,
    /// Probes answered with at least one hop missing.
    #[serde(default)]
    pub probes_missing_hops: u64,
    /// Ring-buffer events lost only (the kernel could not reserve them, or the reader
    /// dropped them). Probes with missing hops are `probes_missing_hops`. (Schema 1
    /// counted both here.)
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
            rtt_untraced_us: None,
            observer_effect: None,
            stages: Vec::new(),
            breakdown: Vec::new(),
            runqueue: None,
            probes_sent: 0,
            probes_matched: 0,
            probes_timed_out: 0,
            probes_non_causal: 0,
            probes_missing_hops: 0,
            events_lost: 0,
            bandwidth_tracing: None,
        }
    }

    /// Record what became of the probes (`missing_by_point` goes into reasons only, via
    /// [`decide_status`](super::decide_status)).
    pub fn set_counts(&mut self, c: &ProbeCounts) {
        self.probes_sent = c.sent;
        self.probes_matched = c.matched;
        self.probes_timed_out = c.timed_out;
        self.probes_non_causal = c.non_causal;
        self.probes_missing_hops = c.missing_hops;
    }

    /// The probe counts recorded (without the per-point detail).
    #[must_use]
    pub fn counts(&self) -> ProbeCounts {
        ProbeCounts {
            sent: self.probes_sent,
            timed_out: self.probes_timed_out,
            matched: self.probes_matched,
            missing_hops: self.probes_missing_hops,
            non_causal: self.probes_non_causal,
            missing_by_point: Vec::new(),
        }
    }

    /// The round trip to quote: the untraced one where measured, else the traced one.
    /// `None` for a scenario that shows no figures.
    #[must_use]
    pub fn quoted_rtt(&self) -> Option<(&Rtt, RttSource)> {
        if !self.status.has_figures() {
            return None;
        }
        match (&self.rtt_untraced_us, &self.rtt_us) {
            (Some(u), _) => Some((u, RttSource::Untraced)),
            (None, Some(t)) => Some((t, RttSource::Traced)),
            (None, None) => None,
        }
    }

    /// The observer effect when tracing moved the round trip by more than
    /// [`OBSERVER_LIMIT`].
    #[must_use]
    pub fn observer_exceeds(&self) -> Option<&ObserverEffect> {
        self.observer_effect
            .as_ref()
            .filter(|e| self.status.has_figures() && e.exceeds(OBSERVER_LIMIT))
    }

    /// Matched share of the sent probes in percent (0 when nothing was sent).
    #[must_use]
    pub fn matched_pct(&self) -> f64 {
        if self.probes_sent == 0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "probe counts are small")]
        let pct = self.probes_matched as f64 * 100.0 / self.probes_sent as f64;
        pct
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
    /// The scenarios with a round trip to quote (see [`Scenario::quoted_rtt`]).
    #[must_use]
    pub fn with_rtt(&self) -> Vec<&Scenario> {
        self.scenarios
            .iter()
            .filter(|s| s.quoted_rtt().is_some())
            .collect()
    }

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
        // Bytes, not a string: a file that is not UTF-8 is "not a results.json" too.
        let text = std::fs::read(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Json(source) => ReportError::Parse { path, source },
            ParseError::Schema(schema) => ReportError::Schema { path, schema },
            ParseError::Range((at, value)) => ReportError::Range { path, at, value },
        })
    }

    /// Parse a results document of any schema from [`OLDEST_SCHEMA`] to [`SCHEMA`].
    fn parse(text: &[u8]) -> Result<Self, ParseError> {
        #[derive(Deserialize)]
        struct Head {
            schema: u32,
        }
        let head: Head = serde_json::from_slice(text).map_err(ParseError::Json)?;
        if !(OLDEST_SCHEMA..=SCHEMA).contains(&head.schema) {
            return Err(ParseError::Schema(head.schema));
        }
        let results = serde_json::from_slice(text).map_err(ParseError::Json)?;
        // The shapes are right; the figures must be ones a run can produce, so that
        // sums stay finite for the tables and plots (a plot of an infinite axis never
        // ends: plotters loops on it).
        let doc: serde_json::Value = serde_json::from_slice(text).map_err(ParseError::Json)?;
        if let serde_json::Value::Object(top) = &doc {
            for (k, v) in top.iter().filter(|(k, _)| k.as_str() != "config") {
                out_of_range(v, &format!("/{k}")).map_or(Ok(()), |e| Err(ParseError::Range(e)))?;
            }
        }
        Ok(results)
    }

    /// Write `results.json` and `summary.csv` into `dir` (created if needed). Writes
    /// go to a temporary name first, so an interrupted run never leaves half a file.
    /// The file is always written as [`SCHEMA`] (results loaded from an older schema
    /// are held in this schema's shapes).
    ///
    /// # Errors
    /// When the results cannot be serialised, or the directory or a file cannot be
    /// written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        create_dirs(dir).map_err(io(dir))?;
        let json = if self.schema == SCHEMA {
            json_text(self)?
        } else {
            json_text(&Self {
                schema: SCHEMA,
                ..self.clone()
            })?
        };
        let path = dir.join("results.json");
        write_atomic(&path, &json).map_err(io(&path))?;
        let csv_path = dir.join("summary.csv");
        write_atomic(&csv_path, &summary_csv(self)).map_err(io(&csv_path))?;
        Ok(path)
    }
}

enum ParseError {
    Json(serde_json::Error),
    Schema(u32),
    /// `(where, the value)`.
    Range((String, f64)),
}

/// No figure netbench writes comes near this (a round trip of 11 days in microseconds,
/// a petabit per second, a trillion probes, the year 33658 in Unix seconds).
const MAX_FIGURE: f64 = 1e12;

/// The first number in `v` beyond [`MAX_FIGURE`], as (JSON pointer, value).
fn out_of_range(v: &serde_json::Value, at: &str) -> Option<(String, f64)> {
    use serde_json::Value;
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| !x.is_finite() || x.abs() > MAX_FIGURE)
            .map(|x| (at.to_owned(), x)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, c)| out_of_range(c, &format!("{at}/{i}"))),
        Value::Object(m) => m
            .iter()
            .find_map(|(k, c)| out_of_range(c, &format!("{at}/{k}"))),
        _ => None,
    }
}

/// Write `text` to `path` through a temporary file in the same directory: synced, then
/// renamed over `path`, so `path` is the old file or the whole new one, never a part. The
/// file is [`FILE_MODE`] whatever the umask or a stale temporary file said; on an error
/// the temporary file is removed.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{
        io::Write as _, os::unix::fs::OpenOptionsExt as _, os::unix::fs::PermissionsExt as _,
    };
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        // A temporary file left by a killed run: its permissions are not ours to keep.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn json_text<T: Serialize>(v: &T) -> Result<String, ReportError> {
    serde_json::to_string_pretty(v).map_err(ReportError::Serialize)
}

#[cfg(test)]
mod tests;

/// Property tests of the reader: any input loads or is an error, never a panic.
#[cfg(test)]
mod fuzz;

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
mod tests {
    use super::*;
    use crate::results::{fixtures::sample, render};

    #[test]
    fn json_round_trip_and_render_say_unsupported_and_model() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""schema":2"#), "{text}");
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

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn written_files_are_0644_and_created_directories_0755() {
        use std::os::unix::fs::PermissionsExt as _;
        let top = std::env::temp_dir().join(format!("nb-perm-test-{}", std::process::id()));
        let dir = top.join("a/b");
        let _ = std::fs::remove_dir_all(&top);
        std::fs::create_dir_all(&top).unwrap();
        sample().write(&dir).unwrap();
        assert_eq!(mode(&dir.join("results.json")), 0o644);
        assert_eq!(mode(&dir.join("summary.csv")), 0o644);
        assert_eq!((mode(&dir), mode(&top.join("a"))), (0o755, 0o755));
        // A world-writable temporary file left by a killed run does not pass its mode on.
        let stale = dir.join("results.tmp");
        std::fs::write(&stale, "half").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o666)).unwrap();
        sample().write(&dir).unwrap();
        assert_eq!(mode(&dir.join("results.json")), 0o644);
        assert!(!stale.exists(), "the temporary file is renamed, not left");
        std::fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn a_failed_write_is_an_error_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("nb-wfail-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // results.json is a non-empty directory: the rename over it fails.
        std::fs::create_dir_all(dir.join("results.json/x")).unwrap();
        let e = sample().write(&dir).unwrap_err();
        assert!(
            matches!(&e, ReportError::Io { path, .. } if path.ends_with("results.json")),
            "{e:?}"
        );
        assert!(!dir.join("results.tmp").exists());
        assert!(!dir.join("summary.csv").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        // A regular file where the directory should be.
        let file = std::env::temp_dir().join(format!("nb-wfile-test-{}", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(sample().write(&file), Err(ReportError::Io { .. })));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn check_writable_names_the_directory_and_leaves_nothing() {
        let top = std::env::temp_dir().join(format!("nb-check-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        std::fs::create_dir_all(&top).unwrap();
        // Missing directories are created for the check and removed after it.
        check_writable(&top.join("x/y/z")).unwrap();
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 0);
        // An existing directory keeps what it has, and gets nothing new.
        std::fs::write(top.join("keep"), "").unwrap();
        check_writable(&top).unwrap();
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 1);
        for bad in [top.join("keep"), top.join("keep/sub"), "/proc/nb-x".into()] {
            let e = check_writable(&bad).unwrap_err();
            let line = crate::error::one_line(&e);
            assert!(
                line.starts_with(&format!("cannot write results in {}: ", bad.display())),
                "{line}"
            );
        }
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 1);
        std::fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn serialisation_failure_is_an_error_not_an_empty_file() {
        // JSON object keys must be strings: a map keyed by tuples cannot be written.
        let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(json_text(&bad), Err(ReportError::Serialize(_))));
        assert!(json_text(&sample()).unwrap().starts_with('{'));
    }

    /// A results.json as schema 1 wrote it: `ci95` a number, `per_rep_p50` numbers (0
    /// for a repetition without probes), no untraced round trip or outcome counts.
    const SCHEMA_1: &str = r#"{
      "schema": 1,
      "env": {"kernel": "6.1.0", "docker_version": "20.10.24", "runtimes_found": ["runc"],
              "cpu_model": "x", "cpus": 2, "netbench_version": "0.1.0", "started_at": 1700000000},
      "config": {"reps": 2},
      "scenarios": [
        {"id": "runc-bridge-bridge-none", "runtime": "runc", "client_driver": "bridge",
         "server_driver": "bridge", "stress": "none", "status": "ok", "reason": null,
         "bandwidth_gbps": {"mean": 9.5, "stddev": 0.5, "ci95": 4.49, "per_rep": [9.0, 10.0]},
         "rtt_us": {"count": 400, "mean": 30.5, "p50": 29.0, "p90": 35.0, "p99": 50.0,
                    "p999": 60.0, "per_rep_p50": [28.5, 0.0]},
         "stages": [{"name": "bridge", "from_hook": "a", "to_hook": "b", "mean_us": 30.5,
                     "p50_us": 29.0, "p90_us": 35.0, "p99_us": 50.0, "p999_us": 60.0,
                     "share": 1.0}],
         "probes_sent": 400, "probes_matched": 399, "events_lost": 1},
        {"id": "kata-bridge-bridge-none", "runtime": "kata", "client_driver": "bridge",
         "server_driver": "bridge", "stress": "none", "status": "unsupported",
         "reason": "no kvm", "bandwidth_gbps": null, "rtt_us": null, "stages": [],
         "probes_sent": 0, "probes_matched": 0, "events_lost": 0},
        {"id": "gvisor-bridge-bridge-none", "runtime": "runsc", "client_driver": "bridge",
         "server_driver": "bridge", "stress": "none", "status": "failed",
         "reason": "no probe was seen at every hop",
         "bandwidth_gbps": {"mean": 0.51, "stddev": 0.0, "ci95": 0.0, "per_rep": [0.51]},
         "rtt_us": {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0,
                    "p999": 0.0, "per_rep_p50": [0.0]},
         "stages": [], "probes_sent": 200, "probes_matched": 0, "events_lost": 200}
      ]
    }"#;

    #[test]
    fn schema_1_files_still_load_and_render() {
        let r = Results::parse(SCHEMA_1.as_bytes()).map_err(|_| ()).unwrap();
        assert_eq!(r.schema, 1);
        let ok = &r.scenarios[0];
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.bandwidth_gbps.as_ref().unwrap().ci95, Some(4.49));
        assert_eq!(
            ok.rtt_us.as_ref().unwrap().per_rep_p50,
            vec![Some(28.5), None]
        );
        assert_eq!(
            (ok.rtt_untraced_us.as_ref(), ok.observer_effect.as_ref()),
            (None, None)
        );
        assert_eq!(
            (
                ok.probes_timed_out,
                ok.probes_non_causal,
                ok.probes_missing_hops
            ),
            (0, 0, 0)
        );
        assert_eq!(r.scenarios[1].status, Status::Unsupported);
        assert_eq!(r.scenarios[2].status, Status::Failed);
        // The old file renders: the traced round trip is quoted, and says so.
        let shown = render(&r);
        assert!(
            shown.contains("round trip (traced probes): mean 30.50 us, p50 29.00 us"),
            "{shown}"
        );
        assert!(
            shown.contains("bandwidth 9.50 Gbit/s (sd 0.50, 95% CI +/- 4.49"),
            "{shown}"
        );
        assert!(
            shown.contains("gvisor-bridge-bridge-none: failed: no probe was seen at every hop\n")
        );
        assert!(!shown.contains("0.51"), "{shown}");
        // And through the file.
        let dir = std::env::temp_dir().join(format!("nb-report-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("results.json"), SCHEMA_1).unwrap();
        assert_eq!(Results::load(&dir).unwrap(), r);
        // Written again, it is a schema-2 file (0 p50 now null).
        r.write(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
        assert!(text.contains("\"schema\": 2"), "{text}");
        let again = Results::load(&dir).unwrap();
        assert_eq!(again.schema, SCHEMA);
        assert_eq!(again.scenarios, r.scenarios);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_schemas_are_refused_with_the_number() {
        let newer = SCHEMA_1.replacen(r#""schema": 1"#, r#""schema": 3"#, 1);
        assert!(matches!(
            Results::parse(newer.as_bytes()),
            Err(ParseError::Schema(3))
        ));
        let older = SCHEMA_1.replacen(r#""schema": 1"#, r#""schema": 0"#, 1);
        assert!(matches!(
            Results::parse(older.as_bytes()),
            Err(ParseError::Schema(0))
        ));
        assert!(matches!(Results::parse(b"{}"), Err(ParseError::Json(_))));
    }

    #[test]
    fn figures_no_run_can_produce_are_refused() {
        let huge = SCHEMA_1.replacen(r#""mean": 30.5"#, r#""mean": 1e300"#, 1);
        assert!(huge.contains("1e300"));
        let Err(ParseError::Range((at, value))) = Results::parse(huge.as_bytes()) else {
            panic!("1e300 us accepted");
        };
        assert_eq!((at.as_str(), value), ("/scenarios/0/rtt_us/mean", 1e300));
        // The config is the run's own record, not a figure.
        let config = SCHEMA_1.replacen(r#""reps": 2"#, r#""reps": 1e300"#, 1);
        assert!(Results::parse(config.as_bytes()).is_ok());
    }

    #[test]
    fn per_rep_p50_is_none_without_probes() {
        assert_eq!(crate::stats::p50_us(&[]), None);
        assert!((crate::stats::p50_us(&[10_000, 20_000, 30_000]).unwrap() - 20.0).abs() < 0.05);
        let json = r#"{"count":0,"mean":0,"p50":0,"p90":0,"p99":0,"p999":0,"per_rep_p50":[null,12.5,0.0]}"#;
        let r: Rtt = serde_json::from_str(json).unwrap();
        assert_eq!(r.per_rep_p50, vec![None, Some(12.5), None]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""per_rep_p50":[null,12.5,null]"#), "{text}");
    }
}

/// The reader over generated input (bounded: a few hundred cases): arbitrary bytes and
/// valid-JSON mutations of a real run's results.json give a results document or an
/// error, never a panic; a document that loads also renders (`netbench report`).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::results::render;

    /// A real `netbench run` (runc and kata, four driver pairs, stress none/cpu).
    const RUN: &str = include_str!("testdata/run.json");

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Every JSON pointer in `v`.
    fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
        out.push(at.to_owned());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    pointers(c, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    pointers(c, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn replacement() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            prop::sample::select(vec![
                0.0,
                -0.0,
                -1.0,
                0.5,
                1e-300,
                1e300,
                -1e300,
                f64::MAX,
                f64::MIN_POSITIVE,
            ])
            .prop_map(Value::from),
            Just(Value::from(u64::MAX)),
            Just(Value::from(u32::MAX)),
            Just(Value::from(u64::from(u32::MAX) + 1)),
            prop::sample::select(vec![
                "",
                "ok",
                "failed",
                "degraded",
                "unsupported",
                "bogus",
                "runc",
                "vm",
            ])
            .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(Value::Array(Vec::new())),
            Just(serde_json::json!({})),
            Just(serde_json::json!([null, 0, -1, 1e300])),
        ]
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::from),
            (0u64..3).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop::sample::select(vec![0.0, -1.0, 1e-300, 1e300, f64::MAX]).prop_map(Value::from),
            Just(Value::from(u64::MAX)),
        ]
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Replace(prop::sample::Index, Value),
        /// The value at one place copied to another (a stage where a number was, ...).
        Copy(prop::sample::Index, prop::sample::Index),
        Remove(prop::sample::Index),
        /// A number replaced by another (the shape stays valid: most of these load).
        Renumber(prop::sample::Index, Value),
        /// An array emptied or truncated.
        Truncate(prop::sample::Index, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let i = any::<prop::sample::Index>;
        prop_oneof![
            4 => (i(), replacement()).prop_map(|(i, v)| Mutation::Replace(i, v)),
            2 => (i(), i()).prop_map(|(a, b)| Mutation::Copy(a, b)),
            2 => i().prop_map(Mutation::Remove),
            1 => (i(), 0usize..3).prop_map(|(i, n)| Mutation::Truncate(i, n)),
            4 => (i(), number()).prop_map(|(i, v)| Mutation::Renumber(i, v)),
        ]
    }

    fn apply(doc: &mut Value, m: &Mutation) {
        let mut all = Vec::new();
        pointers(doc, "", &mut all);
        let at = |i: &prop::sample::Index| all[i.index(all.len())].clone();
        match m {
            Mutation::Replace(i, v) => {
                if let Some(slot) = doc.pointer_mut(&at(i)) {
                    *slot = v.clone();
                }
            }
            Mutation::Copy(from, to) => {
                if let Some(v) = doc.pointer(&at(from)).cloned()
                    && let Some(slot) = doc.pointer_mut(&at(to))
                {
                    *slot = v;
                }
            }
            Mutation::Remove(i) => {
                let p = at(i);
                if let Some((parent, key)) = p.rsplit_once('/')
                    && let Some(parent) = doc.pointer_mut(parent)
                {
                    let key = key.replace("~1", "/").replace("~0", "~");
                    match parent {
                        Value::Object(m) => {
                            m.remove(&key);
                        }
                        Value::Array(a) => {
                            if let Ok(k) = key.parse::<usize>()
                                && k < a.len()
                            {
                                a.remove(k);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Renumber(i, v) => {
                let numbers: Vec<&String> = all
                    .iter()
                    .filter(|p| doc.pointer(p).is_some_and(Value::is_number))
                    .collect();
                if !numbers.is_empty() {
                    let p = numbers[i.index(numbers.len())].clone();
                    if let Some(slot) = doc.pointer_mut(&p) {
                        *slot = v.clone();
                    }
                }
            }
            Mutation::Truncate(i, n) => {
                if let Some(Value::Array(a)) = doc.pointer_mut(&at(i)) {
                    a.truncate(*n);
                }
            }
        }
    }

    /// What `netbench report` does with a file, short of the plots.
    fn read_and_render(text: &[u8]) -> Option<Results> {
        let r = Results::parse(text).ok()?;
        let _ = render(&r);
        let _ = summary_csv(&r);
        let _ = crate::results::summary::table(&r);
        let _ = crate::results::summary::findings(&r);
        Some(r)
    }

    #[test]
    fn the_real_run_loads() {
        let r = read_and_render(RUN.as_bytes()).expect("testdata/run.json loads");
        assert_eq!(r.scenarios.len(), 16);
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_and_render(&b);
        }

        /// The real file cut anywhere: an error (the cut is never a valid document
        /// except at its very end, give or take whitespace).
        #[test]
        fn truncated_files_are_errors(cut in 0usize..RUN.len()) {
            let text = &RUN.as_bytes()[..cut];
            let whole = RUN.trim_end().len() <= cut;
            prop_assert_eq!(read_and_render(text).is_some(), whole);
        }

        #[test]
        fn mutated_files_load_or_fail_never_panic(ms in prop::collection::vec(mutation(), 1..6)) {
            let mut doc: Value = serde_json::from_str(RUN).unwrap();
            for m in &ms {
                apply(&mut doc, m);
            }
            let _ = read_and_render(&serde_json::to_vec(&doc).unwrap());
        }
    }
}

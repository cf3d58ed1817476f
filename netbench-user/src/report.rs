//! The results contract (design.md): one directory per run with `results.json` (the
//! source of truth), `summary.csv` and a terminal summary. `netbench report DIR`
//! re-renders everything from `results.json` alone.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    correlate::CorrelationStats,
    observer::ObserverEffect,
    stages::StageResult,
    stats::{RepStats, Summary},
    table::{Column, Table},
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
    #[error("{path}: results schema {schema}, this netbench reads {OLDEST_SCHEMA} to {SCHEMA}")]
    Schema { path: PathBuf, schema: u32 },
    #[error("serialising the results: {0}")]
    Serialize(#[source] serde_json::Error),
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
    /// Ran, but under 99% of the sent probes matched on every hop: the figures cover
    /// only part of the probes (the reason says which were lost, and how).
    Degraded,
    Unsupported,
    Failed,
}

impl Status {
    /// The name results.json and summary.csv use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Unsupported => "unsupported",
            Self::Failed => "failed",
        }
    }

    /// Whether a scenario with this status shows figures. A failed or unsupported one
    /// shows its reason only, whatever partial figures it carries.
    #[must_use]
    pub const fn has_figures(self) -> bool {
        matches!(self, Self::Ok | Self::Degraded)
    }
}

/// Share of the sent probes that must match on every hop for a scenario to be ok.
pub const MIN_MATCHED_PERCENT: u64 = 99;

/// What became of a scenario's probes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    pub sent: u64,
    /// Sent, never answered in time.
    pub timed_out: u64,
    /// Answered, with every hop present and in causal order.
    pub matched: u64,
    /// Answered, with at least one hop missing.
    pub missing_hops: u64,
    /// Answered, with hop timestamps out of causal order.
    pub non_causal: u64,
    /// How often each point was missing, by point name.
    pub missing_by_point: Vec<(String, u64)>,
}

impl From<&CorrelationStats> for ProbeCounts {
    fn from(c: &CorrelationStats) -> Self {
        Self {
            sent: c.probes_sent,
            timed_out: c.probes_timed_out,
            matched: c.probes_matched,
            missing_hops: c.probes_missing_hops,
            non_causal: c.probes_out_of_order,
            missing_by_point: c.missing_by_point.clone(),
        }
    }
}

impl ProbeCounts {
    /// Add another block's (or repetition's) counts to these.
    pub fn add(&mut self, o: &Self) {
        self.sent += o.sent;
        self.timed_out += o.timed_out;
        self.matched += o.matched;
        self.missing_hops += o.missing_hops;
        self.non_causal += o.non_causal;
        for (point, n) in &o.missing_by_point {
            match self.missing_by_point.iter_mut().find(|(p, _)| p == point) {
                Some((_, m)) => *m += n,
                None => self.missing_by_point.push((point.clone(), *n)),
            }
        }
    }

    /// Matched share in tenths of a percent, rounded down (so 98.99% reads 98.9%, never
    /// a 99.0% that is not ok). `None` when nothing was sent.
    #[must_use]
    pub fn matched_permille(&self) -> Option<u64> {
        (self.sent > 0).then(|| {
            let p = u128::from(self.matched) * 1000 / u128::from(self.sent);
            u64::try_from(p).unwrap_or(u64::MAX)
        })
    }

    /// `missing hops 12, timed out 3, non-causal 14` and, where known, the points that
    /// were missing: `; missing at a x3, b x9`.
    #[must_use]
    pub fn losses(&self) -> String {
        let mut out = format!(
            "missing hops {}, timed out {}, non-causal {}",
            self.missing_hops, self.timed_out, self.non_causal
        );
        if !self.missing_by_point.is_empty() {
            let mut points = self.missing_by_point.clone();
            points.sort();
            let points: Vec<String> = points.iter().map(|(p, n)| format!("{p} x{n}")).collect();
            let _ = write!(out, "; missing at {}", points.join(", "));
        }
        out
    }
}

/// A scenario's status from its probe counts and the error that stopped it, if any:
/// failed when there is an error or no probe matched, degraded when under 99% of the
/// sent probes matched, ok otherwise. The reason says why for anything but ok.
#[must_use]
pub fn decide_status(counts: &ProbeCounts, error: Option<String>) -> (Status, Option<String>) {
    if let Some(e) = error {
        return (Status::Failed, Some(e));
    }
    if counts.sent == 0 {
        return (Status::Failed, Some("no probe was sent".to_owned()));
    }
    if counts.matched == 0 {
        return (
            Status::Failed,
            Some(format!(
                "no probe was seen at every hop (of {} sent: {})",
                counts.sent,
                counts.losses()
            )),
        );
    }
    if u128::from(counts.matched) * 100 < u128::from(counts.sent) * u128::from(MIN_MATCHED_PERCENT)
    {
        let pm = counts.matched_permille().unwrap_or(0);
        return (
            Status::Degraded,
            Some(format!(
                "only {}.{}% of probes matched ({})",
                pm / 10,
                pm % 10,
                counts.losses()
            )),
        );
    }
    (Status::Ok, None)
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

/// The p50 of one repetition's round trips (ns in, us out); `None` without samples.
#[must_use]
pub fn rep_p50(samples_ns: &[u64]) -> Option<f64> {
    (!samples_ns.is_empty()).then(|| crate::stats::summarize(samples_ns).p50)
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
    /// [`decide_status`]).
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

/// The stage header: where the stages come from and how tracing moved the round trip.
#[must_use]
pub fn stages_header(s: &Scenario) -> String {
    match &s.observer_effect {
        Some(e) => format!("stages (from traced probes; {})", e.describe()),
        None => "stages (from traced probes; no untraced probes to compare)".to_owned(),
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
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Json(source) => ReportError::Parse { path, source },
            ParseError::Schema(schema) => ReportError::Schema { path, schema },
        })
    }

    /// Parse a results document of any schema from [`OLDEST_SCHEMA`] to [`SCHEMA`].
    fn parse(text: &str) -> Result<Self, ParseError> {
        #[derive(Deserialize)]
        struct Head {
            schema: u32,
        }
        let head: Head = serde_json::from_str(text).map_err(ParseError::Json)?;
        if !(OLDEST_SCHEMA..=SCHEMA).contains(&head.schema) {
            return Err(ParseError::Schema(head.schema));
        }
        serde_json::from_str(text).map_err(ParseError::Json)
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
        std::fs::create_dir_all(dir).map_err(io(dir))?;
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
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

fn json_text<T: Serialize>(v: &T) -> Result<String, ReportError> {
    serde_json::to_string_pretty(v).map_err(ReportError::Serialize)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.3}"))
}

/// CSV columns. The `round-trip` row quotes the untraced round trip where it was
/// measured (`share` empty: the stages do not split it) and is then followed by a
/// `round-trip-traced` row, the round trip the stage rows split (share 1). Figures,
/// counts and the observer columns are empty for failed and unsupported scenarios; a
/// confidence half-width without an interval (one pair) is `n/a`.
pub const CSV_HEADER: &str = "scenario,runtime,client_driver,server_driver,stress,status,model,row,mean_us,p50_us,p99_us,share,bandwidth_gbps,probes_sent,probes_matched,events_lost,rtt_untraced_p50_us,rtt_untraced_p99_us,observer_p50,observer_p50_ci95,observer_p99,observer_p99_ci95,probes_timed_out,probes_non_causal,probes_missing_hops,reason";

/// Free text in one CSV cell: commas and line breaks become `;`.
fn text_cell(text: &str) -> String {
    text.replace([',', '\n'], ";")
}

fn ci_cell(ratio: Option<&crate::observer::Ratio>) -> String {
    match ratio {
        None => String::new(),
        Some(r) => r
            .ci95
            .filter(|c| c.is_finite())
            .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.3}")),
    }
}

/// One row per scenario and stage (and one or two per scenario for the round trip).
#[must_use]
pub fn summary_csv(r: &Results) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for s in &r.scenarios {
        let status = s.status.name();
        let model = text_cell(s.model.as_deref().unwrap_or(""));
        let reason = text_cell(s.reason.as_deref().unwrap_or(""));
        let head = format!(
            "{},{},{},{},{},{status},{model}",
            s.id, s.runtime, s.client_driver, s.server_driver, s.stress
        );
        if !s.status.has_figures() {
            let _ = writeln!(out, "{head},round-trip,,,,,,,,,,,,,,,,,,{reason}");
            continue;
        }
        let bw = fmt_opt(s.bandwidth_gbps.as_ref().map(|b| b.mean));
        let untraced = s.rtt_untraced_us.as_ref().map(|r| r.summary);
        let traced = s.rtt_us.as_ref().map(|r| r.summary);
        let quoted = untraced.or(traced);
        let share = if untraced.is_some() { "" } else { "1.000" };
        let oe = s.observer_effect.as_ref();
        let _ = writeln!(
            out,
            "{head},round-trip,{},{},{},{share},{bw},{},{},{},{},{},{},{},{},{},{},{},{},{reason}",
            fmt_opt(quoted.map(|r| r.mean)),
            fmt_opt(quoted.map(|r| r.p50)),
            fmt_opt(quoted.map(|r| r.p99)),
            s.probes_sent,
            s.probes_matched,
            s.events_lost,
            fmt_opt(untraced.map(|r| r.p50)),
            fmt_opt(untraced.map(|r| r.p99)),
            fmt_opt(oe.map(|e| e.p50.ratio)),
            ci_cell(oe.map(|e| &e.p50)),
            fmt_opt(oe.map(|e| e.p99.ratio)),
            ci_cell(oe.map(|e| &e.p99)),
            s.probes_timed_out,
            s.probes_non_causal,
            s.probes_missing_hops,
        );
        if let (Some(_), Some(t)) = (untraced, traced) {
            let _ = writeln!(
                out,
                "{head},round-trip-traced,{:.3},{:.3},{:.3},1.000,,,,,,,,,,,,,,",
                t.mean, t.p50, t.p99
            );
        }
        for st in &s.stages {
            let _ = writeln!(
                out,
                "{head},{},{:.3},{:.3},{:.3},{:.3},,,,,,,,,,,,,,",
                st.name, st.mean_us, st.p50_us, st.p99_us, st.share
            );
        }
    }
    out
}

/// The terminal summary: per scenario a header line, the round trip to quote, and the
/// stage table of the traced probes.
#[must_use]
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    for s in &r.scenarios {
        let model = s
            .model
            .as_ref()
            .map_or_else(String::new, |m| format!(" [MODEL: {m}]"));
        if !s.status.has_figures() {
            let _ = writeln!(
                out,
                "{}{model}: {}: {}",
                s.id,
                s.status.name(),
                s.reason.as_deref().unwrap_or("")
            );
            continue;
        }
        if s.status == Status::Degraded {
            let _ = writeln!(
                out,
                "{}{model}: degraded: {}",
                s.id,
                s.reason.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            out,
            "{}{model}: {} probes sent, {} matched, {} timed out, {} with missing hops, {} non-causal; {} ring-buffer events lost",
            s.id,
            s.probes_sent,
            s.probes_matched,
            s.probes_timed_out,
            s.probes_missing_hops,
            s.probes_non_causal,
            s.events_lost
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
        if let Some((rtt, source)) = s.quoted_rtt() {
            let _ = writeln!(
                out,
                "  round trip ({} probes): mean {:.2} us, p50 {:.2} us, p99 {:.2} us",
                source.name(),
                rtt.summary.mean,
                rtt.summary.p50,
                rtt.summary.p99
            );
        }
        if let Some(e) = s.observer_exceeds() {
            let _ = writeln!(
                out,
                "  WARNING: tracing moved this round trip by more than {:.0}%: {}",
                OBSERVER_LIMIT * 100.0,
                e.describe()
            );
        }
        let _ = writeln!(out, "  {}:", stages_header(s));
        let columns = stage_columns("stage", 24);
        let mut table = Table::new(columns.into_iter().chain([Column::right("share").width(7)]))
            .indent("  ")
            .gap(" ");
        for st in &s.stages {
            let share = format!("{:.1}%", st.share * 100.0);
            table.row(
                stage_cells(&st.name, st.mean_us, st.p50_us, st.p99_us)
                    .into_iter()
                    .chain([share]),
            );
        }
        if let Some(rtt) = &s.rtt_us {
            let Summary { mean, p50, p99, .. } = rtt.summary;
            let cells = stage_cells("round trip (traced)", mean, p50, p99);
            table.row(cells.into_iter().chain(["100.0%".to_owned()]));
        }
        out.push_str(&table.render());
        render_breakdown(&mut out, s, &model);
    }
    out
}

/// The finer split of one stage, below the stage table.
fn render_breakdown(out: &mut String, s: &Scenario, model: &str) {
    if s.breakdown.is_empty() {
        return;
    }
    let _ = writeln!(out, "  breakdown{model} (not part of the sum above):");
    if let Some(rq) = s.runqueue {
        let _ = writeln!(
            out,
            "    (server split from sched events: {} probes woken, {} runnable, {} running)",
            rq.probes_woken, rq.probes_runnable, rq.probes_running
        );
    }
    let mut table = Table::new(stage_columns("", 22))
        .indent("    ")
        .gap(" ")
        .without_header();
    for st in &s.breakdown {
        table.row(stage_cells(&st.name, st.mean_us, st.p50_us, st.p99_us));
    }
    out.push_str(&table.render());
}

/// A stage table's columns: the name (`name_width` wide), then mean, p50 and p99.
fn stage_columns(name: &str, name_width: usize) -> [Column; 4] {
    [
        Column::left(name).width(name_width),
        Column::right("mean us").width(10),
        Column::right("p50 us").width(10),
        Column::right("p99 us").width(10),
    ]
}

fn stage_cells(name: &str, mean: f64, p50: f64, p99: f64) -> [String; 4] {
    [
        name.to_owned(),
        format!("{mean:.2}"),
        format!("{p50:.2}"),
        format!("{p99:.2}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::Ratio;

    fn stage(name: &str, mean: f64) -> StageResult {
        StageResult {
            name: name.into(),
            from_hook: "a".into(),
            to_hook: "b".into(),
            mean_us: mean,
            p50_us: mean - 1.0,
            p90_us: mean + 1.0,
            p99_us: mean + 4.0,
            p999_us: mean + 4.5,
            share: 1.0,
        }
    }

    fn rtt(mean: f64, p50: f64, p99: f64) -> Rtt {
        Rtt {
            summary: Summary {
                count: 100,
                mean,
                p50,
                p90: p99 - 1.0,
                p99,
                p999: p99 + 1.0,
            },
            per_rep_p50: vec![Some(p50), None],
        }
    }

    fn ratio(ratio: f64, ci95: Option<f64>) -> Ratio {
        Ratio {
            ratio,
            mean_of_pairs: ratio,
            ci95,
            per_pair: vec![ratio],
        }
    }

    /// A measured scenario: traced RTT 30/31/44 us (mean/p50/p99), untraced 25/24/40.
    fn measured(id: &str) -> Scenario {
        let mut s =
            Scenario::unsupported(id.into(), "runc", "bridge", "bridge", "none", String::new());
        s.status = Status::Ok;
        s.reason = None;
        s.rtt_us = Some(rtt(30.0, 31.0, 44.0));
        s.rtt_untraced_us = Some(rtt(25.0, 24.0, 40.0));
        s.observer_effect = Some(ObserverEffect {
            p50: ratio(1.04, Some(0.02)),
            p99: ratio(1.1, None),
            pairs: 1,
            pairs_skipped: 0,
        });
        s.bandwidth_gbps = Some(crate::stats::rep_stats(&[7.5]));
        s.stages = vec![stage("veth", 10.0), stage("server", 20.0)];
        s.set_counts(&ProbeCounts {
            sent: 1000,
            timed_out: 3,
            matched: 990,
            missing_hops: 5,
            non_causal: 2,
            missing_by_point: Vec::new(),
        });
        s.events_lost = 4;
        s
    }

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
        r.scenarios.push(measured("runc-bridge-bridge-none"));
        r
    }

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
        let r = Results::parse(SCHEMA_1).map_err(|_| ()).unwrap();
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
        assert!(matches!(Results::parse(&newer), Err(ParseError::Schema(3))));
        let older = SCHEMA_1.replacen(r#""schema": 1"#, r#""schema": 0"#, 1);
        assert!(matches!(Results::parse(&older), Err(ParseError::Schema(0))));
        assert!(matches!(Results::parse("{}"), Err(ParseError::Json(_))));
    }

    fn counts(sent: u64, matched: u64) -> ProbeCounts {
        // The rest of the probes: one third timed out, the others missing a hop.
        let rest = sent - matched;
        ProbeCounts {
            sent,
            timed_out: rest / 3,
            matched,
            missing_hops: rest - rest / 3,
            non_causal: 0,
            missing_by_point: Vec::new(),
        }
    }

    #[test]
    fn status_boundaries() {
        assert_eq!(decide_status(&counts(1000, 990), None), (Status::Ok, None));
        assert_eq!(decide_status(&counts(1000, 1000), None), (Status::Ok, None));
        assert_eq!(decide_status(&counts(100, 99), None), (Status::Ok, None));
        let (st, why) = decide_status(&counts(1000, 989), None);
        assert_eq!(st, Status::Degraded);
        assert_eq!(
            why.as_deref(),
            Some("only 98.9% of probes matched (missing hops 8, timed out 3, non-causal 0)")
        );
        // 98.99% is still under 99% and must not read "99.0%".
        let (st, why) = decide_status(&counts(10_000, 9_899), None);
        assert_eq!(st, Status::Degraded);
        assert!(why.unwrap().starts_with("only 98.9% "));
        let (st, why) = decide_status(&counts(200, 0), None);
        assert_eq!(st, Status::Failed);
        assert!(
            why.unwrap()
                .starts_with("no probe was seen at every hop (of 200 sent: ")
        );
        assert_eq!(
            decide_status(&counts(0, 0), None),
            (Status::Failed, Some("no probe was sent".into()))
        );
        // An error wins over any count.
        assert_eq!(
            decide_status(&counts(1000, 1000), Some("interrupted".into())),
            (Status::Failed, Some("interrupted".into()))
        );
    }

    #[test]
    fn degraded_reason_names_each_loss_and_the_missing_points() {
        let c = ProbeCounts {
            sent: 1000,
            timed_out: 3,
            matched: 971,
            missing_hops: 12,
            non_causal: 14,
            missing_by_point: vec![("server-eth-ingress".into(), 9), ("bridge-in".into(), 3)],
        };
        assert_eq!(
            decide_status(&c, None).1.as_deref(),
            Some(
                "only 97.1% of probes matched (missing hops 12, timed out 3, non-causal 14; \
                 missing at bridge-in x3, server-eth-ingress x9)"
            )
        );
    }

    #[test]
    fn counts_from_correlation_and_summed() {
        let stats = CorrelationStats {
            probes_sent: 10,
            probes_answered: 8,
            probes_timed_out: 2,
            probes_matched: 5,
            probes_missing_hops: 2,
            probes_out_of_order: 1,
            missing_by_point: vec![("x".into(), 2)],
            ..CorrelationStats::default()
        };
        let mut c = ProbeCounts::from(&stats);
        assert_eq!(
            (c.sent, c.timed_out, c.matched, c.missing_hops, c.non_causal),
            (10, 2, 5, 2, 1)
        );
        c.add(&ProbeCounts {
            sent: 4,
            timed_out: 0,
            matched: 3,
            missing_hops: 1,
            non_causal: 0,
            missing_by_point: vec![("x".into(), 1), ("y".into(), 1)],
        });
        assert_eq!((c.sent, c.matched, c.missing_hops), (14, 8, 3));
        assert_eq!(c.missing_by_point, vec![("x".into(), 3), ("y".into(), 1)]);
        let mut s = measured("a");
        s.set_counts(&c);
        assert_eq!(
            (
                s.probes_sent,
                s.probes_matched,
                s.probes_timed_out,
                s.probes_missing_hops,
                s.probes_non_causal
            ),
            (14, 8, 2, 3, 1)
        );
        assert_eq!(s.counts().matched, 8);
    }

    #[test]
    fn failed_scenarios_print_no_figure_anywhere() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        // The gVisor case: figures were recorded, then the scenario failed.
        let mut f = measured("gvisor-bridge-bridge-none");
        f.status = Status::Failed;
        f.reason = Some("no probe was seen at every hop".into());
        f.bandwidth_gbps = Some(crate::stats::rep_stats(&[0.51]));
        r.scenarios.push(f);
        let shown = render(&r);
        assert_eq!(
            shown,
            "gvisor-bridge-bridge-none: failed: no probe was seen at every hop\n"
        );
        let csv = summary_csv(&r);
        let row = csv.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "gvisor-bridge-bridge-none,runc,bridge,bridge,none,failed,,round-trip,,,,,,,,,,,,,,,,,,no probe was seen at every hop"
        );
        assert_eq!(csv.lines().count(), 2, "no stage rows: {csv}");
        let s = &r.scenarios[0];
        assert!(s.quoted_rtt().is_none() && s.observer_exceeds().is_none());
    }

    #[test]
    fn csv_quotes_the_untraced_round_trip_and_the_observer_effect() {
        let r = sample();
        let csv = summary_csv(&r);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        for col in [
            "rtt_untraced_p50_us",
            "rtt_untraced_p99_us",
            "observer_p50",
            "observer_p50_ci95",
            "observer_p99",
            "observer_p99_ci95",
            "probes_timed_out",
            "probes_non_causal",
            "probes_missing_hops",
        ] {
            assert!(header.contains(&col), "{col}");
        }
        for line in csv.lines() {
            assert_eq!(line.split(',').count(), header.len(), "{line}");
        }
        let cell = |line: &str, col: &str| -> String {
            let i = header.iter().position(|h| *h == col).unwrap();
            line.split(',').nth(i).unwrap().to_owned()
        };
        let rows: Vec<&str> = csv
            .lines()
            .filter(|l| l.starts_with("runc-bridge-bridge-none,"))
            .collect();
        let rt = rows[0];
        assert_eq!(cell(rt, "row"), "round-trip");
        assert_eq!(cell(rt, "p50_us"), "24.000"); // untraced, not the traced 31
        assert_eq!(cell(rt, "share"), "");
        assert_eq!(cell(rt, "rtt_untraced_p99_us"), "40.000");
        assert_eq!(cell(rt, "observer_p50"), "1.040");
        assert_eq!(cell(rt, "observer_p50_ci95"), "0.020");
        assert_eq!(cell(rt, "observer_p99_ci95"), "n/a");
        assert_eq!(cell(rt, "probes_timed_out"), "3");
        assert_eq!(cell(rt, "probes_non_causal"), "2");
        assert_eq!(cell(rt, "probes_missing_hops"), "5");
        assert_eq!(cell(rt, "status"), "ok");
        assert_eq!(cell(rows[1], "row"), "round-trip-traced");
        assert_eq!(cell(rows[1], "p50_us"), "31.000");
        assert_eq!(cell(rows[2], "row"), "veth");
        // Without an untraced measurement the round-trip row is the traced one.
        let tap = csv.lines().find(|l| l.starts_with("lab-tap,")).unwrap();
        assert_eq!(cell(tap, "share"), "1.000");
        assert_eq!(cell(tap, "observer_p50"), "");
        assert_eq!(cell(tap, "observer_p50_ci95"), "");
        let mut d = r.clone();
        d.scenarios[2].status = Status::Degraded;
        let csv = summary_csv(&d);
        let row = csv
            .lines()
            .find(|l| l.starts_with("runc-bridge-bridge-none,"))
            .unwrap();
        assert_eq!(cell(row, "status"), "degraded");
    }

    #[test]
    fn render_quotes_untraced_labels_stages_and_warns_over_five_percent() {
        let mut r = Results::new(Env::default(), serde_json::json!({}));
        r.scenarios.push(measured("runc-bridge-bridge-none"));
        let shown = render(&r);
        assert!(
            shown.contains(
                "  round trip (untraced probes): mean 25.00 us, p50 24.00 us, p99 40.00 us\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  stages (from traced probes; tracing moved p50 x1.04 (95% CI 1.02..1.06), p99 x1.10 (n/a)):\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("round trip (traced)"), "{shown}");
        // One repetition of bandwidth: no interval, and no "+/- 0".
        assert!(shown.contains("(sd 0.00, 95% CI n/a, 1 reps"), "{shown}");
        assert!(!shown.contains("+/- 0.00"), "{shown}");
        // p99 moved 10%: over the limit.
        assert!(
            shown.contains(
                "WARNING: tracing moved this round trip by more than 5%: tracing moved p50 x1.04"
            ),
            "{shown}"
        );
        assert!(shown.contains("990 matched, 3 timed out, 5 with missing hops, 2 non-causal; 4 ring-buffer events lost"), "{shown}");
        // Within 5% on both: no warning.
        if let Some(e) = r.scenarios[0].observer_effect.as_mut() {
            e.p99.ratio = 1.05;
        }
        assert!(!render(&r).contains("WARNING"));
        // Degraded: the reason first, then the figures.
        r.scenarios[0].status = Status::Degraded;
        r.scenarios[0].reason = Some("only 97.1% of probes matched (x)".into());
        let shown = render(&r);
        assert!(
            shown.starts_with(
                "runc-bridge-bridge-none: degraded: only 97.1% of probes matched (x)\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("p50 24.00 us"), "{shown}");
    }

    #[test]
    fn per_rep_p50_is_none_without_probes() {
        assert_eq!(rep_p50(&[]), None);
        assert!((rep_p50(&[10_000, 20_000, 30_000]).unwrap() - 20.0).abs() < 0.05);
        let json = r#"{"count":0,"mean":0,"p50":0,"p90":0,"p99":0,"p999":0,"per_rep_p50":[null,12.5,0.0]}"#;
        let r: Rtt = serde_json::from_str(json).unwrap();
        assert_eq!(r.per_rep_p50, vec![None, Some(12.5), None]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""per_rep_p50":[null,12.5,null]"#), "{text}");
    }
}

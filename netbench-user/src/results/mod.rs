//! The results contract (design.md): one directory per run with `results.json` (the
//! source of truth), `summary.csv` and a terminal summary. `netbench report DIR`
//! re-renders everything from `results.json` alone.
//!
//! - the schema: [`Results`], [`Env`], [`Scenario`], [`Rtt`], the file written and
//!   read back (schema 2; reads 1)
//! - status: [`Status`], [`ProbeCounts`] and [`decide_status`]
//! - csv: [`summary_csv`]
//! - render: the terminal stage tables ([`render()`])
//! - [`summary`]: a run's matrix table, its per-scenario lines and headline findings
mod csv;
#[cfg(test)]
mod fixtures;
mod render;
mod schema;
mod status;
pub mod summary;

pub use csv::{CSV_HEADER, summary_csv};
pub use render::{render, stages_header};
pub use schema::{
    DockerFacts, Env, Host, OBSERVER_LIMIT, OLDEST_SCHEMA, ReportError, Results, Rtt, RttSource,
    SCHEMA, Scenario, check_writable,
};
pub use status::{MIN_MATCHED_PERCENT, ProbeCounts, Status, decide_status};

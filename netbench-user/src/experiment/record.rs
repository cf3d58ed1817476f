//! The run record: the resolved configuration of `netbench run` as results.json's
//! `config` holds it, one typed struct filled as the run learns things (runtimes
//! resolved, images built, where each scenario was traced).
use std::collections::BTreeMap;

use serde::Serialize;

use super::matrix::RunConfig;
use crate::docker::{Engines, network::SwarmPlan};

/// One engine as recorded.
#[derive(Clone, Debug, Serialize)]
pub struct EngineRecord {
    pub version: String,
    pub api: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnginesRecord {
    pub client: EngineRecord,
    pub server: EngineRecord,
    pub same_engine: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImagesRecord {
    pub agent: String,
    pub server: String,
}

/// results.json `config` of a `netbench run`.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub config: RunConfig,
    pub run_id: String,
    /// Requested runtime -> dockerd's runtime name (None: not available).
    pub runtimes_resolved: BTreeMap<String, Option<String>>,
    pub stress_cpus: u32,
    /// (client driver, server driver) of each requested pair.
    pub driver_pairs: Vec<(&'static str, &'static str)>,
    pub engines: EnginesRecord,
    pub swarm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesRecord>,
    /// Scenario id -> where it was traced (`TracedPath::describe`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, serde_json::Value>,
}

impl RunRecord {
    #[must_use]
    pub fn new(
        cfg: &RunConfig,
        run_id: &str,
        runtimes_resolved: BTreeMap<String, Option<String>>,
        stress_cpus: u32,
        engines: &Engines,
        swarm: &SwarmPlan,
    ) -> Self {
        let engine = |e: &crate::docker::Engine| EngineRecord {
            version: e.version.clone(),
            api: e.api_version.clone(),
        };
        Self {
            config: cfg.clone(),
            run_id: run_id.to_owned(),
            runtimes_resolved,
            stress_cpus,
            driver_pairs: cfg.drivers.iter().map(|d| d.pair()).collect(),
            engines: EnginesRecord {
                client: engine(&engines.client),
                server: engine(&engines.server),
                same_engine: true,
            },
            swarm: match swarm {
                SwarmPlan::Ready => "existing swarm (left as it is)".into(),
                SwarmPlan::Init => {
                    "single-node swarm initialised by netbench, left at cleanup".into()
                }
                SwarmPlan::Unusable(why) => why.clone(),
            },
            images: None,
            hooks: BTreeMap::new(),
        }
    }

    /// As results.json stores it.
    ///
    /// # Errors
    /// When it cannot be serialised (it always can: plain data).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

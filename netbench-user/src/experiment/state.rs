//! What a run creates and holds (engines, networks, the swarm plan, the macvlan parent,
//! its images), and its removal.
use std::{collections::HashMap, path::Path, sync::Arc};

use super::matrix::{Driver, RunConfig};
use crate::docker::{
    DockerError, Engines,
    cleanup::{self, Removed},
    image::{self, BuiltImage},
    network::{self, MacvlanParent, Network, SwarmPlan},
};

/// Images of this run.
pub(super) struct Images {
    pub(super) agent: BuiltImage,
    pub(super) server: BuiltImage,
}

/// What the run created and holds; everything goes at [`RunState::cleanup`].
pub(super) struct RunState {
    pub(super) run: String,
    pub(super) engines: Engines,
    pub(super) swarm: SwarmPlan,
    pub(super) networks: HashMap<&'static str, Result<Network, Arc<DockerError>>>,
    pub(super) macvlan_parent: Option<MacvlanParent>,
    /// The run record (results.json's config), with where each scenario was traced.
    pub(super) record: super::record::RunRecord,
}

impl RunState {
    /// The network of `driver`'s pair, created on first use (a failure is remembered,
    /// so later scenarios of the pair fail at once with the same reason).
    pub(super) async fn network(
        &mut self,
        cfg: &RunConfig,
        driver: Driver,
    ) -> Result<Network, Arc<DockerError>> {
        let kind = driver.network();
        if let Some(n) = self.networks.get(kind) {
            return n.clone();
        }
        let made = self.create_network(cfg, kind).await.map_err(Arc::new);
        self.networks.insert(kind, made.clone());
        made
    }

    async fn create_network(
        &mut self,
        cfg: &RunConfig,
        kind: &str,
    ) -> Result<Network, DockerError> {
        let engine = &self.engines.server;
        match kind {
            "macvlan" => {
                let parent = match &cfg.macvlan_parent {
                    Some(name) => MacvlanParent {
                        name: name.clone(),
                        peer: None,
                        owned: false,
                    },
                    None => network::create_parent(&self.run).await?,
                };
                let name = parent.name.clone();
                self.macvlan_parent = Some(parent);
                network::create_macvlan(engine, &self.run, &name).await
            }
            "overlay" => {
                if self.swarm == SwarmPlan::Init {
                    network::init_swarm(&mut self.engines.server, &self.run).await?;
                    self.engines
                        .client
                        .swarm_state
                        .clone_from(&self.engines.server.swarm_state);
                    self.swarm = SwarmPlan::Ready;
                }
                network::create_overlay(&self.engines.server, &self.run).await
            }
            _ => network::create_bridge(engine, &self.run).await,
        }
    }

    /// Remove everything of this run: containers, networks, the swarm if this run
    /// initialised it (and its `docker_gwbridge`), the macvlan parent veth.
    pub(super) async fn cleanup(&mut self) -> Removed {
        let mut removed =
            cleanup::everything(&mut self.engines.server, Some(&self.run), false).await;
        if let Some(parent) = self.macvlan_parent.take()
            && parent.owned
            && let Err(e) = network::delete_parent(&parent).await
        {
            removed.failures.push(crate::error::one_line(&e));
        }
        removed
    }
}

pub(super) async fn build_images(
    engines: &Engines,
    agent: &Path,
    stress_ng: Option<&Path>,
) -> Result<Images, DockerError> {
    let agent_spec = image::agent_spec(agent)?;
    let server_spec = match stress_ng {
        Some(s) => image::server_spec(agent, s)?,
        None => agent_spec.clone(),
    };
    let agent_img = image::ensure(&engines.client, &agent_spec).await?;
    let server_img = image::ensure(&engines.server, &server_spec).await?;
    Ok(Images {
        agent: agent_img,
        server: server_img,
    })
}

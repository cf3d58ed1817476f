//! Docker networks netbench owns: a user bridge, a macvlan on a parent netbench creates
//! (one end of a veth pair: this kernel has no dummy driver), an attachable overlay on a
//! single-node swarm that netbench initialises only when allowed and leaves again.
use std::{collections::HashMap, time::Duration};

use bollard::{
    models::{NetworkCreateRequest, SwarmInitRequest, SwarmSpec},
    query_parameters::{InspectNetworkOptions, LeaveSwarmOptionsBuilder},
};

use super::{DockerError, Engine, api, is_not_found, labels};
use crate::{
    ledger::{self, Resource},
    netlink::{self},
    netns::NetnsRef,
};

/// `docker_gwbridge`: the bridge swarm attaches overlay containers to for outside access.
pub const GWBRIDGE: &str = "docker_gwbridge";
const SWARM_TIMEOUT: Duration = Duration::from_mins(1);

/// A network netbench created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    /// The Linux bridge on the host (bridge networks): named by netbench, so known.
    pub bridge_ifname: Option<String>,
}

/// `nb-<run>-<kind>`.
#[must_use]
pub fn network_name(run: &str, kind: &str) -> String {
    format!("nb-{run}-{kind}")
}

/// The host bridge device of a netbench bridge network (<= 15 characters).
#[must_use]
pub fn bridge_ifname(run: &str) -> String {
    format!("nbbr-{run}")
}

async fn create(
    engine: &Engine,
    run: &str,
    kind: &str,
    driver: &str,
    options: HashMap<String, String>,
    attachable: bool,
) -> Result<Network, DockerError> {
    let name = network_name(run, kind);
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some(driver.to_owned()),
        attachable: attachable.then_some(true),
        options: Some(options),
        labels: Some(labels::labels(run, &format!("{kind}-network"))),
        ..NetworkCreateRequest::default()
    };
    let entry = Resource::Network { name: name.clone() };
    ledger::record(entry.clone());
    let created = engine.docker.create_network(request).await;
    if matches!(&created, Err(e) if super::is_refusal(e)) {
        // The daemon refused (e.g. the name is someone else's): nothing was created.
        ledger::release(&entry);
    }
    let created = created.map_err(api(format!("creating {driver} network {name}")))?;
    Ok(Network {
        name,
        id: created.id,
        driver: driver.to_owned(),
        bridge_ifname: None,
    })
}

/// A user-defined bridge network whose host bridge is `nbbr-<run>`.
///
/// # Errors
/// When the daemon refuses.
pub async fn create_bridge(engine: &Engine, run: &str) -> Result<Network, DockerError> {
    let ifname = bridge_ifname(run);
    let options = HashMap::from([("com.docker.network.bridge.name".to_owned(), ifname.clone())]);
    let mut n = create(engine, run, "bridge", "bridge", options, false).await?;
    n.bridge_ifname = Some(ifname);
    Ok(n)
}

/// A macvlan network (bridge mode) on host link `parent`.
///
/// # Errors
/// When the daemon refuses.
pub async fn create_macvlan(
    engine: &Engine,
    run: &str,
    parent: &str,
) -> Result<Network, DockerError> {
    let options = HashMap::from([
        ("parent".to_owned(), parent.to_owned()),
        ("macvlan_mode".to_owned(), "bridge".to_owned()),
    ]);
    create(engine, run, "macvlan", "macvlan", options, false).await
}

/// An attachable overlay network (the engine must be a swarm manager).
///
/// # Errors
/// When the daemon refuses.
pub async fn create_overlay(engine: &Engine, run: &str) -> Result<Network, DockerError> {
    create(engine, run, "overlay", "overlay", HashMap::new(), true).await
}

/// Remove a network; one that is already gone is fine.
///
/// # Errors
/// When the daemon refuses (e.g. a container is still attached).
pub async fn remove(engine: &Engine, name: &str) -> Result<(), DockerError> {
    match engine.docker.remove_network(name).await {
        Err(e) if !is_not_found(&e) => Err(api(format!("removing network {name}"))(e)),
        _ => {
            ledger::release(&Resource::Network {
                name: name.to_owned(),
            });
            Ok(())
        }
    }
}

/// What overlay scenarios need from the swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwarmPlan {
    /// A manager already: create the overlay network.
    Ready,
    /// Not in a swarm and allowed to initialise one.
    Init,
    /// Overlay cannot run; why.
    Unusable(String),
}

/// Decide from the node's swarm state (`docker info`) and `--allow-swarm-init`.
#[must_use]
pub fn swarm_plan(state: &str, manager: bool, allow_init: bool) -> SwarmPlan {
    match (state, manager, allow_init) {
        ("active", true, _) => SwarmPlan::Ready,
        ("active", false, _) => SwarmPlan::Unusable(
            "this engine is a swarm worker: attachable overlay networks are created on a \
             manager"
                .to_owned(),
        ),
        ("inactive", _, true) => SwarmPlan::Init,
        ("inactive", _, false) => SwarmPlan::Unusable(
            "overlay needs swarm mode and this engine is not in a swarm: pass \
             --allow-swarm-init to let netbench initialise a single-node swarm (it leaves \
             it again at cleanup)"
                .to_owned(),
        ),
        (other, _, _) => SwarmPlan::Unusable(format!(
            "overlay needs an active swarm; this engine's swarm state is {other:?}"
        )),
    }
}

/// Initialise a single-node swarm on 127.0.0.1, labelled as netbench's (so cleanup,
/// even from another process, knows it may leave it). A `docker_gwbridge` is created
/// first, labelled, when there is none: swarm would create an unlabelled one that
/// outlives the swarm.
///
/// # Errors
/// When the daemon refuses.
pub async fn init_swarm(engine: &mut Engine, run: &str) -> Result<(), DockerError> {
    let gw = engine
        .docker
        .inspect_network(GWBRIDGE, None::<InspectNetworkOptions>)
        .await;
    ledger::record(Resource::Swarm);
    if matches!(&gw, Err(e) if is_not_found(e)) {
        // The options swarm itself gives it (Docker's "customize docker_gwbridge").
        let options = HashMap::from([
            (
                "com.docker.network.bridge.name".to_owned(),
                GWBRIDGE.to_owned(),
            ),
            (
                "com.docker.network.bridge.enable_icc".to_owned(),
                "false".to_owned(),
            ),
            (
                "com.docker.network.bridge.enable_ip_masquerade".to_owned(),
                "true".to_owned(),
            ),
        ]);
        let request = NetworkCreateRequest {
            name: GWBRIDGE.to_owned(),
            driver: Some("bridge".to_owned()),
            options: Some(options),
            labels: Some(labels::labels(run, "swarm-gwbridge")),
            ..NetworkCreateRequest::default()
        };
        engine
            .docker
            .create_network(request)
            .await
            .map_err(api("creating docker_gwbridge"))?;
    }
    let mut swarm_labels = labels::labels(run, "swarm");
    swarm_labels.retain(|k, _| k != labels::ROLE);
    let request = SwarmInitRequest {
        listen_addr: Some("127.0.0.1:2377".to_owned()),
        advertise_addr: Some("127.0.0.1".to_owned()),
        spec: Some(SwarmSpec {
            labels: Some(swarm_labels),
            ..SwarmSpec::default()
        }),
        ..SwarmInitRequest::default()
    };
    swarm_call(
        "initialising a single-node swarm",
        engine.docker.init_swarm(request),
    )
    .await?;
    engine.refresh_swarm().await
}

/// A swarm request, bounded by [`SWARM_TIMEOUT`]; errors and the timeout name `what`.
async fn swarm_call<T>(
    what: &str,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    tokio::time::timeout(SWARM_TIMEOUT, call)
        .await
        .map_err(|_| DockerError::Timeout {
            what: what.to_owned(),
            secs: SWARM_TIMEOUT.as_secs(),
        })?
        .map_err(api(what))
}

/// Leave the swarm if netbench initialised it (of `run`, or of any run when `None`),
/// then remove the `docker_gwbridge` netbench created for it. Returns whether it left.
///
/// # Errors
/// When the daemon refuses to leave.
pub async fn leave_swarm_if_ours(
    engine: &mut Engine,
    run: Option<&str>,
) -> Result<bool, DockerError> {
    let ours = match engine.docker.inspect_swarm().await {
        // 503 (not a manager / not in a swarm) or any other refusal: not ours to leave.
        Err(_) => false,
        Ok(swarm) => labels::is_owned(swarm.spec.and_then(|s| s.labels).as_ref(), run),
    };
    if ours {
        let options = LeaveSwarmOptionsBuilder::default().force(true).build();
        swarm_call(
            "leaving the swarm",
            engine.docker.leave_swarm(Some(options)),
        )
        .await?;
        engine.refresh_swarm().await?;
    }
    // docker_gwbridge goes only when netbench made it, and only once no swarm uses it.
    if engine.swarm_state != "active"
        && let Ok(gw) = engine
            .docker
            .inspect_network(GWBRIDGE, None::<InspectNetworkOptions>)
            .await
        && labels::is_owned(gw.labels.as_ref(), None)
    {
        remove(engine, GWBRIDGE).await?;
    }
    if engine.swarm_state != "active" {
        ledger::release(&Resource::Swarm);
    }
    Ok(ours)
}

/// A macvlan parent: one end of a veth pair netbench created in the host namespace
/// (labelled with an alias), or a link the user named (never deleted).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MacvlanParent {
    pub name: String,
    /// The other end of netbench's veth pair.
    pub peer: Option<String>,
    pub owned: bool,
}

/// Names of the parent veth pair of `run` (<= 15 characters each).
#[must_use]
pub fn parent_names(run: &str) -> (String, String) {
    (format!("nbmv{run}"), format!("nbmp{run}"))
}

/// Create the veth pair `nbmv<run>`/`nbmp<run>` in the host namespace, labelled, up.
///
/// # Errors
/// When the kernel refuses.
pub async fn create_parent(run: &str) -> Result<MacvlanParent, DockerError> {
    let (name, peer) = parent_names(run);
    let h = netlink::handle_in(&NetnsRef::Current)?;
    let entry = Resource::Link { name: name.clone() };
    ledger::record(entry.clone());
    if let Err(e) = netlink::create_veth(&h, &name, &peer).await {
        // The kernel refused: nothing was created (a link of that name is not ours).
        ledger::release(&entry);
        return Err(e.into());
    }
    let parent = MacvlanParent {
        name: name.clone(),
        peer: Some(peer.clone()),
        owned: true,
    };
    let configured = async {
        for link in [&name, &peer] {
            netlink::set_alias(&h, link, &labels::link_alias(run)).await?;
            netlink::set_up(&h, link).await?;
        }
        Ok::<(), DockerError>(())
    }
    .await;
    if let Err(e) = configured {
        if netlink::delete_link(&h, &name).await.is_ok() {
            ledger::release(&entry);
        }
        return Err(e);
    }
    Ok(parent)
}

/// Delete the pair if netbench owns it.
///
/// # Errors
/// When the kernel refuses.
pub async fn delete_parent(parent: &MacvlanParent) -> Result<(), DockerError> {
    if !parent.owned {
        return Ok(());
    }
    let h = netlink::handle_in(&NetnsRef::Current)?;
    netlink::delete_link(&h, &parent.name).await?;
    ledger::release(&Resource::Link {
        name: parent.name.clone(),
    });
    Ok(())
}

/// Whether host link `name` exists (for `--macvlan-parent`).
///
/// # Errors
/// On netlink failures.
pub async fn host_link_exists(name: &str) -> Result<bool, DockerError> {
    let h = netlink::handle_in(&NetnsRef::Current)?;
    Ok(netlink::link_by_name(&h, name).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_plans() {
        assert_eq!(swarm_plan("active", true, false), SwarmPlan::Ready);
        assert_eq!(swarm_plan("inactive", false, true), SwarmPlan::Init);
        let SwarmPlan::Unusable(why) = swarm_plan("inactive", false, false) else {
            panic!("inactive without --allow-swarm-init must be unusable");
        };
        assert!(why.contains("--allow-swarm-init"), "{why}");
        assert!(matches!(
            swarm_plan("active", false, true),
            SwarmPlan::Unusable(w) if w.contains("worker")
        ));
        assert!(matches!(
            swarm_plan("locked", true, true),
            SwarmPlan::Unusable(_)
        ));
    }

    #[test]
    fn names_fit_linux_and_carry_the_run() {
        let run = "0123abcd";
        assert_eq!(network_name(run, "bridge"), "nb-0123abcd-bridge");
        assert!(bridge_ifname(run).len() <= 15);
        let (a, b) = parent_names(run);
        assert!(a.len() <= 15 && b.len() <= 15 && a != b);
    }
}

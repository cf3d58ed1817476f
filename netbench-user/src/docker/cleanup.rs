//! Removing what netbench created in Docker and on the host, found by its labels (and,
//! for host links, by their alias): containers, networks, the swarm netbench
//! initialised (and its `docker_gwbridge`), macvlan parent links, and on request images.
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

use super::{DockerError, Engine, container, image, labels, network};
use crate::{error::one_line, netlink, netns::NetnsRef};

/// What a cleanup removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub swarm_left: bool,
    pub links: Vec<String>,
    pub images: Vec<String>,
    /// What could not be removed, one line each.
    pub failures: Vec<String>,
}

impl Removed {
    /// One line per removed object, for `netbench cleanup`.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(
            self.containers
                .iter()
                .map(|c| format!("removed container {c}")),
        );
        out.extend(self.networks.iter().map(|n| format!("removed network {n}")));
        if self.swarm_left {
            out.push("left the swarm netbench had initialised".to_owned());
        }
        out.extend(self.links.iter().map(|l| format!("removed link {l}")));
        out.extend(self.images.iter().map(|i| format!("removed image {i}")));
        out
    }
}

/// Force-remove netbench's containers (of `run`, or all).
///
/// # Errors
/// When the daemon cannot list containers.
pub async fn containers(engine: &Engine, run: Option<&str>) -> Result<Removed, DockerError> {
    let list = labels::list_owned(
        "containers",
        run,
        |filter| {
            let options = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filter)
                .build();
            engine.docker.list_containers(Some(options))
        },
        |c| c.labels.as_ref(),
    )
    .await?;
    let found = list.into_iter().filter_map(|c| {
        let id = c.id?;
        let name = c
            .names
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| id.clone())
            .trim_start_matches('/')
            .to_owned();
        Some((id, name))
    });
    let (containers, failures) =
        remove_each(found, async |id| container::remove(engine, id).await).await;
    Ok(Removed {
        containers,
        failures,
        ..Removed::default()
    })
}

/// Remove netbench's networks (of `run`, or all), except `docker_gwbridge`, which goes
/// with the swarm.
///
/// # Errors
/// When the daemon cannot list networks.
pub async fn networks(engine: &Engine, run: Option<&str>) -> Result<Removed, DockerError> {
    let list = labels::list_owned(
        "networks",
        run,
        |filter| {
            let options = ListNetworksOptionsBuilder::default()
                .filters(&filter)
                .build();
            engine.docker.list_networks(Some(options))
        },
        |n| n.labels.as_ref(),
    )
    .await?;
    let found = list
        .into_iter()
        .filter_map(|n| n.name)
        .filter(|name| name != network::GWBRIDGE)
        .map(|name| (name.clone(), name));
    let (networks, failures) =
        remove_each(found, async |name| network::remove(engine, name).await).await;
    Ok(Removed {
        networks,
        failures,
        ..Removed::default()
    })
}

/// Delete host links whose alias marks them as netbench's (of `run`, or all).
///
/// # Errors
/// When the host namespace cannot be listed.
pub async fn links(run: Option<&str>) -> Result<Removed, DockerError> {
    let h = netlink::handle_in(&NetnsRef::Current)?;
    let found = netlink::list_links(&h)
        .await?
        .into_iter()
        .filter_map(|link| {
            let (name, alias) = (netlink::name_of(&link)?, netlink::alias_of(&link)?);
            let owned = match run {
                Some(r) => alias == labels::link_alias(r),
                None => alias.starts_with(labels::LINK_ALIAS_PREFIX),
            };
            (owned && name.starts_with("nb")).then(|| (name.to_owned(), name.to_owned()))
        });
    // Deleting one end of a veth removes its peer: that one is then just gone.
    let (links, failures) =
        remove_each(found, async |name| netlink::delete_link(&h, name).await).await;
    Ok(Removed {
        links,
        failures,
        ..Removed::default()
    })
}

/// Remove each `(key, name)` found with `remove(key)`: the names removed, and one line
/// per failure (collected, so one stuck object does not keep the rest).
async fn remove_each<E: std::error::Error + 'static>(
    found: impl IntoIterator<Item = (String, String)>,
    remove: impl AsyncFn(&str) -> Result<(), E>,
) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for (key, name) in found {
        match remove(&key).await {
            Ok(()) => removed.push(name),
            Err(e) => failures.push(one_line(&e)),
        }
    }
    (removed, failures)
}

/// Everything netbench created (of `run`, or of every run), plus images when asked:
/// containers, then networks, then the swarm netbench initialised, then links.
/// Failures are collected, not fatal, so one stuck object does not keep the rest.
pub async fn everything(engine: &mut Engine, run: Option<&str>, images: bool) -> Removed {
    let mut all = Removed::default();
    let merge = |r: Result<Removed, DockerError>, all: &mut Removed| match r {
        Ok(r) => {
            all.containers.extend(r.containers);
            all.networks.extend(r.networks);
            all.links.extend(r.links);
            all.images.extend(r.images);
            all.failures.extend(r.failures);
        }
        Err(e) => all.failures.push(one_line(&e)),
    };
    merge(containers(engine, run).await, &mut all);
    merge(networks(engine, run).await, &mut all);
    match network::leave_swarm_if_ours(engine, run).await {
        Ok(left) => all.swarm_left = left,
        Err(e) => all.failures.push(one_line(&e)),
    }
    merge(links(run).await, &mut all);
    if images {
        merge(
            image::remove_all(engine).await.map(|images| Removed {
                images,
                ..Removed::default()
            }),
            &mut all,
        );
    }
    all
}

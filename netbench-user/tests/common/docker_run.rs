//! The real `netbench` binary and the real dockerd, for the end-to-end and fault tiers:
//! running netbench, and what netbench may have left in Docker and on the host.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use bollard::{
    Docker,
    query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder},
};
use netbench::{netlink, netns::NetnsRef};

pub fn netbench_bin() -> PathBuf {
    std::env::var_os("NETBENCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netbench"),
        PathBuf::from,
    )
}

/// A fresh results directory under the system temp dir (removed by the test).
pub fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nb-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn netbench(args: &[&str]) -> Output {
    let out = Command::new(netbench_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running netbench");
    eprintln!(
        "$ netbench {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("dockerd answers")
}

/// What netbench may have left: containers, networks, images (by label), the swarm
/// state, host links (by alias or name).
#[derive(Debug, PartialEq, Eq)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub swarm: String,
    pub links: Vec<String>,
}

pub fn label_filter() -> std::collections::HashMap<String, Vec<String>> {
    std::collections::HashMap::from([("label".to_owned(), vec!["netbench=1".to_owned()])])
}

pub async fn leftovers() -> Leftovers {
    let d = docker().await;
    let containers = d
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&label_filter())
                .build(),
        ))
        .await
        .expect("listing containers")
        .into_iter()
        .map(|c| c.names.unwrap_or_default().join(","))
        .collect();
    let networks = d
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&label_filter())
                .build(),
        ))
        .await
        .expect("listing networks")
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    let swarm = swarm_state(&d).await;
    let h = netlink::handle_in(&NetnsRef::Current).expect("netlink");
    let links = netlink::list_links(&h)
        .await
        .expect("links")
        .iter()
        .filter_map(|l| {
            let name = netlink::name_of(l)?.to_owned();
            let ours = netlink::alias_of(l).is_some_and(|a| a.starts_with("netbench run "))
                || name.starts_with("nbmv")
                || name.starts_with("nbmp")
                || name.starts_with("nbbr-");
            ours.then_some(name)
        })
        .collect();
    Leftovers {
        containers,
        networks,
        swarm,
        links,
    }
}

pub async fn gwbridge_exists() -> bool {
    docker()
        .await
        .inspect_network(
            "docker_gwbridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_or_else(
            |e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => false,
                other => panic!("inspecting docker_gwbridge: {other}"),
            },
            |_| true,
        )
}

/// Nothing of netbench's is left, and the swarm and `docker_gwbridge` are as before.
pub async fn assert_clean(swarm_before: &str, gwbridge_before: bool) {
    let left = leftovers().await;
    assert!(
        left.containers.is_empty(),
        "containers left: {:?}",
        left.containers
    );
    assert!(
        left.networks.is_empty(),
        "networks left: {:?}",
        left.networks
    );
    assert!(left.links.is_empty(), "host links left: {:?}", left.links);
    assert_eq!(left.swarm, swarm_before, "swarm state changed");
    assert_eq!(
        gwbridge_exists().await,
        gwbridge_before,
        "docker_gwbridge changed"
    );
}

/// This node's swarm state as `docker info` says (`inactive`, `active`, ...).
pub async fn swarm_state(d: &Docker) -> String {
    d.info()
        .await
        .expect("docker info")
        .swarm
        .and_then(|s| s.local_node_state)
        .map_or_else(String::new, |s| s.to_string())
}

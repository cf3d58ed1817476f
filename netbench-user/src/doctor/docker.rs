//! The Docker daemon as bollard sees it: version and registered runtimes.
use std::{error::Error as _, io, time::Duration};

use bollard::Docker;
use tokio::time::{Instant, timeout_at};

use super::{Item, Status};

/// Budget for the whole conversation with dockerd (connect, negotiate, version, info).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(5);
const NOT_RUNNING: &str = "dockerd not running: start it or run `cargo xtask setup`";

/// What the daemon told us.
#[derive(Debug)]
pub(super) enum DockerFacts {
    /// No answer; why, in one line.
    Unreachable(String),
    Reachable {
        /// Docker Engine version, e.g. `20.10.24+dfsg1`.
        engine: String,
        /// The daemon's API version.
        api: String,
        /// The API version bollard settled on.
        negotiated: String,
        runtimes: Result<Runtimes, String>,
    },
}

/// dockerd's registered OCI runtimes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Runtimes {
    /// Sorted names.
    pub names: Vec<String>,
    pub default: Option<String>,
}

impl DockerFacts {
    /// Registered runtime names, or why they are unknown.
    pub(super) fn runtime_names(&self) -> Result<&[String], &str> {
        match self {
            Self::Unreachable(_) => Err("dockerd not reachable"),
            Self::Reachable {
                runtimes: Ok(r), ..
            } => Ok(&r.names),
            Self::Reachable {
                runtimes: Err(_), ..
            } => Err("docker info failed"),
        }
    }

    pub(super) fn engine_version(&self) -> Option<&str> {
        match self {
            Self::Unreachable(_) => None,
            Self::Reachable { engine, .. } => Some(engine),
        }
    }
}

/// Ask the local daemon (`DOCKER_HOST=unix://...` or `/var/run/docker.sock`), bounded in time.
pub(super) async fn gather() -> DockerFacts {
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    let timed_out = || {
        DockerFacts::Unreachable(format!(
            "dockerd did not answer within {} s: restart it or run `cargo xtask setup`",
            DOCKER_TIMEOUT.as_secs()
        ))
    };

    let docker = match Docker::connect_with_local_defaults() {
        Ok(d) => d,
        Err(e) => return DockerFacts::Unreachable(unreachable_reason(&e)),
    };
    let docker = match timeout_at(deadline, docker.negotiate_version()).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return DockerFacts::Unreachable(unreachable_reason(&e)),
        Err(_) => return timed_out(),
    };
    let version = match timeout_at(deadline, docker.version()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return DockerFacts::Unreachable(unreachable_reason(&e)),
        Err(_) => return timed_out(),
    };
    let runtimes = match timeout_at(deadline, docker.info()).await {
        Ok(Ok(info)) => Ok(runtimes_from(
            info.runtimes.map(|r| r.into_keys().collect()),
            info.default_runtime,
        )),
        Ok(Err(e)) => Err(format!("docker info: {e}")),
        Err(_) => Err(format!(
            "docker info did not answer within {} s",
            DOCKER_TIMEOUT.as_secs()
        )),
    };
    DockerFacts::Reachable {
        engine: version.version.unwrap_or_else(|| "unknown".to_owned()),
        api: version.api_version.unwrap_or_else(|| "unknown".to_owned()),
        negotiated: docker.client_version().to_string(),
        runtimes,
    }
}

fn runtimes_from(names: Option<Vec<String>>, default: Option<String>) -> Runtimes {
    let mut names = names.unwrap_or_default();
    names.sort();
    Runtimes { names, default }
}

/// One line for a daemon that did not answer, naming the likely cause.
fn unreachable_reason(e: &bollard::errors::Error) -> String {
    if let bollard::errors::Error::SocketNotFoundError(path) = e {
        return format!("{NOT_RUNNING} (no socket at {path})");
    }
    // hyper wraps the socket's io::Error a few levels down.
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::PermissionDenied => {
                    format!("permission denied on the Docker socket: run as root ({io})")
                }
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                    format!("{NOT_RUNNING} ({io})")
                }
                _ => format!("cannot talk to dockerd: {io}"),
            };
        }
        source = err.source();
    }
    format!("cannot talk to dockerd: {e}")
}

/// `docker`: engine and API version, or why the daemon is unreachable.
pub(super) fn docker_item(facts: &DockerFacts) -> Item {
    match facts {
        DockerFacts::Unreachable(why) => Item::new("docker", Status::Missing, why),
        DockerFacts::Reachable {
            engine,
            api,
            negotiated,
            ..
        } => Item::new(
            "docker",
            Status::Ok,
            format!("Docker Engine {engine}, API {api} (client uses {negotiated})"),
        ),
    }
}

/// `runtimes`: what dockerd has registered; Ok only when `runc` is among them.
pub(super) fn runtimes_item(facts: &DockerFacts) -> Item {
    let runtimes = match facts {
        DockerFacts::Unreachable(_) => {
            return Item::new("runtimes", Status::Missing, "dockerd not reachable");
        }
        DockerFacts::Reachable {
            runtimes: Err(why), ..
        } => return Item::new("runtimes", Status::Failed, why),
        DockerFacts::Reachable {
            runtimes: Ok(r), ..
        } => r,
    };
    let default = runtimes.default.as_deref().unwrap_or("unknown");
    let listing = format!(
        "default {default}; registered: {}",
        runtimes.names.join(", ")
    );
    if runtimes.names.iter().any(|n| n == "runc") {
        Item::new("runtimes", Status::Ok, listing)
    } else {
        Item::new(
            "runtimes",
            Status::Warn,
            format!("no runc runtime; {listing}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reachable(names: &[&str], default: &str) -> DockerFacts {
        DockerFacts::Reachable {
            engine: "20.10.24+dfsg1".into(),
            api: "1.41".into(),
            negotiated: "1.41".into(),
            runtimes: Ok(runtimes_from(
                Some(names.iter().map(|s| (*s).to_owned()).collect()),
                Some(default.to_owned()),
            )),
        }
    }

    #[test]
    fn reachable_daemon() {
        let facts = reachable(&["runc", "io.containerd.runc.v2", "crun"], "runc");
        let docker = docker_item(&facts);
        assert_eq!(
            (docker.status, docker.detail.as_str()),
            (
                Status::Ok,
                "Docker Engine 20.10.24+dfsg1, API 1.41 (client uses 1.41)"
            )
        );
        let rt = runtimes_item(&facts);
        assert_eq!(
            (rt.status, rt.detail.as_str()),
            (
                Status::Ok,
                "default runc; registered: crun, io.containerd.runc.v2, runc"
            )
        );
        assert_eq!(facts.engine_version(), Some("20.10.24+dfsg1"));
        assert_eq!(facts.runtime_names().map(<[String]>::len), Ok(3));
    }

    #[test]
    fn no_runc_warns() {
        let rt = runtimes_item(&reachable(&["crun"], "crun"));
        assert_eq!(rt.status, Status::Warn);
        assert_eq!(rt.detail, "no runc runtime; default crun; registered: crun");
    }

    #[test]
    fn unreachable_daemon() {
        let facts =
            DockerFacts::Unreachable(format!("{NOT_RUNNING} (no socket at /var/run/docker.sock)"));
        let docker = docker_item(&facts);
        assert_eq!(docker.status, Status::Missing);
        assert!(
            docker
                .detail
                .starts_with("dockerd not running: start it or run `cargo xtask setup`")
        );
        assert_eq!(runtimes_item(&facts).status, Status::Missing);
        assert_eq!(facts.engine_version(), None);
        assert!(facts.runtime_names().is_err());
    }

    #[test]
    fn missing_socket_reason() {
        let e = bollard::errors::Error::SocketNotFoundError("/var/run/docker.sock".into());
        assert_eq!(
            unreachable_reason(&e),
            "dockerd not running: start it or run `cargo xtask setup` (no socket at /var/run/docker.sock)"
        );
    }
}

//! Docker through bollard (never the `docker` CLI): the engine handles, images built
//! from scratch, networks, containers, hook discovery and cleanup. Everything netbench
//! creates carries its labels ([`labels`]) and is removed by them.
pub mod cleanup;
pub mod container;
pub mod hooks;
pub mod image;
pub mod labels;
pub mod libs;
pub mod network;

use std::{error::Error as _, io, path::PathBuf, time::Duration};

use bollard::Docker;

use crate::netlink::NetlinkError;

/// The oldest API netbench speaks (Docker Engine 19.03). Debian's 20.10 speaks 1.41;
/// current engines refuse clients below 1.44, so the version is always negotiated.
pub const MIN_API: (u32, u32) = (1, 40);
/// Budget for connecting and the first questions to dockerd.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A daemon that cannot be talked to, with the likely cause and its fix.
    #[error("dockerd not reachable: {0}")]
    Unreachable(String),
    #[error("dockerd not reachable")]
    UnreachableApi(#[source] ApiError),
    #[error(
        "Docker API {found} is too old: netbench needs API {}.{} (Docker Engine 19.03) or newer",
        MIN_API.0,
        MIN_API.1
    )]
    TooOld { found: String },
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: ApiError,
    },
    #[error("{what}: no answer within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("{0}")]
    Image(String),
    #[error("stress-ng's libraries")]
    Libraries(#[source] libs::LibsError),
    #[error("build context of {repo}")]
    Context {
        repo: String,
        #[source]
        source: io::Error,
    },
    #[error("starting container {name} with runtime {runtime}")]
    Start {
        name: String,
        runtime: String,
        #[source]
        source: ApiError,
    },
    #[error("{0}")]
    Container(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Hook(String),
    #[error("{path}")]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// A bollard error as the last link of a chain: bollard's errors quote their own
/// sources in their text, so this link has none.
#[derive(Debug)]
pub struct ApiError {
    err: Box<bollard::errors::Error>,
    /// Only the daemon's own message when it answered (without bollard's "Docker
    /// responded with status code N: ").
    daemon_message: bool,
}

impl ApiError {
    #[must_use]
    pub fn new(err: bollard::errors::Error) -> Self {
        Self {
            err: Box::new(err),
            daemon_message: false,
        }
    }

    /// Shown as the daemon's own message when it answered, else bollard's text.
    #[must_use]
    pub fn daemon_message(err: bollard::errors::Error) -> Self {
        Self {
            err: Box::new(err),
            daemon_message: true,
        }
    }

    #[must_use]
    pub fn bollard(&self) -> &bollard::errors::Error {
        &self.err
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.err {
            bollard::errors::Error::DockerResponseServerError { message, .. }
                if self.daemon_message =>
            {
                f.write_str(message)
            }
            other => other.fmt(f),
        }
    }
}

impl std::error::Error for ApiError {}

/// `map_err` helper: name what was being asked of the API.
pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |err| DockerError::Api {
        what,
        source: ApiError::new(err),
    }
}

/// Is this API error a 404 (no such object)?
#[must_use]
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    status_is(e, 404)
}

/// Did the daemon answer with a refusal (4xx: the name is taken, no such image...)? Then
/// it created nothing; a transport error or a 5xx leaves that open.
#[must_use]
pub fn is_refusal(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code, .. } if (400..500).contains(status_code)
    )
}

fn status_is(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code
    )
}

/// One Docker engine and what it told netbench at connection time.
#[derive(Clone, Debug)]
pub struct Engine {
    pub docker: Docker,
    /// Docker Engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The API version the client and the daemon agreed on.
    pub api_version: String,
    /// Registered OCI runtimes, sorted.
    pub runtimes: Vec<String>,
    pub default_runtime: Option<String>,
    /// Swarm state of this node (`inactive`, `active`, ...).
    pub swarm_state: String,
    /// Whether this node is a swarm manager (can create overlay networks).
    pub swarm_manager: bool,
}

impl Engine {
    /// Connect to the local daemon (`DOCKER_HOST` or `/var/run/docker.sock`), negotiate
    /// the API version and read version, runtimes and swarm state.
    ///
    /// # Errors
    /// One line when the daemon is absent, does not answer, or is too old.
    pub async fn connect_local() -> Result<Self, DockerError> {
        let docker = Docker::connect_with_local_defaults().map_err(unreachable_error)?;
        let asked = async {
            let docker = docker
                .negotiate_version()
                .await
                .map_err(unreachable_error)?;
            let version = docker.version().await.map_err(unreachable_error)?;
            let info = docker.info().await.map_err(api("docker info"))?;
            Ok::<_, DockerError>((docker, version, info))
        };
        let (docker, version, info) = tokio::time::timeout(CONNECT_TIMEOUT, asked)
            .await
            .map_err(|_| {
                DockerError::Unreachable(format!(
                    "no answer within {} s: restart dockerd or run `cargo xtask setup`",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })??;
        let api_version = docker.client_version().to_string();
        let server_api = version.api_version.clone().unwrap_or_default();
        if !api_at_least(&server_api, MIN_API) {
            return Err(DockerError::TooOld { found: server_api });
        }
        let mut runtimes: Vec<String> = info
            .runtimes
            .map(|r| r.into_keys().collect())
            .unwrap_or_default();
        runtimes.sort();
        let swarm = info.swarm.unwrap_or_default();
        Ok(Self {
            docker,
            version: version.version.unwrap_or_else(|| "unknown".to_owned()),
            api_version,
            runtimes,
            default_runtime: info.default_runtime,
            swarm_state: swarm
                .local_node_state
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            swarm_manager: swarm.control_available.unwrap_or(false),
        })
    }

    /// Re-read the swarm state (after netbench initialised or left a swarm).
    ///
    /// # Errors
    /// When `docker info` fails.
    pub async fn refresh_swarm(&mut self) -> Result<(), DockerError> {
        let info = self.docker.info().await.map_err(api("docker info"))?;
        let swarm = info.swarm.unwrap_or_default();
        self.swarm_state = swarm
            .local_node_state
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        self.swarm_manager = swarm.control_available.unwrap_or(false);
        Ok(())
    }
}

/// The two engine handles an experiment holds: the client side and the server side.
/// On one host both are the same daemon; a two-host set-up gives each its own.
#[derive(Clone, Debug)]
pub struct Engines {
    pub client: Engine,
    pub server: Engine,
}

impl Engines {
    /// Both sides on the local daemon.
    ///
    /// # Errors
    /// As [`Engine::connect_local`].
    pub async fn local() -> Result<Self, DockerError> {
        let engine = Engine::connect_local().await?;
        Ok(Self {
            client: engine.clone(),
            server: engine,
        })
    }
}

/// `"1.41"` >= `(1, 40)`?
#[must_use]
pub fn api_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

/// One line for a daemon that cannot be talked to, naming the likely cause.
fn unreachable_error(e: bollard::errors::Error) -> DockerError {
    const HINT: &str = "start dockerd or run `cargo xtask setup`";
    if let bollard::errors::Error::SocketNotFoundError(path) = &e {
        return DockerError::Unreachable(format!("no socket at {path}: {HINT}"));
    }
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return DockerError::Unreachable(match io.kind() {
                io::ErrorKind::PermissionDenied => {
                    format!("permission denied on the Docker socket: run as root ({io})")
                }
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                    format!("{io}: {HINT}")
                }
                _ => io.to_string(),
            });
        }
        source = err.source();
    }
    if let bollard::errors::Error::DockerResponseServerError {
        status_code: 400,
        message,
    } = &e
        && message.contains("too old")
    {
        return DockerError::TooOld {
            found: message.clone(),
        };
    }
    DockerError::UnreachableApi(ApiError::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert!(api_at_least("1.41", MIN_API));
        assert!(api_at_least("1.40", MIN_API));
        assert!(api_at_least("1.53", MIN_API));
        assert!(api_at_least("2.0", MIN_API));
        assert!(!api_at_least("1.39", MIN_API));
        assert!(!api_at_least("1.9", MIN_API));
        assert!(!api_at_least("", MIN_API));
    }

    #[test]
    fn missing_socket_is_one_line_with_the_fix() {
        let e = unreachable_error(bollard::errors::Error::SocketNotFoundError(
            "/var/run/docker.sock".into(),
        ));
        assert_eq!(
            e.to_string(),
            "dockerd not reachable: no socket at /var/run/docker.sock: start dockerd or run `cargo xtask setup`"
        );
    }
}

//! Containers: create and start them labelled, inspect what their network looks like,
//! run commands in them (to completion, or in the background until stopped by pid),
//! remove them.
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant},
};

use bollard::{
    container::LogOutput,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use futures::StreamExt as _;

use super::{DockerError, Engine, api, is_not_found};
use crate::ledger::{self, Resource};

/// How a container joins the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attach {
    /// A (netbench-owned) Docker network, by name.
    Network(String),
    /// The host's network namespace (`network_mode: host`).
    Host,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// dockerd's name of the OCI runtime.
    pub runtime: String,
    pub attach: Attach,
    pub labels: HashMap<String, String>,
}

/// A running container as netbench needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// Host pid of its first process.
    pub pid: u32,
    /// The network namespace file (`NetworkSettings.SandboxKey`).
    pub sandbox_key: Option<PathBuf>,
    /// On the attached network (none in host mode).
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub network_id: Option<String>,
}

/// Create and start a container; on any failure it is removed again and the daemon's
/// reason (e.g. the runtime refusing) is the error.
///
/// # Errors
/// When the daemon refuses to create or start it.
pub async fn start(engine: &Engine, spec: &ContainerSpec) -> Result<Container, DockerError> {
    let network_mode = match &spec.attach {
        Attach::Network(name) => name.clone(),
        Attach::Host => "host".to_owned(),
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        labels: Some(spec.labels.clone()),
        network_disabled: Some(false),
        host_config: Some(HostConfig {
            runtime: Some(spec.runtime.clone()),
            network_mode: Some(network_mode),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let entry = Resource::Container {
        name: spec.name.clone(),
        id: None,
    };
    ledger::record(entry.clone());
    let created = engine.docker.create_container(Some(options), body).await;
    if matches!(&created, Err(e) if super::is_refusal(e)) {
        // The daemon refused (the name taken, no such image): nothing was created.
        ledger::release(&entry);
    }
    let created = created.map_err(api(format!("creating container {}", spec.name)))?;
    ledger::update(
        &entry,
        Resource::Container {
            name: spec.name.clone(),
            id: Some(created.id.clone()),
        },
    );
    let started = async {
        engine
            .docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| DockerError::Start {
                name: spec.name.clone(),
                runtime: spec.runtime.clone(),
                source: super::ApiError::daemon_message(e),
            })?;
        let network = match &spec.attach {
            Attach::Network(n) => Some(n.as_str()),
            Attach::Host => None,
        };
        inspect(engine, &created.id, network).await
    }
    .await;
    if started.is_err() {
        let _ = remove(engine, &created.id).await;
    }
    started
}

/// Inspect a running container: pid, sandbox, and its address on `network`.
///
/// # Errors
/// When the container is missing or not running.
pub async fn inspect(
    engine: &Engine,
    id: &str,
    network: Option<&str>,
) -> Result<Container, DockerError> {
    let c = engine
        .docker
        .inspect_container(id, None)
        .await
        .map_err(api(format!("inspecting container {id}")))?;
    let name = c
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let state = c.state.clone().unwrap_or_default();
    let pid = state
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0 && state.running == Some(true))
        .ok_or_else(|| {
            DockerError::Container(format!(
                "container {name} is not running (exit code {}{})",
                state.exit_code.unwrap_or(-1),
                state
                    .error
                    .filter(|e| !e.is_empty())
                    .map_or_else(String::new, |e| format!(": {e}"))
            ))
        })?;
    let settings = c.network_settings.unwrap_or_default();
    let endpoint = network.and_then(|n| {
        settings
            .networks
            .as_ref()
            .and_then(|nets| nets.get(n).cloned())
    });
    Ok(Container {
        id: c.id.unwrap_or_else(|| id.to_owned()),
        name,
        pid,
        sandbox_key: settings
            .sandbox_key
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
        ip: endpoint
            .as_ref()
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse().ok()),
        mac: endpoint
            .as_ref()
            .and_then(|e| e.mac_address.as_deref())
            .and_then(parse_mac),
        network_id: endpoint.and_then(|e| e.network_id),
    })
}

/// `aa:bb:cc:dd:ee:ff` -> bytes.
#[must_use]
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Force-remove a container (its processes are killed); one already gone is fine.
///
/// # Errors
/// When the daemon refuses.
pub async fn remove(engine: &Engine, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match engine.docker.remove_container(id, Some(options)).await {
        Err(e) if !is_not_found(&e) => Err(api(format!("removing container {id}"))(e)),
        _ => {
            ledger::release_where(|r| {
                matches!(r, Resource::Container { name, id: cid }
                    if name == id || cid.as_deref() == Some(id))
            });
            Ok(())
        }
    }
}

/// Wait until the container's log has a line containing `needle` (e.g. the agent's
/// ready line). Fails early when the container stops.
///
/// # Errors
/// On timeout, or when the container exits first (with its last log lines).
pub async fn wait_for_log(
    engine: &Engine,
    id: &str,
    needle: &str,
    timeout: Duration,
) -> Result<(), DockerError> {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut seen = String::new();
    let found = tokio::time::timeout(timeout, async {
        let mut logs = engine.docker.logs(id, Some(options));
        while let Some(item) = logs.next().await {
            let Ok(out) = item else { break };
            seen.push_str(&out.to_string());
            if seen.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(DockerError::Container(format!(
            "container {id:.12} stopped before {needle}: {}",
            last_lines(&seen, 3)
        ))),
        Err(_) => Err(DockerError::Timeout {
            what: format!("container {id:.12} waiting for {needle}"),
            secs: timeout.as_secs(),
        }),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "no output".to_owned()
    } else {
        tail.join(" | ")
    }
}

/// What a finished command printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
}

/// Create (not start) an exec of `cmd` in container `id`, its output attached or not;
/// returns the exec's id. Errors name `what`.
async fn create_exec(
    engine: &Engine,
    id: &str,
    cmd: &[String],
    attach: bool,
    what: String,
) -> Result<String, DockerError> {
    let options = CreateExecOptions {
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        cmd: Some(cmd.to_vec()),
        ..CreateExecOptions::default()
    };
    let created = engine
        .docker
        .create_exec(id, options)
        .await
        .map_err(api(what))?;
    Ok(created.id)
}

/// Run `cmd` in the container to completion (at most `timeout`).
///
/// # Errors
/// When the exec cannot start or does not finish in time; a non-zero exit is not an
/// error here (see [`ExecOutput::exit_code`]).
pub async fn exec(
    engine: &Engine,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, DockerError> {
    let what = || format!("running {:?} in {id:.12}", cmd.first().map_or("", |c| c));
    let exec_id = create_exec(engine, id, cmd, true, what()).await?;
    let run = async {
        let mut out = ExecOutput::default();
        let started = engine
            .docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(1 << 20),
                }),
            )
            .await
            .map_err(api(what()))?;
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                match item.map_err(api(what()))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.stdout.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdErr { message } => {
                        out.stderr.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspected = engine
            .docker
            .inspect_exec(&exec_id)
            .await
            .map_err(api(what()))?;
        out.exit_code = inspected.exit_code;
        Ok::<_, DockerError>(out)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| DockerError::Timeout {
            what: what(),
            secs: timeout.as_secs(),
        })?
}

/// A command running in the background in a container; stopped by its host pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackgroundExec {
    pub exec_id: String,
    pub container: String,
    pub pid: i32,
}

/// Start `cmd` detached and wait (up to 10 s) until it has a pid.
///
/// # Errors
/// When it cannot start or exits at once.
pub async fn exec_background(
    engine: &Engine,
    id: &str,
    cmd: &[String],
) -> Result<BackgroundExec, DockerError> {
    let what = format!("starting {:?} in {id:.12}", cmd.first().map_or("", |c| c));
    let exec_id = create_exec(engine, id, cmd, false, what.clone()).await?;
    engine
        .docker
        .start_exec(
            &exec_id,
            Some(StartExecOptions {
                detach: true,
                ..StartExecOptions::default()
            }),
        )
        .await
        .map_err(api(what.clone()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inspected = engine
            .docker
            .inspect_exec(&exec_id)
            .await
            .map_err(api(what.clone()))?;
        let pid = inspected
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(0);
        match inspected.running {
            Some(true) if pid > 0 => {
                return Ok(BackgroundExec {
                    exec_id,
                    container: id.to_owned(),
                    pid,
                });
            }
            Some(false) if inspected.exit_code.is_some() => {
                return Err(DockerError::Container(format!(
                    "{what}: exited at once with code {}",
                    inspected.exit_code.unwrap_or(-1)
                )));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(DockerError::Timeout { what, secs: 10 });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the background command still runs.
///
/// # Errors
/// When the daemon cannot be asked.
pub async fn is_running(engine: &Engine, bg: &BackgroundExec) -> Result<bool, DockerError> {
    let inspected = engine
        .docker
        .inspect_exec(&bg.exec_id)
        .await
        .map_err(api("inspecting a background exec"))?;
    Ok(inspected.running == Some(true))
}

/// Stop a background command: SIGTERM to its pid (only while Docker still reports it
/// running, so a reused pid is never signalled), SIGKILL after `grace`.
///
/// # Errors
/// When it does not stop even after SIGKILL.
pub async fn stop_background(
    engine: &Engine,
    bg: &BackgroundExec,
    grace: Duration,
) -> Result<(), DockerError> {
    use nix::{sys::signal::Signal, unistd::Pid};
    for (signal, wait) in [
        (Signal::SIGTERM, grace),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        if !is_running(engine, bg).await? {
            return Ok(());
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(bg.pid), signal);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if !is_running(engine, bg).await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Err(DockerError::Container(format!(
        "pid {} in {:.12} did not stop after SIGKILL",
        bg.pid, bg.container
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:02"), None);
        assert_eq!(parse_mac(""), None);
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(last_lines("", 2), "no output");
    }
}

//! Finding and driving the static `netbench-agent` workload binary.
//!
//! The agent runs inside network namespaces (entered between fork and exec, see
//! `netns::command_in`) and in containers. It prints JSON lines.
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use netbench_common::protocol::{self, AgentCommand, ProbeLine, Proto, RrOpts, ServeOpts};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

use crate::netns::NetnsRef;

/// Where the agent binary is: `$NETBENCH_AGENT`, next to the running executable, or
/// the workspace's static build output.
///
/// # Errors
/// When it is nowhere.
pub fn locate() -> Result<PathBuf, LocateError> {
    if let Some(p) = std::env::var_os("NETBENCH_AGENT") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LocateError::NotAFile(p))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("netbench-agent"));
        // target/{debug,release}/netbench -> target/x86_64-unknown-linux-gnu/*/netbench-agent
        if let Some(target) = dir.parent() {
            for profile in ["release", "debug"] {
                candidates.push(
                    target
                        .join("x86_64-unknown-linux-gnu")
                        .join(profile)
                        .join("netbench-agent"),
                );
            }
        }
    }
    for profile in ["release", "debug"] {
        candidates.push(
            Path::new("target/x86_64-unknown-linux-gnu")
                .join(profile)
                .join("netbench-agent"),
        );
    }
    // Only a static build runs in containers and guests; a host build beside the
    // executable (plain `cargo build` output) is passed over.
    candidates
        .into_iter()
        .find(|p| crate::elf::is_static(p))
        .ok_or(LocateError::Missing)
}

/// Why the static agent is not found.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("NETBENCH_AGENT={} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("static netbench-agent not found: run `cargo xtask build` or set NETBENCH_AGENT")]
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    NotFound(#[from] LocateError),
    #[error("starting the agent in netns {netns}")]
    Spawn {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("agent in netns {netns}: {msg}")]
    Protocol { netns: String, msg: String },
}

/// A command for the agent that will run inside `ns`, pinned to `cpu` if given.
///
/// # Errors
/// When the agent is missing or the namespace cannot be opened.
pub fn command_in(
    ns: &NetnsRef,
    args: &[String],
    cpu: Option<usize>,
) -> Result<Command, AgentError> {
    let bin = locate().map_err(AgentError::NotFound)?;
    let mut cmd = crate::netns::command_in(ns, bin, cpu).map_err(|source| AgentError::Spawn {
        netns: ns.to_string(),
        source,
    })?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = Command::from(cmd);
    cmd.kill_on_drop(true);
    Ok(cmd)
}

/// A running `netbench-agent serve`; killed (by its own handle) when dropped.
pub struct AgentServer {
    child: Child,
    pub port: u16,
    _listed: crate::ledger::ProcessGuard,
}

impl AgentServer {
    /// Start `serve` in `ns` on `port` and wait (at most 10 s) for its ready line.
    ///
    /// # Errors
    /// When it cannot start or does not become ready.
    pub async fn start(ns: &NetnsRef, port: u16, max_seconds: u64) -> Result<Self, AgentError> {
        Self::start_on(ns, port, max_seconds, None).await
    }

    /// [`Self::start`] pinned to `cpu` (and every thread it starts, which inherit it).
    ///
    /// # Errors
    /// When it cannot start or does not become ready.
    pub async fn start_on(
        ns: &NetnsRef,
        port: u16,
        max_seconds: u64,
        cpu: Option<usize>,
    ) -> Result<Self, AgentError> {
        let args = AgentCommand::Serve(ServeOpts {
            port,
            max: Duration::from_secs(max_seconds),
            ..ServeOpts::default()
        })
        .to_args();
        let mut child =
            command_in(ns, &args, cpu)?
                .spawn()
                .map_err(|source| AgentError::Spawn {
                    netns: ns.to_string(),
                    source,
                })?;
        let listed = crate::ledger::ProcessGuard::new(child.id(), "netbench-agent serve", false);
        let stdout = child.stdout.take().ok_or_else(|| AgentError::Protocol {
            netns: ns.to_string(),
            msg: "no stdout".into(),
        })?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("\"ready\"") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            return Err(AgentError::Protocol {
                netns: ns.to_string(),
                msg: "serve did not report ready within 10 s".into(),
            });
        }
        // Keep draining stdout so the agent never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            port,
            _listed: listed,
        })
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop the server (by its pid) and reap it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// One request/response probe as the agent reports it.
pub type RrProbe = ProbeLine;

/// Request/response client settings.
#[derive(Clone, Debug)]
pub struct RrSpec {
    pub server: std::net::IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub count: u64,
    pub size: usize,
    pub run_id: u32,
    pub timeout_ms: u64,
    pub max_seconds: u64,
    /// Pin the client to this CPU.
    pub cpu: Option<usize>,
}

impl RrSpec {
    /// `count` probes of 64 B to `server:port`, 1 s timeout each, at most 60 s in all,
    /// unpinned; the fields say the rest.
    #[must_use]
    pub fn new(
        server: impl Into<std::net::IpAddr>,
        port: u16,
        proto: Proto,
        count: u64,
        run_id: u32,
    ) -> Self {
        Self {
            server: server.into(),
            port,
            proto,
            count,
            size: 64,
            run_id,
            timeout_ms: 1000,
            max_seconds: 60,
            cpu: None,
        }
    }
}

/// Run `rr` in `ns` to completion and collect its probes.
///
/// # Errors
/// When the agent fails, exits non-zero or prints garbage.
pub async fn run_rr(ns: &NetnsRef, spec: &RrSpec) -> Result<Vec<RrProbe>, AgentError> {
    let args = AgentCommand::Rr(RrOpts {
        server: std::net::SocketAddr::new(spec.server, spec.port),
        proto: spec.proto,
        count: u32::try_from(spec.count).unwrap_or(u32::MAX),
        rate: 0,
        size: u32::try_from(spec.size).unwrap_or(u32::MAX),
        timeout: Duration::from_millis(spec.timeout_ms),
        run_id: spec.run_id,
        max: Duration::from_secs(spec.max_seconds),
    })
    .to_args();
    let cmd = command_in(ns, &args, spec.cpu)?;
    let out = tokio::time::timeout(Duration::from_secs(spec.max_seconds + 10), run_to_end(cmd))
        .await
        .map_err(|_| AgentError::Protocol {
            netns: ns.to_string(),
            msg: "rr did not finish in time".into(),
        })?
        .map_err(|source| AgentError::Spawn {
            netns: ns.to_string(),
            source,
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(AgentError::Protocol {
            netns: ns.to_string(),
            msg: format!("rr failed: {}", err.trim()),
        });
    }
    parse_rr_output(&String::from_utf8_lossy(&out.stdout)).map_err(|msg| AgentError::Protocol {
        netns: ns.to_string(),
        msg,
    })
}

async fn run_to_end(mut cmd: Command) -> std::io::Result<std::process::Output> {
    let child = cmd.spawn()?;
    let _listed = crate::ledger::ProcessGuard::new(child.id(), "netbench-agent", false);
    child.wait_with_output().await
}

/// Parse the probe lines of `rr` output (summary and other event lines are skipped).
///
/// # Errors
/// On a line that is not one of the agent's.
pub fn parse_rr_output(text: &str) -> Result<Vec<RrProbe>, String> {
    protocol::probes(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probes_and_skips_events() {
        let text = r#"{"seq":0,"run_id":7,"send_ns":10,"recv_ns":30,"rtt_ns":20,"proto":"udp"}
{"seq":1,"run_id":7,"send_ns":40,"lost":true,"proto":"udp"}
{"event":"summary","sent":2,"received":1,"lost":1,"p50_ns":20,"p99_ns":20,"min_ns":20,"max_ns":20}
"#;
        let p = parse_rr_output(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].rtt_ns, Some(20));
        assert!(p[1].lost && p[1].recv_ns.is_none());
        assert!(parse_rr_output("not json").is_err());
    }
}

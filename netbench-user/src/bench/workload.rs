//! What the benchmark runs: the agent's `rr`, `stream` and `blast` clients, and the
//! start of a trace session (the one `lab` and `run` use: [`crate::trace::Session`]).
use std::{net::SocketAddr, time::Duration};

use serde::Deserialize;
use tokio::process::Command;

use super::{
    BenchError, ECHO_PORT, MSG_SIZE,
    process::{self, Server},
};
use crate::{
    agent::{self, AgentError, RrProbe},
    netns::NetnsRef,
    trace::{Session, SessionConfig},
};

/// The agent's `stream` line.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct StreamLine {
    pub bytes: u64,
    pub seconds: f64,
    pub gbps: f64,
}

/// The agent's `blast` line.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct BlastLine {
    pub sent: u64,
    pub refused: u64,
    pub no_buffer: u64,
    pub seconds: f64,
}

/// The first JSON line of `text` whose `"event"` is `event`, decoded.
///
/// # Errors
/// When there is no such line or it does not decode.
pub fn parse_event_line<T: serde::de::DeserializeOwned>(
    text: &str,
    event: &str,
) -> Result<T, String> {
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("event").and_then(serde_json::Value::as_str) == Some(event) {
            return serde_json::from_value(v)
                .map_err(|e| format!("bad {event} line {line:?}: {e}"));
        }
    }
    Err(format!("no {event:?} line in the agent's output"))
}

fn protocol(ns: &NetnsRef, msg: String) -> BenchError {
    BenchError::Agent(AgentError::Protocol {
        netns: ns.to_string(),
        msg,
    })
}

fn agent_command(
    ns: &NetnsRef,
    args: &[String],
    cpu: Option<usize>,
) -> Result<Command, BenchError> {
    let bin = agent::locate().map_err(AgentError::NotFound)?;
    process::command(ns, bin, "netbench-agent", args, cpu)
}

/// `netbench-agent serve` in `ns` on [`ECHO_PORT`] (sink on the next port).
///
/// # Errors
/// When it cannot start or does not become ready.
pub async fn serve(ns: &NetnsRef, cpu: Option<usize>) -> Result<Server, BenchError> {
    let args = [
        "serve",
        "--port",
        &ECHO_PORT.to_string(),
        "--max-seconds",
        "3600",
    ]
    .map(str::to_owned);
    Server::start(
        agent_command(ns, &args, cpu)?,
        "netbench-agent",
        "\"ready\"",
    )
    .await
}

/// Run the agent with `args` in `ns` to completion, at most `limit`; its stdout.
async fn run_agent(
    ns: &NetnsRef,
    args: &[String],
    limit: Duration,
    cpu: Option<usize>,
) -> Result<String, BenchError> {
    process::run_client(agent_command(ns, args, cpu)?, "netbench-agent", limit).await
}

/// `netbench-agent rr` (UDP, back to back) from `ns`: its probes (printed only after
/// the last one, read from a file once it has exited).
///
/// # Errors
/// When the agent fails or prints garbage.
pub async fn rr(
    ns: &NetnsRef,
    server: SocketAddr,
    count: u64,
    run_id: u32,
    cpu: Option<usize>,
) -> Result<Vec<RrProbe>, BenchError> {
    let args = [
        "rr".to_owned(),
        "--server".to_owned(),
        server.to_string(),
        "--proto".to_owned(),
        "udp".to_owned(),
        "--count".to_owned(),
        count.to_string(),
        "--size".to_owned(),
        MSG_SIZE.to_string(),
        "--run-id".to_owned(),
        run_id.to_string(),
        "--timeout-ms".to_owned(),
        "1000".to_owned(),
        "--max-seconds".to_owned(),
        "600".to_owned(),
    ];
    let out = run_agent(ns, &args, Duration::from_secs(610), cpu).await?;
    agent::parse_rr_output(&out).map_err(|m| protocol(ns, m))
}

/// `netbench-agent stream` from `ns` to the sink at `sink` for `seconds`.
///
/// # Errors
/// When the agent fails or reports nothing.
pub async fn stream(
    ns: &NetnsRef,
    sink: SocketAddr,
    seconds: f64,
    cpu: Option<usize>,
) -> Result<StreamLine, BenchError> {
    let args = [
        "stream".to_owned(),
        "--server".to_owned(),
        sink.to_string(),
        "--seconds".to_owned(),
        format!("{seconds}"),
    ];
    let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(30);
    let out = run_agent(ns, &args, limit, cpu).await?;
    parse_event_line(&out, "stream").map_err(|m| protocol(ns, m))
}

/// One `netbench-agent blast` sender.
#[derive(Clone, Debug)]
pub struct BlastSpec {
    pub target: SocketAddr,
    /// Datagrams per second (0 = as fast as possible).
    pub rate: u32,
    pub count: u64,
    pub seconds: f64,
    pub size: u32,
    pub run_id: u32,
}

/// Run one blast per entry of `cpus` in parallel from `ns` (each pinned there, or not
/// for `None`); their lines, in order.
///
/// # Errors
/// When a sender fails.
pub async fn blast(
    ns: &NetnsRef,
    spec: &BlastSpec,
    cpus: &[Option<usize>],
) -> Result<Vec<BlastLine>, BenchError> {
    let args = [
        "blast".to_owned(),
        "--server".to_owned(),
        spec.target.to_string(),
        "--rate".to_owned(),
        spec.rate.to_string(),
        "--count".to_owned(),
        spec.count.to_string(),
        "--seconds".to_owned(),
        format!("{}", spec.seconds),
        "--size".to_owned(),
        spec.size.to_string(),
        "--run-id".to_owned(),
        spec.run_id.to_string(),
    ];
    let limit = Duration::from_secs_f64(spec.seconds) + Duration::from_secs(30);
    let runs = cpus.iter().map(|&cpu| run_agent(ns, &args, limit, cpu));
    let outs = futures::future::try_join_all(runs).await?;
    outs.iter()
        .map(|o| parse_event_line(o, "blast").map_err(|m| protocol(ns, m)))
        .collect()
}

/// Start a trace session for a bench run, noting the ids of the programs it loaded
/// (the leftover check looks for them at the end).
///
/// # Errors
/// When loading, attaching or tracking fails (whatever was attached is detached).
pub fn session(config: &SessionConfig, program_ids: &mut Vec<u32>) -> Result<Session, BenchError> {
    let session = Session::start(config)?;
    program_ids.extend(session.program_stats().iter().map(|p| p.id));
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agent_lines() {
        let text = r#"{"event":"sink","bytes":5}
{"event":"stream","bytes":1250000000,"seconds":1.000100,"gbps":9.999000}
"#;
        let s: StreamLine = parse_event_line(text, "stream").unwrap();
        assert_eq!(
            s,
            StreamLine {
                bytes: 1_250_000_000,
                seconds: 1.0001,
                gbps: 9.999
            }
        );
        let b: BlastLine = parse_event_line(
            r#"{"event":"blast","sent":100,"refused":1,"no_buffer":0,"seconds":0.5,"rate":200.0}"#,
            "blast",
        )
        .unwrap();
        assert_eq!((b.sent, b.refused, b.seconds), (100, 1, 0.5));
        assert!(parse_event_line::<StreamLine>("garbage\n{}", "stream").is_err());
        assert!(
            parse_event_line::<StreamLine>(r#"{"event":"stream","bytes":"x"}"#, "stream")
                .unwrap_err()
                .contains("bad stream line")
        );
    }
}

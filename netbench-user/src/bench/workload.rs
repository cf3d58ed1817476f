//! What the benchmark runs: the agent's `rr`, `stream` and `blast` clients, and the
//! start of a trace session (the one `lab` and `run` use: [`crate::trace::Session`]).
use std::{net::SocketAddr, time::Duration};

use netbench_common::protocol::{
    self, AgentCommand, BlastLine, BlastOpts, Event, Proto, RrOpts, ServeOpts, StreamLine,
    StreamOpts,
};
use tokio::process::Command;

use super::{
    BLAST_PORT, BenchError, ECHO_PORT, MSG_SIZE,
    process::{self, Server},
};
use crate::{
    agent::{self, AgentError, RrProbe},
    lab::LabTopology,
    netns::NetnsRef,
    trace::{Session, SessionConfig},
};

/// Bytes per write of every bench stream (the agent's default).
pub const STREAM_WRITE_BYTES: u32 = 128 * 1024;
/// Datagrams per `sendmmsg` call of every blast (the agent's most, and its default).
pub const BLAST_BATCH: u32 = 64;

fn protocol(ns: &NetnsRef, msg: String) -> BenchError {
    BenchError::Agent(AgentError::Protocol {
        netns: ns.to_string(),
        msg,
    })
}

fn agent_command(
    ns: &NetnsRef,
    command: &AgentCommand,
    cpu: Option<usize>,
) -> Result<Command, BenchError> {
    Ok(agent::command_in(ns, &command.to_args(), cpu)?)
}

/// `netbench-agent serve` in `ns` on [`ECHO_PORT`] (sink on the next port).
///
/// # Errors
/// When it cannot start or does not become ready.
pub async fn serve(ns: &NetnsRef, cpu: Option<usize>) -> Result<Server, BenchError> {
    let command = AgentCommand::Serve(ServeOpts {
        port: ECHO_PORT,
        ..ServeOpts::default()
    });
    Server::start(
        agent_command(ns, &command, cpu)?,
        "netbench-agent",
        "\"ready\"",
    )
    .await
}

/// Run the agent's `command` in `ns` to completion, at most `limit`; its stdout.
async fn run_agent(
    ns: &NetnsRef,
    command: &AgentCommand,
    limit: Duration,
    cpu: Option<usize>,
) -> Result<String, BenchError> {
    process::run_client(agent_command(ns, command, cpu)?, "netbench-agent", limit).await
}

fn rr_command(server: SocketAddr, count: u64, run_id: u32) -> AgentCommand {
    AgentCommand::Rr(RrOpts {
        server,
        proto: Proto::Udp,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        rate: 0,
        size: MSG_SIZE,
        timeout: Duration::from_secs(1),
        run_id,
        max: Duration::from_mins(10),
    })
}

fn stream_command(sink: SocketAddr, duration: Duration) -> AgentCommand {
    AgentCommand::Stream(StreamOpts {
        server: sink,
        duration,
        size: STREAM_WRITE_BYTES as usize,
    })
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
    let out = run_agent(
        ns,
        &rr_command(server, count, run_id),
        Duration::from_secs(610),
        cpu,
    )
    .await?;
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
    let duration = Duration::from_secs_f64(seconds);
    let out = run_agent(
        ns,
        &stream_command(sink, duration),
        duration + Duration::from_secs(30),
        cpu,
    )
    .await?;
    protocol::event(&out, "stream", |e| match e {
        Event::Stream(s) => Some(s),
        _ => None,
    })
    .map_err(|m| protocol(ns, m))
}

/// A blast across `topo` at nothing on its server ([`BLAST_PORT`]): `rate` datagrams of
/// [`MSG_SIZE`] bytes per second (0: unpaced), at most `count` of them, for at most `max`.
#[must_use]
pub fn blast_opts(
    topo: &LabTopology,
    rate: u32,
    count: u64,
    max: Duration,
    run_id: u32,
) -> BlastOpts {
    BlastOpts {
        server: SocketAddr::new(topo.server.ip.into(), BLAST_PORT),
        rate,
        count,
        max,
        size: MSG_SIZE,
        run_id,
        batch: BLAST_BATCH,
    }
}

/// Run one blast per entry of `cpus` in parallel from `ns` (each pinned there, or not
/// for `None`), each bounded by `opts.max`; their lines, in order.
///
/// # Errors
/// When a sender fails.
pub async fn blast(
    ns: &NetnsRef,
    opts: BlastOpts,
    cpus: &[Option<usize>],
) -> Result<Vec<BlastLine>, BenchError> {
    let limit = opts.max + Duration::from_secs(30);
    let command = AgentCommand::Blast(opts);
    let runs = cpus.iter().map(|&cpu| run_agent(ns, &command, limit, cpu));
    let stdouts = futures::future::try_join_all(runs).await?;
    stdouts
        .iter()
        .map(|o| {
            protocol::event(o, "blast", |e| match e {
                Event::Blast(b) => Some(b),
                _ => None,
            })
            .map_err(|m| protocol(ns, m))
        })
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

    fn pairs(c: &AgentCommand) -> Vec<String> {
        c.to_args()[1..].chunks(2).map(|p| p.join(" ")).collect()
    }

    #[test]
    fn commands_give_what_the_bench_always_gave() {
        let server: SocketAddr = "10.0.0.2:7301".parse().unwrap();
        let rr = pairs(&rr_command(server, 500, 9));
        for want in [
            "--server 10.0.0.2:7301",
            "--proto udp",
            "--count 500",
            "--size 64",
            "--run-id 9",
            "--timeout-ms 1000",
            "--max-seconds 600",
        ] {
            assert!(rr.iter().any(|p| p == want), "{want} in {rr:?}");
        }
        let stream = pairs(&stream_command(server, Duration::from_secs_f64(0.5)));
        assert!(stream.iter().any(|p| p == "--seconds 0.5"), "{stream:?}");
        let stream = pairs(&stream_command(server, Duration::from_secs_f64(2.0)));
        assert!(stream.iter().any(|p| p == "--seconds 2"), "{stream:?}");
    }
}

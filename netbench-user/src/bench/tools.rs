//! The reference tools the agent is compared with: sockperf (ping-pong round trips) and
//! iperf3 (TCP bulk), run inside the lab's namespaces, and the parsing of their output.
use std::{net::Ipv4Addr, time::Duration};

use serde::Serialize;

use tokio::process::Command;

use super::{
    BenchError,
    process::{Server, command, run_client},
};
use crate::{lab::LabTopology, netns::NetnsRef};

/// What `sockperf ping-pong --full-rtt` reported (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SockperfResult {
    pub observations: u64,
    pub avg_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Parse sockperf's closing statistics. Colour escapes are ignored; the output must be
/// round trips (`--full-rtt`), not sockperf's default half round trip ("latency").
///
/// # Errors
/// A one-line reason when a figure is missing or the output is half round trips.
pub fn parse_sockperf(text: &str) -> Result<SockperfResult, String> {
    let text = super::process::strip_ansi(text);
    if text.contains("No valid observations") {
        return Err("sockperf found no valid observations (run it for 2 s or more)".into());
    }
    if text.contains("avg-lat=") {
        return Err("sockperf reported one-way latency: run it with --full-rtt".into());
    }
    let after = |key: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let (_, rest) = l.split_once(key)?;
            leading_number(rest)
        })
    };
    let percentile = |p: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let rest = l.split_once("---> percentile ")?.1;
            let (name, value) = rest.split_once('=')?;
            (name.trim() == p).then(|| leading_number(value))?
        })
    };
    let missing = |what: &str| format!("no {what} in sockperf's output");
    let observations = text
        .lines()
        .find_map(|l| {
            let rest = l.split_once("Total ")?.1;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("observations")
                .then(|| n.parse::<u64>().ok())?
        })
        .ok_or_else(|| missing("observation count"))?;
    Ok(SockperfResult {
        observations,
        avg_us: after("avg-rtt=").ok_or_else(|| missing("avg-rtt"))?,
        p50_us: percentile("50.000").ok_or_else(|| missing("50th percentile"))?,
        p99_us: percentile("99.000").ok_or_else(|| missing("99th percentile"))?,
        max_us: after("<MAX> observation =").ok_or_else(|| missing("maximum"))?,
    })
}

/// The number at the start of `s` (after spaces).
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    s[..end].parse().ok().filter(|v: &f64| v.is_finite())
}

/// What `iperf3 -c ... -J` reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IperfResult {
    /// Receiver side, Gbit/s (what reached the server).
    pub received_gbps: f64,
    pub sent_gbps: f64,
    pub seconds: f64,
    pub retransmits: u64,
}

/// Parse iperf3's JSON (`-J`) result of a TCP test.
///
/// # Errors
/// A one-line reason when it is not JSON, reports an error, or lacks the sums.
pub fn parse_iperf3(json: &str) -> Result<IperfResult, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("iperf3 output is not JSON: {e}"))?;
    if let Some(err) = v.get("error").and_then(serde_json::Value::as_str) {
        return Err(format!("iperf3: {err}"));
    }
    let end = v.get("end").ok_or("iperf3 JSON has no \"end\"")?;
    let field = |sum: &str, key: &str| {
        end.get(sum)
            .and_then(|s| s.get(key))
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("iperf3 JSON has no end.{sum}.{key}"))
    };
    Ok(IperfResult {
        received_gbps: field("sum_received", "bits_per_second")? / 1e9,
        sent_gbps: field("sum_sent", "bits_per_second")? / 1e9,
        seconds: field("sum_received", "seconds")?,
        retransmits: end
            .get("sum_sent")
            .and_then(|s| s.get("retransmits"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    })
}

fn tool_error(tool: &'static str, msg: impl Into<String>) -> BenchError {
    BenchError::Tool {
        tool,
        msg: msg.into(),
    }
}

/// Where a reference tool runs (its namespace, pinned to its CPU if given) and the
/// server address it listens on or sends to.
pub struct Site {
    pub ns: NetnsRef,
    pub cpu: Option<usize>,
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Site {
    /// `port` on the lab's server, from the server's side.
    #[must_use]
    pub fn server(topo: &LabTopology, port: u16, cpu: Option<usize>) -> Self {
        Self::on(topo.server.netns_ref(), topo, port, cpu)
    }

    /// `port` on the lab's server, from the client's side.
    #[must_use]
    pub fn client(topo: &LabTopology, port: u16, cpu: Option<usize>) -> Self {
        Self::on(topo.client.netns_ref(), topo, port, cpu)
    }

    fn on(ns: NetnsRef, topo: &LabTopology, port: u16, cpu: Option<usize>) -> Self {
        Self {
            ns,
            cpu,
            ip: topo.server.ip,
            port,
        }
    }

    /// The tool `name` here, labelled by its name: `before`, the address as
    /// `<ip_flag> IP -p PORT`, then `after`.
    fn command(
        &self,
        name: &'static str,
        before: &[&str],
        ip_flag: &str,
        after: &[&str],
    ) -> Result<Command, BenchError> {
        let (ip, port) = (self.ip.to_string(), self.port.to_string());
        let address = [ip_flag, &ip, "-p", &port];
        let args: Vec<String> = [before, &address, after]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        command(&self.ns, name, name, &args, self.cpu)
    }
}

/// Run the client `cmd` (the tool `name`) for its `seconds` (30 s of grace); its stdout.
async fn run_tool(cmd: Command, name: &'static str, seconds: u32) -> Result<String, BenchError> {
    run_client(cmd, name, Duration::from_secs(u64::from(seconds) + 30)).await
}

/// `sockperf server` (UDP) at `at`.
///
/// # Errors
/// When it cannot start or does not report that it listens.
pub async fn sockperf_server(at: &Site) -> Result<Server, BenchError> {
    let cmd = at.command("sockperf", &["server"], "-i", &[])?;
    Server::start(cmd, "sockperf", "listen on").await
}

/// `iperf3 -s -1` (one test, then it exits) at `at`.
///
/// # Errors
/// When it cannot start or does not report that it listens.
pub async fn iperf3_server(at: &Site) -> Result<Server, BenchError> {
    let cmd = at.command("iperf3", &["-s", "-1", "--forceflush"], "-B", &[])?;
    Server::start(cmd, "iperf3", "Server listening").await
}

/// `sockperf ping-pong --full-rtt --no-rdtsc` to `at` for `seconds` with `size`-byte
/// messages, back to back.
///
/// # Errors
/// When it fails or its output cannot be parsed.
pub async fn sockperf_ping_pong(
    at: &Site,
    size: u32,
    seconds: u32,
) -> Result<SockperfResult, BenchError> {
    let (size, secs) = (size.to_string(), seconds.to_string());
    // --no-rdtsc: CLOCK_MONOTONIC, the agent's clock, instead of sockperf's own TSC.
    let after = ["-m", &size, "-t", &secs, "--full-rtt", "--no-rdtsc"];
    let cmd = at.command("sockperf", &["ping-pong"], "-i", &after)?;
    let out = run_tool(cmd, "sockperf", seconds).await?;
    parse_sockperf(&out).map_err(|e| tool_error("sockperf", e))
}

/// `iperf3 -c -J` to `at` for `seconds` (TCP, one stream, iperf3's default 128 KiB
/// writes).
///
/// # Errors
/// When it fails or its output cannot be parsed.
pub async fn iperf3_client(at: &Site, seconds: u32) -> Result<IperfResult, BenchError> {
    let secs = seconds.to_string();
    let cmd = at.command("iperf3", &[], "-c", &["-t", &secs, "-J"])?;
    let out = run_tool(cmd, "iperf3", seconds).await?;
    parse_iperf3(&out).map_err(|e| tool_error("iperf3", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real sockperf 3.7 output (`ping-pong --full-rtt`), escapes included.
    const SOCKPERF: &str = "sockperf: \u{1b}[2;35m== version #3.7-no.git == \u{1b}[0m
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)

[ 0] IP = 10.203.0.2      PORT =  7311 # UDP
sockperf: Warmup stage (sending a few dummy messages)...
sockperf: Starting test...
sockperf: Test end (interrupted by timer)
sockperf: Test ended
sockperf: [Total Run] RunTime=1.001 sec; Warm up time=400 msec; SentMessages=16353; ReceivedMessages=16352
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.550 sec; SentMessages=7218; ReceivedMessages=7218
sockperf: \u{1b}[2;35m====> avg-rtt=76.223 (std-dev=45.437)\u{1b}[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Round trip is 76.223 usec
sockperf: \u{1b}[2;35mTotal 7218 observations\u{1b}[0m; each percentile contains 72.18 observations
sockperf: ---> <MAX> observation = 2824.392
sockperf: ---> percentile 99.999 = 2824.392
sockperf: ---> percentile 99.990 = 1711.777
sockperf: ---> percentile 99.900 =  172.801
sockperf: ---> percentile 99.000 =  117.715
sockperf: ---> percentile 90.000 =   89.973
sockperf: ---> percentile 75.000 =   83.183
sockperf: ---> percentile 50.000 =   79.348
sockperf: ---> percentile 25.000 =   72.537
sockperf: ---> <MIN> observation =   11.677
";

    #[test]
    fn parses_sockperf_round_trips() {
        let r = parse_sockperf(SOCKPERF).unwrap();
        assert_eq!(
            r,
            SockperfResult {
                observations: 7218,
                avg_us: 76.223,
                p50_us: 79.348,
                p99_us: 117.715,
                max_us: 2824.392,
            }
        );
    }

    #[test]
    fn rejects_half_round_trips_and_truncated_output() {
        let half = SOCKPERF
            .replace("avg-rtt", "avg-lat")
            .replace("Round trip is", "Latency is");
        assert!(parse_sockperf(&half).unwrap_err().contains("--full-rtt"));
        let cut = &SOCKPERF[..SOCKPERF.find("percentile 50.000").unwrap()];
        assert!(parse_sockperf(cut).unwrap_err().contains("50th"));
        assert!(
            parse_sockperf("")
                .unwrap_err()
                .contains("observation count")
        );
        let none = "sockperf: ========= Printing statistics for Server No: 0\n\
                    sockperf: No valid observations found. Try tune parameters: --time/--mps\n";
        assert!(
            parse_sockperf(none)
                .unwrap_err()
                .contains("no valid observations")
        );
    }

    #[test]
    fn strips_escapes_and_reads_numbers() {
        assert_eq!(
            super::super::process::strip_ansi("a\u{1b}[2;35mb\u{1b}[0mc"),
            "abc"
        );
        assert_eq!(leading_number("  117.715 rest"), Some(117.715));
        assert_eq!(leading_number("x"), None);
    }

    /// Trimmed real `iperf3 -c -J` output (3.12).
    const IPERF: &str = r#"{
  "start": {"version": "iperf 3.12"},
  "intervals": [],
  "end": {
    "streams": [],
    "sum_sent": {"start": 0, "end": 1.000268, "seconds": 1.000268, "bytes": 2724986880,
                 "bits_per_second": 21794054233.46543, "retransmits": 2, "sender": true},
    "sum_received": {"start": 0, "end": 1.000315, "seconds": 1.000315, "bytes": 2724986668,
                     "bits_per_second": 21793028540.0099, "sender": true},
    "cpu_utilization_percent": {}
  }
}"#;

    #[test]
    fn parses_iperf3_json() {
        let r = parse_iperf3(IPERF).unwrap();
        assert!((r.received_gbps - 21.793_028_540).abs() < 1e-9);
        assert!((r.sent_gbps - 21.794_054_233).abs() < 1e-9);
        assert!((r.seconds - 1.000_315).abs() < 1e-12);
        assert_eq!(r.retransmits, 2);
    }

    #[test]
    fn iperf3_errors_are_one_line() {
        let e = parse_iperf3(r#"{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}"#)
            .unwrap_err();
        assert_eq!(e, "iperf3: unable to connect to server: Connection refused");
        assert!(parse_iperf3("{}").unwrap_err().contains("\"end\""));
        assert!(
            parse_iperf3(r#"{"end":{}}"#)
                .unwrap_err()
                .contains("sum_received")
        );
        assert!(parse_iperf3("nope").unwrap_err().contains("not JSON"));
    }
}

//! The agent's protocol, one definition for both ends: the commands netbench gives
//! `netbench-agent` (built into an argument list with [`AgentCommand::to_args`], parsed
//! back by the agent's own CLI exactly: a round-trip test holds them together) and the
//! JSON lines it prints (typed, parsed once with [`parse_lines`] behind the `user`
//! feature). Needs `std` (feature `protocol`); the eBPF side never sees it.
use std::{
    format,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    string::{String, ToString},
    time::Duration,
    vec,
    vec::Vec,
};

/// UDP and TCP echo port; the bandwidth sink listens on the next one.
pub const DEFAULT_PORT: u16 = 7301;

/// Transport of request/response probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "lowercase"))]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// `serve`: UDP+TCP probe echo on `port`, TCP bandwidth sink on `port + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOpts {
    pub bind: IpAddr,
    /// Echo port; the sink is `port + 1`.
    pub port: u16,
    pub max: Duration,
}

impl Default for ServeOpts {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_PORT,
            max: Duration::from_hours(1),
        }
    }
}

/// `rr`: request/response probes, one in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct RrOpts {
    pub server: SocketAddr,
    pub proto: Proto,
    pub count: u32,
    /// Probes per second; 0 = next request as soon as the reply (or timeout) is in.
    pub rate: u32,
    pub size: u32,
    pub timeout: Duration,
    pub run_id: u32,
    pub max: Duration,
}

/// `stream`: TCP bulk send to the sink.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamOpts {
    pub server: SocketAddr,
    pub duration: Duration,
    /// Bytes per write.
    pub size: usize,
}

/// `blast`: one-way probe datagrams at a bounded rate (the capacity benchmark).
#[derive(Clone, Debug, PartialEq)]
pub struct BlastOpts {
    pub server: SocketAddr,
    /// Datagrams per second; 0 = as fast as possible.
    pub rate: u32,
    pub count: u64,
    pub max: Duration,
    pub size: u32,
    pub run_id: u32,
    /// Datagrams per `sendmmsg` call.
    pub batch: u32,
}

/// One agent invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    Serve(ServeOpts),
    Rr(RrOpts),
    Stream(StreamOpts),
    Blast(BlastOpts),
}

/// Seconds as the agent's CLI reads them: exact decimal digits to the nanosecond (a
/// float would round: `Duration::as_secs_f64` then `from_secs_f64` need not give the
/// duration back).
fn secs(d: Duration) -> String {
    decimal(u128::from(d.as_secs()), d.subsec_nanos(), 9)
}

/// Milliseconds as the agent's `--timeout-ms` reads them, exact as [`secs`].
fn millis(d: Duration) -> String {
    let sub = u32::try_from(d.as_nanos() % 1_000_000).unwrap_or(0);
    decimal(d.as_millis(), sub, 6)
}

/// `whole`, then `frac` (a fraction of `10^digits`) without trailing zeros, if any.
fn decimal(whole: u128, frac: u32, digits: usize) -> String {
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

impl AgentCommand {
    /// The argument list (after the program name) that runs this command; every option
    /// is given explicitly, so the agent's defaults never decide anything.
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut opt = |name: &str, value: String| {
            a.push(format!("--{name}"));
            a.push(value);
        };
        let sub = match self {
            Self::Serve(o) => {
                opt("bind", o.bind.to_string());
                opt("port", o.port.to_string());
                opt("max-seconds", secs(o.max));
                "serve"
            }
            Self::Rr(o) => {
                opt("server", o.server.to_string());
                opt("proto", o.proto.name().to_string());
                opt("count", o.count.to_string());
                opt("rate", o.rate.to_string());
                opt("size", o.size.to_string());
                opt("timeout-ms", millis(o.timeout));
                opt("run-id", o.run_id.to_string());
                opt("max-seconds", secs(o.max));
                "rr"
            }
            Self::Stream(o) => {
                opt("server", o.server.to_string());
                opt("seconds", secs(o.duration));
                opt("size", o.size.to_string());
                "stream"
            }
            Self::Blast(o) => {
                opt("server", o.server.to_string());
                opt("rate", o.rate.to_string());
                opt("count", o.count.to_string());
                opt("seconds", secs(o.max));
                opt("size", o.size.to_string());
                opt("run-id", o.run_id.to_string());
                opt("batch", o.batch.to_string());
                "blast"
            }
        };
        let mut args = vec![sub.to_string()];
        args.extend(a);
        args
    }
}

#[cfg(feature = "user")]
pub use lines::*;

/// The agent's output lines (what netbench reads back), typed.
#[cfg(feature = "user")]
mod lines {
    use std::{format, string::String, vec::Vec};

    use serde::Deserialize;

    use super::Proto;

    /// One request/response probe (`rr`).
    #[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
    pub struct ProbeLine {
        pub seq: u64,
        pub run_id: u32,
        pub send_ns: u64,
        #[serde(default)]
        pub recv_ns: Option<u64>,
        #[serde(default)]
        pub rtt_ns: Option<u64>,
        #[serde(default)]
        pub lost: bool,
        #[serde(default)]
        pub proto: Option<Proto>,
    }

    /// `stream`'s result.
    #[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
    pub struct StreamLine {
        pub bytes: u64,
        pub seconds: f64,
        pub gbps: f64,
    }

    /// `blast`'s result.
    #[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
    pub struct BlastLine {
        pub sent: u64,
        pub refused: u64,
        pub no_buffer: u64,
        pub seconds: f64,
    }

    /// `rr`'s closing summary.
    #[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
    pub struct SummaryLine {
        pub sent: u64,
        pub received: u64,
        pub lost: u64,
    }

    /// An `{"event": ...}` line.
    #[derive(Clone, Debug, Deserialize, PartialEq)]
    #[serde(tag = "event", rename_all = "lowercase")]
    pub enum Event {
        Ready {
            #[serde(default)]
            port: Option<u16>,
        },
        Stopped {},
        Sink {},
        Summary(SummaryLine),
        Stream(StreamLine),
        Blast(BlastLine),
    }

    /// Any line the agent prints.
    #[derive(Clone, Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    pub enum Line {
        Event(Event),
        Probe(ProbeLine),
    }

    /// Parse the agent's stdout (blank lines skipped).
    ///
    /// # Errors
    /// On a line that is not one of the agent's lines, naming it.
    pub fn parse_lines(text: &str) -> Result<Vec<Line>, String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("bad agent line {l:?}: {e}")))
            .collect()
    }

    /// The probes of `rr` output.
    ///
    /// # Errors
    /// As [`parse_lines`].
    pub fn probes(text: &str) -> Result<Vec<ProbeLine>, String> {
        Ok(parse_lines(text)?
            .into_iter()
            .filter_map(|l| match l {
                Line::Probe(p) => Some(p),
                Line::Event(_) => None,
            })
            .collect())
    }

    /// The first event `pick` accepts.
    ///
    /// # Errors
    /// As [`parse_lines`], or `what` when no line matches.
    pub fn event<T>(
        text: &str,
        what: &str,
        pick: impl Fn(Event) -> Option<T>,
    ) -> Result<T, String> {
        parse_lines(text)?
            .into_iter()
            .find_map(|l| match l {
                Line::Event(e) => pick(e),
                Line::Probe(_) => None,
            })
            .ok_or_else(|| format!("no {what:?} line in the agent's output"))
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_once_into_their_types() {
        let text = r#"{"event":"ready","port":7301}
{"seq":0,"run_id":7,"send_ns":10,"recv_ns":30,"rtt_ns":20,"proto":"udp"}
{"seq":1,"run_id":7,"send_ns":40,"lost":true,"proto":"udp"}
{"event":"summary","sent":2,"received":1,"lost":1,"p50_ns":20,"p99_ns":20,"min_ns":20,"max_ns":20}
{"event":"stream","bytes":10,"seconds":1.0,"gbps":12.5}
"#;
        let p = probes(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].rtt_ns, Some(20));
        assert!(p[1].lost && p[1].recv_ns.is_none());
        let s = event(text, "stream", |e| match e {
            Event::Stream(s) => Some(s),
            _ => None,
        })
        .unwrap();
        assert!((s.gbps - 12.5).abs() < 1e-12);
        assert!(
            event(text, "blast", |e| matches!(e, Event::Blast(_))
                .then_some(()))
            .is_err()
        );
        assert!(parse_lines("not json").is_err());
        assert!(parse_lines(r#"{"event":"nonsense"}"#).is_err());
    }

    #[test]
    fn args_name_every_option() {
        let a = AgentCommand::Rr(RrOpts {
            server: "10.0.0.2:7301".parse().unwrap(),
            proto: Proto::Tcp,
            count: 5,
            rate: 0,
            size: 64,
            timeout: Duration::from_secs(1),
            run_id: 9,
            max: Duration::from_millis(2500),
        })
        .to_args();
        assert_eq!(a[0], "rr");
        assert_eq!(a.len(), 1 + 2 * 8);
        assert!(a.windows(2).any(|w| w == ["--max-seconds", "2.5"]));
        assert!(a.windows(2).any(|w| w == ["--timeout-ms", "1000"]));
    }

    #[test]
    fn durations_are_written_exactly() {
        assert_eq!(secs(Duration::new(1, 5)), "1.000000005");
        assert_eq!(
            secs(Duration::new(604_799, 999_999_999)),
            "604799.999999999"
        );
        assert_eq!(secs(Duration::from_millis(2500)), "2.5");
        assert_eq!(secs(Duration::ZERO), "0");
        assert_eq!(millis(Duration::from_nanos(1_000_001)), "1.000001");
        assert_eq!(millis(Duration::from_micros(500)), "0.5");
        assert_eq!(millis(Duration::from_mins(1)), "60000");
    }
}

//! Hand-written argument parsing (no clap: the agent stays a tiny static binary) into
//! the protocol types of `netbench_common::protocol`, which netbench turns into
//! arguments with `AgentCommand::to_args` (the round-trip test below holds the two
//! together). Every error is one line; `main` prints it and exits with code 2.

use std::{
    fmt::Display,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use crate::probe::{MAX_LEN, MIN_LEN};

pub use netbench_common::protocol::{
    BlastOpts, DEFAULT_PORT, Proto, RrOpts, ServeOpts, StreamOpts,
};

pub const USAGE: &str = "\
netbench-agent: netbench's workload (probe echo server, request/response and bulk clients)

Usage:
  netbench-agent serve  [--bind ADDR] [--port P] [--max-seconds S]
      UDP+TCP probe echo on P (default 7301), TCP bandwidth sink on P+1.
      Stops after S seconds (default 3600) or on SIGTERM/SIGINT.
  netbench-agent rr     --server IP[:PORT] [--proto udp|tcp] [--count N] [--rate PER_SEC]
                        [--size BYTES] [--timeout-ms T] [--run-id ID] [--max-seconds S]
      Request/response probes (defaults: udp, 1000 probes, rate 0 = back to back,
      64 bytes (24..65000), 1000 ms timeout, random run id, 300 s limit, port 7301).
  netbench-agent stream --server IP[:PORT] [--seconds S] [--size BYTES]
      TCP bulk send to the sink (default port 7302) for S seconds (default 10, max 3600),
      BYTES per write (default 131072).
  netbench-agent blast  --server IP[:PORT] [--rate PER_SEC] [--count N] [--seconds S]
                        [--size BYTES] [--run-id ID] [--batch N]
      One-way UDP probe datagrams marked as replies (an echo server ignores them), for
      the tracer's capacity benchmark (defaults: port 7301, rate 0 = as fast as possible,
      1000000 datagrams (max 100000000), 10 s (max 600), 64 bytes (24..65000), random
      run id, 64 datagrams per sendmmsg (1..64)).
  netbench-agent help | --help
  netbench-agent --version

Output: one JSON object per line on stdout; errors: one line on stderr, non-zero exit
(2 for bad arguments).
";

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Help,
    Version,
    Serve(ServeOpts),
    Rr(RrOpts),
    Stream(StreamOpts),
    Blast(BlastOpts),
}

/// Parse the arguments after the program name.
///
/// # Errors
/// A one-line message naming the bad argument.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((sub, rest)) = args.split_first() else {
        return Err("missing subcommand: serve, rr, stream, blast or help".into());
    };
    // `netbench-agent rr --help` should help, not complain about a missing --server.
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    match sub.as_str() {
        "help" => Ok(Command::Help),
        "--version" | "-V" | "version" => Ok(Command::Version),
        "serve" => parse_serve(rest).map(Command::Serve),
        "rr" => parse_rr(rest).map(Command::Rr),
        "stream" => parse_stream(rest).map(Command::Stream),
        "blast" => parse_blast(rest).map(Command::Blast),
        other if other.starts_with('-') => Err(format!(
            "expected a subcommand (serve, rr, stream, blast) before '{}'",
            shown(other)
        )),
        other => Err(format!(
            "unknown subcommand '{}' (expected serve, rr, stream, blast or help)",
            shown(other)
        )),
    }
}

fn parse_serve(args: &[String]) -> Result<ServeOpts, String> {
    let mut o = ServeOpts {
        bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: DEFAULT_PORT,
        max: Duration::from_hours(1),
    };
    let mut opts = Opts::new("serve", args, &["bind", "port", "max-seconds"]);
    while let Some((name, v)) = opts.next()? {
        match name {
            "bind" => {
                o.bind = v.parse().map_err(|_| {
                    format!(
                        "invalid value '{}' for --bind: expected an IP address",
                        shown(v)
                    )
                })?;
            }
            // Not 0 (the client must know the port) and not 65535 (the sink needs P+1).
            "port" => o.port = int(name, v, 1, 65_534)?,
            _ => o.max = seconds(name, v, 7 * 86_400)?,
        }
    }
    Ok(o)
}

fn parse_rr(args: &[String]) -> Result<RrOpts, String> {
    let mut server = None;
    let mut o = RrOpts {
        server: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
        proto: Proto::Udp,
        count: 1000,
        rate: 0,
        size: 64,
        timeout: Duration::from_secs(1),
        run_id: 0,
        max: Duration::from_mins(5),
    };
    let mut run_id = None;
    let known = [
        "server",
        "proto",
        "count",
        "rate",
        "size",
        "timeout-ms",
        "run-id",
        "max-seconds",
    ];
    let mut opts = Opts::new("rr", args, &known);
    while let Some((name, v)) = opts.next()? {
        match name {
            "server" => server = Some(server_addr(v, DEFAULT_PORT)?),
            "proto" => {
                o.proto = match v {
                    "udp" => Proto::Udp,
                    "tcp" => Proto::Tcp,
                    _ => {
                        return Err(format!(
                            "invalid value '{}' for --proto: expected udp or tcp",
                            shown(v)
                        ));
                    }
                };
            }
            "count" => o.count = int(name, v, 1, 1_000_000)?,
            "rate" => o.rate = int(name, v, 0, 1_000_000)?,
            "size" => o.size = int(name, v, MIN_LEN, MAX_LEN)?,
            "timeout-ms" => o.timeout = millis(name, v, 1, 60_000)?,
            "run-id" => run_id = Some(int(name, v, 0, u32::MAX)?),
            _ => o.max = seconds(name, v, 86_400)?,
        }
    }
    o.server = server.ok_or("rr needs --server IP[:PORT]")?;
    o.run_id = run_id.unwrap_or_else(crate::sys::random_run_id);
    Ok(o)
}

fn parse_stream(args: &[String]) -> Result<StreamOpts, String> {
    let mut server = None;
    let mut o = StreamOpts {
        server: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT + 1),
        duration: Duration::from_secs(10),
        size: 128 * 1024,
    };
    let mut opts = Opts::new("stream", args, &["server", "seconds", "size"]);
    while let Some((name, v)) = opts.next()? {
        match name {
            "server" => server = Some(server_addr(v, DEFAULT_PORT + 1)?),
            "seconds" => o.duration = seconds(name, v, 3600)?,
            _ => o.size = int(name, v, 1, 16 << 20)?,
        }
    }
    o.server = server.ok_or("stream needs --server IP[:PORT]")?;
    Ok(o)
}

fn parse_blast(args: &[String]) -> Result<BlastOpts, String> {
    let mut server = None;
    let mut run_id = None;
    let mut o = BlastOpts {
        server: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
        rate: 0,
        count: 1_000_000,
        max: Duration::from_secs(10),
        size: 64,
        run_id: 0,
        batch: crate::blast::MAX_BATCH,
    };
    let known = [
        "server", "rate", "count", "seconds", "size", "run-id", "batch",
    ];
    let mut opts = Opts::new("blast", args, &known);
    while let Some((name, v)) = opts.next()? {
        match name {
            "server" => server = Some(server_addr(v, DEFAULT_PORT)?),
            "rate" => o.rate = int(name, v, 0, 10_000_000)?,
            "count" => o.count = int(name, v, 1, 100_000_000)?,
            "seconds" => o.max = seconds(name, v, 600)?,
            "size" => o.size = int(name, v, MIN_LEN, MAX_LEN)?,
            "run-id" => run_id = Some(int(name, v, 0, u32::MAX)?),
            _ => o.batch = int(name, v, 1, crate::blast::MAX_BATCH)?,
        }
    }
    o.server = server.ok_or("blast needs --server IP[:PORT]")?;
    o.run_id = run_id.unwrap_or_else(crate::sys::random_run_id);
    Ok(o)
}

/// `--name value` / `--name=value` pairs, each known name at most once.
struct Opts<'a> {
    cmd: &'static str,
    args: &'a [String],
    known: &'a [&'a str],
    seen: Vec<&'a str>,
}

impl<'a> Opts<'a> {
    fn new(cmd: &'static str, args: &'a [String], known: &'a [&'a str]) -> Self {
        Self {
            cmd,
            args,
            known,
            seen: Vec::new(),
        }
    }

    /// The next option as (name without dashes, value); the name is one of `known`.
    fn next(&mut self) -> Result<Option<(&'a str, &'a str)>, String> {
        let Some((arg, rest)) = self.args.split_first() else {
            return Ok(None);
        };
        self.args = rest;
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument '{}' for {}",
                shown(arg),
                self.cmd
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&name) = self.known.iter().find(|k| **k == name) else {
            return Err(format!(
                "unknown option '--{}' for {}",
                shown(name),
                self.cmd
            ));
        };
        if self.seen.contains(&name) {
            return Err(format!("option --{name} given twice"));
        }
        self.seen.push(name);
        let value = if let Some(v) = inline {
            v
        } else {
            let (v, rest) = self
                .args
                .split_first()
                .ok_or_else(|| format!("option --{name} needs a value"))?;
            self.args = rest;
            v.as_str()
        };
        Ok(Some((name, value)))
    }
}

/// An integer in `min..=max`.
fn int<T: FromStr + PartialOrd + Display + Copy>(
    name: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "invalid value '{}' for --{name}: expected an integer from {min} to {max}",
            shown(v)
        )),
    }
}

/// A positive number of seconds (a decimal: `10`, `2.5`), at most `max`.
fn seconds(name: &str, v: &str, max: u32) -> Result<Duration, String> {
    match decimal(v, 9) {
        Some(d) if !d.is_zero() && d <= Duration::from_secs(max.into()) => Ok(d),
        _ => Err(format!(
            "invalid value '{}' for --{name}: expected seconds, more than 0 and at most {max}",
            shown(v)
        )),
    }
}

/// Milliseconds from `min` to `max` (a decimal: `1000`, `0.5`).
fn millis(name: &str, v: &str, min: u32, max: u32) -> Result<Duration, String> {
    match decimal(v, 6) {
        Some(d)
            if d >= Duration::from_millis(min.into()) && d <= Duration::from_millis(max.into()) =>
        {
            Ok(d)
        }
        _ => Err(format!(
            "invalid value '{}' for --{name}: expected milliseconds from {min} to {max}",
            shown(v)
        )),
    }
}

/// A decimal number (`12`, `2.5`, `.5`, `3.`) of a unit of `10^digits` nanoseconds, read
/// exactly (no float: netbench's durations come back as they were sent); digits past
/// the nanosecond are dropped. `None` for anything else, or too large for a `Duration`.
fn decimal(v: &str, digits: u32) -> Option<Duration> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !is_digits(whole) || !is_digits(frac) {
        return None;
    }
    let unit = 10u128.pow(digits);
    let mut ns = 0u128;
    for b in whole.bytes() {
        ns = ns.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    ns = ns.checked_mul(unit)?;
    let mut scale = unit;
    for b in frac.bytes().take(digits as usize) {
        scale /= 10;
        ns += u128::from(b - b'0') * scale;
    }
    let secs = u64::try_from(ns / 1_000_000_000).ok()?;
    let nanos = u32::try_from(ns % 1_000_000_000).ok()?;
    Some(Duration::new(secs, nanos))
}

/// An argument as an error message quotes it: control characters escaped, so the
/// message stays one line whatever was typed.
fn shown(v: &str) -> String {
    if v.chars().any(char::is_control) {
        v.escape_debug().to_string()
    } else {
        v.to_owned()
    }
}

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`. No host names: resolving them would pull
/// in NSS, which a static glibc binary cannot load.
fn server_addr(v: &str, default_port: u16) -> Result<SocketAddr, String> {
    let addr = if let Ok(sa) = v.parse::<SocketAddr>() {
        Some(sa)
    } else {
        let bare = v
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(v);
        bare.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    };
    match addr {
        Some(a) if a.port() != 0 => Ok(a),
        _ => Err(format!(
            "invalid value '{}' for --server: expected IP or IP:PORT (no host names, port not 0)",
            shown(v)
        )),
    }
}

#[cfg(test)]
mod tests {
    use netbench_common::protocol::AgentCommand;

    use super::*;

    #[test]
    fn every_command_netbench_builds_parses_back_exactly() {
        let server: SocketAddr = "10.1.2.3:9000".parse().unwrap();
        let commands = [
            AgentCommand::Serve(ServeOpts {
                bind: "127.0.0.1".parse().unwrap(),
                port: 7301,
                max: Duration::from_mins(10),
            }),
            AgentCommand::Serve(ServeOpts::default()),
            AgentCommand::Rr(RrOpts {
                server,
                proto: Proto::Tcp,
                count: 500,
                rate: 0,
                size: 64,
                timeout: Duration::from_secs(1),
                run_id: 0xdead_beef,
                max: Duration::from_secs(35),
            }),
            AgentCommand::Stream(StreamOpts {
                server: "[::1]:7302".parse().unwrap(),
                duration: Duration::from_millis(2500),
                size: 131_072,
            }),
            AgentCommand::Blast(BlastOpts {
                server,
                rate: 200_000,
                count: 1_000_000,
                max: Duration::from_secs(3),
                size: 64,
                run_id: 7,
                batch: 16,
            }),
        ];
        for c in commands {
            let parsed = parse(&c.to_args()).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            let back = match parsed {
                Command::Serve(o) => AgentCommand::Serve(o),
                Command::Rr(o) => AgentCommand::Rr(o),
                Command::Stream(o) => AgentCommand::Stream(o),
                Command::Blast(o) => AgentCommand::Blast(o),
                other => panic!("{c:?} parsed as {other:?}"),
            };
            assert_eq!(back, c);
        }
    }

    fn p(line: &str) -> Result<Command, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn serve_defaults_and_options() {
        assert_eq!(
            p("serve").unwrap(),
            Command::Serve(ServeOpts {
                bind: "0.0.0.0".parse().unwrap(),
                port: 7301,
                max: Duration::from_hours(1),
            })
        );
        assert_eq!(
            p("serve --bind 127.0.0.1 --port=9000 --max-seconds 2.5").unwrap(),
            Command::Serve(ServeOpts {
                bind: "127.0.0.1".parse().unwrap(),
                port: 9000,
                max: Duration::from_millis(2500),
            })
        );
    }

    #[test]
    fn rr_defaults_and_options() {
        let Command::Rr(o) = p("rr --server 10.0.0.2").unwrap() else {
            panic!()
        };
        assert_eq!(o.server, "10.0.0.2:7301".parse().unwrap());
        assert_eq!(
            (o.proto, o.count, o.rate, o.size),
            (Proto::Udp, 1000, 0, 64)
        );
        assert_eq!(
            (o.timeout, o.max),
            (Duration::from_secs(1), Duration::from_mins(5))
        );
        assert_ne!(o.run_id, 0);
        let Command::Rr(o) = p(
            "rr --server [::1]:9 --proto tcp --count 5 --rate 100 --size 24 --timeout-ms 50 --run-id 7 --max-seconds 1",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.server, "[::1]:9".parse().unwrap());
        assert_eq!(
            (o.proto, o.count, o.rate, o.size, o.run_id),
            (Proto::Tcp, 5, 100, 24, 7)
        );
        assert_eq!(
            (o.timeout, o.max),
            (Duration::from_millis(50), Duration::from_secs(1))
        );
        let Command::Rr(o) = p("rr --server [::1]").unwrap() else {
            panic!()
        };
        assert_eq!(o.server, "[::1]:7301".parse().unwrap());
    }

    #[test]
    fn stream_defaults() {
        let Command::Stream(o) = p("stream --server 127.0.0.1 --seconds 1").unwrap() else {
            panic!()
        };
        assert_eq!(o.server, "127.0.0.1:7302".parse().unwrap());
        assert_eq!((o.duration, o.size), (Duration::from_secs(1), 131_072));
    }

    #[test]
    fn blast_defaults_and_options() {
        let Command::Blast(o) = p("blast --server 10.0.0.2").unwrap() else {
            panic!()
        };
        assert_eq!(o.server, "10.0.0.2:7301".parse().unwrap());
        assert_eq!(
            (o.rate, o.count, o.max, o.size, o.batch),
            (0, 1_000_000, Duration::from_secs(10), 64, 64)
        );
        assert_ne!(o.run_id, 0);
        let Command::Blast(o) = p(
            "blast --server 10.0.0.2:9 --rate 5000 --count 7 --seconds 0.5 --size 24 --run-id 3 --batch 8",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (o.server.port(), o.rate, o.count, o.size, o.run_id, o.batch),
            (9, 5000, 7, 24, 3, 8)
        );
        assert_eq!(o.max, Duration::from_millis(500));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p("--help").unwrap(), Command::Help);
        assert_eq!(p("help").unwrap(), Command::Help);
        assert_eq!(p("rr --help").unwrap(), Command::Help);
        assert_eq!(p("--version").unwrap(), Command::Version);
    }

    #[test]
    fn bad_input_gives_one_line_errors() {
        for (line, want) in [
            ("", "missing subcommand"),
            ("bogus", "unknown subcommand 'bogus'"),
            ("--port 1", "expected a subcommand"),
            (
                "serve --port 0",
                "--port: expected an integer from 1 to 65534",
            ),
            ("serve --port 65535", "--port"),
            ("serve --port x", "invalid value 'x' for --port"),
            ("serve --port", "option --port needs a value"),
            ("serve --port 1 --port 2", "given twice"),
            ("serve --bind host", "--bind"),
            ("serve --max-seconds 0", "--max-seconds"),
            ("serve --max-seconds inf", "--max-seconds"),
            ("serve extra", "unexpected argument 'extra'"),
            ("serve --nope 1", "unknown option '--nope' for serve"),
            ("rr", "rr needs --server"),
            ("rr --server example.com", "no host names"),
            ("rr --server 1.2.3.4:0", "--server"),
            ("rr --server 1.2.3.4 --proto sctp", "udp or tcp"),
            ("rr --server 1.2.3.4 --size 23", "from 24 to 65000"),
            ("rr --server 1.2.3.4 --size 65001", "--size"),
            ("rr --server 1.2.3.4 --count 0", "--count"),
            ("rr --server 1.2.3.4 --count -1", "--count"),
            ("rr --server 1.2.3.4 --timeout-ms 0", "--timeout-ms"),
            ("rr --server 1.2.3.4 --timeout-ms 0.5", "from 1 to 60000"),
            (
                "rr --server 1.2.3.4 --timeout-ms 60000.000001",
                "from 1 to 60000",
            ),
            ("serve --max-seconds 0.0000000001", "more than 0"),
            ("serve --max-seconds 1e3", "--max-seconds"),
            ("serve --max-seconds .", "--max-seconds"),
            ("serve --max-seconds 1.2.3", "--max-seconds"),
            (
                "serve --max-seconds 99999999999999999999999999999999999999999",
                "--max-seconds",
            ),
            ("rr --server 1.2.3.4 --run-id 4294967296", "--run-id"),
            ("stream", "stream needs --server"),
            ("stream --server 1.2.3.4 --seconds 3601", "at most 3600"),
            ("stream --server 1.2.3.4 --size 0", "--size"),
            ("blast", "blast needs --server"),
            ("blast --server 1.2.3.4 --count 0", "--count"),
            ("blast --server 1.2.3.4 --count 100000001", "--count"),
            ("blast --server 1.2.3.4 --seconds 601", "at most 600"),
            ("blast --server 1.2.3.4 --batch 65", "from 1 to 64"),
            ("blast --server 1.2.3.4 --rate 10000001", "--rate"),
        ] {
            let err = p(line).expect_err(line);
            assert!(err.contains(want), "{line:?}: {err:?}");
            assert!(!err.contains('\n'), "{line:?}: {err:?}");
        }
    }
}

/// Properties over generated input (bounded: a few hundred cases, well under a second).
#[cfg(test)]
mod fuzz {
    use std::net::SocketAddrV6;

    use netbench_common::protocol::AgentCommand;
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 400,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Any address; IPv6 with any scope id (the CLI cannot carry a flow label, and
    /// netbench never sets one).
    fn addr(port: impl Strategy<Value = u16>) -> impl Strategy<Value = SocketAddr> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|ip| (IpAddr::from(ip), 0)),
            (any::<[u8; 16]>(), any::<u32>()).prop_map(|(ip, scope)| (IpAddr::from(ip), scope)),
        ];
        (ip, port).prop_map(|((ip, scope), port)| match ip {
            IpAddr::V4(v4) => SocketAddr::from((v4, port)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)),
        })
    }

    fn duration(max_secs: u64) -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0..=max_secs, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            (0..=max_secs).prop_map(Duration::from_secs),
            (0..=max_secs * 1000).prop_map(Duration::from_millis),
        ]
    }

    /// A field mostly inside its valid range, sometimes anywhere in its type: most
    /// generated commands are valid, the rest invalid in one or a few fields.
    fn field<T: std::fmt::Debug + Clone + 'static>(
        valid: impl Strategy<Value = T> + 'static,
        any: impl Strategy<Value = T> + 'static,
    ) -> BoxedStrategy<T> {
        prop_oneof![12 => valid, 1 => any].boxed()
    }

    fn secs(valid_max: u64, max: u64) -> BoxedStrategy<Duration> {
        field(
            duration(valid_max).prop_filter("more than 0", |d| !d.is_zero()),
            duration(max),
        )
    }

    /// Every command, each field mostly in range and sometimes over its whole type.
    fn any_command() -> impl Strategy<Value = AgentCommand> {
        let port = || field(1u16..=65_534, any::<u16>());
        let size = || field(MIN_LEN..=MAX_LEN, any::<u32>());
        let timeout = field(
            duration(59).prop_filter("1 ms or more", |d| d.as_millis() >= 1),
            duration(100),
        );
        prop_oneof![
            (
                any::<[u8; 16]>().prop_map(IpAddr::from),
                port(),
                secs(7 * 86_400 - 1, 10 * 86_400)
            )
                .prop_map(|(bind, port, max)| AgentCommand::Serve(ServeOpts {
                    bind,
                    port,
                    max
                })),
            (
                addr(port()),
                any::<bool>(),
                (
                    field(1u32..=1_000_000, any::<u32>()),
                    field(0u32..=1_000_000, any::<u32>()),
                    size(),
                    any::<u32>()
                ),
                timeout,
                secs(86_399, 100_000),
            )
                .prop_map(
                    |(server, tcp, (count, rate, size, run_id), timeout, max)| {
                        AgentCommand::Rr(RrOpts {
                            server,
                            proto: if tcp { Proto::Tcp } else { Proto::Udp },
                            count,
                            rate,
                            size,
                            timeout,
                            run_id,
                            max,
                        })
                    }
                ),
            (
                addr(port()),
                secs(3599, 5000),
                field(1usize..=16 << 20, any::<usize>())
            )
                .prop_map(|(server, duration, size)| AgentCommand::Stream(
                    StreamOpts {
                        server,
                        duration,
                        size
                    }
                )),
            (
                addr(port()),
                (
                    field(0u32..=10_000_000, any::<u32>()),
                    field(1u64..=100_000_000, any::<u64>()),
                    size(),
                    any::<u32>(),
                    field(1..=crate::blast::MAX_BATCH, any::<u32>()),
                ),
                secs(599, 1000),
            )
                .prop_map(|(server, (rate, count, size, run_id, batch), max)| {
                    AgentCommand::Blast(BlastOpts {
                        server,
                        rate,
                        count,
                        max,
                        size,
                        run_id,
                        batch,
                    })
                }),
        ]
    }

    fn back(c: Command) -> Option<AgentCommand> {
        match c {
            Command::Serve(o) => Some(AgentCommand::Serve(o)),
            Command::Rr(o) => Some(AgentCommand::Rr(o)),
            Command::Stream(o) => Some(AgentCommand::Stream(o)),
            Command::Blast(o) => Some(AgentCommand::Blast(o)),
            Command::Help | Command::Version => None,
        }
    }

    /// Argument lists made of the agent's own words and arbitrary strings.
    fn any_args() -> impl Strategy<Value = Vec<String>> {
        let word = prop_oneof![
            prop::sample::select(vec![
                "serve",
                "rr",
                "stream",
                "blast",
                "help",
                "--help",
                "-h",
                "--version",
                "--server",
                "--bind",
                "--port",
                "--max-seconds",
                "--proto",
                "--count",
                "--rate",
                "--size",
                "--timeout-ms",
                "--run-id",
                "--seconds",
                "--batch",
                "--",
                "--=",
                "1",
                "0",
                "-1",
                "1e308",
                "nan",
                "inf",
                "1.5",
                "0.000000001",
                "18446744073709551616",
                "[::1]",
                "[::1]:9",
                "1.2.3.4:0",
                "udp",
                "tcp",
                "a\nb",
                "--port\n",
                "\r",
                "--proto=\n",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
            "--[a-z-]{0,12}(=.{0,8})?",
        ];
        prop::collection::vec(word, 0..10)
    }

    proptest! {
        #![proptest_config(config())]

        /// For any command, the agent reads back exactly the command netbench built, or
        /// refuses it with one line: never a different command.
        #[test]
        fn to_args_parses_back_exactly_or_is_refused(cmd in any_command()) {
            match parse(&cmd.to_args()) {
                Ok(c) => prop_assert_eq!(back(c), Some(cmd)),
                Err(e) => prop_assert!(!e.contains('\n') && !e.is_empty(), "{e:?}"),
            }
        }

        /// Any argument list: a command or a one-line error, never a panic.
        #[test]
        fn any_arguments_never_panic(args in any_args()) {
            if let Err(e) = parse(&args) {
                prop_assert!(!e.contains('\n') && !e.is_empty(), "{args:?}: {e:?}");
            }
        }
    }
}

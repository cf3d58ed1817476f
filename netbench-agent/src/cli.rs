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
            "expected a subcommand (serve, rr, stream, blast) before '{other}'"
        )),
        other => Err(format!(
            "unknown subcommand '{other}' (expected serve, rr, stream, blast or help)"
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
                    format!("invalid value '{v}' for --bind: expected an IP address")
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
                            "invalid value '{v}' for --proto: expected udp or tcp"
                        ));
                    }
                };
            }
            "count" => o.count = int(name, v, 1, 1_000_000)?,
            "rate" => o.rate = int(name, v, 0, 1_000_000)?,
            "size" => o.size = int(name, v, MIN_LEN, MAX_LEN)?,
            "timeout-ms" => o.timeout = Duration::from_millis(int(name, v, 1, 60_000)?),
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
            return Err(format!("unexpected argument '{arg}' for {}", self.cmd));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&name) = self.known.iter().find(|k| **k == name) else {
            return Err(format!("unknown option '--{name}' for {}", self.cmd));
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
            "invalid value '{v}' for --{name}: expected an integer from {min} to {max}"
        )),
    }
}

/// A positive number of seconds (fractions allowed), at most `max`.
fn seconds(name: &str, v: &str, max: u32) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= f64::from(max) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "invalid value '{v}' for --{name}: expected seconds, more than 0 and at most {max}"
        )),
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
            "invalid value '{v}' for --server: expected IP or IP:PORT (no host names, port not 0)"
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

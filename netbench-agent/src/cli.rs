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
mod tests;

/// Properties over generated input (cli/fuzz.rs).
#[cfg(test)]
mod fuzz;

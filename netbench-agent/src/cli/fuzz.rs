//! Properties over generated input (bounded: a few hundred cases, well under a second):
//! `parse(to_args(cmd))` is `cmd` or a one-line refusal; any argument list never panics.
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
            .prop_map(|(server, tcp, (count, rate, size, run_id), timeout, max)| {
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
            }),
        (
            addr(port()),
            secs(3599, 5000),
            field(1usize..=16 << 20, any::<usize>())
        )
            .prop_map(|(server, duration, size)| AgentCommand::Stream(StreamOpts {
                server,
                duration,
                size
            })),
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

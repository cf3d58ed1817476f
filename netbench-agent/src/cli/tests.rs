//! The agent CLI parsed exactly: examples.
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

//! End to end over 127.0.0.1 only: `serve` in a thread, then `rr` (UDP and TCP) and
//! `stream` against it, all in-process with their own stop flags.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    cli::{Proto, RrOpts, ServeOpts, StreamOpts},
    rr, serve, stream,
    sys::Stop,
};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Bind the server on a port the kernel just handed out (and P+1); retry on the rare race.
fn bind_free_server() -> serve::Server {
    for _ in 0..50 {
        let port = TcpListener::bind((LOOPBACK, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("ephemeral bind on 127.0.0.1");
        if port == u16::MAX {
            continue;
        }
        let opts = ServeOpts {
            bind: LOOPBACK,
            port,
            max: Duration::from_mins(1),
        };
        if let Ok(server) = serve::bind(&opts) {
            return server;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

/// Collects emitted lines.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn push(&self, l: &str) {
        self.0.lock().unwrap().push(l.to_owned());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Sets the server's stop flag even when an assertion fails, so the scope can end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The number after `"key":` in a flat JSON line.
fn field(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn check_rr(proto: Proto, port: u16) {
    let opts = RrOpts {
        server: SocketAddr::new(LOOPBACK, port),
        proto,
        count: 50,
        rate: 0,
        size: 200,
        timeout: Duration::from_secs(1),
        run_id: 4242,
        max: Duration::from_secs(20),
    };
    let flag = AtomicBool::new(false);
    let lines = Lines::default();
    rr::run(&opts, &Stop::new(&flag, opts.max), &|l| lines.push(l)).expect("rr");
    let lines = lines.take();
    assert_eq!(lines.len(), 51, "{lines:?}");
    for (seq, line) in lines[..50].iter().enumerate() {
        assert_eq!(field(line, "seq"), Some(seq as u64), "{line}");
        assert_eq!(field(line, "run_id"), Some(4242), "{line}");
        let (send, recv, rtt) = (
            field(line, "send_ns").unwrap(),
            field(line, "recv_ns").expect("no loss on loopback"),
            field(line, "rtt_ns").unwrap(),
        );
        assert!(recv >= send && rtt == recv - send, "{line}");
        assert!(
            line.ends_with(&format!(r#""proto":"{}"}}"#, proto.name())),
            "{line}"
        );
    }
    let summary = &lines[50];
    assert!(
        summary.starts_with(r#"{"event":"summary","sent":50,"received":50,"lost":0,"#),
        "{summary}"
    );
    assert!(field(summary, "p50_ns").unwrap() <= field(summary, "p99_ns").unwrap());
}

#[test]
fn loopback_serve_rr_and_stream() {
    let server = bind_free_server();
    let port = server.port();
    let server_flag = AtomicBool::new(false);
    let server_lines = Lines::default();
    let server_stop = Stop::new(&server_flag, Duration::from_mins(1));
    thread::scope(|s| {
        s.spawn(|| server.run(&server_stop, &|l| server_lines.push(l)));
        let _guard = StopOnDrop(&server_flag);

        check_rr(Proto::Udp, port);
        check_rr(Proto::Tcp, port);

        let opts = StreamOpts {
            server: SocketAddr::new(LOOPBACK, port + 1),
            duration: Duration::from_secs(1),
            size: 64 * 1024,
        };
        let flag = AtomicBool::new(false);
        let lines = Lines::default();
        let t0 = Instant::now();
        stream::run(&opts, &Stop::new(&flag, opts.duration), &|l| lines.push(l)).expect("stream");
        assert!(t0.elapsed() < Duration::from_secs(5));
        let lines = lines.take();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(r#"{"event":"stream","bytes":"#),
            "{}",
            lines[0]
        );
        let sent = field(&lines[0], "bytes").unwrap();
        assert!(sent > 0);
        assert!(lines[0].contains(r#""gbps":"#));

        // The sink reported before closing, and the client waited for that close.
        let got = server_lines.take();
        assert!(
            got[0] == format!(r#"{{"event":"ready","port":{port}}}"#),
            "{got:?}"
        );
        let sink: Vec<_> = got
            .iter()
            .filter(|l| l.contains(r#""event":"sink""#))
            .collect();
        assert_eq!(sink.len(), 1, "{got:?}");
        assert_eq!(field(sink[0], "bytes"), Some(sent));
    });
    let last = server_lines.take();
    let stopped = last.last().expect("stopped line");
    assert!(
        stopped.starts_with(
            r#"{"event":"stopped","reason":"signal","udp_replies":50,"tcp_replies":50,"ignored":0}"#
        ),
        "{stopped}"
    );
}

#[test]
fn rr_against_nothing_reports_losses() {
    // A port nobody listens on (bound then released): every UDP probe is lost, fast.
    let port = TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = RrOpts {
        server: SocketAddr::new(LOOPBACK, port),
        proto: Proto::Udp,
        count: 3,
        rate: 0,
        size: 64,
        timeout: Duration::from_millis(50),
        run_id: 1,
        max: Duration::from_secs(10),
    };
    let flag = AtomicBool::new(false);
    let lines = Lines::default();
    rr::run(&opts, &Stop::new(&flag, opts.max), &|l| lines.push(l)).unwrap();
    let lines = lines.take();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with(r#"{"seq":0,"run_id":1,"send_ns":"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(r#","lost":true,"proto":"udp"}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[3].contains(r#""sent":3,"received":0,"lost":3,"p50_ns":null"#),
        "{}",
        lines[3]
    );
    // TCP: nothing listens, so the connect fails with one clear line.
    let tcp = RrOpts {
        proto: Proto::Tcp,
        ..opts
    };
    let err = rr::run(&tcp, &Stop::new(&flag, tcp.max), &|_| {}).unwrap_err();
    assert!(err.starts_with("connect tcp 127.0.0.1:"), "{err}");
}

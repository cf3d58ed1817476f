//! `serve`: UDP and TCP probe echo on one port number, TCP bandwidth sink on the next.
//!
//! One thread per socket role and per TCP connection: blocking reads with a short
//! timeout keep the wake-up path as plain as a real server's (the latency under study)
//! while every loop still re-checks the stop condition a few times a second.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    thread::{self, Scope},
    time::{Duration, Instant},
};

use crate::{
    cli::ServeOpts,
    json::{self, Emit},
    probe::{self, FrameReader, Next},
    sys::{self, Stop},
};

/// How often blocked reads and the accept wait look at the stop condition.
const TICK: Duration = Duration::from_millis(100);
/// A client that stops reading its echoes is dropped after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Open TCP connections at most; more are closed at once (bounds threads and memory).
const MAX_CONNS: usize = 256;
const SINK_BUF: usize = 256 * 1024;

/// The bound sockets; binding is separate from running so a caller (or test) learns
/// about a busy port before anything is reported as ready.
pub struct Server {
    udp: UdpSocket,
    echo: TcpListener,
    sink: TcpListener,
    port: u16,
}

/// What the server did, reported when it stops.
#[derive(Default)]
struct Counters {
    udp_replies: AtomicU64,
    tcp_replies: AtomicU64,
    ignored: AtomicU64,
    conns: AtomicUsize,
}

/// Bind UDP and TCP echo on `opts.port` and the sink on `opts.port + 1`.
///
/// # Errors
/// One line naming the socket that could not be bound.
pub fn bind(opts: &ServeOpts) -> Result<Server, String> {
    let echo_addr = SocketAddr::new(opts.bind, opts.port);
    let sink_port = opts.port.checked_add(1).ok_or("port + 1 overflows")?;
    let sink_addr = SocketAddr::new(opts.bind, sink_port);
    let udp = UdpSocket::bind(echo_addr).map_err(|e| format!("bind udp {echo_addr}: {e}"))?;
    let echo = TcpListener::bind(echo_addr).map_err(|e| format!("bind tcp {echo_addr}: {e}"))?;
    let sink = TcpListener::bind(sink_addr).map_err(|e| format!("bind tcp {sink_addr}: {e}"))?;
    udp.set_read_timeout(Some(TICK))
        .map_err(|e| format!("udp {echo_addr}: {e}"))?;
    for l in [&echo, &sink] {
        // Accept only after poll says so; nonblocking guards against a connection that
        // vanished in between.
        l.set_nonblocking(true)
            .map_err(|e| format!("tcp listener: {e}"))?;
    }
    Ok(Server {
        udp,
        echo,
        sink,
        port: opts.port,
    })
}

impl Server {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Print the ready line, serve until `stop`, print a closing line.
    pub fn run(self, stop: &Stop, emit: Emit) {
        emit(
            &json::object()
                .str("event", "ready")
                .u64("port", self.port().into())
                .build(),
        );
        let counters = Counters::default();
        thread::scope(|s| {
            s.spawn(|| udp_echo(&self.udp, stop, &counters));
            self.accept_loop(s, stop, &counters, emit);
        });
        emit(
            &json::object()
                .str("event", "stopped")
                .str(
                    "reason",
                    if stop.signalled() {
                        "signal"
                    } else {
                        "max-seconds"
                    },
                )
                .u64("udp_replies", counters.udp_replies.load(Ordering::Relaxed))
                .u64("tcp_replies", counters.tcp_replies.load(Ordering::Relaxed))
                .u64("ignored", counters.ignored.load(Ordering::Relaxed))
                .build(),
        );
    }

    fn accept_loop<'s>(
        &'s self,
        s: &'s Scope<'s, '_>,
        stop: &'s Stop,
        counters: &'s Counters,
        emit: Emit<'s>,
    ) {
        while !stop.is_set() {
            let Ok(ready) =
                sys::wait_readable([self.echo.as_raw_fd(), self.sink.as_raw_fd()], TICK)
            else {
                thread::sleep(TICK);
                continue;
            };
            for (is_ready, listener, is_sink) in
                [(ready[0], &self.echo, false), (ready[1], &self.sink, true)]
            {
                if !is_ready {
                    continue;
                }
                // EMFILE and friends: skip this round; the loop is bounded by time.
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                if counters.conns.fetch_add(1, Ordering::Relaxed) >= MAX_CONNS {
                    counters.conns.fetch_sub(1, Ordering::Relaxed);
                    continue; // dropping the stream closes it
                }
                let spawned = thread::Builder::new()
                    .name(if is_sink { "sink" } else { "echo" }.into())
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        if is_sink {
                            sink_conn(stream, stop, emit);
                        } else {
                            tcp_echo(stream, stop, counters);
                        }
                        counters.conns.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    counters.conns.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn udp_echo(sock: &UdpSocket, stop: &Stop, c: &Counters) {
    let mut buf = vec![0u8; 65_536];
    while !stop.is_set() {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let msg = &mut buf[..n];
                if !probe::make_reply(msg) {
                    c.ignored.fetch_add(1, Ordering::Relaxed);
                } else if sock.send_to(msg, from).is_ok() {
                    c.udp_replies.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if sys::is_transient(&e) => {}
            // Unexpected error: don't spin on it.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn tcp_echo(mut stream: TcpStream, stop: &Stop, c: &Counters) {
    // NODELAY: each reply leaves at once instead of waiting for Nagle/delayed ACK.
    if stream.set_nodelay(true).is_err()
        || stream.set_read_timeout(Some(TICK)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut frames = FrameReader::new();
    while !stop.is_set() {
        match frames.next_frame(&mut stream) {
            Ok(Next::Frame(msg)) => {
                if !probe::make_reply(msg) {
                    // A well-framed message that is no request: skip it, framing holds.
                    c.ignored.fetch_add(1, Ordering::Relaxed);
                } else if stream.write_all(msg).is_ok() {
                    c.tcp_replies.fetch_add(1, Ordering::Relaxed);
                } else {
                    return;
                }
            }
            Ok(Next::Pending) => {}
            // Closed, reset, or not probe messages (framing lost): drop the connection.
            Ok(Next::Eof) | Err(_) => return,
        }
    }
}

fn sink_conn(mut stream: TcpStream, stop: &Stop, emit: Emit) {
    if stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; SINK_BUF];
    loop {
        if stop.is_set() {
            return; // shutting down: the client sees a reset, not a report
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if sys::is_transient(&e) => {}
            Err(_) => break,
        }
    }
    // Report before closing: the client waits for our close, so the line is out first.
    emit(
        &json::object()
            .str("event", "sink")
            .u64("bytes", bytes)
            .f64("seconds", start.elapsed().as_secs_f64())
            .build(),
    );
}

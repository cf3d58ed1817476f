//! `rr`: request/response probes, one in flight at a time, each stamped with
//! `CLOCK_MONOTONIC` right before the send and right after the receive.

use std::{
    io::{self, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use netbench_common::Direction;

use crate::{
    cli::{Proto, RrOpts},
    json::{self, Emit},
    probe::{self, FrameReader, Next},
    sys::{self, Stop, monotonic_ns},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest single sleep while pacing, so a signal is noticed quickly.
const TICK: Duration = Duration::from_millis(100);

/// One probe's stamps; `recv_ns` is `None` when no reply came in time.
struct Stamps {
    send_ns: u64,
    recv_ns: Option<u64>,
}

enum Transport {
    Udp(UdpSocket, Vec<u8>),
    Tcp(TcpStream, FrameReader),
}

/// Run the probes, then print one JSON line each and the summary line. Nothing is
/// written while probes are in flight: a write wakes whoever reads the pipe (netbench,
/// dockerd) in the middle of the measured round trips.
///
/// # Errors
/// Setup failures, and send/receive errors that end the run (the summary of the probes
/// done so far is printed first).
pub fn run(o: &RrOpts, stop: &Stop, emit: Emit) -> Result<(), String> {
    let mut transport = connect(o)?;
    let mut msg = probe::request(o.run_id, 0, o.size);
    let mut rtts = Vec::with_capacity(o.count as usize);
    let mut sent = 0u64;
    let mut failure = None;
    let mut lines = Vec::with_capacity(usize::try_from(o.count).unwrap_or(0).min(1 << 20));
    let start = Instant::now();
    for seq in 0..o.count {
        if stop.is_set() {
            break;
        }
        if o.rate > 0 {
            // Fixed schedule from the start: a late probe does not shift the later ones.
            let at = start + (Duration::from_secs(1) / o.rate) * seq;
            sleep_until(at, stop);
            if stop.is_set() {
                break;
            }
        }
        probe::set_header(&mut msg, o.run_id, seq.into(), Direction::Request);
        let stamps = match transport.probe(&msg, o.run_id, seq.into(), o.timeout, stop) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(format!("rr to {} after {sent} probes: {e}", o.server));
                break;
            }
        };
        sent += 1;
        let line = json::object()
            .u64("seq", seq.into())
            .u64("run_id", o.run_id.into());
        let line = match stamps.recv_ns {
            Some(recv_ns) => {
                let rtt = recv_ns.saturating_sub(stamps.send_ns);
                rtts.push(rtt);
                line.u64("send_ns", stamps.send_ns)
                    .u64("recv_ns", recv_ns)
                    .u64("rtt_ns", rtt)
            }
            None => line.u64("send_ns", stamps.send_ns).bool("lost", true),
        };
        lines.push(line.str("proto", o.proto.name()).build());
    }
    for line in &lines {
        emit(line);
    }
    emit(&summary(sent, &mut rtts));
    failure.map_or(Ok(()), Err)
}

fn connect(o: &RrOpts) -> Result<Transport, String> {
    let fail = |what: &str, e: io::Error| format!("{what} {} {}: {e}", o.proto.name(), o.server);
    match o.proto {
        Proto::Udp => {
            let local: IpAddr = if o.server.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let sock =
                UdpSocket::bind(SocketAddr::new(local, 0)).map_err(|e| fail("bind for", e))?;
            // Connected: the kernel drops datagrams from anyone but the server.
            sock.connect(o.server).map_err(|e| fail("connect", e))?;
            sock.set_read_timeout(Some(o.timeout))
                .map_err(|e| fail("socket for", e))?;
            Ok(Transport::Udp(sock, vec![0u8; 65_536]))
        }
        Proto::Tcp => {
            let s = TcpStream::connect_timeout(&o.server, CONNECT_TIMEOUT)
                .map_err(|e| fail("connect", e))?;
            s.set_nodelay(true).map_err(|e| fail("socket for", e))?;
            s.set_read_timeout(Some(o.timeout))
                .map_err(|e| fail("socket for", e))?;
            s.set_write_timeout(Some(o.timeout))
                .map_err(|e| fail("socket for", e))?;
            Ok(Transport::Tcp(s, FrameReader::new()))
        }
    }
}

impl Transport {
    /// Send `msg` and wait up to `timeout` for its reply; other replies (stale, late,
    /// foreign) are skipped.
    fn probe(
        &mut self,
        msg: &[u8],
        run_id: u32,
        seq: u64,
        timeout: Duration,
        stop: &Stop,
    ) -> io::Result<Stamps> {
        let send_ns = monotonic_ns();
        let sent = match self {
            Self::Udp(sock, _) => sock.send(msg).map(drop),
            Self::Tcp(s, _) => s.write_all(msg),
        };
        match sent {
            Ok(()) => {}
            // UDP: an ICMP "port unreachable" from an earlier probe (server not up yet)
            // surfaces here; this probe is simply lost.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && matches!(self, Self::Udp(..)) =>
            {
                return Ok(Stamps {
                    send_ns,
                    recv_ns: None,
                });
            }
            Err(e) => return Err(e),
        }
        let deadline = Instant::now() + timeout;
        // The socket timeout stays at `timeout` (one setsockopt less per probe) and is
        // only shortened while skipping stale replies, then restored.
        let mut shortened = false;
        let recv_ns = loop {
            let got = match self {
                Self::Udp(sock, buf) => match sock.recv(buf) {
                    Ok(n) => {
                        let recv_ns = monotonic_ns();
                        probe::is_reply_to(&buf[..n], run_id, seq).then_some(recv_ns)
                    }
                    Err(e)
                        if sys::is_transient(&e)
                            || e.kind() == io::ErrorKind::ConnectionRefused =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                },
                Self::Tcp(s, frames) => match frames.next_frame(s)? {
                    Next::Frame(m) => {
                        let recv_ns = monotonic_ns();
                        probe::is_reply_to(m, run_id, seq).then_some(recv_ns)
                    }
                    Next::Pending => None,
                    Next::Eof => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "server closed the connection",
                        ));
                    }
                },
            };
            if got.is_some() {
                break got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // A signal ends the wait; the probe's own timeout may outlast --max-seconds.
            if left.is_zero() || stop.signalled() {
                break None;
            }
            self.set_read_timeout(left)?;
            shortened = true;
        };
        if shortened {
            self.set_read_timeout(timeout)?;
        }
        Ok(Stamps { send_ns, recv_ns })
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Self::Udp(sock, _) => sock.set_read_timeout(Some(t)),
            Self::Tcp(s, _) => s.set_read_timeout(Some(t)),
        }
    }
}

fn sleep_until(at: Instant, stop: &Stop) {
    loop {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.signalled() {
            return;
        }
        thread::sleep(left.min(TICK));
    }
}

/// The closing line; percentiles are nearest-rank and `null` without any reply.
fn summary(sent: u64, rtts: &mut [u64]) -> String {
    rtts.sort_unstable();
    let received = rtts.len() as u64;
    let pct = |p: usize| {
        let rank = (p * rtts.len()).div_ceil(100).max(1);
        rtts.get(rank - 1).copied()
    };
    json::object()
        .str("event", "summary")
        .u64("sent", sent)
        .u64("received", received)
        .u64("lost", sent - received)
        .opt_u64("p50_ns", pct(50))
        .opt_u64("p99_ns", pct(99))
        .opt_u64("min_ns", rtts.first().copied())
        .opt_u64("max_ns", rtts.last().copied())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_nearest_rank() {
        let mut rtts: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            summary(102, &mut rtts),
            r#"{"event":"summary","sent":102,"received":100,"lost":2,"p50_ns":50,"p99_ns":99,"min_ns":1,"max_ns":100}"#
        );
        assert_eq!(
            summary(1, &mut [7]),
            r#"{"event":"summary","sent":1,"received":1,"lost":0,"p50_ns":7,"p99_ns":7,"min_ns":7,"max_ns":7}"#
        );
        assert_eq!(
            summary(3, &mut []),
            r#"{"event":"summary","sent":3,"received":0,"lost":3,"p50_ns":null,"p99_ns":null,"min_ns":null,"max_ns":null}"#
        );
    }
}

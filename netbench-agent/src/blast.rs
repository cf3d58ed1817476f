//! `blast`: one-way UDP probe datagrams at a bounded rate, for netbench's capacity
//! benchmark (how many hop events per second the tracer delivers without loss).
//!
//! Every datagram carries the probe header marked [`Direction::Reply`], so the tc
//! programs emit a hop event for it at every traced hook, while an echo server on the
//! port ignores it (it never answers replies): nothing comes back. Datagrams go out in
//! batches of up to [`MAX_BATCH`] with `sendmmsg`. Bounded by count and time.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
    time::{Duration, Instant},
};

use netbench_common::{Direction, protocol::BlastOpts};

use crate::{
    json::{self, Emit},
    probe,
    sys::Stop,
};

/// Most datagrams per `sendmmsg` call.
pub const MAX_BATCH: u32 = 64;
/// Longest single sleep while pacing, so a signal is noticed quickly.
const TICK: Duration = Duration::from_millis(100);

/// Send the datagrams, then print one `blast` line.
///
/// # Errors
/// Setup failures and send errors other than the transient ones (a refused port, a
/// full device queue, an interrupted call), which are counted instead.
pub fn run(o: &BlastOpts, stop: &Stop, emit: Emit) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("blast {what} {}: {e}", o.server);
    let local: IpAddr = if o.server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind(SocketAddr::new(local, 0)).map_err(|e| fail("bind for", e))?;
    // Connected: sendmmsg needs no address per message.
    sock.connect(o.server).map_err(|e| fail("connect", e))?;

    let size = o.size as usize;
    let batch = o.batch.clamp(1, MAX_BATCH) as usize;
    let mut buf = vec![0u8; size * batch];
    let mut counts = Counts::default();
    let start = Instant::now();
    while counts.sent < o.count && !stop.is_set() {
        let due = due_by(o.rate, o.count, start.elapsed());
        let want = usize::try_from(due.saturating_sub(counts.sent))
            .unwrap_or(usize::MAX)
            .min(batch);
        if want == 0 {
            // Ahead of the schedule: sleep until the next datagram is due.
            let next = start + due_at(counts.sent, o.rate);
            let left = next.saturating_duration_since(Instant::now()).min(TICK);
            if !left.is_zero() {
                thread::sleep(left);
            }
            continue;
        }
        for (i, msg) in buf.chunks_exact_mut(size).take(want).enumerate() {
            probe::set_header(msg, o.run_id, counts.sent + i as u64, Direction::Reply);
        }
        match send_batch(&sock, &mut buf, size, want) {
            Ok(n) => counts.sent += n as u64,
            Err(e) => counts.transient(&e).map_err(|e| fail("send to", e))?,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "datagram counts fit f64 well")]
    let rate = counts.sent as f64 / seconds;
    emit(
        &json::object()
            .str("event", "blast")
            .u64("sent", counts.sent)
            .u64("refused", counts.refused)
            .u64("no_buffer", counts.no_buffer)
            .f64("seconds", seconds)
            .f64("rate", rate)
            .build(),
    );
    Ok(())
}

/// Datagrams sent and transient send errors.
#[derive(Default)]
struct Counts {
    sent: u64,
    /// ECONNREFUSED: an ICMP "port unreachable" for an earlier datagram (nothing listens
    /// on the port, which is fine: the hops before the socket were traced).
    refused: u64,
    /// ENOBUFS / EAGAIN: the device queue was full for a moment.
    no_buffer: u64,
}

impl Counts {
    /// Count a transient error, or hand back one that ends the run.
    fn transient(&mut self, e: &io::Error) -> Result<(), io::Error> {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => self.refused += 1,
            Some(libc::ENOBUFS | libc::EAGAIN) => self.no_buffer += 1,
            Some(libc::EINTR) => {}
            _ => return Err(io::Error::new(e.kind(), e.to_string())),
        }
        Ok(())
    }
}

/// How many datagrams should be out after `elapsed`: all of them at rate 0, else one at
/// the start and `rate` per second after it, never more than `count`.
fn due_by(rate: u32, count: u64, elapsed: Duration) -> u64 {
    if rate == 0 {
        return count;
    }
    let due = elapsed.as_nanos() * u128::from(rate) / 1_000_000_000 + 1;
    u64::try_from(due).unwrap_or(u64::MAX).min(count)
}

/// When datagram number `n` (from 0) is due at `rate` per second (rate > 0).
fn due_at(n: u64, rate: u32) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Send the first `n` messages of `buf` (each `size` bytes) in one `sendmmsg`.
fn send_batch(sock: &UdpSocket, buf: &mut [u8], size: usize, n: usize) -> io::Result<usize> {
    const EMPTY_IOV: libc::iovec = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iovs = [EMPTY_IOV; MAX_BATCH as usize];
    // SAFETY: an all-zero mmsghdr is valid (null name and control, no iovecs).
    let mut hdrs: [libc::mmsghdr; MAX_BATCH as usize] = unsafe { std::mem::zeroed() };
    let n = n.min(MAX_BATCH as usize);
    for (i, (iov, chunk)) in iovs.iter_mut().zip(buf.chunks_exact_mut(size)).enumerate() {
        if i == n {
            break;
        }
        iov.iov_base = chunk.as_mut_ptr().cast();
        iov.iov_len = size;
    }
    for (hdr, iov) in hdrs.iter_mut().zip(iovs.iter_mut()).take(n) {
        hdr.msg_hdr.msg_iov = std::ptr::from_mut(iov);
        hdr.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs[..n]` point at `iovs`, which point into `buf`; all outlive the call.
    let rc = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            libc::c_uint::try_from(n).unwrap_or(0),
            0,
        )
    };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_bounded_by_rate_and_count() {
        assert_eq!(due_at(0, 1000), Duration::ZERO);
        assert_eq!(due_at(1001, 1000), Duration::from_millis(1001));
        // Consistent: datagram `due_by(t) - 1` is due at or before t.
        for ms in [0, 7, 999, 1000, 12_345] {
            let t = Duration::from_millis(ms);
            assert!(due_at(due_by(300, u64::MAX, t) - 1, 300) <= t);
        }
        assert_eq!(due_by(0, 500, Duration::ZERO), 500);
        assert_eq!(due_by(1000, 500, Duration::ZERO), 1);
        assert_eq!(due_by(1000, 5000, Duration::from_millis(10)), 11);
        assert_eq!(due_by(1000, 5000, Duration::from_secs(1)), 1001);
        assert_eq!(due_by(1000, 50, Duration::from_secs(1)), 50);
        assert_eq!(
            due_by(u32::MAX, u64::MAX, Duration::from_hours(1)),
            15_461_882_262_001
        );
    }

    #[test]
    fn blasts_numbered_replies_over_loopback() {
        use std::sync::{Mutex, atomic::AtomicBool};

        use netbench_common::ProbeHeader;

        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let opts = BlastOpts {
            server: rx.local_addr().unwrap(),
            rate: 0,
            count: 100,
            max: Duration::from_secs(5),
            size: 80,
            run_id: 77,
            batch: 16,
        };
        let lines = Mutex::new(Vec::new());
        let flag = AtomicBool::new(false);
        run(&opts, &Stop::new(&flag, opts.max), &|l: &str| {
            lines.lock().unwrap().push(l.to_owned());
        })
        .unwrap();
        let mut buf = [0u8; 256];
        for seq in 0..100 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(
                ProbeHeader::parse(&buf[..n]),
                Some((77, seq, Direction::Reply, 80)),
                "datagram {seq}"
            );
        }
        let lines = lines.into_inner().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with(r#"{"event":"blast","sent":100,"refused":0,"#));
    }

    #[test]
    fn paced_blast_keeps_its_rate() {
        use std::sync::atomic::AtomicBool;

        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = BlastOpts {
            server: rx.local_addr().unwrap(),
            rate: 2000,
            count: 200,
            max: Duration::from_secs(5),
            size: 24,
            run_id: 1,
            batch: 64,
        };
        let flag = AtomicBool::new(false);
        let start = Instant::now();
        run(&opts, &Stop::new(&flag, opts.max), &|_: &str| {}).unwrap();
        // 200 datagrams at 2000/s: the last one is due after 99.5 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn only_errors_that_end_the_run_are_returned() {
        let mut c = Counts::default();
        for errno in [libc::ECONNREFUSED, libc::ENOBUFS, libc::EAGAIN, libc::EINTR] {
            assert!(c.transient(&io::Error::from_raw_os_error(errno)).is_ok());
        }
        assert_eq!((c.refused, c.no_buffer), (1, 2));
        assert!(
            c.transient(&io::Error::from_raw_os_error(libc::EBADF))
                .is_err()
        );
    }
}

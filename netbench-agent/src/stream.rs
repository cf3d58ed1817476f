//! `stream`: TCP bulk send to the server's sink for a fixed time.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    time::{Duration, Instant},
};

use crate::{
    cli::StreamOpts,
    json::{self, Emit},
    sys::{self, Stop},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A blocked write gives up after this to re-check the time limit.
const TICK: Duration = Duration::from_millis(100);
/// How long to wait for the sink to confirm it read everything.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Send until `stop` (the --seconds limit or a signal), then print the result line.
///
/// # Errors
/// When the connection cannot be made or breaks.
pub fn run(o: &StreamOpts, stop: &Stop, emit: Emit) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("stream {what} {}: {e}", o.server);
    let mut s =
        TcpStream::connect_timeout(&o.server, CONNECT_TIMEOUT).map_err(|e| fail("connect", e))?;
    s.set_write_timeout(Some(TICK))
        .map_err(|e| fail("socket for", e))?;
    let buf = vec![0u8; o.size];
    let start = Instant::now();
    let mut bytes = 0u64;
    while !stop.is_set() {
        match s.write(&buf) {
            Ok(n) => bytes += n as u64,
            Err(e) if sys::is_transient(&e) => {}
            Err(e) => return Err(fail("send to", e)),
        }
    }
    // Half-close, then wait for the sink to close its side: it does so only after
    // reading everything, so `seconds` covers delivery, not just filling our send buffer.
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(TICK));
    let drain_end = Instant::now() + DRAIN_TIMEOUT;
    let mut scratch = [0u8; 4096];
    while Instant::now() < drain_end {
        match s.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if sys::is_transient(&e) => {}
            Err(_) => break,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    #[expect(
        clippy::cast_precision_loss,
        reason = "bit counts stay far below 2^53 for any run up to an hour"
    )]
    let gbps = bytes as f64 * 8.0 / seconds / 1e9;
    emit(
        &json::object()
            .str("event", "stream")
            .u64("bytes", bytes)
            .f64("seconds", seconds)
            .f64("gbps", gbps)
            .build(),
    );
    Ok(())
}

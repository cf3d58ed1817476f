//! Probe messages on the wire: building requests, turning requests into replies, and
//! cutting a TCP byte stream back into messages.
//!
//! Every message starts with [`ProbeHeader`]; its `len` covers the whole message, which
//! is how TCP messages are framed. The tc programs read the same header to tag hops.

use std::io::{self, Read};

use netbench_common::{Direction, ProbeHeader};

/// Smallest message: the header alone.
pub const MIN_LEN: u32 = 24;
/// Largest message: fits one UDP datagram over IPv4 and IPv6 with room to spare.
pub const MAX_LEN: u32 = 65_000;
const _: () = assert!(MIN_LEN as usize == ProbeHeader::SIZE);

/// A request of `size` bytes (header, then zeros).
pub fn request(run_id: u32, seq: u64, size: u32) -> Vec<u8> {
    let mut msg = vec![0u8; size as usize];
    set_header(&mut msg, run_id, seq, Direction::Request);
    msg
}

/// Rewrite the header of `msg` in place (the payload stays), `len` = the message length.
pub fn set_header(msg: &mut [u8], run_id: u32, seq: u64, dir: Direction) {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    msg[..ProbeHeader::SIZE].copy_from_slice(&ProbeHeader::to_bytes(run_id, seq, dir, len));
}

/// Turn a request into its reply in place: same length, run id and seq, direction Reply.
/// Returns false (and leaves `msg` alone) unless it is a well-formed request whose `len`
/// is exactly its size. Never answering replies is what keeps two echoes from looping.
pub fn make_reply(msg: &mut [u8]) -> bool {
    match ProbeHeader::parse(msg) {
        Some((run_id, seq, Direction::Request, len)) if len as usize == msg.len() => {
            set_header(msg, run_id, seq, Direction::Reply);
            true
        }
        _ => false,
    }
}

/// Is `msg` the reply to request (`run_id`, `seq`)? Anything else is stale or foreign.
pub fn is_reply_to(msg: &[u8], run_id: u32, seq: u64) -> bool {
    matches!(ProbeHeader::parse(msg), Some((r, s, Direction::Reply, _)) if r == run_id && s == seq)
}

/// What [`FrameReader::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// One whole message.
    Frame(&'a mut [u8]),
    /// Nothing complete yet (read timeout or signal): check the stop condition, retry.
    Pending,
    /// The peer closed the connection.
    Eof,
}

/// Reassembles length-framed probe messages from a TCP stream. Bytes are kept across
/// read timeouts, so a reply that arrives late is never cut in half.
pub struct FrameReader {
    buf: Box<[u8]>,
    /// Bytes of `buf` that hold data.
    filled: usize,
    /// Length of the frame handed out last; dropped before the next one.
    consumed: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        Self {
            // Two messages' worth, so one read can bring a message and the next one's start.
            buf: vec![0u8; 2 * MAX_LEN as usize].into_boxed_slice(),
            filled: 0,
            consumed: 0,
        }
    }

    /// The next whole message, reading from `r` at most once.
    ///
    /// # Errors
    /// Read errors other than timeouts, and `InvalidData` when the stream is not probe
    /// messages (bad magic or impossible length): framing is lost, so drop the connection.
    pub fn next_frame(&mut self, r: &mut impl Read) -> io::Result<Next<'_>> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        if self.complete_len()?.is_none() {
            match r.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(Next::Eof),
                Ok(n) => self.filled += n,
                Err(e) if crate::sys::is_transient(&e) => return Ok(Next::Pending),
                Err(e) => return Err(e),
            }
        }
        match self.complete_len()? {
            Some(len) => {
                self.consumed = len;
                Ok(Next::Frame(&mut self.buf[..len]))
            }
            None => Ok(Next::Pending),
        }
    }

    /// Length of the message at the start of the buffer if all of it is there.
    fn complete_len(&self) -> io::Result<Option<usize>> {
        if self.filled < ProbeHeader::SIZE {
            return Ok(None);
        }
        let Some((_, _, _, len)) = ProbeHeader::parse(&self.buf[..self.filled]) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a probe message",
            ));
        };
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("probe length {len} out of range"),
            ));
        }
        let len = len as usize;
        Ok((self.filled >= len).then_some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_header_and_size() {
        let msg = request(7, 3, 100);
        assert_eq!(msg.len(), 100);
        assert_eq!(
            ProbeHeader::parse(&msg),
            Some((7, 3, Direction::Request, 100))
        );
    }

    #[test]
    fn echo_turns_request_into_reply_keeping_payload() {
        let mut msg = request(9, 42, 64);
        msg[40] = 0xab;
        assert!(make_reply(&mut msg));
        assert_eq!(msg.len(), 64);
        assert_eq!(
            ProbeHeader::parse(&msg),
            Some((9, 42, Direction::Reply, 64))
        );
        assert_eq!(msg[40], 0xab);
        assert!(is_reply_to(&msg, 9, 42));
        assert!(!is_reply_to(&msg, 9, 41));
        assert!(!is_reply_to(&msg, 8, 42));
    }

    #[test]
    fn echo_ignores_replies_garbage_and_bad_lengths() {
        let mut reply = request(1, 1, 64);
        set_header(&mut reply, 1, 1, Direction::Reply);
        let before = reply.clone();
        assert!(!make_reply(&mut reply), "a reply must not be echoed");
        assert_eq!(reply, before);
        assert!(!make_reply(&mut [0u8; 64]), "not a probe");
        assert!(!make_reply(&mut request(1, 1, 64)[..23]), "short");
        let mut truncated = request(1, 1, 64);
        assert!(
            !make_reply(&mut truncated[..50]),
            "len field != datagram size"
        );
        assert!(
            !is_reply_to(&request(1, 1, 64), 1, 1),
            "a request is no reply"
        );
    }

    /// Hands out its data in small pieces with a "timeout" between them, like a socket.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        piece: usize,
        timeout_next: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.timeout_next = !self.timeout_next;
            if self.timeout_next {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.piece.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn frames_of(data: Vec<u8>, piece: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut src = Trickle {
            data,
            pos: 0,
            piece,
            timeout_next: false,
        };
        let mut fr = FrameReader::new();
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match fr.next_frame(&mut src)? {
                Next::Frame(m) => out.push(m.to_vec()),
                Next::Pending => {}
                Next::Eof => return Ok(out),
            }
        }
        panic!("no EOF");
    }

    #[test]
    fn frames_survive_any_split() {
        let mut data = request(5, 0, 24);
        data.extend(request(5, 1, 1000));
        data.extend(request(5, 2, 64));
        for piece in [1, 7, 24, 25, 4096] {
            let frames = frames_of(data.clone(), piece).unwrap();
            let seqs: Vec<u64> = frames
                .iter()
                .map(|f| ProbeHeader::parse(f).unwrap().1)
                .collect();
            assert_eq!(seqs, [0, 1, 2], "piece {piece}");
            assert_eq!(frames[1].len(), 1000);
        }
    }

    #[test]
    fn frames_reject_garbage_and_bad_lengths() {
        let err = frames_of(vec![1u8; 100], 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut short = request(1, 1, 64);
        short[20..24].copy_from_slice(&10u32.to_be_bytes());
        assert!(frames_of(short, 64).is_err());
        let mut huge = request(1, 1, 64);
        huge[20..24].copy_from_slice(&(MAX_LEN + 1).to_be_bytes());
        assert!(frames_of(huge, 64).is_err());
    }
}

//! Bounds-checked parsing of Ethernet / IPv4 / IPv6 / UDP / TCP down to the probe header.
//!
//! Reads go straight to the packet (direct packet access, checked against `data_end`)
//! where the bytes are in the skb's linear part, which is the common case for headers;
//! only bytes beyond it (paged data, e.g. a GSO'd TCP payload) go through
//! `bpf_skb_load_bytes`. Four reads at most per packet (L2+L3, L4, payload header),
//! two for a packet that is not on a probe port. Any failure means "not a probe".
use core::mem::size_of;

use aya_ebpf::programs::TcContext;
use netbench_common::{PROBE_MAGIC, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
/// Ethernet header plus the fixed IPv4 header (20 bytes), read in one go.
const L3_READ: usize = ETH_HLEN + 20;

/// What the tc program needs from a probe packet, in host byte order.
pub struct Probe {
    pub proto: u8,
    pub run_id: u32,
    pub seq: u64,
    pub dir: u32,
}

pub enum Parsed {
    /// A probe header was found.
    Probe(Probe),
    /// Traffic on a probe port without a probe header (e.g. a bare TCP ACK).
    PortOnly,
    /// Not on a probe port, or not IP/UDP/TCP.
    Other,
    /// The packet was shorter than its headers claim.
    Error,
}

/// `N` bytes at `off`: directly from the linear data when they lie inside it, else
/// through the helper (which also reads paged data).
#[inline(always)]
fn read<const N: usize>(ctx: &TcContext, off: usize) -> Option<[u8; N]> {
    let start = ctx.data();
    let end = ctx.data_end();
    // The offset is bounded (< 2^16) so the verifier can track the packet pointer.
    if off < 0xffff && start + off + N <= end {
        // SAFETY: [start+off, start+off+N) lies inside the packet's linear data, as
        // checked against data_end just above.
        return Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) });
    }
    ctx.load::<[u8; N]>(off).ok()
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[inline(always)]
pub fn parse(ctx: &TcContext, ports: (u16, u16)) -> Parsed {
    // One read covers Ethernet plus a fixed IPv4 header, or Ethernet plus the first 20
    // bytes of an IPv6 header (next header at byte 6). Shorter frames are not IP/L4.
    let Some(l3) = read::<L3_READ>(ctx, 0) else {
        return Parsed::Other;
    };
    let (proto, l4) = match be16(&l3, 12) {
        ETH_P_IP => {
            let vihl = l3[ETH_HLEN];
            if vihl >> 4 != 4 {
                return Parsed::Other;
            }
            // Fragments other than the first carry no L4 header.
            if be16(&l3, ETH_HLEN + 6) & 0x1fff != 0 {
                return Parsed::Other;
            }
            (l3[ETH_HLEN + 9], ETH_HLEN + usize::from(vihl & 0x0f) * 4)
        }
        // Next header directly UDP/TCP only; extension headers are not followed.
        ETH_P_IPV6 => (l3[ETH_HLEN + 6], ETH_HLEN + IPV6_HLEN),
        _ => return Parsed::Other,
    };
    if proto != PROTO_UDP && proto != PROTO_TCP {
        return Parsed::Other;
    }
    // Ports, and (TCP) the data offset at byte 12 of the header.
    let Some(l4h) = read::<4>(ctx, l4) else {
        return Parsed::Error;
    };
    let (sport, dport) = (be16(&l4h, 0), be16(&l4h, 2));
    let on_port = |p: u16| p != 0 && (p == ports.0 || p == ports.1);
    if !on_port(sport) && !on_port(dport) {
        return Parsed::Other;
    }
    let payload = if proto == PROTO_UDP {
        l4 + 8
    } else {
        // Two bytes (data offset + flags), not one: LLVM folds a one-byte bound
        // `p + 1 <= end` into `p < end`, which the verifier does not accept as a range.
        let Some([doff, _]) = read::<2>(ctx, l4 + 12) else {
            return Parsed::Error;
        };
        l4 + usize::from(doff >> 4) * 4
    };
    // One 24-byte read of the whole probe header.
    let Some(hdr) = read::<{ size_of::<netbench_common::ProbeHeader>() }>(ctx, payload) else {
        return Parsed::PortOnly;
    };
    if be32(&hdr, 0) != PROBE_MAGIC {
        return Parsed::PortOnly;
    }
    let seq = (u64::from(be32(&hdr, 8)) << 32) | u64::from(be32(&hdr, 12));
    Parsed::Probe(Probe {
        proto,
        run_id: be32(&hdr, 4),
        seq,
        dir: be32(&hdr, 16),
    })
}

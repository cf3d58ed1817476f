//! Bounds-checked parsing of Ethernet / IPv4 / IPv6 / UDP / TCP down to the probe header.
//! Every read goes through `TcContext::load` (bpf_skb_load_bytes), which also works on
//! non-linear skbs; any failure means "not a probe".
use aya_ebpf::programs::TcContext;
use netbench_common::{PROBE_MAGIC, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;

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

#[inline(always)]
fn be16(ctx: &TcContext, off: usize) -> Option<u16> {
    ctx.load::<u16>(off).ok().map(u16::from_be)
}

#[inline(always)]
pub fn parse(ctx: &TcContext, ports: (u16, u16)) -> Parsed {
    let Some(ethertype) = be16(ctx, 12) else {
        return Parsed::Error;
    };
    let (proto, l4) = match ethertype {
        ETH_P_IP => {
            let Ok(vihl) = ctx.load::<u8>(ETH_HLEN) else {
                return Parsed::Error;
            };
            if vihl >> 4 != 4 {
                return Parsed::Other;
            }
            // Fragments other than the first carry no L4 header.
            let Some(frag) = be16(ctx, ETH_HLEN + 6) else {
                return Parsed::Error;
            };
            if frag & 0x1fff != 0 {
                return Parsed::Other;
            }
            let Ok(proto) = ctx.load::<u8>(ETH_HLEN + 9) else {
                return Parsed::Error;
            };
            (proto, ETH_HLEN + usize::from(vihl & 0x0f) * 4)
        }
        ETH_P_IPV6 => {
            // Next header directly UDP/TCP only; extension headers are not followed.
            let Ok(next) = ctx.load::<u8>(ETH_HLEN + 6) else {
                return Parsed::Error;
            };
            (next, ETH_HLEN + IPV6_HLEN)
        }
        _ => return Parsed::Other,
    };
    if proto != PROTO_UDP && proto != PROTO_TCP {
        return Parsed::Other;
    }
    let (Some(sport), Some(dport)) = (be16(ctx, l4), be16(ctx, l4 + 2)) else {
        return Parsed::Error;
    };
    let on_port = |p: u16| p != 0 && (p == ports.0 || p == ports.1);
    if !on_port(sport) && !on_port(dport) {
        return Parsed::Other;
    }
    let payload = if proto == PROTO_UDP {
        l4 + 8
    } else {
        let Ok(doff) = ctx.load::<u8>(l4 + 12) else {
            return Parsed::Error;
        };
        l4 + usize::from(doff >> 4) * 4
    };
    // One 24-byte read of the whole header.
    let Ok(hdr) = ctx.load::<[u8; 24]>(payload) else {
        return Parsed::PortOnly;
    };
    let u32_at = |i: usize| u32::from_be_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
    if u32_at(0) != PROBE_MAGIC {
        return Parsed::PortOnly;
    }
    let seq = (u64::from(u32_at(8)) << 32) | u64::from(u32_at(12));
    Parsed::Probe(Probe {
        proto,
        run_id: u32_at(4),
        seq,
        dir: u32_at(16),
    })
}

//! UDP request/response (netperf `UDP_RR`-style) between the wire's load generator
//! (`workloads::udpgen`) and a responder in an image.
//!
//! Requests are Ethernet II + IPv4 + UDP frames from the generator to a responder's MAC, IP
//! and UDP port (by default [`ECHO_PORT`]); their UDP payload is a [`Header`] followed by
//! padding. A responder answers each [`KIND_REQUEST`] with the same payload, from its
//! address to the request's source (Ethernet, IPv4 and UDP source and destination swapped;
//! swapping keeps both checksums valid). The generator matches responses to requests by
//! [`Header::id`].
//!
//! When the generator has sent all its requests and every one is answered or timed out, it
//! may send one [`KIND_BYE`] datagram (configurable): a responder that receives it may stop.
//! It is not answered.

/// UDP port of the echo service (RFC 862).
pub const ECHO_PORT: u16 = 7;
/// [`Header::magic`]: `PVRR` as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"PVRR");
/// [`Header::kind`]: a request to answer.
pub const KIND_REQUEST: u32 = 0;
/// [`Header::kind`]: the generator is done; no answer.
pub const KIND_BYE: u32 = 1;

/// The start of every payload (24 bytes, little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub kind: u32,
    /// Request id, unique per generator run.
    pub id: u64,
    /// When the generator sent it (its own clock; opaque to the responder).
    pub sent: u64,
}

/// Size of a [`Header`]: the shortest payload.
pub const HEADER_SIZE: usize = 24;

/// Offsets in an Ethernet II + IPv4 (no options) + UDP frame.
pub mod frame {
    pub const ETH_DST: usize = 0;
    pub const ETH_SRC: usize = 6;
    pub const ETH_TYPE: usize = 12;
    /// EtherType of IPv4, big-endian on the wire.
    pub const ETHERTYPE_IPV4: u16 = 0x0800;
    pub const IP: usize = 14;
    /// IPv4 protocol number of UDP.
    pub const IP_PROTO: usize = IP + 9;
    pub const PROTO_UDP: u8 = 17;
    pub const IP_SRC: usize = IP + 12;
    pub const IP_DST: usize = IP + 16;
    pub const UDP: usize = IP + 20;
    pub const UDP_SRC: usize = UDP;
    pub const UDP_DST: usize = UDP + 2;
    pub const PAYLOAD: usize = UDP + 8;
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_SIZE);

/// The [`Header::kind`] of `f` if it is a request/response datagram to [`ECHO_PORT`]: an
/// Ethernet II frame holding IPv4 without options, UDP to that port, and a payload that
/// starts with [`MAGIC`]. Anything else is `None` (a responder ignores it).
pub fn classify(f: &[u8]) -> Option<u32> {
    use frame::*;
    if f.len() < PAYLOAD + HEADER_SIZE
        || u16::from_be_bytes([f[ETH_TYPE], f[ETH_TYPE + 1]]) != ETHERTYPE_IPV4
        || f[IP] != 0x45
        || f[IP_PROTO] != PROTO_UDP
        || u16::from_be_bytes([f[UDP_DST], f[UDP_DST + 1]]) != ECHO_PORT
    {
        return None;
    }
    let p = &f[PAYLOAD..];
    let magic = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    (magic == MAGIC).then(|| u32::from_le_bytes([p[4], p[5], p[6], p[7]]))
}

/// Turns a copy of a request `f` (one [`classify`] accepted) into its response: Ethernet,
/// IPv4 and UDP source and destination swapped, everything else kept (both checksums stay
/// valid: their sums do not depend on the order of the swapped words).
pub fn make_response(f: &mut [u8]) {
    use frame::*;
    for (a, b, n) in [
        (ETH_DST, ETH_SRC, 6),
        (IP_SRC, IP_DST, 4),
        (UDP_SRC, UDP_DST, 2),
    ] {
        for i in 0..n {
            f.swap(a + i, b + i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame::*;
    use super::*;

    fn request(kind: u32) -> [u8; PAYLOAD + HEADER_SIZE] {
        let mut f = [0u8; PAYLOAD + HEADER_SIZE];
        f[ETH_DST..ETH_DST + 6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[ETH_SRC..ETH_SRC + 6].copy_from_slice(&[2, 0, 0, 0, 0, 0xFE]);
        f[ETH_TYPE..ETH_TYPE + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[IP] = 0x45;
        f[IP_PROTO] = PROTO_UDP;
        f[IP_SRC..IP_SRC + 4].copy_from_slice(&[10, 0, 0, 254]);
        f[IP_DST..IP_DST + 4].copy_from_slice(&[10, 0, 0, 1]);
        f[UDP_SRC..UDP_SRC + 2].copy_from_slice(&49152u16.to_be_bytes());
        f[UDP_DST..UDP_DST + 2].copy_from_slice(&ECHO_PORT.to_be_bytes());
        f[PAYLOAD..PAYLOAD + 4].copy_from_slice(&MAGIC.to_le_bytes());
        f[PAYLOAD + 4..PAYLOAD + 8].copy_from_slice(&kind.to_le_bytes());
        f
    }

    #[test]
    fn classify_accepts_requests_and_byes_only() {
        assert_eq!(classify(&request(KIND_REQUEST)), Some(KIND_REQUEST));
        assert_eq!(classify(&request(KIND_BYE)), Some(KIND_BYE));
        let short = request(KIND_REQUEST);
        assert_eq!(classify(&short[..short.len() - 1]), None);
        for (at, v) in [
            (ETH_TYPE, 0x86),
            (IP, 0x46),
            (IP_PROTO, 6),
            (UDP_DST + 1, 8),
        ] {
            let mut f = request(KIND_REQUEST);
            f[at] = v;
            assert_eq!(classify(&f), None, "byte {at} = {v:#x}");
        }
        let mut f = request(KIND_REQUEST);
        f[PAYLOAD] ^= 1;
        assert_eq!(classify(&f), None, "bad magic");
    }

    #[test]
    fn a_response_swaps_the_addresses_and_ports() {
        let req = request(KIND_REQUEST);
        let mut f = req;
        make_response(&mut f);
        assert_eq!(f[ETH_DST..ETH_DST + 6], req[ETH_SRC..ETH_SRC + 6]);
        assert_eq!(f[ETH_SRC..ETH_SRC + 6], req[ETH_DST..ETH_DST + 6]);
        assert_eq!(f[IP_SRC..IP_SRC + 4], req[IP_DST..IP_DST + 4]);
        assert_eq!(f[UDP_DST..UDP_DST + 2], req[UDP_SRC..UDP_SRC + 2]);
        assert_eq!(f[PAYLOAD..], req[PAYLOAD..]);
        make_response(&mut f);
        assert_eq!(f, req);
    }
}

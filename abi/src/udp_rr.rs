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

//! The NIC (DESIGN.md §2.5): registers, descriptor format, and how a driver uses them.
//!
//! A multi-queue Ethernet controller attached to one socket, in the spirit of Intel's
//! 82599/e1000 family but much smaller. Its far side is the *wire*: a full-duplex link with
//! latency and bandwidth to host-side endpoints (load generators). Frames are Ethernet II
//! frames without preamble or FCS (the NIC adds and strips them; the wire still pays for them
//! in time), at most [`MAX_FRAME`] bytes.
//!
//! # Finding it
//! The NIC is a device of the machine description (`devices: [Nic(NicDesc(socket: 0, ...))]`);
//! its registers are the MMIO window of that device ([`crate::mmio`]): a BootInfo range of
//! kind [`MEM_MMIO`](crate::boot::MEM_MMIO) whose register [`ID`] reads [`NIC_ID`]. The
//! range's `node` is the NIC's socket.
//!
//! # Registers
//! All registers are 64-bit at 8-byte-aligned offsets in the window (see [`crate::mmio`] for
//! access sizes). Reads of unlisted offsets return 0 and writes to them are ignored; writes
//! to read-only registers are ignored.
//!
//! | offset | name | access | meaning |
//! |---|---|---|---|
//! | 0x000 | [`ID`] | RO | [`NIC_ID`] |
//! | 0x008 | [`QUEUES`] | RO | number of queues (1 to [`MAX_QUEUES`]) |
//! | 0x010 | [`CTRL`] | RW | [`CTRL_ENABLE`]: receive and transmit run; [`CTRL_RESET`]: write 1 to reset (self-clearing) |
//! | 0x018 | [`STATUS`] | RO | [`STATUS_LINK_UP`], [`STATUS_ENABLED`] |
//! | 0x020 | [`MAC`] | RO | the NIC's own address: byte `i` of the MAC in bits `8i+7:8i` |
//! | 0x028 | [`ICR`] | RW1C | interrupt causes: bit `q` = receive on queue `q`, bit `32 + q` = transmit done on queue `q`; writing 1 clears a bit |
//! | 0x030 | [`IMS`] | RW | interrupt mask: reads the enabled causes; writing 1 enables a cause |
//! | 0x038 | [`IMC`] | WO | writing 1 disables a cause |
//! | 0x040.. | [`RX_PACKETS`] … [`RX_ERRORS`] | RO | counters (see each constant) |
//! | 0x100 + 8i | [`filter`]`(i)` | RW | MAC filter `i` < [`FILTERS`]: [`FILTER_VALID`], queue in bits 52:48 ([`FILTER_QUEUE_SHIFT`]), MAC in bits 47:0 (as [`MAC`]) |
//! | 0x1000 + 0x100q | [`queue`]`(q)` + … | | the registers of queue `q`: |
//! | +0x00 | [`RX_BASE`] | RW | physical address of the receive ring (16-byte aligned) |
//! | +0x08 | [`RX_SIZE`] | RW | descriptors in the receive ring (0 = queue off, at most [`MAX_RING`]) |
//! | +0x10 | [`RX_HEAD`] | RO | next receive descriptor the NIC fills |
//! | +0x18 | [`RX_TAIL`] | RW | one past the last descriptor the driver has given the NIC |
//! | +0x20 | [`TX_BASE`] | RW | physical address of the transmit ring |
//! | +0x28 | [`TX_SIZE`] | RW | descriptors in the transmit ring |
//! | +0x30 | [`TX_HEAD`] | RO | next transmit descriptor the NIC fetches |
//! | +0x38 | [`TX_TAIL`] | RW | doorbell: one past the last descriptor ready to send |
//! | +0x40 | [`IRQ`] | RW | interrupt of this queue: vector in bits 7:0, destination x2APIC id in bits 63:32 |
//!
//! Writing `RX_BASE` or `RX_SIZE` sets `RX_HEAD` and `RX_TAIL` to 0 (likewise for TX). A tail
//! written at or beyond the ring size is taken modulo the size.
//!
//! After reset: disabled, every queue off, all causes masked and clear, filter 0 =
//! `MAC` → queue 0 (valid), the other filters invalid.
//!
//! # Rings and descriptors
//! A ring is an array of `SIZE` [`Desc`]s in RAM. The NIC owns the descriptors from `HEAD` up
//! to (not including) `TAIL`, cyclically; `HEAD == TAIL` means it owns none, so a driver gives
//! it at most `SIZE - 1`.
//! - **Receive**: the driver fills `addr` (a buffer in RAM) and `len` (the buffer's size),
//!   clears `status`, and advances `RX_TAIL`. For each frame the NIC reads the descriptor at
//!   `RX_HEAD`, writes the frame into the buffer by DMA, advances `RX_HEAD`, then writes the
//!   descriptor back with `len` = the frame's length and `status` = [`DD`] | [`EOP`] (plus
//!   [`TRUNC`] if the frame was longer than the buffer and was cut to it, or [`ERR`] if the
//!   buffer is not RAM and nothing was stored), and raises the queue's receive cause.
//!   A frame that finds no descriptor is dropped ([`RX_NO_DESC`]).
//! - **Transmit**: the driver writes a whole frame into a buffer, fills `addr` and `len`
//!   ([`MIN_FRAME`]..=[`MAX_FRAME`]), clears `status`, and advances `TX_TAIL` (the
//!   doorbell). The NIC reads each descriptor and its buffer by DMA, sends the frame on the
//!   wire, writes `status` = [`DD`] (or [`DD`] | [`ERR`] for a bad length or a buffer that is
//!   not RAM: the frame is not sent), and raises the queue's transmit cause. One descriptor is
//!   one frame (no scatter-gather); `flags` must be 0.
//!
//! # Steering
//! A frame from the wire goes to the queue of the first valid filter (in index order) whose
//! MAC equals its destination address. Broadcast and multicast frames (bit 0 of the first
//! destination byte set) go to queue 0. A unicast frame no filter matches is dropped
//! ([`RX_NO_MATCH`]); so is every frame while the NIC is disabled or its queue is off.
//!
//! # Interrupts
//! When a cause bit goes from 0 to 1 and is enabled in `IMS`, or when `IMS` enables a cause
//! bit that is already 1, the NIC sends its queue's `IRQ` as a fixed interrupt to the local
//! APIC of that x2APIC id (one message even if the receive and transmit causes of a queue
//! rise together). A vector below 16 is never sent. While a cause bit stays 1, further frames
//! raise no interrupt: a handler clears its queue's bits in `ICR` **before** processing the
//! ring, so that a frame arriving during processing raises the cause (and the interrupt)
//! again.
//!
//! # Time
//! Simulated, deterministic. A register load from a core stalls it for the round trip to the
//! NIC (`2 × pcie_latency_ns`, plus the interconnect latency both ways for a core on another
//! socket); a store is posted and reaches the NIC one way later. Every DMA transfer costs
//! `pcie_latency_ns` (twice for a read: request and completion) plus, with the timing model
//! on, the memory system's time for those lines at their home node, where it counts as DMA
//! traffic. The NIC handles receive and transmit each one frame at a time, in order. An
//! interrupt message reaches the local APIC when the descriptor write-back that raised its
//! cause lands in memory (it is ordered behind it), or when the `IMS` write that unmasked a
//! raised cause reaches the NIC; no further delay is modelled. Simplification: the NIC has no
//! packet buffer of its own — a frame that finds no free descriptor is dropped at once.
//!
//! # Driver steps (polling; interrupts add the last three)
//! 1. Find the NIC: an MMIO range of BootInfo whose [`ID`] register reads [`NIC_ID`]; read
//!    [`QUEUES`] and [`MAC`].
//! 2. Write [`CTRL_RESET`] to [`CTRL`].
//! 3. For each queue `q` used: allocate `n` receive descriptors and `n` buffers (2 KiB hold a
//!    1514-byte frame) on the node that will process them; write each descriptor
//!    (`addr`, `len` = buffer size, `status` = 0); write `RX_BASE`, `RX_SIZE` = `n`, then
//!    `RX_TAIL` = `n - 1`. Allocate the transmit ring likewise (descriptors zeroed) and write
//!    `TX_BASE`, `TX_SIZE`.
//! 4. Point a filter at each queue whose MAC should reach it: [`filter`]`(i)` =
//!    [`FILTER_VALID`] | (q << [`FILTER_QUEUE_SHIFT`]) | mac (filter 0 already sends the
//!    NIC's own MAC to queue 0).
//! 5. Write [`CTRL_ENABLE`] to [`CTRL`].
//! 6. Receive: poll the descriptor at the driver's next index until its `status` has [`DD`];
//!    the frame is `len` bytes at `addr`. Then clear its `status` and give it back: write
//!    `RX_TAIL` = that index (one write per batch is enough). Advance the index modulo `n`.
//! 7. Transmit: at the driver's next free transmit index (free = never used, or `status` has
//!    [`DD`]), write the frame to its buffer, fill the descriptor, then write `TX_TAIL` = the
//!    next index (one doorbell per batch).
//! 8. Interrupts: write the queue's [`IRQ`] (vector ≥ 32, destination core's x2APIC id), and
//!    [`IMS`] with the queue's bits; enable the local APIC and an IDT gate for the vector.
//! 9. In the handler: write the queue's bits to [`ICR`], then do steps 6–7 until the ring is
//!    empty, then EOI to the local APIC.
//! 10. A driver that polls for a while before sleeping (NAPI) masks the queue with [`IMC`]
//!     while polling and unmasks it with [`IMS`] when the ring is empty — an unmask with the
//!     cause already set interrupts at once, so no frame is missed.

/// [`ID`] of a NIC: the bytes `PVMNIC01` read as a little-endian `u64`.
pub const NIC_ID: u64 = u64::from_le_bytes(*b"PVMNIC01");

/// At most this many queues.
pub const MAX_QUEUES: u64 = 32;
/// MAC filters.
pub const FILTERS: u64 = 32;
/// Descriptors per ring at most.
pub const MAX_RING: u64 = 32768;
/// Shortest frame a driver may send: an Ethernet header.
pub const MIN_FRAME: u64 = 14;
/// Longest frame, without FCS (jumbo frames of 9000 bytes of payload fit).
pub const MAX_FRAME: u64 = 9216;

// ---- global registers (offsets in the window) ----------------------------------------------

/// Device id (RO): [`NIC_ID`]. The same offset as [`crate::mmio::DEVICE_ID`].
pub const ID: u64 = 0x000;
/// Number of queues (RO).
pub const QUEUES: u64 = 0x008;
/// Control (RW).
pub const CTRL: u64 = 0x010;
/// Status (RO).
pub const STATUS: u64 = 0x018;
/// The NIC's MAC address (RO), byte 0 in bits 7:0.
pub const MAC: u64 = 0x020;
/// Interrupt cause (read; write 1 to clear).
pub const ICR: u64 = 0x028;
/// Interrupt mask set (read: the mask).
pub const IMS: u64 = 0x030;
/// Interrupt mask clear (write only).
pub const IMC: u64 = 0x038;
/// Frames received into a buffer (RO).
pub const RX_PACKETS: u64 = 0x040;
/// Bytes of those frames (RO).
pub const RX_BYTES: u64 = 0x048;
/// Frames sent on the wire (RO).
pub const TX_PACKETS: u64 = 0x050;
/// Bytes of those frames (RO).
pub const TX_BYTES: u64 = 0x058;
/// Frames dropped: their queue had no free descriptor, was off, or the NIC was disabled (RO).
pub const RX_NO_DESC: u64 = 0x060;
/// Frames dropped: unicast to a MAC no filter matches (RO).
pub const RX_NO_MATCH: u64 = 0x068;
/// Transmit descriptors completed with [`ERR`] (RO).
pub const TX_ERRORS: u64 = 0x070;
/// Receive descriptors completed with [`ERR`] (RO).
pub const RX_ERRORS: u64 = 0x078;

/// [`CTRL`]: receive and transmit run.
pub const CTRL_ENABLE: u64 = 1 << 0;
/// [`CTRL`]: write 1 to reset the NIC (reads 0).
pub const CTRL_RESET: u64 = 1 << 1;

/// [`STATUS`]: the wire is connected (always, in this model).
pub const STATUS_LINK_UP: u64 = 1 << 0;
/// [`STATUS`]: [`CTRL_ENABLE`] is set.
pub const STATUS_ENABLED: u64 = 1 << 1;

/// [`ICR`]/[`IMS`]/[`IMC`] bit of queue `q`'s receive cause.
pub const fn cause_rx(q: u64) -> u64 {
    1 << q
}
/// [`ICR`]/[`IMS`]/[`IMC`] bit of queue `q`'s transmit cause.
pub const fn cause_tx(q: u64) -> u64 {
    1 << (32 + q)
}

/// Offset of MAC filter `i`.
pub const fn filter(i: u64) -> u64 {
    0x100 + 8 * i
}
/// Filter bit: the filter is in use.
pub const FILTER_VALID: u64 = 1 << 63;
/// Filter bits 52:48: the queue.
pub const FILTER_QUEUE_SHIFT: u64 = 48;
/// Mask of a filter's MAC bits.
pub const FILTER_MAC_MASK: u64 = (1 << 48) - 1;

/// Offset of queue `q`'s register block.
pub const fn queue(q: u64) -> u64 {
    0x1000 + 0x100 * q
}
/// Registers of a queue block (add to [`queue`]`(q)`).
pub const RX_BASE: u64 = 0x00;
pub const RX_SIZE: u64 = 0x08;
pub const RX_HEAD: u64 = 0x10;
pub const RX_TAIL: u64 = 0x18;
pub const TX_BASE: u64 = 0x20;
pub const TX_SIZE: u64 = 0x28;
pub const TX_HEAD: u64 = 0x30;
pub const TX_TAIL: u64 = 0x38;
pub const IRQ: u64 = 0x40;
/// [`IRQ`] bits 63:32: destination x2APIC id.
pub const IRQ_DEST_SHIFT: u64 = 32;

/// A MAC address as register bits ([`MAC`], filters): byte 0 in bits 7:0.
pub const fn mac_bits(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    let mut i = 0;
    while i < 6 {
        b[i] = mac[i];
        i += 1;
    }
    u64::from_le_bytes(b)
}

/// A MAC address from register bits.
pub const fn mac_from_bits(bits: u64) -> [u8; 6] {
    let b = bits.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

// ---- descriptors ----------------------------------------------------------------------------

/// A receive or transmit descriptor (16 bytes, little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Physical address of the buffer.
    pub addr: u64,
    /// Receive: the buffer's size, written back as the frame's length. Transmit: the frame's
    /// length.
    pub len: u16,
    /// 0 (reserved).
    pub flags: u16,
    /// Written by the NIC: `DD` and the other status bits; the driver clears it.
    pub status: u16,
    pub reserved: u16,
}

/// Size of a [`Desc`].
pub const DESC_SIZE: u64 = 16;

/// [`Desc::status`]: the NIC is done with the descriptor.
pub const DD: u16 = 1 << 0;
/// [`Desc::status`]: end of packet (every receive descriptor holds a whole frame).
pub const EOP: u16 = 1 << 1;
/// [`Desc::status`]: the buffer is not RAM or the length is invalid; nothing moved.
pub const ERR: u16 = 1 << 2;
/// [`Desc::status`]: the received frame was longer than the buffer and was cut to its size.
pub const TRUNC: u16 = 1 << 3;

const _: () = {
    assert!(core::mem::size_of::<Desc>() == DESC_SIZE as usize);
    assert!(core::mem::offset_of!(Desc, len) == 8);
    assert!(core::mem::offset_of!(Desc, status) == 12);
    assert!(queue(MAX_QUEUES) <= crate::mmio::MMIO_WINDOW);
    assert!(filter(FILTERS) <= queue(0));
};

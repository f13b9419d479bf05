//! Memory-mapped I/O: where device registers live in the physical address space
//! (DESIGN.md §2.5).
//!
//! Device `i` of the machine description's `devices` list owns the window
//! `[MMIO_BASE + i * MMIO_WINDOW, MMIO_BASE + (i + 1) * MMIO_WINDOW)`. The loader
//! identity-maps every window with 4 KiB pages marked uncached (PCD | PWT) and reports each one
//! in BootInfo as a [`MEM_MMIO`](crate::boot::MEM_MMIO) range whose `node` is the node of the
//! device's socket. The first register of every window, [`DEVICE_ID`], names the kind of
//! device, so an image finds its devices by reading it in each MMIO range (like PCI vendor and
//! device ids).
//!
//! # Accesses
//! - Loads and stores of 1, 2, 4 or 8 bytes reach the device; any other size (SSE moves of
//!   16 bytes, for instance) raises #GP(0). Registers are 64-bit, 8-byte aligned; an access
//!   smaller than 8 bytes reads or writes those bytes of the register it falls in (a write
//!   merges into the register's current value, then takes effect); an access that crosses
//!   two registers raises #GP(0).
//! - Accesses are uncached and strongly ordered: none is kept in the soft TLB or the caches,
//!   every one reaches the device. A load stalls the core for the device's round trip; a
//!   store is posted (the core goes on at once; the device sees it a little later in
//!   simulated time).
//! - Instruction fetches and page-table walks in MMIO, and accesses to a part of the MMIO area
//!   that no device owns, raise #MC, as accesses outside RAM do.
//! - Simplification: the memory type is fixed by the address (MMIO is always uncached); PAT,
//!   PCD and PWT bits in an image's own page tables change nothing.

/// First byte of the MMIO area: 112 TiB, above any RAM a machine can have (at most 64 nodes of
/// 1 TiB each), canonical and below 2^47, so that it can be identity-mapped in the lower half.
pub const MMIO_BASE: u64 = 0x7000_0000_0000;
/// Size of each device's window: 1 MiB, 1 MiB-aligned.
pub const MMIO_WINDOW: u64 = 1 << 20;
/// At most this many devices (windows) per machine.
pub const MAX_DEVICES: u64 = 16;

/// Offset of the device id register (read-only, 64-bit) in every window.
pub const DEVICE_ID: u64 = 0x000;

/// Physical address of device `index`'s window.
pub const fn window(index: u64) -> u64 {
    MMIO_BASE + index * MMIO_WINDOW
}

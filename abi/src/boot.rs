//! BootInfo v1: what the loader hands every core at entry (DESIGN.md §3.1).
//!
//! At `e_entry`, `rdi` holds the physical address of a [`BootInfo`] and `rsi` the core's index
//! into [`BootInfo::cores`]. All structures are `repr(C)` and little-endian; later versions only
//! append fields, so readers accept any `version >= 1` and use `size` to find the end.

/// `BootInfo::magic`: the bytes `PVMLAB01` read as a little-endian `u64`.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"PVMLAB01");
/// The version this crate describes.
pub const BOOT_VERSION: u32 = 1;

/// The boot header. Pointers are guest-physical addresses (identity-mapped at entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`BOOT_VERSION`] for this layout.
    pub version: u32,
    /// Size of this header in bytes (`0x58` in v1).
    pub size: u32,
    /// `rdtsc` ticks per simulated second (= the core clock).
    pub tsc_hz: u64,
    pub ncores: u32,
    pub nnodes: u32,
    /// → `[CoreInfo; ncores]`.
    pub cores: u64,
    pub nranges: u32,
    pub nmodules: u32,
    /// → `[MemRange; nranges]`.
    pub ranges: u64,
    /// → `[Module; nmodules]`.
    pub modules: u64,
    /// → UTF-8 command line, `cmdline_len` bytes, not NUL-terminated.
    pub cmdline: u64,
    pub cmdline_len: u64,
    /// → `[u8; nnodes * nnodes]`, SLIT-style distances (10 = local), row = from, column = to.
    pub distances: u64,
}

/// One core: `apic_id` is its x2APIC id, `socket` and `node` where it sits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreInfo {
    pub apic_id: u32,
    pub socket: u32,
    pub node: u32,
    pub reserved: u32,
}

/// A physical address range `[base, base + len)` of one node.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRange {
    pub base: u64,
    pub len: u64,
    pub node: u32,
    /// One of the `MEM_*` kinds.
    pub kind: u32,
}

/// Usable RAM.
pub const MEM_USABLE: u32 = 1;
/// RAM holding what the loader placed: image, stacks, page tables, BootInfo, modules.
pub const MEM_LOADER: u32 = 2;
/// Memory-mapped I/O.
pub const MEM_MMIO: u32 = 3;

/// A boot module placed in memory by the loader (images, configuration).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub base: u64,
    pub len: u64,
    /// NUL-padded name.
    pub name: [u8; 32],
}

// The layout is the ABI: fail the build if a field moves.
const _: () = {
    assert!(core::mem::size_of::<BootInfo>() == 0x58);
    assert!(core::mem::offset_of!(BootInfo, tsc_hz) == 0x10);
    assert!(core::mem::offset_of!(BootInfo, ncores) == 0x18);
    assert!(core::mem::offset_of!(BootInfo, cores) == 0x20);
    assert!(core::mem::offset_of!(BootInfo, nranges) == 0x28);
    assert!(core::mem::offset_of!(BootInfo, ranges) == 0x30);
    assert!(core::mem::offset_of!(BootInfo, modules) == 0x38);
    assert!(core::mem::offset_of!(BootInfo, cmdline) == 0x40);
    assert!(core::mem::offset_of!(BootInfo, cmdline_len) == 0x48);
    assert!(core::mem::offset_of!(BootInfo, distances) == 0x50);
    assert!(core::mem::size_of::<CoreInfo>() == 16);
    assert!(core::mem::size_of::<MemRange>() == 24);
    assert!(core::mem::size_of::<Module>() == 48);
};

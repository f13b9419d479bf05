//! I/O ports of the platform devices (DESIGN.md §2.5).

/// Debug console: `out 0xE9, al` writes one byte to the run's standard output
/// (the Bochs/QEMU `debugcon` convention).
pub const CONSOLE: u16 = 0xE9;

/// Exit: a 32-bit `out 0xF4, eax` ends the run; `pvmlab exec` exits with `eax & 0xFF`.
pub const EXIT: u16 = 0xF4;

/// Annotation port (gem5 "m5ops"-style), reserved for the hypervisor (DESIGN.md §2.5).
pub const ANNOTATE: u16 = 0xEA;

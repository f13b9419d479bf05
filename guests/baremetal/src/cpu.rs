//! The few privileged instructions the runtime needs.

use core::arch::asm;

/// Writes one byte to the debug console: `out 0xE9, al`.
#[inline]
pub fn console_byte(byte: u8) {
    // SAFETY: port I/O has no memory effects; the machine runs images at CPL 0.
    unsafe {
        asm!("out {port}, al", port = const abi::ports::CONSOLE, in("al") byte,
             options(nomem, nostack, preserves_flags));
    }
}

/// Ends the run with `code`: `out 0xF4, eax`.
pub fn exit(code: u32) -> ! {
    // SAFETY: as for `console_byte`.
    unsafe {
        asm!("out {port}, eax", port = const abi::ports::EXIT, in("eax") code,
             options(nomem, nostack, preserves_flags));
    }
    // The machine stops at the `out`; should it not, stop this core.
    halt()
}

/// Stops this core for good: `hlt` with interrupts off (the run ends when all cores stop).
pub fn halt() -> ! {
    loop {
        // SAFETY: `cli; hlt` touches no memory; nothing runs on this core afterwards.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The time-stamp counter (`BootInfo::tsc_hz` ticks per simulated second).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` is baseline x86-64 and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

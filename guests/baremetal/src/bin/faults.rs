//! Misbehaves on purpose, as the command line says, for the emulator's error paths:
//! `ud2` (invalid opcode, #UD), `div0` (divide error, #DE), `pf` (page fault: a read outside
//! all mapped memory, #PF), `spin` (never ends: for `--max-instructions`), `panic` (the
//! runtime's panic path: message, then exit status 101).
#![no_std]
#![no_main]

use core::arch::asm;

baremetal::entry!(main);

/// An address far above any preset's RAM and MMIO, so never identity-mapped.
const UNMAPPED: u64 = 0x7f00_0000_0000;

fn main(boot: &baremetal::Boot) -> u32 {
    match boot.cmdline().trim() {
        // SAFETY: `ud2` raises #UD and touches nothing.
        "ud2" => unsafe { asm!("ud2", options(nomem, nostack, noreturn)) },
        "div0" => {
            let q: u64;
            // SAFETY: a division by a zero register raises #DE; registers only.
            unsafe {
                asm!("xor ecx, ecx", "div rcx", inout("rax") 1u64 => q, inout("rdx") 0u64 => _,
                     out("rcx") _, options(nomem, nostack));
            }
            q as u32
        }
        "pf" => {
            // SAFETY: deliberately not sound: the read faults, and nothing after it runs.
            let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
            v as u32
        }
        "spin" => loop {
            core::hint::spin_loop();
        },
        "panic" => panic!("deliberate panic, {} + {} = {}", 2, 2, 2 + 2),
        other => {
            baremetal::println!("faults: unknown mode {other:?}; use ud2, div0, pf, spin or panic");
            2
        }
    }
}

//! Debug registers and debug exceptions (#DB) in 64-bit mode: Intel SDM Vol. 3B chapter 18
//! ("Debug, Branch Profile, TSC, and Intel Resource Director Technology Features"), §18.2
//! (debug registers) and §18.3.1 (debug exception conditions), with the RF rules of §18.3.1.1
//! and the MOV DR entry of Vol. 2B.
//!
//! # The model
//! - **Registers.** DR0–DR3 hold 64-bit linear addresses (stored as written, canonical or
//!   not). DR6 reads `0xFFFF_0FF0` at reset: bits 4–11 and 16–31 read as 1 (there is no
//!   bus-lock detection or RTM, so BLD and RTM are reserved and read 1), bit 12 reads 0, and
//!   only B0–B3, BD, BS and BT keep what is written. DR7 reads `0x400` at reset: bit 10 reads
//!   1, bits 11, 12, 14 and 15 read 0 (no RTM). Writing a 1 to bits 63:32 of DR6 or DR7
//!   raises #GP(0); DR4/DR5 are DR6/DR7 while CR4.DE = 0 and raise #UD while CR4.DE = 1;
//!   DR8–DR15 (REX.R) are invalid encodings (#UD). `mov` to or from a debug register checks,
//!   in this order: CPL 0 (#GP(0)), DR4/DR5 with CR4.DE (#UD), DR7.GD (a #DB fault with
//!   DR6.BD set), then the value written (#GP(0)).
//! - **Enabling.** A breakpoint is enabled when its L or G bit is set (the two are the same
//!   here: there are no task switches to clear L bits). LE/GE are accepted and ignored:
//!   breakpoints are always reported exactly, as on every processor since the P6.
//! - **Instruction breakpoints** (R/W = 00): a fault before the instruction whose first byte
//!   (prefixes included) is at the address, before any fault of fetching or decoding it; the
//!   saved RIP is the instruction's and the RFLAGS image holds RF as it was (0). With RF = 1
//!   the check is skipped for one instruction. The LEN field is ignored for them (the SDM
//!   leaves LEN ≠ 00 undefined).
//! - **Data breakpoints** (R/W = 01 writes, 11 reads or writes, not fetches): the range is
//!   1, 2, 8 or 4 bytes (LEN 00, 01, 10, 11) at the address with its low bits masked by the
//!   length, as the processor does; any byte of an access overlapping it hits. The #DB is a
//!   trap after the instruction, with the next instruction's RIP; a REP string instruction
//!   traps after the iteration that hit, with RF = 1 in the saved RFLAGS unless it was the
//!   last iteration (rCX, rSI, rDI describe the iterations done, and the instruction resumes
//!   where it stopped). An instruction that faults reports none of its hits.
//! - **I/O breakpoints** (R/W = 10): with CR4.DE = 1, `in`/`out` to a port range
//!   overlapping the breakpoint's (port zero-extended, same length masking) trap after the
//!   instruction. With CR4.DE = 0 the encoding is undefined in the SDM; here it never hits.
//! - **DR6 on a #DB.** Every #DB clears B0–B3 and then sets what caused it: Bn for each
//!   enabled breakpoint that hit, BS for a single-step trap (RFLAGS.TF), BD for general
//!   detect, all in one #DB when several conditions end the same instruction. BD, BS and BT
//!   are never cleared by the processor. DR7.GD is cleared when a #DB is delivered.
//! - **RF.** RF is cleared at the start of each instruction, after the instruction-breakpoint
//!   check; IRETQ loads it from the frame. Every fault-class exception pushes RF = 1 except the
//!   instruction-breakpoint #DB; traps and interrupts push RF as it is, and a REP string
//!   instruction interrupted with work left (by a data-breakpoint trap, or between the chunks
//!   the interpreter runs it in, where interrupts come in) sets RF, so resuming it never
//!   reports its instruction breakpoint again.
//!
//! # Speed
//! With no breakpoint enabled in DR7 and RF, TF clear, nothing here runs: the block loop tests
//! one flag per block. When breakpoints are enabled, blocks run in the block loop's debug
//! path: it checks the instruction-breakpoint addresses at each block start and ends a block
//! before an instruction that has one; pages holding a data breakpoint are kept out of the
//! soft TLB (reads too for R/W = 11), so accesses to them take the translation path, which
//! compares the access with the breakpoints; string instructions copy such pages element by
//! element.
//!
//! # Simplifications
//! - Accesses the processor makes on its own — page walks, descriptor-table and TSS reads,
//!   and the frame pushes of event delivery — are not checked against data breakpoints.
//! - No delay after MOV SS/POP SS (an instruction breakpoint right after one is reported),
//!   no branch trace (DEBUGCTL.BTF, LBR), no `int1` (ICEBP), no task switches (BT never set).
//! - `ins`/`outs` are not implemented, so I/O breakpoints apply to `in`/`out` only.

use super::{Core, DB, Fault, GP, UD};
use crate::memory::PAGE_SIZE;
use serde::{Deserialize, Serialize};

/// DR6 bits B0–B3: which breakpoints hit.
pub const DR6_B: u64 = 0xF;
/// DR6.BD: the #DB is a general-detect fault (a `mov dr` while DR7.GD = 1).
pub const DR6_BD: u64 = 1 << 13;
/// DR6.BS: single-step trap (RFLAGS.TF).
pub const DR6_BS: u64 = 1 << 14;
/// DR6.BT: task switch (never set: there are no task switches in 64-bit mode).
pub const DR6_BT: u64 = 1 << 15;
/// DR6 at reset, and the bits that always read as 1.
pub const DR6_INIT: u64 = 0xFFFF_0FF0;
/// DR6 bits that keep what software writes.
const DR6_WRITABLE: u64 = DR6_B | DR6_BD | DR6_BS | DR6_BT;
/// DR7.GD: general detect.
pub const DR7_GD: u64 = 1 << 13;
/// DR7 at reset, and the bit that always reads as 1.
pub const DR7_INIT: u64 = 0x400;
/// DR7 bits that keep what software writes: L0–G3, LE, GE, GD, R/W0–LEN3.
const DR7_WRITABLE: u64 = 0xFFFF_23FF;
/// CR4.DE: debugging extensions (DR4/DR5 #UD, I/O breakpoints).
pub const CR4_DE: u64 = 1 << 3;

/// R/W field values (DR7 bits 16+4n, 17+4n).
const RW_EXEC: u64 = 0b00;
const RW_WRITE: u64 = 0b01;
const RW_IO: u64 = 0b10;

/// DR0–DR3, DR6, DR7 of a core, and what DR7 enables, derived from them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DebugRegs {
    pub dr: [u64; 4],
    pub dr6: u64,
    pub dr7: u64,
    /// Data or I/O breakpoints hit by the current instruction (bit n for DRn), reported when
    /// it completes.
    pub(crate) hits: u8,
    /// Recomputed from the registers whenever they change and after a restore.
    #[serde(skip)]
    pub(crate) armed: Armed,
}

/// The enabled breakpoints, in the form the interpreter checks them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Armed {
    /// Any breakpoint enabled: the block loop takes its debug path.
    pub active: bool,
    /// Instruction breakpoints (bit n for DRn).
    exec: u8,
    /// Data breakpoints on writes (R/W 01 or 11), and on reads (R/W 11).
    write: u8,
    read: u8,
    /// I/O breakpoints (R/W 10).
    io: u8,
    /// Start of each breakpoint's range (the address with its low bits masked by the length;
    /// the whole address for instruction breakpoints) and its length in bytes.
    start: [u64; 4],
    len: [u64; 4],
}

impl Default for DebugRegs {
    fn default() -> Self {
        DebugRegs {
            dr: [0; 4],
            dr6: DR6_INIT,
            dr7: DR7_INIT,
            hits: 0,
            armed: Armed::default(),
        }
    }
}

/// Whether byte ranges `[a, a + alen)` and `[b, b + blen)` (lengths ≥ 1, not wrapping)
/// overlap.
#[inline]
fn overlap(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a <= b.saturating_add(blen - 1) && b <= a.saturating_add(alen - 1)
}

/// The breakpoints set in `mask`, as DR numbers.
fn each(mask: u8) -> impl Iterator<Item = usize> {
    (0..4).filter(move |n| mask & (1 << n) != 0)
}

impl DebugRegs {
    /// Recomputes what DR7 enables from the registers.
    pub(crate) fn rearm(&mut self) {
        let mut a = Armed::default();
        for n in 0..4 {
            if (self.dr7 >> (2 * n)) & 3 == 0 {
                continue;
            }
            let rw = (self.dr7 >> (16 + 4 * n)) & 3;
            let len = match (self.dr7 >> (18 + 4 * n)) & 3 {
                0b00 => 1,
                0b01 => 2,
                0b10 => 8,
                _ => 4,
            };
            let bit = 1u8 << n;
            if rw == RW_EXEC {
                a.exec |= bit;
                a.start[n] = self.dr[n];
                a.len[n] = 1;
            } else {
                a.start[n] = self.dr[n] & !(len - 1);
                a.len[n] = len;
                match rw {
                    RW_IO => a.io |= bit,
                    RW_WRITE => a.write |= bit,
                    _ => {
                        a.write |= bit;
                        a.read |= bit;
                    }
                }
            }
        }
        a.active = a.exec | a.write | a.io != 0;
        self.armed = a;
    }

    /// Whether the page of `va` holds a breakpoint on reads (it must stay out of the read
    /// half of the soft TLB).
    #[inline]
    pub(crate) fn watches_reads(&self, va: u64) -> bool {
        self.armed.read != 0 && self.on_page(self.armed.read, va)
    }

    /// Whether the page of `va` holds a breakpoint on writes.
    #[inline]
    pub(crate) fn watches_writes(&self, va: u64) -> bool {
        self.armed.write != 0 && self.on_page(self.armed.write, va)
    }

    fn on_page(&self, mask: u8, va: u64) -> bool {
        each(mask).any(|n| self.armed.start[n] / PAGE_SIZE == va / PAGE_SIZE)
    }

    /// Records the data breakpoints an access of `len` bytes at `va` hits (`len` ≥ 1, the
    /// access within one page).
    pub(crate) fn data_access(&mut self, va: u64, len: u64, write: bool) {
        let mask = if write {
            self.armed.write
        } else {
            self.armed.read
        };
        for n in each(mask) {
            if overlap(va, len, self.armed.start[n], self.armed.len[n]) {
                self.hits |= 1 << n;
            }
        }
    }

    /// Records the I/O breakpoints an `in`/`out` of `len` bytes at `port` hits (only called
    /// with CR4.DE = 1).
    pub(crate) fn io_access(&mut self, port: u16, len: u64) {
        for n in each(self.armed.io) {
            if overlap(port as u64, len, self.armed.start[n], self.armed.len[n]) {
                self.hits |= 1 << n;
            }
        }
    }

    /// Whether any instruction breakpoint is enabled.
    #[inline]
    pub(crate) fn has_exec(&self) -> bool {
        self.armed.exec != 0
    }

    /// The instruction breakpoints at `rip` (B0–B3 bits).
    #[inline]
    pub(crate) fn exec_hits(&self, rip: u64) -> u64 {
        each(self.armed.exec)
            .filter(|&n| self.armed.start[n] == rip)
            .fold(0, |m, n| m | 1 << n)
    }

    /// Takes the hits the current instruction recorded (B0–B3 bits).
    #[inline]
    pub(crate) fn take_hits(&mut self) -> u64 {
        std::mem::take(&mut self.hits) as u64
    }

    /// DR6 for a #DB caused by `status` (B0–B3, BD, BS): B0–B3 cleared, then the causes set.
    pub(crate) fn report(&mut self, status: u64) {
        self.dr6 = (self.dr6 & !DR6_B) | status;
    }
}

impl Core {
    /// The register a `mov` to or from debug register `reg` reaches: DR0–DR3, 6 or 7, after
    /// the #UD and general-detect checks (the CPL check is the handler's).
    fn dr_target(&mut self, reg: iced_x86::Register) -> Result<usize, Fault> {
        let n = (reg as usize).wrapping_sub(iced_x86::Register::DR0 as usize);
        let n = match n {
            0..=3 | 6 | 7 => n,
            4 | 5 if self.cr4 & CR4_DE == 0 => n + 2,
            _ => return Err(Fault::new(UD)),
        };
        if self.dbg.dr7 & DR7_GD != 0 {
            // General detect: a fault before the MOV, reported in DR6.BD (SDM §18.2.4).
            self.dbg.report(DR6_BD);
            return Err(Fault::new(DB));
        }
        Ok(n)
    }

    /// `mov r64, DRn` at CPL 0.
    pub(crate) fn read_dr(&mut self, reg: iced_x86::Register) -> Result<u64, Fault> {
        Ok(match self.dr_target(reg)? {
            6 => self.dbg.dr6,
            7 => self.dbg.dr7,
            n => self.dbg.dr[n],
        })
    }

    /// `mov DRn, r64` at CPL 0. A change to what is enabled flushes the soft TLB, so that
    /// pages holding data breakpoints leave it.
    pub(crate) fn write_dr(&mut self, reg: iced_x86::Register, v: u64) -> Result<(), Fault> {
        let n = self.dr_target(reg)?;
        if n >= 6 && v >> 32 != 0 {
            return Err(Fault::with_code(GP, 0));
        }
        match n {
            6 => {
                self.dbg.dr6 = (v & DR6_WRITABLE) | DR6_INIT;
                return Ok(());
            }
            7 => self.dbg.dr7 = (v & DR7_WRITABLE) | DR7_INIT,
            n => self.dbg.dr[n] = v,
        }
        let before = self.dbg.armed;
        self.dbg.rearm();
        let watched = |a: &Armed| a.read | a.write != 0;
        if watched(&before) || watched(&self.dbg.armed) {
            self.tlb.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_ranges_mask_the_address_by_the_length() {
        // DR0: 4 bytes, writes, at 0x1003 (masked to 0x1000); DR1: 8 bytes, reads or
        // writes, at 0x2008; DR2: instruction at 0x3001; DR3: I/O, 2 bytes, port 0x71.
        let mut d = DebugRegs {
            dr: [0x1003, 0x2008, 0x3001, 0x71],
            dr7: DR7_INIT
                | 0xFF
                | (0b11_01 << 16)
                | (0b10_11 << 20)
                | (0b11_00 << 24)
                | (0b01_10 << 28),
            ..Default::default()
        };
        d.rearm();
        assert!(d.armed.active);
        let hits = |d: &mut DebugRegs, va, len, w| {
            d.data_access(va, len, w);
            d.take_hits()
        };
        assert_eq!(hits(&mut d, 0x1002, 1, true), 0b1, "a byte inside");
        assert_eq!(hits(&mut d, 0x0FFF, 1, true), 0, "the byte before");
        assert_eq!(hits(&mut d, 0x1004, 1, true), 0, "the byte after");
        assert_eq!(
            hits(&mut d, 0x0FFE, 4, true),
            0b1,
            "an access overlapping the start"
        );
        assert_eq!(hits(&mut d, 0x1002, 1, false), 0, "DR0 watches writes only");
        assert_eq!(hits(&mut d, 0x200F, 1, false), 0b10, "DR1 watches reads");
        assert_eq!(hits(&mut d, 0x2010, 8, true), 0, "just past DR1");
        assert_eq!(
            hits(&mut d, 0x3001, 1, false),
            0,
            "DR2 is not a data breakpoint"
        );
        assert_eq!(d.exec_hits(0x3001), 0b100);
        assert_eq!(d.exec_hits(0x3000), 0);
        d.io_access(0x70, 1);
        assert_eq!(d.take_hits(), 0b1000, "port 0x70 inside 0x70..0x72");
        d.io_access(0x72, 4);
        assert_eq!(d.take_hits(), 0);
        assert!(d.watches_writes(0x1FFF) && !d.watches_reads(0x1FFF));
        assert!(d.watches_reads(0x2000) && d.watches_writes(0x2FFF));
        assert!(!d.watches_writes(0x3001));
        // Disabled (no L/G bits): nothing.
        d.dr7 = DR7_INIT | (0b11_01 << 16);
        d.rearm();
        assert_eq!(d.armed, Armed::default());
    }
}

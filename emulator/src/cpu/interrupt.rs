//! Exceptions and interrupts through the IDT in 64-bit mode (SDM Vol. 3A §6.12 and §6.14):
//! gate checks, privilege changes with the stack from the TSS (RSP0 or an IST slot), the
//! 64-bit frame, and double/triple faults (§6.15, interrupt 8).
//!
//! Simplifications, documented in `abi`: there are no task gates, no call gates, no 16/32-bit
//! gates (they raise #GP), and SS is loaded as the null selector on a privilege change, as
//! the SDM specifies for 64-bit mode.

use super::debug::DR7_GD;
use super::flags::{IF, NT, RF, TF};
use super::paging::{Access, STACK_FAULT, canonical};
use super::{Core, DB, DOUBLE_FAULT, Fault, GP, PAGE_FAULT, RSP, Sys};

/// How an event entered: it decides the gate-DPL check and the saved RIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An exception raised by an instruction (its RIP is saved, or the next one for traps).
    Exception,
    /// An external interrupt (from the local APIC).
    External,
    /// `int n` / `int3`: the gate's DPL must allow the current privilege level.
    Software,
}

/// #NP: segment not present.
const NP: u8 = 11;
/// #TS: invalid TSS.
const TS: u8 = 10;

// Code-segment descriptor bits (SDM Vol. 3A §3.4.5, Figure 3-8).
const DESC_S: u64 = 1 << 44;
const DESC_CODE: u64 = 1 << 43;
const DESC_CONFORMING: u64 = 1 << 42;
const DESC_P: u64 = 1 << 47;
const DESC_L: u64 = 1 << 53;
const DESC_DB: u64 = 1 << 54;

/// Whether an exception vector pushes an error code (SDM Vol. 3A Table 6-1).
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

impl Core {
    /// Reads `buf.len()` bytes at linear `va` as an implicit supervisor access (descriptor
    /// tables, the TSS).
    pub(crate) fn read_system(
        &mut self,
        sys: &mut Sys,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        let acc = Access {
            write: false,
            fetch: false,
            user: false,
        };
        for (i, b) in buf.iter_mut().enumerate() {
            let a = va.wrapping_add(i as u64);
            let pa = self.translate(sys, a, acc).inspect_err(|f| {
                if f.vector == PAGE_FAULT {
                    self.cr2 = a;
                }
            })?;
            let mut one = [0u8; 1];
            sys.ram
                .read(pa, &mut one)
                .ok_or(Fault::new(super::MACHINE_CHECK))?;
            *b = one[0];
        }
        Ok(())
    }

    /// The 8-byte GDT descriptor for `selector` (index and table bits), or #GP(selector).
    /// The descriptor's address wraps like any linear address (a non-canonical one faults
    /// in the read).
    pub(crate) fn gdt_descriptor(&mut self, sys: &mut Sys, selector: u16) -> Result<u64, Fault> {
        let index = (selector & !7) as u64;
        if selector & 4 != 0 || index + 7 > self.gdtr.limit as u64 {
            return Err(Fault::with_code(GP, (selector & !3) as u32));
        }
        let mut b = [0u8; 8];
        self.read_system(sys, self.gdtr.base.wrapping_add(index), &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Delivers `vector` through the IDT, in IA-32e mode (SDM Vol. 2A INT n, "IA-32e-MODE",
    /// "TRAP-OR-INTERRUPT-GATE", "INTER-" and "INTRA-PRIVILEGE-LEVEL-INTERRUPT", and its
    /// "64-Bit Mode Exceptions"; Vol. 3A §6.12, §6.14). Error codes carry EXT (bit 0) = 1 for
    /// exceptions and external interrupts, 0 for `int n`/`int3` (§6.13). In order:
    /// - the gate: inside the IDT limit and at a canonical address, a 64-bit interrupt or trap
    ///   gate (#GP, IDT form); for `int n` a DPL ≥ CPL (#GP, IDT form, EXT = 0); present
    ///   (#NP, IDT form);
    /// - its code segment: not null (#GP(EXT)); inside the GDT and at a canonical address, a
    ///   code segment with DPL ≤ CPL, 64-bit (L = 1, D = 0) (#GP(selector + EXT)); present
    ///   (#NP(selector + EXT));
    /// - the stack: the IST slot or RSPn from the TSS (#TS(EXT) without a TSS), then a
    ///   non-canonical stack pointer, or a frame reaching non-canonical addresses, raises
    ///   #SS(EXT) (the new SS is null, so the selector part is 0);
    /// - a non-canonical handler address raises #GP(EXT) (the SDM's "error code contains
    ///   NULL selector"), before anything is pushed.
    ///
    /// A conforming code segment keeps the CPL. Not checked: the TSS limit. On failure the core's state is unchanged and the fault that
    /// stopped the delivery is returned (the caller escalates to #DF).
    pub fn deliver(
        &mut self,
        sys: &mut Sys,
        vector: u8,
        error_code: Option<u32>,
        source: Source,
    ) -> Result<(), Fault> {
        let ext = (source != Source::Software) as u32;
        let gate_error = |v: u8| Fault::with_code(v, (vector as u32) << 3 | 2 | ext);
        let at = vector as u64 * 16;
        let gate_at = self.idtr.base.wrapping_add(at);
        if at + 15 > self.idtr.limit as u64
            || !canonical(gate_at)
            || !canonical(gate_at.wrapping_add(15))
        {
            return Err(gate_error(GP));
        }
        let mut g = [0u8; 16];
        self.read_system(sys, gate_at, &mut g)?;
        let offset = u16::from_le_bytes([g[0], g[1]]) as u64
            | (u16::from_le_bytes([g[6], g[7]]) as u64) << 16
            | (u32::from_le_bytes([g[8], g[9], g[10], g[11]]) as u64) << 32;
        let selector = u16::from_le_bytes([g[2], g[3]]);
        let ist = g[4] & 7;
        let kind = g[5] & 0xF;
        let dpl = (g[5] >> 5) & 3;
        if kind != 0xE && kind != 0xF {
            return Err(gate_error(GP));
        }
        if source == Source::Software && dpl < self.cpl() {
            return Err(gate_error(GP));
        }
        if g[5] & 0x80 == 0 {
            return Err(gate_error(NP));
        }
        // The handler's code segment.
        let selector_error = |v: u8| Fault::with_code(v, (selector & !3) as u32 | ext);
        if selector & !3 == 0 {
            return Err(Fault::with_code(GP, ext));
        }
        let desc_at = self.gdtr.base.wrapping_add((selector & !7) as u64);
        if selector & 4 != 0
            || (selector & !7) as u64 + 7 > self.gdtr.limit as u64
            || !canonical(desc_at)
            || !canonical(desc_at.wrapping_add(7))
        {
            return Err(selector_error(GP));
        }
        let code = self.gdt_descriptor(sys, selector)?;
        let code_dpl = ((code >> 45) & 3) as u8;
        if code & (DESC_S | DESC_CODE) != DESC_S | DESC_CODE || code_dpl > self.cpl() {
            return Err(selector_error(GP));
        }
        // A conforming code segment runs the handler at the current privilege level.
        let new_cpl = if code & DESC_CONFORMING != 0 {
            self.cpl()
        } else {
            code_dpl
        };
        if code & (DESC_L | DESC_DB) != DESC_L {
            return Err(selector_error(GP));
        }
        if code & DESC_P == 0 {
            return Err(selector_error(NP));
        }
        let old = (self.cs, self.ss, self.gpr[RSP], self.rflags, self.rip);
        let mut rsp = old.2;
        if ist != 0 || new_cpl < self.cpl() {
            // RSPn for the new level, or the IST slot (TSS layout, SDM Vol. 3A Figure 8-11).
            let slot = if ist != 0 {
                0x24 + (ist as u64 - 1) * 8
            } else {
                4 + new_cpl as u64 * 8
            };
            if self.tss_base == 0 && self.tr == 0 {
                return Err(Fault::with_code(TS, ext));
            }
            let mut b = [0u8; 8];
            self.read_system(sys, self.tss_base.wrapping_add(slot), &mut b)?;
            rsp = u64::from_le_bytes(b);
        }
        rsp &= !0xF;
        let mut frame = vec![old.1 as u64, old.2, old.3, old.0 as u64, old.4];
        if let Some(e) = error_code {
            frame.push(e as u64);
        }
        // The whole frame lies below the (aligned) stack pointer; RSP = 0 wraps to the top of
        // the address space, which is canonical.
        let bottom = rsp.wrapping_sub(8 * frame.len() as u64);
        if !canonical(rsp) || !canonical(bottom) || !canonical(rsp.wrapping_sub(1)) {
            return Err(Fault::with_code(STACK_FAULT, ext));
        }
        if !canonical(offset) {
            return Err(Fault::with_code(GP, ext));
        }
        let new_ss = if new_cpl < self.cpl() {
            new_cpl as u16
        } else {
            old.1
        };
        self.set_segments((selector & !3) | new_cpl as u16, new_ss);
        self.gpr[RSP] = rsp;
        // The frame's stores are the processor's own: they report no data breakpoints.
        let hits = self.dbg.hits;
        for v in frame {
            if let Err(stop) = self.push64(sys, v) {
                self.set_segments(old.0, old.1);
                self.gpr[RSP] = old.2;
                self.dbg.hits = hits;
                return Err(match stop {
                    super::Stop::Fault(f) => f,
                    _ => Fault::new(DOUBLE_FAULT),
                });
            }
        }
        self.dbg.hits = hits;
        self.rflags &= !(TF | NT | RF | (1 << 17));
        if kind == 0xE {
            self.rflags &= !IF;
        }
        self.rip = offset;
        self.shadow = false;
        Ok(())
    }

    /// Raises a fault-class exception `f` as [`raise_exception`](Self::raise_exception)
    /// does, with RF = 1 in the RFLAGS image it pushes (SDM Vol. 3B §18.3.1.1), so that an
    /// instruction breakpoint at the faulting instruction is not reported again when the
    /// handler returns to it. An instruction-breakpoint #DB is raised with `raise_exception`.
    pub fn raise_fault(&mut self, sys: &mut Sys, f: Fault) -> Result<(), Fault> {
        let rf = self.rflags & RF;
        self.rflags |= RF;
        let r = self.raise_exception(sys, f);
        if r.is_err() {
            self.rflags = (self.rflags & !RF) | rf;
        }
        r
    }

    /// Raises exception `f`: delivers it, or #DF if that fails, or reports a triple fault
    /// (`Err`) if #DF cannot be delivered either (SDM Vol. 3A, interrupt 8 and Table 6-5).
    /// Entering a #DB handler clears DR7.GD, so that the handler may use the debug
    /// registers (SDM Vol. 3B §18.2.4).
    pub fn raise_exception(&mut self, sys: &mut Sys, f: Fault) -> Result<(), Fault> {
        if f.vector == DB {
            self.dbg.dr7 &= !DR7_GD;
        }
        let code = if has_error_code(f.vector) {
            Some(f.error_code.unwrap_or(0))
        } else {
            None
        };
        match self.deliver(sys, f.vector, code, Source::Exception) {
            Ok(()) => Ok(()),
            Err(second) => {
                if f.vector == DOUBLE_FAULT {
                    return Err(f);
                }
                let contributory = |v: u8| matches!(v, 0 | 10..=13);
                let double = (contributory(f.vector) && contributory(second.vector))
                    || (f.vector == PAGE_FAULT
                        && (contributory(second.vector) || second.vector == PAGE_FAULT));
                if double {
                    self.deliver(sys, DOUBLE_FAULT, Some(0), Source::Exception)
                        .map_err(|_| Fault::with_code(DOUBLE_FAULT, 0))
                } else {
                    // A benign first event: the second is handled serially.
                    self.raise_exception(sys, second)
                }
            }
        }
    }
}

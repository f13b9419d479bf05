//! Privilege changes and protected-mode structures in 64-bit mode: INT n / INT3, IRETQ,
//! SYSCALL, SYSRET, LTR, STR, MOV to/from segment registers, and the segment-register loads
//! POP FS/GS shares (SDM Vol. 2A/2B entries of those names; Vol. 3A §3.4.4 for segment loads
//! in IA-32e mode, §5.5–5.8 for the privilege checks, §5.8.8 for SYSCALL/SYSRET, §7.2.3 for
//! the 64-bit TSS).
//!
//! pvmlab has no compatibility mode: a return to a code segment with L = 0 (`iretq` to 32-bit
//! code; `sysret` without REX.W is not resolved at all) raises the "not implemented by
//! pvmlab" #UD instead of running 32-bit code as 64-bit code.

use crate::cpu::flags::*;
use crate::cpu::interrupt::Source;
use crate::cpu::operand::gpr_index;
use crate::cpu::paging::{STACK_FAULT, canonical, stack_fault};
use crate::cpu::{BP, Core, Fault, GP, Handler, Missing, RCX, RSP, Result, Stop, Sys, UD};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    Some(match ins.code() {
        Code::Int3 => int3,
        Code::Int_imm8 => int_n,
        Code::Iretq => iretq,
        Code::Syscall => syscall,
        Code::Sysretq => sysretq,
        Code::Ltr_rm16 | Code::Ltr_r32m16 | Code::Ltr_r64m16 => ltr,
        Code::Str_rm16 | Code::Str_r32m16 | Code::Str_r64m16 => str_,
        _ if ins.mnemonic() == Mnemonic::Mov => {
            let seg = |n: u32| {
                ins.op_kind(n) == OpKind::Register && ins.op_register(n).is_segment_register()
            };
            if seg(0) {
                mov_to_sreg
            } else if seg(1) {
                mov_from_sreg
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

/// #NP, segment not present.
const NOT_PRESENT: u8 = 11;

fn gp0() -> Stop {
    Stop::Fault(Fault::with_code(GP, 0))
}

/// A selector-form error code: the selector with its RPL bits cleared (IDT = EXT = 0),
/// its TI bit kept (SDM Vol. 3A §6.13).
fn selector_fault(vector: u8, sel: u16) -> Stop {
    Stop::Fault(Fault::with_code(vector, (sel & !3) as u32))
}

/// A transfer into a code segment with L = 0: silicon enters compatibility mode, which pvmlab
/// does not model. Raised as the "not implemented by pvmlab" #UD naming compatibility mode, so
/// the run ends with status 127 and a report that says so (or the image's #UD handler sees a
/// #UD, counted as an unimplemented one), never running 32-bit code as 64-bit.
fn compatibility_mode() -> Stop {
    Stop::Fault(Fault::not_implemented(Missing::CompatibilityMode))
}

// Code and data segment descriptors (SDM Vol. 3A §3.4.5, Figure 3-8; Table 3-1 for types).
/// S: a code or data segment (clear: a system descriptor).
const DESC_S: u64 = 1 << 44;
/// Type bit 3: code (clear: data).
const DESC_CODE: u64 = 1 << 43;
/// Type bit 2 of a code segment: conforming.
const DESC_CONFORMING: u64 = 1 << 42;
/// Type bit 1: readable (code) or writable (data).
const DESC_RW: u64 = 1 << 41;
const DESC_P: u64 = 1 << 47;
/// L: 64-bit code segment.
const DESC_L: u64 = 1 << 53;
/// D/B: default operand size 32 (code).
const DESC_DB: u64 = 1 << 54;

fn dpl(d: u64) -> u8 {
    ((d >> 45) & 3) as u8
}

fn is_null(sel: u16) -> bool {
    sel & !3 == 0
}

/// A writable data segment, the only kind SS may hold.
fn writable_data(d: u64) -> bool {
    d & (DESC_S | DESC_CODE | DESC_RW) == DESC_S | DESC_RW
}

/// The 32-bit base of a code/data descriptor, zero-extended (SDM Vol. 3A §3.4.4: loads of FS
/// and GS by selector set base bits 63:32 to 0).
fn base32(d: u64) -> u64 {
    ((d >> 16) & 0xFF_FFFF) | ((d >> 56) << 24)
}

/// Loads DS, ES, FS or GS (`reg`) with `sel`, as MOV and POP do in 64-bit mode (SDM Vol. 2B
/// MOV and POP, "Operation" and "64-Bit Mode Exceptions"). A null selector (index 0, TI 0) is
/// loaded without a descriptor; it zeroes the FS or GS base, as Intel processors do (AMD
/// processors before Zen 2 keep the base; the SDM leaves it to the descriptor load). Any
/// other selector must name a GDT entry (TI = 1 — pvmlab has no LDT — or an index beyond the
/// GDT limit: #GP(selector)) holding a data or readable code segment (#GP(selector)) whose DPL
/// is at least the RPL and the CPL unless it is conforming code (#GP(selector)), present
/// (#NP(selector)). FS and GS then take the descriptor's 32-bit base, zero-extended. Nothing
/// changes when a check faults.
pub(super) fn load_data_segment(c: &mut Core, s: &mut Sys, reg: Register, sel: u16) -> Result<()> {
    let base = if is_null(sel) {
        0
    } else {
        let d = c.gdt_descriptor(s, sel)?;
        let code = d & DESC_CODE != 0;
        if d & DESC_S == 0 || (code && d & DESC_RW == 0) {
            return Err(selector_fault(GP, sel));
        }
        let checked = !code || d & DESC_CONFORMING == 0;
        if checked && ((sel & 3) as u8 > dpl(d) || c.cpl() > dpl(d)) {
            return Err(selector_fault(GP, sel));
        }
        if d & DESC_P == 0 {
            return Err(selector_fault(NOT_PRESENT, sel));
        }
        base32(d)
    };
    match reg {
        Register::DS => c.ds = sel,
        Register::ES => c.es = sel,
        Register::FS => {
            c.fs = sel;
            c.fs_base = base;
        }
        _ => {
            c.gs = sel;
            c.gs_base = base;
        }
    }
    Ok(())
}

/// Loads SS with `sel` as MOV SS does in 64-bit mode (SDM Vol. 2B MOV, "64-Bit Mode
/// Exceptions"): a null selector only below ring 3 and with RPL = CPL (#GP(0) otherwise);
/// any other needs RPL = CPL, a GDT entry holding a writable data segment with DPL = CPL
/// (#GP(selector)), present (#SS(selector)). Loading SS holds interrupts off for one
/// instruction.
fn load_ss(c: &mut Core, s: &mut Sys, sel: u16) -> Result<()> {
    let cpl = c.cpl();
    if is_null(sel) {
        if cpl == 3 || (sel & 3) as u8 != cpl {
            return Err(gp0());
        }
    } else {
        if (sel & 3) as u8 != cpl {
            return Err(selector_fault(GP, sel));
        }
        let d = c.gdt_descriptor(s, sel)?;
        if !writable_data(d) || dpl(d) != cpl {
            return Err(selector_fault(GP, sel));
        }
        if d & DESC_P == 0 {
            return Err(selector_fault(STACK_FAULT, sel));
        }
    }
    c.ss = sel;
    c.shadow = true;
    Ok(())
}

/// A software interrupt: delivered through the IDT with the next instruction's RIP saved;
/// with no IDT it ends the run like any unhandled exception.
fn software(c: &mut Core, s: &mut Sys, vector: u8) -> Result<()> {
    if c.idtr.limit == 0 {
        return Err(Stop::Fault(Fault::new(vector)));
    }
    c.deliver(s, vector, None, Source::Software)
        .map_err(Stop::Fault)
}

fn int3(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    software(c, s, BP)
}

fn int_n(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    software(c, s, ins.immediate8())
}

/// IRETQ in IA-32e mode (SDM Vol. 2A IRET, "IA-32e-MODE", and its "64-Bit Mode
/// Exceptions"), in this order: RFLAGS.NT = 1 is #GP(0) (no task return in IA-32e mode); the
/// five quadwords RIP, CS, RFLAGS, RSP, SS are popped (#SS(0) if non-canonical, #PF); CS:
/// RPL below the CPL #GP(CS), null #GP(0), outside the GDT #GP(CS), not a code segment
/// #GP(CS), nonconforming with DPL ≠ RPL or conforming with DPL > RPL #GP(CS), L = D = 1
/// #GP(CS), not present #NP(CS), L = 0 not implemented (compatibility mode); SS, checked
/// against the new CPL (CS.RPL) on every IRETQ, as 64-bit mode always pops it: null only
/// below ring 3 with RPL = the new CPL (#GP(0)), else RPL = new CPL, a writable data segment
/// with DPL = new CPL (#GP(SS)), present (#NP(SS)); RIP not canonical #GP(0). Then RFLAGS as
/// for POPF plus RF, CS, SS, RSP, RIP; on a return to an outer level, DS, ES, FS and GS
/// become null if they hold a data or nonconforming code segment with DPL below the new CPL
/// (their selectors only: FS/GS bases stay).
fn iretq(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    if c.rflags & NT != 0 {
        return Err(gp0());
    }
    let sp = c.gpr[RSP];
    let mut f = [0u64; 5];
    for (i, v) in f.iter_mut().enumerate() {
        let at = sp.wrapping_add(8 * i as u64);
        *v = c.load::<u64>(s, at).map_err(|e| stack_fault(e, at, 8))?;
    }
    let [rip, cs, flags, rsp, ss] = f;
    let (cs, ss) = (cs as u16, ss as u16);
    let cpl = c.cpl();
    let new_cpl = (cs & 3) as u8;
    if new_cpl < cpl {
        return Err(selector_fault(GP, cs));
    }
    if is_null(cs) {
        return Err(gp0());
    }
    let d = c.gdt_descriptor(s, cs)?;
    if d & (DESC_S | DESC_CODE) != DESC_S | DESC_CODE {
        return Err(selector_fault(GP, cs));
    }
    let bad_dpl = if d & DESC_CONFORMING != 0 {
        dpl(d) > new_cpl
    } else {
        dpl(d) != new_cpl
    };
    if bad_dpl || (d & DESC_L != 0 && d & DESC_DB != 0) {
        return Err(selector_fault(GP, cs));
    }
    if d & DESC_P == 0 {
        return Err(selector_fault(NOT_PRESENT, cs));
    }
    if d & DESC_L == 0 {
        return Err(compatibility_mode());
    }
    if is_null(ss) {
        if new_cpl == 3 || (ss & 3) as u8 != new_cpl {
            return Err(gp0());
        }
    } else {
        if (ss & 3) as u8 != new_cpl {
            return Err(selector_fault(GP, ss));
        }
        let sd = c.gdt_descriptor(s, ss)?;
        if !writable_data(sd) || dpl(sd) != new_cpl {
            return Err(selector_fault(GP, ss));
        }
        if sd & DESC_P == 0 {
            return Err(selector_fault(NOT_PRESENT, ss));
        }
    }
    if !canonical(rip) {
        return Err(gp0());
    }
    // Which flags IRET may change depends on the privilege it runs at (SDM IRET, 64-bit).
    let mut writable = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID | RF;
    if cpl == 0 {
        writable |= IOPL | IF;
    } else if cpl as u64 <= (c.rflags & IOPL) >> 12 {
        writable |= IF;
    }
    if new_cpl > cpl {
        null_inaccessible_segments(c, s, new_cpl);
    }
    c.rflags = (c.rflags & !writable) | (flags & writable) | FIXED1;
    c.set_segments(cs, ss);
    c.gpr[RSP] = rsp;
    c.rip = rip;
    Ok(())
}

/// The last step of IRET to an outer privilege level (SDM Vol. 2A IRET,
/// "RETURN-TO-OUTER-PRIVILEGE-LEVEL"): DS, ES, FS and GS are nulled if their selector is null
/// or their segment is data or nonconforming code with DPL below the new CPL. Silicon tests
/// the descriptor cached when the register was loaded; pvmlab keeps no descriptor caches and
/// reads the GDT entry now, without faulting (a selector whose entry cannot be read stays).
/// Only the selector changes: the FS and GS bases stay.
fn null_inaccessible_segments(c: &mut Core, s: &mut Sys, new_cpl: u8) {
    for reg in [Register::DS, Register::ES, Register::FS, Register::GS] {
        let sel = match reg {
            Register::DS => c.ds,
            Register::ES => c.es,
            Register::FS => c.fs,
            _ => c.gs,
        };
        let invalid = is_null(sel) || {
            let index = (sel & !7) as u64;
            let mut b = [0u8; 8];
            let readable = sel & 4 == 0
                && index + 7 <= c.gdtr.limit as u64
                && c.peek(s, c.gdtr.base.wrapping_add(index), &mut b);
            let d = u64::from_le_bytes(b);
            let data_or_nonconforming = d & DESC_CODE == 0 || d & DESC_CONFORMING == 0;
            readable && d & DESC_S != 0 && data_or_nonconforming && dpl(d) < new_cpl
        };
        if invalid {
            match reg {
                Register::DS => c.ds = 0,
                Register::ES => c.es = 0,
                Register::FS => c.fs = 0,
                _ => c.gs = 0,
            }
        }
    }
}

fn syscall(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    if c.efer & EFER_SCE == 0 {
        return Err(Stop::Fault(Fault::new(UD)));
    }
    c.gpr[RCX] = c.rip;
    c.gpr[11] = c.rflags & !RF;
    c.rflags = (c.rflags & !c.fmask & !RF) | FIXED1;
    // Selector arithmetic wraps at 16 bits, whatever STAR holds.
    let sel = ((c.star >> 32) & 0xFFFC) as u16;
    c.set_segments(sel, sel.wrapping_add(8));
    c.rip = c.lstar;
    Ok(())
}

fn sysretq(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    if c.efer & EFER_SCE == 0 {
        return Err(Stop::Fault(Fault::new(UD)));
    }
    if c.cpl() != 0 {
        return Err(gp0());
    }
    let target = c.gpr[RCX];
    // Intel raises #GP in ring 0 for a non-canonical return address (the AMD behaviour of
    // faulting in ring 3 is the well-known hazard; pvmlab follows Intel).
    if !canonical(target) {
        return Err(gp0());
    }
    let base = ((c.star >> 48) & 0xFFFF) as u16;
    c.rflags = (c.gpr[11] & 0x3C_7FD7) | FIXED1;
    c.set_segments(base.wrapping_add(16) | 3, base.wrapping_add(8) | 3);
    c.rip = target;
    Ok(())
}

fn ltr(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    if c.cpl() != 0 {
        return Err(gp0());
    }
    let sel = c
        .read_op::<16>(s, ins, 0)
        .map_err(|e| c.memory_operand_fault(ins, e))? as u16;
    if sel & !3 == 0 {
        return Err(gp0());
    }
    let lo = c.gdt_descriptor(s, sel).map_err(Stop::Fault)?;
    // A 64-bit TSS descriptor is 16 bytes, all inside the GDT: the high half holds base bits
    // 63:32.
    if (sel & !7) as u64 + 15 > c.gdtr.limit as u64 {
        return Err(selector_fault(GP, sel));
    }
    let hi = c.gdt_descriptor(s, sel + 8).map_err(Stop::Fault)?;
    if (lo >> 40) & 0x1F != 0x9 {
        // Not an available 64-bit TSS (a system descriptor, S = 0, of type 9).
        return Err(selector_fault(GP, sel));
    }
    if lo & DESC_P == 0 {
        return Err(selector_fault(NOT_PRESENT, sel));
    }
    let base = base32(lo) | (hi << 32);
    // Mark it busy, as LTR does.
    let at = c.gdtr.base.wrapping_add((sel & !7) as u64 + 5);
    let busy = ((lo >> 40) as u8) | 0x2;
    c.store::<u8>(s, at, busy)?;
    c.tr = sel;
    c.tss_base = base;
    Ok(())
}

fn str_(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = c.tr as u64;
    if ins.op0_kind() == OpKind::Register {
        c.gpr[gpr_index(ins.op0_register())] = v;
        Ok(())
    } else {
        c.write_op::<16>(s, ins, 0, v)
            .map_err(|e| c.memory_operand_fault(ins, e))
    }
}

fn mov_to_sreg(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let sel = c
        .read_op::<16>(s, ins, 1)
        .map_err(|e| c.memory_operand_fault(ins, e))? as u16;
    match ins.op0_register() {
        Register::SS => load_ss(c, s, sel),
        Register::CS => Err(Stop::Fault(Fault::new(UD))),
        r => load_data_segment(c, s, r, sel),
    }
}

fn mov_from_sreg(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = match ins.op1_register() {
        Register::CS => c.cs,
        Register::SS => c.ss,
        Register::DS => c.ds,
        Register::ES => c.es,
        Register::FS => c.fs,
        _ => c.gs,
    } as u64;
    if ins.op0_kind() == OpKind::Register {
        // A register destination of 32/64 bits is zero-extended.
        let r = ins.op0_register();
        match r.size() {
            2 => c.set_reg::<16>(r, v),
            4 => c.set_reg::<32>(r, v),
            _ => c.set_reg::<64>(r, v),
        }
        Ok(())
    } else {
        c.write_op::<16>(s, ins, 0, v)
            .map_err(|e| c.memory_operand_fault(ins, e))
    }
}

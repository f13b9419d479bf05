//! Privilege changes and protected-mode structures in 64-bit mode: INT n / INT3, IRETQ,
//! SYSCALL, SYSRET, LTR, STR, MOV to/from segment registers (SDM Vol. 2A/2B entries of those
//! names; Vol. 3A §5.8.8 for SYSCALL/SYSRET, §7.2.3 for the 64-bit TSS).

use crate::cpu::flags::*;
use crate::cpu::interrupt::Source;
use crate::cpu::operand::gpr_index;
use crate::cpu::{BP, Core, Fault, GP, Handler, RCX, RSP, Result, Stop, Sys, UD};
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

fn gp0() -> Stop {
    Stop::Fault(Fault::with_code(GP, 0))
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

fn iretq(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let sp = c.gpr[RSP];
    let mut f = [0u64; 5];
    for (i, v) in f.iter_mut().enumerate() {
        *v = c.load::<u64>(s, sp.wrapping_add(8 * i as u64))?;
    }
    let [rip, cs, flags, rsp, ss] = f;
    let (cs, ss) = (cs as u16, ss as u16);
    let new_cpl = (cs & 3) as u8;
    if new_cpl < c.cpl() || cs & !3 == 0 {
        return Err(Stop::Fault(Fault::with_code(GP, (cs & !3) as u32)));
    }
    if (((rip as i64) << 16) >> 16) as u64 != rip {
        return Err(gp0());
    }
    // Which flags IRET may change depends on the privilege it runs at (SDM IRET, 64-bit).
    let mut writable = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID | RF;
    if c.cpl() == 0 {
        writable |= IOPL | IF;
    } else if c.cpl() as u64 <= (c.rflags & IOPL) >> 12 {
        writable |= IF;
    }
    c.rflags = (c.rflags & !writable) | (flags & writable) | FIXED1;
    c.set_segments(cs, ss);
    c.gpr[RSP] = rsp;
    c.rip = rip;
    Ok(())
}

fn syscall(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    if c.efer & EFER_SCE == 0 {
        return Err(Stop::Fault(Fault::new(UD)));
    }
    c.gpr[RCX] = c.rip;
    c.gpr[11] = c.rflags & !RF;
    c.rflags = (c.rflags & !c.fmask & !RF) | FIXED1;
    let sel = ((c.star >> 32) & 0xFFFC) as u16;
    c.set_segments(sel, sel + 8);
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
    if (((target as i64) << 16) >> 16) as u64 != target {
        return Err(gp0());
    }
    let base = ((c.star >> 48) & 0xFFFF) as u16;
    c.rflags = (c.gpr[11] & 0x3C_7FD7) | FIXED1;
    c.set_segments((base + 16) | 3, (base + 8) | 3);
    c.rip = target;
    Ok(())
}

fn ltr(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    if c.cpl() != 0 {
        return Err(gp0());
    }
    let sel = c.read_op::<16>(s, ins, 0)? as u16;
    if sel & !3 == 0 {
        return Err(gp0());
    }
    let lo = c.gdt_descriptor(s, sel).map_err(Stop::Fault)?;
    // A 64-bit TSS descriptor is 16 bytes: the high half holds base bits 63:32.
    let hi = c.gdt_descriptor(s, sel + 8).map_err(Stop::Fault)?;
    if (lo >> 40) & 0xF != 0x9 {
        // Not an available 64-bit TSS.
        return Err(Stop::Fault(Fault::with_code(GP, (sel & !3) as u32)));
    }
    if lo & (1 << 47) == 0 {
        return Err(Stop::Fault(Fault::with_code(11, (sel & !3) as u32)));
    }
    let base = ((lo >> 16) & 0xFF_FFFF) | ((lo >> 56) << 24) | (hi << 32);
    // Mark it busy, as LTR does.
    let at = c.gdtr.base + (sel & !7) as u64 + 5;
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
    }
}

fn mov_to_sreg(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let sel = c.read_op::<16>(s, ins, 1)? as u16;
    match ins.op0_register() {
        Register::SS => {
            // A null SS is allowed only below ring 3 in 64-bit mode; otherwise its RPL must
            // equal the CPL.
            if (sel & !3 == 0 && c.cpl() == 3) || (sel & !3 != 0 && (sel & 3) as u8 != c.cpl()) {
                return Err(Stop::Fault(Fault::with_code(GP, (sel & !3) as u32)));
            }
            if sel & !3 != 0 {
                c.gdt_descriptor(s, sel).map_err(Stop::Fault)?;
            }
            c.ss = sel;
            // Loading SS holds off interrupts for one instruction (SDM MOV, "MOV SS").
            c.shadow = true;
        }
        Register::CS => return Err(Stop::Fault(Fault::new(UD))),
        r => {
            if sel & !3 != 0 {
                c.gdt_descriptor(s, sel).map_err(Stop::Fault)?;
            }
            match r {
                Register::DS => c.ds = sel,
                Register::ES => c.es = sel,
                // Loading FS/GS by selector loads the base from the descriptor: zero for the
                // flat descriptors pvmlab's images use (bases beyond 4 GiB come from MSRs).
                Register::FS => {
                    c.fs = sel;
                    c.fs_base = 0;
                }
                _ => {
                    c.gs = sel;
                    c.gs_base = 0;
                }
            }
        }
    }
    Ok(())
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
    }
}

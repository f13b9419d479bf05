//! Stack: PUSH, POP, PUSHFQ, POPFQ, LEAVE, ENTER (SDM Vol. 2B). 64-bit mode pushes 8 bytes
//! (or 2 with a 0x66 prefix); 32-bit pushes do not exist in long mode.
//!
//! Segment registers: PUSH FS/GS push the selector zero-extended to 8 bytes (2 with 0x66),
//! POP FS/GS pop 8 (or 2) bytes and load the low 16 as MOV FS/GS does, checks and base
//! included (`privileged::load_data_segment`), leaving RSP unchanged if the load faults.
//! PUSH CS/DS/ES/SS and POP DS/ES/SS are invalid in 64-bit mode: iced decodes them as invalid
//! (#UD).
//!
//! Every stack access goes through SS: a non-canonical address raises #SS(0)
//! (`paging::stack_fault`); a memory operand does so when its own segment is SS.

use crate::cpu::operand::gpr_index;
use crate::cpu::paging::{operand_fault, stack_fault};
use crate::cpu::{
    AC, AF, CF, Core, DF, FIXED1, Handler, ID, IF, IOPL, NT, OF, PF, RBP, RSP, Result, SF, Sys, TF,
    ZF,
};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    Some(match ins.code() {
        Code::Pushq_FS | Code::Pushq_GS => push_sreg::<8>,
        Code::Pushw_FS | Code::Pushw_GS => push_sreg::<2>,
        Code::Popq_FS | Code::Popq_GS => pop_sreg::<8>,
        Code::Popw_FS | Code::Popw_GS => pop_sreg::<2>,
        _ => match ins.mnemonic() {
            Mnemonic::Push => match (ins.op0_kind(), ins.code()) {
                (OpKind::Register, _) if ins.op0_register().is_segment_register() => {
                    return None;
                }
                (OpKind::Register, _) if ins.op0_register().size() == 8 => push_r64,
                (OpKind::Register, _) if ins.op0_register().size() == 2 => push16,
                (OpKind::Memory, _) if ins.memory_size().size() == 8 => push_m64,
                (OpKind::Memory, _) => push16,
                (_, Code::Pushq_imm8 | Code::Pushq_imm32) => push_imm,
                (_, Code::Pushw_imm8 | Code::Push_imm16) => push16,
                _ => return None,
            },
            Mnemonic::Pop => match ins.op0_kind() {
                OpKind::Register if ins.op0_register().is_segment_register() => return None,
                OpKind::Register if ins.op0_register().size() == 8 => pop_r64,
                OpKind::Register if ins.op0_register().size() == 2 => pop16,
                OpKind::Memory if ins.memory_size().size() == 8 => pop_m64,
                OpKind::Memory => pop16,
                _ => return None,
            },
            Mnemonic::Pushfq => pushfq,
            Mnemonic::Popfq => popfq,
            Mnemonic::Pushf => pushfw,
            Mnemonic::Popf => popfw,
            Mnemonic::Leave if ins.code() == Code::Leaveq => leave,
            Mnemonic::Leave if ins.code() == Code::Leavew => leavew,
            Mnemonic::Enter if ins.code() == Code::Enterq_imm16_imm8 => enter::<8>,
            Mnemonic::Enter if ins.code() == Code::Enterw_imm16_imm8 => enter::<2>,
            _ => return None,
        },
    })
}

/// Pushes `v` (8 bytes), #SS(0) if the slot is not canonical.
#[inline(always)]
fn push(c: &mut Core, s: &mut Sys, v: u64) -> Result<()> {
    c.push64(s, v)
        .map_err(|e| stack_fault(e, c.gpr[RSP].wrapping_sub(8), 8))
}

/// Pops 8 bytes, #SS(0) if the slot is not canonical.
#[inline(always)]
fn pop(c: &mut Core, s: &mut Sys) -> Result<u64> {
    c.pop64(s).map_err(|e| stack_fault(e, c.gpr[RSP], 8))
}

/// Pushes the low 16 bits of `v` (a 0x66-prefixed push).
fn push_word(c: &mut Core, s: &mut Sys, v: u64) -> Result<()> {
    let sp = c.gpr[RSP].wrapping_sub(2);
    c.store::<u16>(s, sp, v as u16)
        .map_err(|e| stack_fault(e, sp, 2))?;
    c.gpr[RSP] = sp;
    Ok(())
}

/// Reads the 16-bit word on top of the stack, without popping it.
fn top_word(c: &mut Core, s: &mut Sys) -> Result<u64> {
    let sp = c.gpr[RSP];
    Ok(c.load::<u16>(s, sp).map_err(|e| stack_fault(e, sp, 2))? as u64)
}

fn push_r64(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = c.gpr[gpr_index(ins.op0_register())];
    push(c, s, v)
}

fn push_imm(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    push(c, s, ins.immediate(0))
}

fn push_m64(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    let v = c
        .load::<u64>(s, a)
        .map_err(|e| operand_fault(ins, e, a, 8))?;
    push(c, s, v)
}

fn push16(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = c
        .read_op::<16>(s, ins, 0)
        .map_err(|e| c.memory_operand_fault(ins, e))?;
    push_word(c, s, v)
}

/// PUSH FS/GS: the selector, zero-extended to `W` bytes (SDM PUSH: "If the source operand is
/// a segment register (16 bits) and the operand size is 64-bits, a zero-extended value is
/// pushed on the stack").
fn push_sreg<const W: u64>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = if ins.op0_register() == Register::FS {
        c.fs
    } else {
        c.gs
    } as u64;
    if W == 8 {
        push(c, s, v)
    } else {
        push_word(c, s, v)
    }
}

/// POP FS/GS: `W` bytes popped, the low 16 loaded as MOV FS/GS would (SDM POP: the selector
/// and descriptor are validated and loaded); RSP moves only if the load succeeds.
fn pop_sreg<const W: u64>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let sel = if W == 8 {
        let sp = c.gpr[RSP];
        c.load::<u64>(s, sp).map_err(|e| stack_fault(e, sp, 8))?
    } else {
        top_word(c, s)?
    } as u16;
    super::privileged::load_data_segment(c, s, ins.op0_register(), sel)?;
    c.gpr[RSP] = c.gpr[RSP].wrapping_add(W);
    Ok(())
}

fn pop_r64(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = pop(c, s)?;
    c.gpr[gpr_index(ins.op0_register())] = v;
    Ok(())
}

fn pop_m64(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    // The address is computed after RSP is incremented (SDM POP: "If the destination operand
    // uses RSP as a base register, the value is computed after the pop").
    let old = c.gpr[RSP];
    let v = c.load::<u64>(s, old).map_err(|e| stack_fault(e, old, 8))?;
    c.gpr[RSP] = old.wrapping_add(8);
    let a = c.ea(ins);
    if let Err(e) = c.store::<u64>(s, a, v) {
        c.gpr[RSP] = old;
        return Err(operand_fault(ins, e, a, 8));
    }
    Ok(())
}

fn pop16(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = top_word(c, s)?;
    let old = c.gpr[RSP];
    c.gpr[RSP] = old.wrapping_add(2);
    let a = if ins.op0_kind() == OpKind::Memory {
        c.ea(ins)
    } else {
        0
    };
    if let Err(e) = c.write_op::<16>(s, ins, 0, v) {
        c.gpr[RSP] = old;
        return Err(operand_fault(ins, e, a, 2));
    }
    Ok(())
}

fn pushfq(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    // RF and VM are pushed as 0 (SDM PUSHF).
    let v = c.rflags & !((1 << 16) | (1 << 17));
    push(c, s, v)
}

/// PUSHF with a 0x66 prefix: the low 16 bits of RFLAGS.
fn pushfw(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    push_word(c, s, c.rflags)
}

/// POPF with a 0x66 prefix: only the low 16 bits of RFLAGS can change.
fn popfw(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let v = top_word(c, s)?;
    c.gpr[RSP] = c.gpr[RSP].wrapping_add(2);
    set_popped_flags(c, v, 0xFFFF);
    Ok(())
}

fn popfq(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let v = pop(c, s)?;
    set_popped_flags(c, v, u64::MAX);
    Ok(())
}

fn set_popped_flags(c: &mut Core, v: u64, width: u64) {
    // At CPL 0 every flag but VM/VIF/VIP/RF may change (SDM POPF, 64-bit mode).
    let mut writable = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID;
    if c.cpl() == 0 {
        writable |= IF | IOPL;
    } else if c.cpl() as u64 <= (c.rflags & IOPL) >> 12 {
        writable |= IF;
    }
    writable &= width;
    let old = c.rflags;
    c.rflags = (c.rflags & !writable) | (v & writable) | FIXED1;
    if (old ^ c.rflags) & AC != 0 {
        // Alignment checking follows RFLAGS.AC.
        c.sync_tlb_mode();
    }
}

fn leave(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let bp = c.gpr[RBP];
    let v = c.load::<u64>(s, bp).map_err(|e| stack_fault(e, bp, 8))?;
    c.gpr[RSP] = c.gpr[RBP].wrapping_add(8);
    c.gpr[RBP] = v;
    Ok(())
}

/// LEAVE with a 0x66 prefix: SP = BP, then BP = a 16-bit pop; RSP's upper bits are kept.
fn leavew(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let bp = c.gpr[RBP];
    let v = c.load::<u16>(s, bp).map_err(|e| stack_fault(e, bp, 2))?;
    c.gpr[RSP] = c.gpr[RBP].wrapping_add(2);
    c.gpr[RBP] = (c.gpr[RBP] & !0xFFFF) | v as u64;
    Ok(())
}

/// ENTER: pushes of `W` bytes (8, or 2 with a 0x66 prefix), nesting level mod 32.
fn enter<const W: u64>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let size = ins.immediate16() as u64;
    let level = (ins.immediate8_2nd() % 32) as u64;
    let old = (c.gpr[RSP], c.gpr[RBP]);
    let push = |c: &mut Core, s: &mut Sys, v: u64| -> Result<()> {
        let sp = c.gpr[RSP].wrapping_sub(W);
        if W == 8 {
            c.store::<u64>(s, sp, v)
        } else {
            c.store::<u16>(s, sp, v as u16)
        }
        .map_err(|e| stack_fault(e, sp, W))?;
        c.gpr[RSP] = sp;
        Ok(())
    };
    let result = (|| {
        push(c, s, c.gpr[RBP])?;
        let frame = c.gpr[RSP];
        if level > 0 {
            for i in 1..level {
                let at = c.gpr[RBP].wrapping_sub(W * i);
                let v = if W == 8 {
                    c.load::<u64>(s, at)
                } else {
                    c.load::<u16>(s, at).map(u64::from)
                }
                .map_err(|e| stack_fault(e, at, W))?;
                push(c, s, v)?;
            }
            push(c, s, frame)?;
        }
        if W == 8 {
            c.gpr[RBP] = frame;
        } else {
            c.gpr[RBP] = (c.gpr[RBP] & !0xFFFF) | (frame & 0xFFFF);
        }
        c.gpr[RSP] = c.gpr[RSP].wrapping_sub(size);
        Ok(())
    })();
    if result.is_err() {
        (c.gpr[RSP], c.gpr[RBP]) = old;
    }
    result
}

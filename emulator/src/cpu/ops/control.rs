//! Control transfer: JMP, Jcc, CALL, RET, LOOP/LOOPE/LOOPNE, JRCXZ/JECXZ (SDM Vol. 2A/2B).
//! Near forms only; far transfers are not implemented (they would need compatibility mode
//! and call gates), so they raise the "not implemented by pvmlab" #UD.
//!
//! A branch to a non-canonical address raises #GP(0) at the branch, which does not complete:
//! RIP, RSP and RCX stay as before it (SDM Vol. 2A JMP, CALL, RET, LOOP, Jcc, "64-Bit Mode
//! Exceptions"). Indirect targets and return addresses are checked when they are taken; the
//! target of a relative branch is a constant, checked once at decode time, and a branch whose
//! target is not canonical gets the handler [`noncanonical`] instead. Stack accesses through
//! a non-canonical RSP raise #SS(0) (`paging::stack_fault`).

use crate::cpu::operand::gpr_index;
use crate::cpu::paging::{canonical, operand_fault, stack_fault};
use crate::cpu::{Core, Fault, GP, Handler, RCX, RSP, Result, Stop, Sys, ZF, condition};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    let handler = resolve_canonical(ins)?;
    if ins.op0_kind() == OpKind::NearBranch64 && !canonical(ins.near_branch64()) {
        return Some(noncanonical);
    }
    Some(handler)
}

fn resolve_canonical(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Jmp => match ins.op0_kind() {
            OpKind::NearBranch64 => jmp,
            OpKind::Register if ins.op0_register().size() == 8 => jmp_reg,
            OpKind::Memory if ins.memory_size().size() == 8 => jmp_mem,
            _ => return None,
        },
        Mnemonic::Jo
        | Mnemonic::Jno
        | Mnemonic::Jb
        | Mnemonic::Jae
        | Mnemonic::Je
        | Mnemonic::Jne
        | Mnemonic::Jbe
        | Mnemonic::Ja
        | Mnemonic::Js
        | Mnemonic::Jns
        | Mnemonic::Jp
        | Mnemonic::Jnp
        | Mnemonic::Jl
        | Mnemonic::Jge
        | Mnemonic::Jle
        | Mnemonic::Jg
            if ins.op0_kind() == OpKind::NearBranch64 =>
        {
            jcc
        }
        Mnemonic::Call => match ins.op0_kind() {
            OpKind::NearBranch64 => call,
            OpKind::Register if ins.op0_register().size() == 8 => call_reg,
            OpKind::Memory if ins.memory_size().size() == 8 => call_mem,
            _ => return None,
        },
        Mnemonic::Ret => match ins.code() {
            Code::Retnq => ret,
            Code::Retnq_imm16 => ret_imm,
            _ => return None,
        },
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne
            if ins.op0_kind() == OpKind::NearBranch64 =>
        {
            if is_addr32(ins) {
                loop_::<32>
            } else {
                loop_::<64>
            }
        }
        Mnemonic::Jrcxz => jrcxz::<64>,
        Mnemonic::Jecxz => jrcxz::<32>,
        _ => return None,
    })
}

fn is_addr32(ins: &Instruction) -> bool {
    // LOOP with a 0x67 prefix counts in ECX.
    matches!(
        ins.code(),
        Code::Loop_rel8_64_ECX | Code::Loope_rel8_64_ECX | Code::Loopne_rel8_64_ECX
    )
}

fn gp0() -> Stop {
    Stop::Fault(Fault::with_code(GP, 0))
}

/// A relative branch whose target is not canonical: #GP(0) if it would be taken; if not, it
/// does what it does when not taken (LOOP still counts).
fn noncanonical(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let count = || {
        if is_addr32(ins) {
            (c.gpr[RCX] as u32).wrapping_sub(1) as u64
        } else {
            c.gpr[RCX].wrapping_sub(1)
        }
    };
    let zf = c.rflags & ZF != 0;
    let taken = match ins.mnemonic() {
        Mnemonic::Jmp | Mnemonic::Call => true,
        Mnemonic::Loop => count() != 0,
        Mnemonic::Loope => count() != 0 && zf,
        Mnemonic::Loopne => count() != 0 && !zf,
        Mnemonic::Jrcxz => c.gpr[RCX] == 0,
        Mnemonic::Jecxz => c.gpr[RCX] as u32 == 0,
        _ => condition(ins.condition_code(), c.rflags),
    };
    if taken {
        return Err(gp0());
    }
    match ins.mnemonic() {
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne if is_addr32(ins) => {
            loop_::<32>(c, s, ins)
        }
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => loop_::<64>(c, s, ins),
        _ => Ok(()),
    }
}

/// RIP ← `target`, or #GP(0) (the branch does not happen) if it is not canonical.
#[inline(always)]
fn branch(c: &mut Core, target: u64) -> Result<()> {
    if !canonical(target) {
        return Err(gp0());
    }
    c.rip = target;
    Ok(())
}

/// Pushes the return address, #SS(0) if the slot is not canonical.
#[inline(always)]
fn push_return(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    c.push64(s, ins.next_ip())
        .map_err(|e| stack_fault(e, c.gpr[RSP].wrapping_sub(8), 8))
}

/// The 8-byte target of `jmp`/`call [m]`.
#[inline(always)]
fn memory_target(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<u64> {
    let a = c.ea(ins);
    c.load::<u64>(s, a).map_err(|e| operand_fault(ins, e, a, 8))
}

fn jmp(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    c.rip = ins.near_branch64();
    Ok(())
}

fn jmp_reg(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    branch(c, c.gpr[gpr_index(ins.op0_register())])
}

fn jmp_mem(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let target = memory_target(c, s, ins)?;
    branch(c, target)
}

fn jcc(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    if condition(ins.condition_code(), c.rflags) {
        c.rip = ins.near_branch64();
    }
    Ok(())
}

fn call(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    push_return(c, s, ins)?;
    c.rip = ins.near_branch64();
    Ok(())
}

/// An indirect call checks its target before pushing (SDM CALL: "IF tempRIP is not canonical
/// THEN #GP(0)" precedes the push).
fn call_reg(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let target = c.gpr[gpr_index(ins.op0_register())];
    if !canonical(target) {
        return Err(gp0());
    }
    push_return(c, s, ins)?;
    c.rip = target;
    Ok(())
}

fn call_mem(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let target = memory_target(c, s, ins)?;
    if !canonical(target) {
        return Err(gp0());
    }
    push_return(c, s, ins)?;
    c.rip = target;
    Ok(())
}

/// Pops the return address; RSP moves only if it is canonical.
#[inline(always)]
fn pop_return(c: &mut Core, s: &mut Sys, extra: u64) -> Result<()> {
    let sp = c.gpr[RSP];
    let target = c.load::<u64>(s, sp).map_err(|e| stack_fault(e, sp, 8))?;
    branch(c, target)?;
    c.gpr[RSP] = sp.wrapping_add(8).wrapping_add(extra);
    Ok(())
}

fn ret(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    pop_return(c, s, 0)
}

fn ret_imm(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    pop_return(c, s, ins.immediate16() as u64)
}

fn loop_<const BITS: u32>(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let count = if BITS == 32 {
        let n = (c.gpr[RCX] as u32).wrapping_sub(1);
        c.gpr[RCX] = n as u64;
        n as u64
    } else {
        c.gpr[RCX] = c.gpr[RCX].wrapping_sub(1);
        c.gpr[RCX]
    };
    let zf = c.rflags & ZF != 0;
    let take = count != 0
        && match ins.mnemonic() {
            Mnemonic::Loope => zf,
            Mnemonic::Loopne => !zf,
            _ => true,
        };
    if take {
        c.rip = ins.near_branch64();
    }
    Ok(())
}

fn jrcxz<const BITS: u32>(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let zero = if BITS == 32 {
        c.gpr[RCX] as u32 == 0
    } else {
        c.gpr[RCX] == 0
    };
    if zero {
        c.rip = ins.near_branch64();
    }
    Ok(())
}

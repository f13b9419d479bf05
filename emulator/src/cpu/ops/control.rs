//! Control transfer: JMP, Jcc, CALL, RET, LOOP/LOOPE/LOOPNE, JRCXZ/JECXZ (SDM Vol. 2A/2B).
//! Near forms only; far transfers change privilege and come with the privileged platform.

use crate::cpu::operand::gpr_index;
use crate::cpu::{Core, Handler, RCX, RSP, Result, Sys, ZF, condition};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
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

fn jmp(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    c.rip = ins.near_branch64();
    Ok(())
}

fn jmp_reg(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    c.rip = c.gpr[gpr_index(ins.op0_register())];
    Ok(())
}

fn jmp_mem(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    c.rip = c.load::<u64>(s, a)?;
    Ok(())
}

fn jcc(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    if condition(ins.condition_code(), c.rflags) {
        c.rip = ins.near_branch64();
    }
    Ok(())
}

fn call(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    c.push64(s, ins.next_ip())?;
    c.rip = ins.near_branch64();
    Ok(())
}

fn call_reg(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let target = c.gpr[gpr_index(ins.op0_register())];
    c.push64(s, ins.next_ip())?;
    c.rip = target;
    Ok(())
}

fn call_mem(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    let target = c.load::<u64>(s, a)?;
    c.push64(s, ins.next_ip())?;
    c.rip = target;
    Ok(())
}

fn ret(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    c.rip = c.pop64(s)?;
    Ok(())
}

fn ret_imm(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    c.rip = c.pop64(s)?;
    c.gpr[RSP] = c.gpr[RSP].wrapping_add(ins.immediate16() as u64);
    Ok(())
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

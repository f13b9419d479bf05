//! Data movement: MOV, MOVZX, MOVSX, MOVSXD, LEA, CMOVcc, SETcc, BSWAP, CBW/CWDE/CDQE,
//! CWD/CDQ/CQO, NOP and ENDBR64 (SDM Vol. 2A/2B, entries of the same names).

use super::by_width;
use crate::cpu::operand::gpr_index;
use crate::cpu::{Core, Handler, Result, Sys, condition, sext};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    let reg0 = ins.op0_kind() == OpKind::Register;
    let reg1 = ins.op_count() > 1 && ins.op1_kind() == OpKind::Register;
    Some(match ins.mnemonic() {
        Mnemonic::Mov => {
            // Moves to and from control, debug and segment registers are system instructions.
            for n in 0..ins.op_count() {
                if ins.op_kind(n) == OpKind::Register && !ins.op_register(n).is_gpr() {
                    return None;
                }
            }
            let size = if reg0 {
                ins.op0_register().size()
            } else {
                ins.memory_size().size()
            };
            match (size, reg0, ins.op1_kind()) {
                (8, true, OpKind::Register) => mov_rr64,
                (8, true, OpKind::Memory) => mov_rm::<64>,
                (8, false, OpKind::Register) => mov_mr::<64>,
                (4, true, OpKind::Register) => mov_rr32,
                (4, true, OpKind::Memory) => mov_rm::<32>,
                (4, false, OpKind::Register) => mov_mr::<32>,
                (8 | 4, true, _) => mov_ri,
                _ => return by_width!(ins, 0, mov),
            }
        }
        Mnemonic::Movzx => match (
            ins.op0_register().size(),
            ins.memory_size().size().max(op_size(ins, 1)),
        ) {
            (2, 1) => movzx::<16, 8>,
            (4, 1) => movzx::<32, 8>,
            (8, 1) => movzx::<64, 8>,
            (4, 2) => movzx::<32, 16>,
            (8, 2) => movzx::<64, 16>,
            (2, 2) => movzx::<16, 16>,
            _ => return None,
        },
        Mnemonic::Movsx | Mnemonic::Movsxd => match (ins.op0_register().size(), op_size(ins, 1)) {
            (2, 1) => movsx::<16, 8>,
            (4, 1) => movsx::<32, 8>,
            (8, 1) => movsx::<64, 8>,
            (2, 2) => movsx::<16, 16>,
            (4, 2) => movsx::<32, 16>,
            (8, 2) => movsx::<64, 16>,
            (8, 4) => movsx::<64, 32>,
            (4, 4) => movsx::<32, 32>,
            _ => return None,
        },
        Mnemonic::Lea => match ins.op0_register().size() {
            8 => lea::<64>,
            4 => lea::<32>,
            _ => lea::<16>,
        },
        Mnemonic::Cmovo
        | Mnemonic::Cmovno
        | Mnemonic::Cmovb
        | Mnemonic::Cmovae
        | Mnemonic::Cmove
        | Mnemonic::Cmovne
        | Mnemonic::Cmovbe
        | Mnemonic::Cmova
        | Mnemonic::Cmovs
        | Mnemonic::Cmovns
        | Mnemonic::Cmovp
        | Mnemonic::Cmovnp
        | Mnemonic::Cmovl
        | Mnemonic::Cmovge
        | Mnemonic::Cmovle
        | Mnemonic::Cmovg => match (ins.op0_register().size(), reg1) {
            (8, true) => cmov_rr64,
            (8, false) => cmov::<64>,
            (4, _) => cmov::<32>,
            _ => cmov::<16>,
        },
        Mnemonic::Seto
        | Mnemonic::Setno
        | Mnemonic::Setb
        | Mnemonic::Setae
        | Mnemonic::Sete
        | Mnemonic::Setne
        | Mnemonic::Setbe
        | Mnemonic::Seta
        | Mnemonic::Sets
        | Mnemonic::Setns
        | Mnemonic::Setp
        | Mnemonic::Setnp
        | Mnemonic::Setl
        | Mnemonic::Setge
        | Mnemonic::Setle
        | Mnemonic::Setg => setcc,
        Mnemonic::Bswap => match ins.op0_register().size() {
            8 => bswap::<64>,
            4 => bswap::<32>,
            // BSWAP of a 16-bit register is undefined (SDM); silicon writes zero.
            _ => bswap::<16>,
        },
        Mnemonic::Cbw => extend_acc::<8>,
        Mnemonic::Cwde => extend_acc::<16>,
        Mnemonic::Cdqe => extend_acc::<32>,
        Mnemonic::Cwd => sign_to_dx::<16>,
        Mnemonic::Cdq => sign_to_dx::<32>,
        Mnemonic::Cqo => sign_to_dx::<64>,
        Mnemonic::Nop | Mnemonic::Endbr64 | Mnemonic::Endbr32 => nop,
        Mnemonic::Xlatb => xlat,
        _ => return None,
    })
}

fn op_size(ins: &Instruction, n: u32) -> usize {
    if ins.op_kind(n) == OpKind::Register {
        ins.op_register(n).size()
    } else {
        ins.memory_size().size()
    }
}

fn nop(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Ok(())
}

/// XLAT: AL = [rBX + zero-extended AL] (segment override honoured by `ea`'s base).
fn xlat(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins).wrapping_add(c.gpr[0] & 0xFF);
    let v = c.load::<u8>(s, a)?;
    c.set_reg::<8>(Register::AL, v as u64);
    Ok(())
}

fn mov<const BITS: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = c.read_op::<BITS>(s, ins, 1)?;
    c.write_op::<BITS>(s, ins, 0, v)
}

fn mov_rr64(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    c.gpr[gpr_index(ins.op0_register())] = c.gpr[gpr_index(ins.op1_register())];
    Ok(())
}

fn mov_rr32(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    c.gpr[gpr_index(ins.op0_register())] = c.gpr[gpr_index(ins.op1_register())] as u32 as u64;
    Ok(())
}

fn mov_ri(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    // 32-bit immediates to 32-bit registers zero-extend; `mov r/m64, imm32` sign-extends
    // (iced has already sign-extended it).
    let v = if ins.op0_register().size() == 4 {
        ins.immediate(1) as u32 as u64
    } else {
        ins.immediate(1)
    };
    c.gpr[gpr_index(ins.op0_register())] = v;
    Ok(())
}

fn mov_rm<const BITS: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    let v = c.load_bits::<BITS>(s, a)?;
    c.gpr[gpr_index(ins.op0_register())] = v;
    Ok(())
}

fn mov_mr<const BITS: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    let v = c.gpr[gpr_index(ins.op1_register())];
    c.store_bits::<BITS>(s, a, v)
}

fn movzx<const D: u32, const S: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = c.read_op::<S>(s, ins, 1)?;
    c.set_reg::<D>(ins.op0_register(), v);
    Ok(())
}

fn movsx<const D: u32, const S: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = sext(c.read_op::<S>(s, ins, 1)?, S);
    c.set_reg::<D>(ins.op0_register(), v);
    Ok(())
}

fn lea<const BITS: u32>(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.offset(ins);
    c.set_reg::<BITS>(ins.op0_register(), a);
    Ok(())
}

fn cmov_rr64(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    if condition(ins.condition_code(), c.rflags) {
        c.gpr[gpr_index(ins.op0_register())] = c.gpr[gpr_index(ins.op1_register())];
    }
    Ok(())
}

fn cmov<const BITS: u32>(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    // The source is read (and may fault) whatever the condition; a 32-bit destination is
    // zero-extended even when the move does not happen (SDM CMOVcc, 64-bit mode).
    let v = c.read_op::<BITS>(s, ins, 1)?;
    let d = ins.op0_register();
    let v = if condition(ins.condition_code(), c.rflags) {
        v
    } else {
        c.reg::<BITS>(d)
    };
    c.set_reg::<BITS>(d, v);
    Ok(())
}

fn setcc(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = condition(ins.condition_code(), c.rflags) as u64;
    c.write_op::<8>(s, ins, 0, v)
}

fn bswap<const BITS: u32>(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let r = ins.op0_register();
    let v = c.reg::<BITS>(r);
    let v = match BITS {
        64 => v.swap_bytes(),
        32 => (v as u32).swap_bytes() as u64,
        _ => 0,
    };
    c.set_reg::<BITS>(r, v);
    Ok(())
}

/// CBW/CWDE/CDQE: sign-extend the low `FROM` bits of rAX into twice the width.
fn extend_acc<const FROM: u32>(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    let v = sext(c.gpr[0], FROM);
    match FROM {
        8 => c.set_reg::<16>(Register::AX, v),
        16 => c.set_reg::<32>(Register::EAX, v),
        _ => c.gpr[0] = v,
    }
    Ok(())
}

/// CWD/CDQ/CQO: fill rDX with the sign of rAX.
fn sign_to_dx<const BITS: u32>(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    let fill = if c.gpr[0] & crate::cpu::sign(BITS) != 0 {
        u64::MAX
    } else {
        0
    };
    match BITS {
        16 => c.set_reg::<16>(Register::DX, fill),
        32 => c.set_reg::<32>(Register::EDX, fill),
        _ => c.gpr[2] = fill,
    }
    Ok(())
}

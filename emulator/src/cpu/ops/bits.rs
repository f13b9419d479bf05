//! Bit test and scan (SDM Vol. 2A: BT, BTS, BTR, BTC, BSF, BSR) at 16/32/64 bits.
//!
//! - BT*: the bit offset is a register or an 8-bit immediate. With a register destination or
//!   an immediate offset, the offset is taken modulo the operand width. With a memory
//!   destination and a register offset, the offset is a signed bit-string index: the operand
//!   accessed is the one `(offset >> log2(width)) * width/8` bytes from the effective address
//!   (SDM BT, "Bit(BitBase, BitOffset)"), at the operand width. CF gets the bit; ZF is
//!   unchanged; OF, SF, AF and PF are undefined and left unchanged.
//! - BSF/BSR: a zero source sets ZF and leaves the destination untouched (all 64 bits, as AMD
//!   documents; Intel documents it as undefined); otherwise ZF is cleared. CF, OF, SF, AF and
//!   PF are undefined; they come out as on the AMD host of the differential oracle (measured):
//!   CF = OF = SF = AF = 0, PF = parity of the bit index (PF = 1 for a zero source).
//! - TZCNT (F3 0F BC) and LZCNT (F3 0F BD) run as BSF and BSR: pvmlab's CPUID advertises
//!   neither BMI1 nor LZCNT, and on such a CPU the F3 prefix is ignored (rustc emits
//!   `rep bsf` relying on this).
//! - POPCNT is not advertised and stays unimplemented (#UD).

use super::alu::{get, op_bits, sel};
use crate::cpu::flags::{CF, PF, ZF, sext, szp};
use crate::cpu::{Core, Handler, Result, Sys};
use iced_x86::{Instruction, Mnemonic, OpKind};

const BT: u8 = 0;
const BTS: u8 = 1;
const BTR: u8 = 2;
const BTC: u8 = 3;

/// The operand with bit `n` set, reset or complemented, and the old bit.
#[inline(always)]
fn modify<const OP: u8>(v: u64, n: u32) -> (u64, u64) {
    let b = 1u64 << n;
    let old = (v >> n) & 1;
    let r = match OP {
        BTS => v | b,
        BTR => v & !b,
        BTC => v ^ b,
        _ => v,
    };
    (r, old)
}

/// BT* with a register destination; offset register (`IMM` false) or immediate.
fn bt_r<const OP: u8, const IMM: bool, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let off = if IMM {
        ins.immediate8() as u64
    } else {
        core.reg::<BITS>(ins.op1_register())
    };
    let reg = ins.op0_register();
    let v = core.reg::<BITS>(reg);
    let (r, old) = modify::<OP>(v, (off & (BITS as u64 - 1)) as u32);
    if OP != BT {
        core.set_reg::<BITS>(reg, r);
    }
    core.rflags = (core.rflags & !CF) | old;
    Ok(())
}

/// BT* with a memory destination; offset register (bit string) or immediate.
fn bt_m<const OP: u8, const IMM: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let mut ea = core.ea(ins);
    let n = if IMM {
        ins.immediate8() as u32 & (BITS - 1)
    } else {
        let off = sext(core.reg::<BITS>(ins.op1_register()), BITS) as i64;
        ea = ea.wrapping_add(((off >> BITS.trailing_zeros()) * (BITS as i64 / 8)) as u64);
        (off & (BITS as i64 - 1)) as u32
    };
    let v = core.load_bits::<BITS>(sys, ea)?;
    let (r, old) = modify::<OP>(v, n);
    if OP != BT {
        core.store_bits::<BITS>(sys, ea, r)?;
    }
    core.rflags = (core.rflags & !CF) | old;
    Ok(())
}

/// BSF (`REV` false) or BSR, register destination, register or memory source.
fn bsx<const REV: bool, const MEM: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let v = get::<MEM, BITS>(core, sys, ins, 1)?;
    if v == 0 {
        core.set_status(ZF | PF);
        return Ok(());
    }
    let n = if REV {
        63 - v.leading_zeros()
    } else {
        v.trailing_zeros()
    } as u64;
    core.set_reg::<BITS>(ins.op0_register(), n);
    core.set_status(szp(n, BITS) & PF);
    Ok(())
}

fn bt<const OP: u8>(ins: &Instruction) -> Option<Handler> {
    if ins.op_count() != 2 {
        return None;
    }
    if super::alu::bad_lock(ins, OP != BT) {
        return Some(super::invalid);
    }
    let bits = op_bits(ins, 0);
    let imm = match ins.op1_kind() {
        OpKind::Register => false,
        OpKind::Immediate8 => true,
        _ => return None,
    };
    Some(match (ins.op0_kind() == OpKind::Memory, imm) {
        (false, false) => sel!(bits, bt_r, OP, false),
        (false, true) => sel!(bits, bt_r, OP, true),
        (true, false) => sel!(bits, bt_m, OP, false),
        (true, true) => sel!(bits, bt_m, OP, true),
    })
}

fn scan<const REV: bool>(ins: &Instruction) -> Option<Handler> {
    if ins.op_count() != 2 || ins.op0_kind() != OpKind::Register {
        return None;
    }
    let bits = op_bits(ins, 0);
    Some(if ins.op1_kind() == OpKind::Memory {
        sel!(bits, bsx, REV, true)
    } else {
        sel!(bits, bsx, REV, false)
    })
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    match ins.mnemonic() {
        Mnemonic::Bt => bt::<BT>(ins),
        Mnemonic::Bts => bt::<BTS>(ins),
        Mnemonic::Btr => bt::<BTR>(ins),
        Mnemonic::Btc => bt::<BTC>(ins),
        Mnemonic::Bsf | Mnemonic::Tzcnt => scan::<false>(ins),
        Mnemonic::Bsr | Mnemonic::Lzcnt => scan::<true>(ins),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::alu::testing::*;
    use crate::cpu::*;

    #[test]
    fn bit_tests() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 0b1010;
        c.gpr[RCX] = 65; // bit 1 of a 64-bit register
        exec(&mut c, &mut s, &[0x48, 0x0f, 0xa3, 0xc8]).unwrap(); // bt rax, rcx
        assert!(c.flag(CF));
        exec(&mut c, &mut s, &[0x48, 0x0f, 0xba, 0xf0, 0x03]).unwrap(); // btr rax, 3
        assert!(c.flag(CF));
        assert_eq!(c.gpr[RAX], 0b0010);
        exec(&mut c, &mut s, &[0x0f, 0xba, 0xe8, 0x1f]).unwrap(); // bts eax, 31
        assert!(!c.flag(CF));
        assert_eq!(c.gpr[RAX], 0x8000_0002);
        // Memory bit string: bit -1 relative to DATA is bit 31 of the dword at DATA - 4.
        c.gpr[RDI] = DATA;
        c.gpr[RCX] = u64::MAX;
        exec(&mut c, &mut s, &[0xf0, 0x0f, 0xab, 0x0f]).unwrap(); // lock bts [rdi], ecx
        assert_eq!(c.load::<u32>(&mut s, DATA - 4).unwrap(), 0x8000_0000);
        assert!(!c.flag(CF));
        c.gpr[RCX] = 100; // qword 1, bit 36
        exec(&mut c, &mut s, &[0x48, 0x0f, 0xbb, 0x0f]).unwrap(); // btc [rdi], rcx
        assert_eq!(c.load::<u64>(&mut s, DATA + 8).unwrap(), 1 << 36);
        exec(&mut c, &mut s, &[0x0f, 0xba, 0x27, 0x44]).unwrap(); // bt dword [rdi], 0x44 -> bit 4
        assert!(!c.flag(CF));
    }

    #[test]
    fn bit_scans() {
        let (mut c, mut s) = machine();
        c.gpr[RCX] = 0x0000_0100_0000_0000;
        c.gpr[RAX] = 0x5555;
        exec(&mut c, &mut s, &[0x48, 0x0f, 0xbc, 0xc1]).unwrap(); // bsf rax, rcx
        assert_eq!(c.gpr[RAX], 40);
        assert!(!c.flag(ZF));
        exec(&mut c, &mut s, &[0xf3, 0x48, 0x0f, 0xbd, 0xc1]).unwrap(); // lzcnt = bsr
        assert_eq!(c.gpr[RAX], 40);
        c.gpr[RCX] = 0;
        c.gpr[RAX] = 0xFFFF_FFFF_1234_5678;
        exec(&mut c, &mut s, &[0xf3, 0x0f, 0xbc, 0xc1]).unwrap(); // tzcnt eax, ecx = bsf
        assert_eq!(c.gpr[RAX], 0xFFFF_FFFF_1234_5678);
        assert!(c.flag(ZF));
        c.gpr[RCX] = 0x8001;
        exec(&mut c, &mut s, &[0x66, 0x0f, 0xbd, 0xc1]).unwrap(); // bsr ax, cx
        assert_eq!(c.gpr[RAX], 0xFFFF_FFFF_1234_000F);
        // popcnt is not implemented
        let e = run_code(&mut c, &mut s, &[0xf3, 0x0f, 0xb8, 0xc1], 1);
        assert!(matches!(e, Some(Stop::Fault(f)) if f.unimplemented));
    }
}

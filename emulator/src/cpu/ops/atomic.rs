//! Exchanges and compare-exchanges (SDM Vol. 2A/2C: XCHG, XADD, CMPXCHG, CMPXCHG8B).
//!
//! One host thread runs every core, so a read-modify-write is atomic by construction; XCHG
//! with memory is implicitly locked and the LOCK forms behave as the plain ones.
//!
//! - XCHG: all forms (`xchg r/m, r` and `xchg r, rAX`); 32-bit forms zero-extend both
//!   registers, `xchg eax, eax` (87 C0) included (90 is NOP and not decoded as XCHG).
//! - XADD: DEST ← DEST + SRC, SRC ← old DEST (in that order of effect: with the same register
//!   twice the sum wins); flags as ADD.
//! - CMPXCHG: flags as `CMP accumulator, DEST`. Equal: DEST ← SRC. Not equal: the accumulator
//!   gets DEST; a memory DEST is written back with its own value (SDM: the destination always
//!   receives a write cycle); a register DEST is left untouched — not even zero-extended for
//!   32 bits (what hardware does, unlike the SDM pseudo-code).
//! - CMPXCHG8B: EDX:EAX against m64; equal: ZF ← 1, m64 ← ECX:EBX; not equal: ZF ← 0,
//!   EDX:EAX ← m64 (zero-extending RDX and RAX), m64 written back. Only ZF changes.
//! - CMPXCHG16B is left unimplemented (#UD): CPUID does not advertise CX16.

use super::alu::{op_bits, sel};
use crate::cpu::flags::{ZF, add_flags, mask, sub_flags};
use crate::cpu::{Core, Handler, RAX, RBX, RCX, RDX, Result, Sys};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

fn xchg_rr<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let (r0, r1) = (ins.op0_register(), ins.op1_register());
    let a = core.reg::<BITS>(r0);
    let b = core.reg::<BITS>(r1);
    core.set_reg::<BITS>(r0, b);
    core.set_reg::<BITS>(r1, a);
    Ok(())
}

/// XCHG m, r (memory is operand 0; iced also reports `xchg r, m` that way round).
fn xchg_mr<const BITS: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let ea = core.ea(ins);
    let m = core.load_bits::<BITS>(sys, ea)?;
    let r = core.reg::<BITS>(ins.op1_register());
    core.store_bits::<BITS>(sys, ea, r)?;
    core.set_reg::<BITS>(ins.op1_register(), m);
    Ok(())
}

fn xadd_rr<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let (d, s) = (ins.op0_register(), ins.op1_register());
    let a = core.reg::<BITS>(d);
    let b = core.reg::<BITS>(s);
    let r = a.wrapping_add(b) & mask(BITS);
    core.set_reg::<BITS>(s, a);
    core.set_reg::<BITS>(d, r);
    core.set_status(add_flags(a, b, r, 0, BITS));
    Ok(())
}

fn xadd_mr<const BITS: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let s = ins.op1_register();
    let b = core.reg::<BITS>(s);
    let r = a.wrapping_add(b) & mask(BITS);
    core.store_bits::<BITS>(sys, ea, r)?;
    core.set_reg::<BITS>(s, a);
    core.set_status(add_flags(a, b, r, 0, BITS));
    Ok(())
}

fn cmpxchg_rr<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    let acc = core.gpr[RAX] & mask(BITS);
    let d = core.reg::<BITS>(ins.op0_register());
    let r = acc.wrapping_sub(d) & mask(BITS);
    let f = sub_flags(acc, d, r, 0, BITS);
    if acc == d {
        let s = core.reg::<BITS>(ins.op1_register());
        core.set_reg::<BITS>(ins.op0_register(), s);
    } else {
        set_acc::<BITS>(core, d);
    }
    core.set_status(f);
    Ok(())
}

fn cmpxchg_mr<const BITS: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let ea = core.ea(ins);
    let d = core.load_bits::<BITS>(sys, ea)?;
    let acc = core.gpr[RAX] & mask(BITS);
    let r = acc.wrapping_sub(d) & mask(BITS);
    let f = sub_flags(acc, d, r, 0, BITS);
    if acc == d {
        let s = core.reg::<BITS>(ins.op1_register());
        core.store_bits::<BITS>(sys, ea, s)?;
    } else {
        core.store_bits::<BITS>(sys, ea, d)?;
        set_acc::<BITS>(core, d);
    }
    core.set_status(f);
    Ok(())
}

/// Writes AL/AX/EAX/RAX.
#[inline(always)]
fn set_acc<const BITS: u32>(core: &mut Core, v: u64) {
    let g = &mut core.gpr[RAX];
    *g = match BITS {
        64 => v,
        32 => v & 0xFFFF_FFFF,
        _ => (*g & !mask(BITS)) | v,
    };
}

fn cmpxchg8b(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let ea = core.ea(ins);
    let m = core.load::<u64>(sys, ea)?;
    let expected = (core.gpr[RDX] & 0xFFFF_FFFF) << 32 | (core.gpr[RAX] & 0xFFFF_FFFF);
    if m == expected {
        let new = (core.gpr[RCX] & 0xFFFF_FFFF) << 32 | (core.gpr[RBX] & 0xFFFF_FFFF);
        core.store::<u64>(sys, ea, new)?;
        core.rflags |= ZF;
    } else {
        core.store::<u64>(sys, ea, m)?;
        core.gpr[RAX] = m & 0xFFFF_FFFF;
        core.gpr[RDX] = m >> 32;
        core.rflags &= !ZF;
    }
    Ok(())
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    let (rr, mr): (Handler, Handler) = match ins.mnemonic() {
        Mnemonic::Xchg => {
            let bits = op_bits(ins, 1);
            (sel!(bits, xchg_rr), sel!(bits, xchg_mr))
        }
        Mnemonic::Xadd => {
            let bits = op_bits(ins, 1);
            (sel!(bits, xadd_rr), sel!(bits, xadd_mr))
        }
        Mnemonic::Cmpxchg => {
            let bits = op_bits(ins, 1);
            (sel!(bits, cmpxchg_rr), sel!(bits, cmpxchg_mr))
        }
        Mnemonic::Cmpxchg8b if ins.code() == Code::Cmpxchg8b_m64 => {
            return (ins.op0_kind() == OpKind::Memory).then_some(cmpxchg8b as Handler);
        }
        _ => return None,
    };
    if ins.op_count() != 2 || ins.op1_kind() != OpKind::Register {
        return None;
    }
    match ins.op0_kind() {
        OpKind::Register if !ins.has_lock_prefix() => Some(rr),
        OpKind::Register => Some(super::invalid),
        OpKind::Memory => Some(mr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::alu::testing::*;
    use crate::cpu::*;

    #[test]
    fn xchg_forms() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 0xFFFF_FFFF_0000_0001;
        exec(&mut c, &mut s, &[0x87, 0xc0]).unwrap(); // xchg eax, eax zero-extends
        assert_eq!(c.gpr[RAX], 1);
        c.gpr[8] = 0x1111_2222_3333_4444;
        exec(&mut c, &mut s, &[0x49, 0x90]).unwrap(); // xchg r8, rax
        assert_eq!((c.gpr[RAX], c.gpr[8]), (0x1111_2222_3333_4444, 1));
        c.gpr[RDI] = DATA;
        c.store::<u16>(&mut s, DATA, 0xBEEF).unwrap();
        exec(&mut c, &mut s, &[0x66, 0x87, 0x07]).unwrap(); // xchg [rdi], ax
        assert_eq!(c.load::<u16>(&mut s, DATA).unwrap(), 0x4444);
        assert_eq!(c.gpr[RAX], 0x1111_2222_3333_BEEF);
        c.gpr[RBX] = 0x12;
        exec(&mut c, &mut s, &[0x86, 0xfb]).unwrap(); // xchg bl, bh
        assert_eq!(c.gpr[RBX], 0x1200);
    }

    #[test]
    fn xadd_cmpxchg() {
        let (mut c, mut s) = machine();
        c.gpr[RDI] = DATA;
        c.store::<u64>(&mut s, DATA, 10).unwrap();
        c.gpr[RCX] = 5;
        exec(&mut c, &mut s, &[0xf0, 0x48, 0x0f, 0xc1, 0x0f]).unwrap(); // lock xadd [rdi], rcx
        assert_eq!((c.load::<u64>(&mut s, DATA).unwrap(), c.gpr[RCX]), (15, 10));
        c.gpr[RAX] = 7;
        exec(&mut c, &mut s, &[0x0f, 0xc1, 0xc0]).unwrap(); // xadd eax, eax
        assert_eq!(c.gpr[RAX], 14);
        // cmpxchg failure: RAX gets the memory value, memory unchanged, ZF clear.
        c.gpr[RAX] = 1;
        c.gpr[RDX] = 99;
        exec(&mut c, &mut s, &[0xf0, 0x48, 0x0f, 0xb1, 0x17]).unwrap(); // lock cmpxchg [rdi], rdx
        assert_eq!((c.gpr[RAX], c.load::<u64>(&mut s, DATA).unwrap()), (15, 15));
        assert!(!c.flag(ZF) && c.flag(CF));
        exec(&mut c, &mut s, &[0xf0, 0x48, 0x0f, 0xb1, 0x17]).unwrap();
        assert_eq!(c.load::<u64>(&mut s, DATA).unwrap(), 99);
        assert!(c.flag(ZF));
        // Register destination, 32 bits, failure: destination untouched.
        c.gpr[RBX] = 0xFFFF_FFFF_0000_0005;
        c.gpr[RAX] = 0xAAAA_AAAA_0000_0004;
        exec(&mut c, &mut s, &[0x0f, 0xb1, 0xcb]).unwrap(); // cmpxchg ebx, ecx
        assert_eq!((c.gpr[RAX], c.gpr[RBX]), (5, 0xFFFF_FFFF_0000_0005));
        exec(&mut c, &mut s, &[0x0f, 0xb1, 0xcb]).unwrap(); // now equal: ebx <- ecx
        assert_eq!(c.gpr[RBX], c.gpr[RCX] & 0xFFFF_FFFF);
    }

    #[test]
    fn cmpxchg8b_and_16b() {
        let (mut c, mut s) = machine();
        c.gpr[RDI] = DATA;
        c.store::<u64>(&mut s, DATA, 0x1_0000_0002).unwrap();
        c.gpr[RDX] = 0xFFFF_FFFF_0000_0001;
        c.gpr[RAX] = 0xFFFF_FFFF_0000_0002;
        c.gpr[RCX] = 0xA;
        c.gpr[RBX] = 0xB;
        exec(&mut c, &mut s, &[0xf0, 0x0f, 0xc7, 0x0f]).unwrap();
        assert!(c.flag(ZF));
        assert_eq!(c.load::<u64>(&mut s, DATA).unwrap(), 0xA_0000_000B);
        assert_eq!(c.gpr[RDX], 0xFFFF_FFFF_0000_0001);
        exec(&mut c, &mut s, &[0xf0, 0x0f, 0xc7, 0x0f]).unwrap();
        assert!(!c.flag(ZF));
        assert_eq!((c.gpr[RDX], c.gpr[RAX]), (0xA, 0xB));
        let e = run_code(&mut c, &mut s, &[0xf0, 0x48, 0x0f, 0xc7, 0x0f], 1);
        assert!(matches!(e, Some(Stop::Fault(f)) if f.vector == UD && f.unimplemented));
    }
}

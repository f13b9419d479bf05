//! Multiplication and division (SDM Vol. 2A/2B: MUL, IMUL in its one-, two- and three-operand
//! forms, DIV, IDIV) at 8/16/32/64 bits, register or memory source.
//!
//! One-operand forms use AL/AX/EAX/RAX and AH/DX/EDX/RDX (the 8-bit forms AX = AH:AL);
//! 64-bit products and dividends use u128/i128. DIV and IDIV raise #DE on a zero divisor or a
//! quotient that does not fit (IDIV of the minimum by -1 included) before writing anything.
//!
//! Undefined flags match the AMD EPYC host of the differential oracle, measured natively (the
//! oracle masks them anyway):
//! - MUL/IMUL: CF = OF as the SDM says; SF, ZF, AF and PF are left unchanged.
//! - DIV/IDIV: SF = ZF = PF = 0, AF = 1, CF and OF unchanged.

use super::alu::{get, is_imm8, op_bits, sel};
use crate::cpu::flags::{AF, CF, OF, PF, SF, ZF, mask, sext};
use crate::cpu::{Core, DE, Fault, Handler, RAX, RDX, Result, Stop, Sys};
use iced_x86::{Instruction, Mnemonic, OpKind};

const MUL: u8 = 0;
const IMUL: u8 = 1;
const DIV: u8 = 2;
const IDIV: u8 = 3;

/// Sets CF and OF after a multiplication; the other status flags stay as they were.
#[inline(always)]
fn mul_flags(core: &mut Core, overflow: bool) {
    core.rflags = (core.rflags & !(CF | OF)) | if overflow { CF | OF } else { 0 };
}

/// The (undefined) status flags after a division: SF = ZF = PF = 0, AF = 1, CF/OF kept.
#[inline(always)]
fn div_flags(core: &mut Core) {
    core.rflags = (core.rflags & !(SF | ZF | PF)) | AF;
}

/// Writes the `BITS`-bit halves of a one-operand result: AL/AH for 8 bits (AX), else the
/// accumulator and RDX/EDX/DX with the usual partial-register rules.
#[inline(always)]
fn write_pair<const BITS: u32>(core: &mut Core, lo: u64, hi: u64) {
    match BITS {
        8 => core.gpr[RAX] = (core.gpr[RAX] & !0xFFFF) | (hi & 0xFF) << 8 | (lo & 0xFF),
        16 => {
            core.gpr[RAX] = (core.gpr[RAX] & !0xFFFF) | (lo & 0xFFFF);
            core.gpr[RDX] = (core.gpr[RDX] & !0xFFFF) | (hi & 0xFFFF);
        }
        32 => {
            core.gpr[RAX] = lo & 0xFFFF_FFFF;
            core.gpr[RDX] = hi & 0xFFFF_FFFF;
        }
        _ => {
            core.gpr[RAX] = lo;
            core.gpr[RDX] = hi;
        }
    }
}

/// The high half of the dividend / product pair: AH for 8 bits, else DX/EDX/RDX.
#[inline(always)]
fn high<const BITS: u32>(core: &Core) -> u64 {
    if BITS == 8 {
        (core.gpr[RAX] >> 8) & 0xFF
    } else {
        core.gpr[RDX] & mask(BITS)
    }
}

#[inline(always)]
fn de() -> Stop {
    Stop::Fault(Fault::new(DE))
}

/// MUL/IMUL/DIV/IDIV r/m (one operand).
fn one<const OP: u8, const MEM: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let src = get::<MEM, BITS>(core, sys, ins, 0)?;
    let m = mask(BITS);
    let acc = core.gpr[RAX] & m;
    match OP {
        MUL => {
            let p = acc as u128 * src as u128;
            let (lo, hi) = (p as u64 & m, (p >> BITS) as u64 & m);
            write_pair::<BITS>(core, lo, hi);
            mul_flags(core, hi != 0);
        }
        IMUL => {
            let p = sext(acc, BITS) as i64 as i128 * sext(src, BITS) as i64 as i128;
            let lo = p as u64 & m;
            let hi = (p >> BITS) as u64 & m;
            let overflow = p != sext(lo, BITS) as i64 as i128;
            write_pair::<BITS>(core, lo, hi);
            mul_flags(core, overflow);
        }
        DIV => {
            if src == 0 {
                return Err(de());
            }
            let hi = high::<BITS>(core);
            let (q, r) = if BITS == 64 {
                if hi == 0 {
                    (acc / src, acc % src)
                } else if hi >= src {
                    return Err(de());
                } else {
                    let n = (hi as u128) << 64 | acc as u128;
                    ((n / src as u128) as u64, (n % src as u128) as u64)
                }
            } else {
                let n = hi << BITS | acc;
                let q = n / src;
                if q > m {
                    return Err(de());
                }
                (q, n % src)
            };
            write_pair::<BITS>(core, q, r);
            div_flags(core);
        }
        _ => {
            if src == 0 {
                return Err(de());
            }
            let hi = high::<BITS>(core);
            let d = sext(src, BITS) as i64;
            let (q, r) = if BITS == 64 {
                if hi == ((acc as i64) >> 63) as u64 {
                    // The dividend fits in 64 bits.
                    let n = acc as i64;
                    match (n.checked_div(d), n.checked_rem(d)) {
                        (Some(q), Some(r)) => (q, r),
                        _ => return Err(de()),
                    }
                } else {
                    let n = ((hi as u128) << 64 | acc as u128) as i128;
                    let q = n.checked_div(d as i128).ok_or_else(de)?;
                    if q != q as i64 as i128 {
                        return Err(de());
                    }
                    (q as i64, (n % d as i128) as i64)
                }
            } else {
                // Only i64::MIN / -1 (32-bit operands) wraps, to a quotient out of range.
                let n = sext(hi << BITS | acc, 2 * BITS) as i64;
                let q = n.wrapping_div(d);
                if q != sext(q as u64 & m, BITS) as i64 {
                    return Err(de());
                }
                (q, n.wrapping_rem(d))
            };
            write_pair::<BITS>(core, q as u64 & m, r as u64 & m);
            div_flags(core);
        }
    }
    Ok(())
}

/// The truncated signed product and whether it overflowed `BITS`.
#[inline(always)]
fn imul_trunc<const BITS: u32>(a: u64, b: u64) -> (u64, bool) {
    if BITS == 64 {
        let (p, o) = (a as i64).overflowing_mul(b as i64);
        (p as u64, o)
    } else {
        let p = sext(a, BITS) as i64 * sext(b, BITS) as i64;
        let lo = p as u64 & mask(BITS);
        (lo, p != sext(lo, BITS) as i64)
    }
}

/// IMUL r, r/m.
fn imul2<const MEM: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let b = get::<MEM, BITS>(core, sys, ins, 1)?;
    let a = core.reg::<BITS>(ins.op0_register());
    let (r, o) = imul_trunc::<BITS>(a, b);
    core.set_reg::<BITS>(ins.op0_register(), r);
    mul_flags(core, o);
    Ok(())
}

/// IMUL r, r/m, imm.
fn imul3<const MEM: bool, const IMM8: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let a = get::<MEM, BITS>(core, sys, ins, 1)?;
    let b = super::alu::imm::<IMM8>(ins) & mask(BITS);
    let (r, o) = imul_trunc::<BITS>(a, b);
    core.set_reg::<BITS>(ins.op0_register(), r);
    mul_flags(core, o);
    Ok(())
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    let op = match ins.mnemonic() {
        Mnemonic::Mul => MUL,
        Mnemonic::Imul => IMUL,
        Mnemonic::Div => DIV,
        Mnemonic::Idiv => IDIV,
        _ => return None,
    };
    let n = ins.op_count();
    if ins.has_lock_prefix() {
        return Some(super::invalid);
    }
    if n == 1 {
        let bits = op_bits(ins, 0);
        let mem = ins.op0_kind() == OpKind::Memory;
        return Some(match (op, mem) {
            (MUL, false) => sel!(bits, one, MUL, false),
            (MUL, true) => sel!(bits, one, MUL, true),
            (IMUL, false) => sel!(bits, one, IMUL, false),
            (IMUL, true) => sel!(bits, one, IMUL, true),
            (DIV, false) => sel!(bits, one, DIV, false),
            (DIV, true) => sel!(bits, one, DIV, true),
            (_, false) => sel!(bits, one, IDIV, false),
            (_, true) => sel!(bits, one, IDIV, true),
        });
    }
    if op != IMUL || ins.op0_kind() != OpKind::Register {
        return None;
    }
    let bits = op_bits(ins, 0);
    let mem = ins.op1_kind() == OpKind::Memory;
    match n {
        2 => Some(if mem {
            sel!(bits, imul2, true)
        } else {
            sel!(bits, imul2, false)
        }),
        3 => Some(match (mem, is_imm8(ins, 2)) {
            (false, false) => sel!(bits, imul3, false, false),
            (false, true) => sel!(bits, imul3, false, true),
            (true, false) => sel!(bits, imul3, true, false),
            (true, true) => sel!(bits, imul3, true, true),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::alu::testing::*;
    use crate::cpu::*;

    fn is_de(r: Result<()>) -> bool {
        matches!(r, Err(Stop::Fault(f)) if f.vector == DE)
    }

    #[test]
    fn mul_forms() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 0xFFFF_FFFF_FFFF_FF80;
        c.gpr[RBX] = 2;
        exec(&mut c, &mut s, &[0xf6, 0xe3]).unwrap(); // mul bl
        assert_eq!(c.gpr[RAX], 0xFFFF_FFFF_FFFF_0100);
        assert!(c.flag(CF) && c.flag(OF));
        c.gpr[RAX] = u64::MAX;
        c.gpr[RBX] = u64::MAX;
        exec(&mut c, &mut s, &[0x48, 0xf7, 0xe3]).unwrap(); // mul rbx
        assert_eq!((c.gpr[RDX], c.gpr[RAX]), (u64::MAX - 1, 1));
        c.gpr[RAX] = u64::MAX; // -1
        exec(&mut c, &mut s, &[0x48, 0xf7, 0xeb]).unwrap(); // imul rbx: (-1)(-1)
        assert_eq!((c.gpr[RDX], c.gpr[RAX]), (0, 1));
        assert!(!c.flag(CF) && !c.flag(OF));
        c.gpr[RAX] = 0xDEAD_0000_0001_0000;
        c.gpr[RDX] = 0xDEAD_0000_0000_0000;
        exec(&mut c, &mut s, &[0xf7, 0xe0]).unwrap(); // mul eax: 2^32
        assert_eq!((c.gpr[RDX], c.gpr[RAX]), (1, 0));
        assert!(c.flag(CF) && c.flag(OF));
        c.gpr[RCX] = 0x4000_0000_0000_0000;
        exec(&mut c, &mut s, &[0x48, 0x6b, 0xc1, 0x02]).unwrap(); // imul rax, rcx, 2
        assert_eq!(c.gpr[RAX], 0x8000_0000_0000_0000);
        assert!(c.flag(OF) && c.flag(CF));
        c.gpr[RAX] = 3;
        c.gpr[RCX] = (-5i64) as u64;
        exec(&mut c, &mut s, &[0x0f, 0xaf, 0xc1]).unwrap(); // imul eax, ecx
        assert_eq!(c.gpr[RAX], (-15i32) as u32 as u64);
        assert!(!c.flag(OF));
        c.gpr[RDI] = DATA;
        c.store::<u16>(&mut s, DATA, 300).unwrap();
        exec(&mut c, &mut s, &[0x66, 0x69, 0x07, 0xe8, 0x03]).unwrap(); // imul ax, [rdi], 1000
        assert_eq!(c.gpr[RAX] & 0xFFFF, (300_000u32 & 0xFFFF) as u64);
        assert!(c.flag(OF));
    }

    #[test]
    fn div_forms() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 1000;
        c.gpr[RBX] = 7;
        exec(&mut c, &mut s, &[0xf6, 0xf3]).unwrap(); // div bl: 1000/7 = 142 r 6
        assert_eq!(c.gpr[RAX], 6 << 8 | 142);
        c.gpr[RAX] = 0x1000;
        assert!(is_de(exec(&mut c, &mut s, &[0xf6, 0xf3]))); // quotient 585 > 255
        assert_eq!(c.gpr[RAX], 0x1000);
        c.gpr[RBX] = 0;
        assert!(is_de(exec(&mut c, &mut s, &[0x48, 0xf7, 0xf3]))); // div rbx by 0
        c.gpr[RDX] = 1;
        c.gpr[RAX] = 0;
        c.gpr[RBX] = 2;
        exec(&mut c, &mut s, &[0x48, 0xf7, 0xf3]).unwrap(); // 2^64 / 2
        assert_eq!((c.gpr[RAX], c.gpr[RDX]), (1 << 63, 0));
        c.gpr[RDX] = 2;
        c.gpr[RAX] = 0;
        assert!(is_de(exec(&mut c, &mut s, &[0x48, 0xf7, 0xf3])));
        // idiv: i64::MIN / -1 overflows.
        c.gpr[RAX] = 1 << 63;
        c.gpr[RDX] = u64::MAX;
        c.gpr[RBX] = u64::MAX;
        assert!(is_de(exec(&mut c, &mut s, &[0x48, 0xf7, 0xfb])));
        // -7 / 2 = -3 r -1
        c.gpr[RAX] = (-7i64) as u64;
        c.gpr[RDX] = u64::MAX;
        c.gpr[RBX] = 2;
        exec(&mut c, &mut s, &[0x48, 0xf7, 0xfb]).unwrap();
        assert_eq!((c.gpr[RAX], c.gpr[RDX]), ((-3i64) as u64, u64::MAX));
        // 128-bit dividend: -(2^64) / 4 = -(2^62)
        c.gpr[RDX] = u64::MAX;
        c.gpr[RAX] = 0;
        c.gpr[RBX] = 4;
        exec(&mut c, &mut s, &[0x48, 0xf7, 0xfb]).unwrap();
        assert_eq!((c.gpr[RAX], c.gpr[RDX]), ((-(1i64 << 62)) as u64, 0));
        // idiv r32: EDX:EAX = -0x80000000 / -1 overflows
        c.gpr[RAX] = 0x8000_0000;
        c.gpr[RDX] = 0xFFFF_FFFF;
        c.gpr[RBX] = 0xFFFF_FFFF;
        assert!(is_de(exec(&mut c, &mut s, &[0xf7, 0xfb])));
        // idiv r8: AX = -128, BL = 1 -> AL = -128, AH = 0
        c.gpr[RAX] = 0xFF80;
        c.gpr[RBX] = 1;
        exec(&mut c, &mut s, &[0xf6, 0xfb]).unwrap();
        assert_eq!(c.gpr[RAX] & 0xFFFF, 0x0080);
        // idiv r16 with a remainder: DX:AX = -1001, BX = 10 -> AX = -100, DX = -1
        c.gpr[RAX] = (-1001i16) as u16 as u64;
        c.gpr[RDX] = 0xFFFF;
        c.gpr[RBX] = 10;
        exec(&mut c, &mut s, &[0x66, 0xf7, 0xfb]).unwrap();
        assert_eq!(c.gpr[RAX] & 0xFFFF, (-100i16) as u16 as u64);
        assert_eq!(c.gpr[RDX] & 0xFFFF, 0xFFFF);
        // div r32 writes zero-extended EAX, EDX
        c.gpr[RAX] = 0xAAAA_AAAA_0000_0010;
        c.gpr[RDX] = 0xAAAA_AAAA_0000_0000;
        c.gpr[RBX] = 3;
        exec(&mut c, &mut s, &[0xf7, 0xf3]).unwrap();
        assert_eq!((c.gpr[RAX], c.gpr[RDX]), (5, 1));
    }
}

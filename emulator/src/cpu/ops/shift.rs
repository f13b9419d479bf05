//! Shifts and rotates (SDM Vol. 2B: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD), by 1, by an
//! 8-bit immediate and by CL, at 8/16/32/64 bits, register or memory destination.
//!
//! The count is masked to 5 bits (6 for 64-bit operands). A masked count of 0 changes no
//! flags and writes nothing to memory (the operand is still read, so it can fault); a 32-bit
//! register destination is still written, so its upper half clears (as silicon does).
//!
//! Defined flags follow the SDM. Undefined ones are chosen to match the AMD EPYC host of the
//! differential oracle, measured natively (the oracle masks them anyway):
//! - AF is set by every shift that writes the status flags (SHL/SHR/SAR/SHLD/SHRD, nonzero
//!   count); rotates never touch SF/ZF/AF/PF.
//! - OF for counts other than 1 uses the count-1 formula on the final result: SHL/RCL/ROL/SHLD
//!   `MSB(r) ^ CF`, SHR/ROR/RCR/SHRD `MSB(r) ^ MSB-1(r)`, SAR 0.
//! - CF of SHL/SHR when the count is at least the operand width (8/16-bit operands): the last
//!   bit shifted out of the operand taken as infinitely wide, i.e. 0.
//! - RCL/RCR take the count modulo 9 (8-bit) or 17 (16-bit) after masking; when that leaves 0
//!   the operand and CF stay as they were and OF gets the formula above.
//! - ROL/ROR at 8/16 bits with a masked count that is a nonzero multiple of the width leave
//!   the operand as is but still set CF and OF from it, as the SDM pseudo-code says.
//! - SHLD/SHRD at 16 bits with a count of 17..31 (undefined result and flags): the 48-bit
//!   `dest:src:src` shifted left (SHLD) or `src:src:dest` shifted right (SHRD), CF = 0, OF = 0
//!   for SHLD and the usual `MSB(r) ^ MSB-1(r)` for SHRD. (Intel P6+ shifts `dest:src:dest`.)
//!   SHLD at 16 bits by exactly 16 gives OF = CF.

use super::alu::{op_bits, sel};
use crate::cpu::flags::{AF, CF, OF, STATUS, mask, sext, szp};
use crate::cpu::{Core, Handler, RCX, Result, Sys};
use iced_x86::{Instruction, Mnemonic, OpKind};

const SHL: u8 = 0;
const SHR: u8 = 1;
const SAR: u8 = 2;
const ROL: u8 = 3;
const ROR: u8 = 4;
const RCL: u8 = 5;
const RCR: u8 = 6;
const SHLD: u8 = 7;
const SHRD: u8 = 8;

/// The count mask: 0x3F for 64-bit operands, 0x1F otherwise.
const fn count_mask(bits: u32) -> u32 {
    if bits == 64 { 0x3F } else { 0x1F }
}

#[inline(always)]
fn bit(v: u64, n: u32) -> u64 {
    (v >> n) & 1
}

/// `OP a` (with `b` the second source of SHLD/SHRD) by a masked, nonzero `count`: the result
/// and the new RFLAGS, or `None` when nothing changes.
#[inline(always)]
fn calc<const OP: u8, const BITS: u32>(
    rflags: u64,
    a: u64,
    b: u64,
    count: u32,
) -> Option<(u64, u64)> {
    let m = mask(BITS);
    let sb = BITS - 1;
    let c = count;
    // Status-flag results: (result, CF, OF, whether SF/ZF/PF/AF are written).
    let (r, cf, of, szpa) = match OP {
        SHL => {
            let (r, cf) = if BITS == 64 {
                let w = (a as u128) << c;
                (w as u64, (w >> 64) as u64 & 1)
            } else {
                // a < 2^32 and c <= 31: no bit is lost in 64 bits.
                let w = a << c;
                (w & m, bit(w, BITS))
            };
            (r, cf, bit(r, sb) ^ cf, true)
        }
        SHR => {
            let r = a >> c;
            (r, bit(a, c - 1), bit(r, sb) ^ bit(r, sb - 1), true)
        }
        SAR => {
            let sa = sext(a, BITS) as i64;
            ((sa >> c) as u64 & m, ((sa >> (c - 1)) & 1) as u64, 0, true)
        }
        ROL | ROR => {
            let t = c % BITS;
            let r = if t == 0 {
                a
            } else if OP == ROL {
                ((a << t) | (a >> (BITS - t))) & m
            } else {
                ((a >> t) | (a << (BITS - t))) & m
            };
            if OP == ROL {
                (r, r & 1, bit(r, sb) ^ (r & 1), false)
            } else {
                (r, bit(r, sb), bit(r, sb) ^ bit(r, sb - 1), false)
            }
        }
        RCL | RCR => {
            let t = match BITS {
                8 => c % 9,
                16 => c % 17,
                _ => c,
            };
            if t == 0 {
                // Rotating by a multiple of BITS+1 leaves the operand and CF as they were;
                // OF (undefined) comes out of the usual formula, as on the AMD host.
                let cf = rflags & CF;
                let of = if OP == RCL {
                    bit(a, sb) ^ cf
                } else {
                    bit(a, sb) ^ bit(a, sb - 1)
                };
                return Some((a, (rflags & !OF) | (of * OF)));
            }
            // Rotate the BITS+1-bit value CF:a.
            let w = BITS + 1;
            let wm = (1u128 << w) - 1;
            let v = ((rflags & CF) as u128) << BITS | a as u128;
            let rot = if OP == RCL {
                (v << t) | (v >> (w - t))
            } else {
                (v >> t) | (v << (w - t))
            } & wm;
            let r = rot as u64 & m;
            let cf = (rot >> BITS) as u64 & 1;
            if OP == RCL {
                (r, cf, bit(r, sb) ^ cf, false)
            } else {
                (r, cf, bit(r, sb) ^ bit(r, sb - 1), false)
            }
        }
        SHLD => {
            if BITS == 16 && c > 16 {
                // Undefined; what the AMD host does: `dest:src:src` shifted, CF = OF = 0.
                let v = (a << 32) | (b << 16) | b;
                ((v >> (32 - c)) & 0xFFFF, 0, 0, true)
            } else {
                let (r, cf) = if BITS == 16 {
                    (((a << c) | (b >> (16 - c))) & m, bit(a, 16 - c))
                } else {
                    (((a << c) | (b >> (BITS - c))) & m, bit(a, BITS - c))
                };
                // Count 16 at 16 bits (OF undefined): the AMD host gives OF = CF.
                let of = if BITS == 16 && c == 16 {
                    cf
                } else {
                    bit(r, sb) ^ cf
                };
                (r, cf, of, true)
            }
        }
        _ => {
            // SHRD
            let (r, cf) = if BITS == 16 && c > 16 {
                // Undefined; what the AMD host does: `src:src:dest` shifted, CF = 0.
                let v = (b << 32) | (b << 16) | a;
                ((v >> c) & 0xFFFF, 0)
            } else if BITS == 16 {
                (((a >> c) | (b << (16 - c))) & m, bit(a, c - 1))
            } else {
                (((a >> c) | (b << (BITS - c))) & m, bit(a, c - 1))
            };
            (r, cf, bit(r, sb) ^ bit(r, sb - 1), true)
        }
    };
    let f = (cf * CF) | (of * OF);
    let flags = if szpa {
        (rflags & !STATUS) | f | szp(r, BITS) | AF
    } else {
        (rflags & !(CF | OF)) | f
    };
    Some((r, flags))
}

/// The count operand: CL when `CL`, else the 8-bit immediate in operand `n`.
#[inline(always)]
fn count<const CL: bool, const BITS: u32>(core: &Core, ins: &Instruction) -> u32 {
    let c = if CL {
        core.gpr[RCX] as u32
    } else {
        ins.immediate8() as u32
    };
    c & count_mask(BITS)
}

fn sh_r<const OP: u8, const CL: bool, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let c = count::<CL, BITS>(core, ins);
    if c == 0 {
        // A 32-bit register destination is still written by a zero count: its upper half
        // clears (what silicon does; found by the differential oracle).
        if BITS == 32 {
            let reg = ins.op0_register();
            core.set_reg::<32>(reg, core.reg::<32>(reg));
        }
        return Ok(());
    }
    let reg = ins.op0_register();
    let a = core.reg::<BITS>(reg);
    if let Some((r, f)) = calc::<OP, BITS>(core.rflags, a, 0, c) {
        core.set_reg::<BITS>(reg, r);
        core.rflags = f;
    }
    Ok(())
}

fn sh_m<const OP: u8, const CL: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let c = count::<CL, BITS>(core, ins);
    if c == 0 {
        return Ok(());
    }
    if let Some((r, f)) = calc::<OP, BITS>(core.rflags, a, 0, c) {
        core.store_bits::<BITS>(sys, ea, r)?;
        core.rflags = f;
    }
    Ok(())
}

/// SHLD/SHRD: destination operand 0, source register operand 1, count operand 2.
fn dsh_r<const OP: u8, const CL: bool, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let c = count::<CL, BITS>(core, ins);
    if c == 0 {
        // As in `sh_r`: a 32-bit destination's upper half clears even for a zero count.
        if BITS == 32 {
            core.set_reg::<32>(ins.op0_register(), core.reg::<32>(ins.op0_register()));
        }
        return Ok(());
    }
    let a = core.reg::<BITS>(ins.op0_register());
    let b = core.reg::<BITS>(ins.op1_register());
    if let Some((r, f)) = calc::<OP, BITS>(core.rflags, a, b, c) {
        core.set_reg::<BITS>(ins.op0_register(), r);
        core.rflags = f;
    }
    Ok(())
}

fn dsh_m<const OP: u8, const CL: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let c = count::<CL, BITS>(core, ins);
    if c == 0 {
        return Ok(());
    }
    let b = core.reg::<BITS>(ins.op1_register());
    if let Some((r, f)) = calc::<OP, BITS>(core.rflags, a, b, c) {
        core.store_bits::<BITS>(sys, ea, r)?;
        core.rflags = f;
    }
    Ok(())
}

fn shift<const OP: u8>(ins: &Instruction) -> Option<Handler> {
    let bits = op_bits(ins, 0);
    let n = if OP == SHLD || OP == SHRD { 2 } else { 1 };
    if ins.op_count() != n + 1 || ins.has_lock_prefix() {
        return None;
    }
    let cl = match ins.op_kind(n) {
        OpKind::Register => true,
        OpKind::Immediate8 => false,
        _ => return None,
    };
    let mem = match ins.op0_kind() {
        OpKind::Register => false,
        OpKind::Memory => true,
        _ => return None,
    };
    Some(match (OP == SHLD || OP == SHRD, mem, cl) {
        (false, false, false) => sel!(bits, sh_r, OP, false),
        (false, false, true) => sel!(bits, sh_r, OP, true),
        (false, true, false) => sel!(bits, sh_m, OP, false),
        (false, true, true) => sel!(bits, sh_m, OP, true),
        (true, false, false) => sel!(bits, dsh_r, OP, false),
        (true, false, true) => sel!(bits, dsh_r, OP, true),
        (true, true, false) => sel!(bits, dsh_m, OP, false),
        (true, true, true) => sel!(bits, dsh_m, OP, true),
    })
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    match ins.mnemonic() {
        Mnemonic::Shl | Mnemonic::Sal => shift::<SHL>(ins),
        Mnemonic::Shr => shift::<SHR>(ins),
        Mnemonic::Sar => shift::<SAR>(ins),
        Mnemonic::Rol => shift::<ROL>(ins),
        Mnemonic::Ror => shift::<ROR>(ins),
        Mnemonic::Rcl => shift::<RCL>(ins),
        Mnemonic::Rcr => shift::<RCR>(ins),
        Mnemonic::Shld => shift::<SHLD>(ins),
        Mnemonic::Shrd => shift::<SHRD>(ins),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::alu::testing::*;
    use super::*;
    use crate::cpu::flags::{AF, PF, SF, ZF};
    use crate::cpu::{RAX, RBX, RDI, RDX};

    /// Reference: shift one bit at a time, as the SDM pseudo-code does.
    fn slow(op: u8, bits: u32, a: u64, b: u64, count: u32, cf_in: bool) -> (u64, bool) {
        let m = mask(bits);
        let (mut r, mut cf) = (a, cf_in);
        let mut src = b;
        let t = match (op, bits) {
            (RCL | RCR, 8) => count % 9,
            (RCL | RCR, 16) => count % 17,
            _ => count,
        };
        for _ in 0..t {
            match op {
                SHL => {
                    cf = r >> (bits - 1) & 1 != 0;
                    r = (r << 1) & m;
                }
                SHR => {
                    cf = r & 1 != 0;
                    r >>= 1;
                }
                SAR => {
                    cf = r & 1 != 0;
                    r = (r >> 1) | (r & (1 << (bits - 1)));
                }
                ROL => {
                    cf = r >> (bits - 1) & 1 != 0;
                    r = ((r << 1) | cf as u64) & m;
                }
                ROR => {
                    cf = r & 1 != 0;
                    r = (r >> 1) | (cf as u64) << (bits - 1);
                }
                RCL => {
                    let out = r >> (bits - 1) & 1 != 0;
                    r = ((r << 1) | cf as u64) & m;
                    cf = out;
                }
                RCR => {
                    let out = r & 1 != 0;
                    r = (r >> 1) | (cf as u64) << (bits - 1);
                    cf = out;
                }
                SHLD => {
                    cf = r >> (bits - 1) & 1 != 0;
                    r = ((r << 1) | (src >> (bits - 1) & 1)) & m;
                    src = (src << 1) & m;
                }
                _ => {
                    cf = r & 1 != 0;
                    r = (r >> 1) | (src & 1) << (bits - 1);
                    src >>= 1;
                }
            }
        }
        (r, cf)
    }

    fn check<const OP: u8, const BITS: u32>() {
        let vals = [
            0u64,
            1,
            0x80,
            0x7F,
            0xA5A5_5A5A_F00F_1234,
            u64::MAX,
            0x8000_0000_0000_0001,
        ];
        let limit = if matches!(OP, SHLD | SHRD) && BITS == 16 {
            16
        } else {
            count_mask(BITS)
        };
        for &a in &vals {
            for &b in &vals {
                for c in 1..=limit {
                    for cf_in in [false, true] {
                        let (a, b) = (a & mask(BITS), b & mask(BITS));
                        let rf = if cf_in { CF | 2 } else { 2 };
                        let got = calc::<OP, BITS>(rf, a, b, c);
                        let (r, cf) = slow(OP, BITS, a, b, c, cf_in);
                        match got {
                            None => assert!(matches!(OP, RCL | RCR), "{OP} {BITS} {a:#x} {c}"),
                            Some((gr, gf)) => {
                                // For 8/16-bit SHL/SHR past the width, CF is undefined.
                                let cf_defined = !(matches!(OP, SHL | SHR) && c >= BITS);
                                assert_eq!(
                                    gr, r,
                                    "op {OP} bits {BITS} a {a:#x} b {b:#x} count {c}"
                                );
                                if cf_defined {
                                    assert_eq!(
                                        gf & CF != 0,
                                        cf,
                                        "CF op {OP} bits {BITS} a {a:#x} count {c}"
                                    );
                                }
                                if c == 1 {
                                    let of = match OP {
                                        SHL | ROL | RCL | SHLD => (r >> (BITS - 1) & 1 != 0) != cf,
                                        SAR => false,
                                        RCR => (a >> (BITS - 1) & 1 != 0) != cf_in,
                                        ROR => (r >> (BITS - 1) ^ r >> (BITS - 2)) & 1 != 0,
                                        _ => (a ^ r) >> (BITS - 1) & 1 != 0,
                                    };
                                    assert_eq!(gf & OF != 0, of, "OF op {OP} bits {BITS} a {a:#x}");
                                }
                                if matches!(OP, SHL | SHR | SAR | SHLD | SHRD) {
                                    assert_eq!(gf & (SF | ZF | PF), szp(r, BITS));
                                } else {
                                    assert_eq!(gf & (SF | ZF | PF | AF), rf & (SF | ZF | PF | AF));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    macro_rules! check_all {
        ($($op:ident),*) => {$(
            check::<$op, 8>();
            check::<$op, 16>();
            check::<$op, 32>();
            check::<$op, 64>();
        )*};
    }

    #[test]
    fn against_bitwise_reference() {
        check_all!(SHL, SHR, SAR, ROL, ROR, RCL, RCR);
        check::<SHLD, 16>();
        check::<SHLD, 32>();
        check::<SHLD, 64>();
        check::<SHRD, 16>();
        check::<SHRD, 32>();
        check::<SHRD, 64>();
    }

    #[test]
    fn handlers() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 0x8000_0000_0000_0001;
        exec(&mut c, &mut s, &[0x48, 0xd1, 0xe0]).unwrap(); // shl rax, 1
        assert_eq!(c.gpr[RAX], 2);
        assert!(c.flag(CF) && c.flag(OF));
        c.gpr[RAX] = 0xFFFF_FFFF_8000_0000;
        c.gpr[RCX] = 0x20; // masked to 0: flags unchanged, but the 32-bit write zero-extends
        let f = c.rflags;
        exec(&mut c, &mut s, &[0xd3, 0xe8]).unwrap(); // shr eax, cl
        assert_eq!(c.gpr[RAX], 0x8000_0000);
        assert_eq!(c.rflags, f);
        exec(&mut c, &mut s, &[0xc1, 0xf8, 0x04]).unwrap(); // sar eax, 4
        assert_eq!(c.gpr[RAX], 0xF800_0000);
        c.gpr[RBX] = 0xABCD;
        c.gpr[RAX] = 0x1234;
        exec(&mut c, &mut s, &[0x66, 0x0f, 0xa4, 0xc3, 0x04]).unwrap(); // shld bx, ax, 4
        assert_eq!(c.gpr[RBX], 0xBCD1);
        // Counts past 16 (undefined): as the AMD host, measured.
        c.gpr[RAX] = 0x1234;
        c.gpr[RDX] = 0xABCD;
        exec(&mut c, &mut s, &[0x66, 0x0f, 0xa4, 0xd0, 20]).unwrap(); // shld ax, dx, 20
        assert_eq!(c.gpr[RAX], 0xBCDA);
        c.gpr[RAX] = 0x1234;
        exec(&mut c, &mut s, &[0x66, 0x0f, 0xac, 0xd0, 20]).unwrap(); // shrd ax, dx, 20
        assert_eq!(c.gpr[RAX], 0xDABC);
        c.gpr[RDI] = DATA;
        c.store::<u32>(&mut s, DATA, 0x8000_0001).unwrap();
        exec(&mut c, &mut s, &[0xd1, 0x07]).unwrap(); // rol dword [rdi], 1
        assert_eq!(c.load::<u32>(&mut s, DATA).unwrap(), 3);
        assert!(c.flag(CF) && c.flag(OF));
    }
}

//! SSE/SSE2 data movement and state management (Intel SDM Vol. 2):
//! MOVD/MOVQ (§4.3 "MOVD/MOVQ", "MOVQ"), MOVAPS/MOVAPD/MOVDQA, MOVUPS/MOVUPD/MOVDQU,
//! MOVSS/MOVSD, MOVLPS/MOVHPS/MOVLPD/MOVHPD, MOVHLPS/MOVLHPS, MOVNTI/MOVNTDQ/MOVNTPS/MOVNTPD,
//! MOVMSKPS/MOVMSKPD/PMOVMSKB, MASKMOVDQU, LDMXCSR/STMXCSR, FXSAVE/FXRSTOR (§3.2),
//! PREFETCHh and CLFLUSH.
//!
//! This file also holds the helpers the four SSE files share: the CR0/CR4 availability check
//! every SSE instruction starts with (SDM Vol. 3A §2.5, §13.1: CR0.EM or !CR4.OSFXSR ⇒ #UD,
//! CR0.TS ⇒ #NM), XMM operand indices, and 128-bit memory access with the legacy-SSE
//! alignment rule (a 16-byte operand not aligned on 16 bytes ⇒ #GP(0), except the unaligned
//! moves; SDM Vol. 1 §11.6.7). MMX-register forms are not claimed, so they raise #UD.
//!
//! Non-temporal stores, prefetches and CLFLUSH are plain stores / no-ops here; the cache
//! model (DESIGN.md §2.3) gives them timing later.

use crate::cpu::operand::{gpr_index, xmm_index};
use crate::cpu::{
    CR0_EM, CR0_TS, CR4_OSFXSR, Core, Fault, GP, Handler, NM, RDI, Result, Stop, Sys, UD,
};
use iced_x86::{Code, Instruction, OpKind, Register};

// ---- helpers shared by the SSE files ----------------------------------------------------

/// Raises #UD (CR0.EM set or CR4.OSFXSR clear) or #NM (CR0.TS set) before an SSE instruction
/// touches any state (SDM Vol. 3A Table 2-2 and each instruction's exception table).
#[inline(always)]
pub(super) fn avail(core: &Core) -> Result<()> {
    if core.cr0 & (CR0_EM | CR0_TS) != 0 || core.cr4 & CR4_OSFXSR == 0 {
        return Err(unavailable(core));
    }
    Ok(())
}

#[cold]
fn unavailable(core: &Core) -> Stop {
    if core.cr0 & CR0_EM != 0 || core.cr4 & CR4_OSFXSR == 0 {
        Fault::new(UD).into()
    } else {
        Fault::new(NM).into()
    }
}

/// #GP(0), e.g. for a misaligned 16-byte operand.
#[cold]
pub(super) fn gp0() -> Stop {
    Fault::with_code(GP, 0).into()
}

/// Index of the XMM register of operand `n`.
#[inline(always)]
pub(super) fn xr(ins: &Instruction, n: u32) -> usize {
    xmm_index(ins.op_register(n))
}

/// Whether operand `n` is a register (decode-time form selection).
#[inline(always)]
pub(super) fn is_reg(ins: &Instruction, n: u32) -> bool {
    ins.op_kind(n) == OpKind::Register
}

/// Loads a 16-byte operand that must be 16-byte aligned.
#[inline(always)]
pub(super) fn load_a16(core: &mut Core, sys: &mut Sys, a: u64) -> Result<u128> {
    if a & 15 != 0 {
        return Err(gp0());
    }
    core.load::<u128>(sys, a)
}

/// Stores a 16-byte operand that must be 16-byte aligned.
#[inline(always)]
pub(super) fn store_a16(core: &mut Core, sys: &mut Sys, a: u64, v: u128) -> Result<()> {
    if a & 15 != 0 {
        return Err(gp0());
    }
    core.store::<u128>(sys, a, v)
}

/// Loads a memory operand of `BYTES` bytes (4, 8, or 16 aligned) zero-extended to 128 bits.
#[inline(always)]
pub(super) fn load_mem<const BYTES: u32>(core: &mut Core, sys: &mut Sys, a: u64) -> Result<u128> {
    Ok(match BYTES {
        4 => core.load::<u32>(sys, a)? as u128,
        8 => core.load::<u64>(sys, a)? as u128,
        _ => load_a16(core, sys, a)?,
    })
}

/// Writes a general register as a 32- or 64-bit destination (both zero-extend to 64 bits).
#[inline(always)]
fn set_gpr_zx(core: &mut Core, r: Register, v: u64) {
    core.gpr[gpr_index(r)] = v;
}

const LO64: u128 = u64::MAX as u128;
const LO32: u128 = u32::MAX as u128;

/// Bits 16–31 of MXCSR are reserved (MXCSR_MASK = 0xFFFF: DAZ supported).
pub(super) const MXCSR_MASK: u32 = 0xFFFF;

// ---- resolve ------------------------------------------------------------------------------

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    use Code::*;
    let reg0 = is_reg(ins, 0);
    let reg1 = ins.op_count() > 1 && is_reg(ins, 1);
    let h: Handler = match ins.code() {
        Movd_xmm_rm32 => {
            if reg1 {
                movd_x_r::<32>
            } else {
                load_zx::<4>
            }
        }
        Movq_xmm_rm64 => {
            if reg1 {
                movd_x_r::<64>
            } else {
                load_zx::<8>
            }
        }
        Movq_xmm_xmmm64 => {
            if reg1 {
                movq_rr_zx
            } else {
                load_zx::<8>
            }
        }
        Movd_rm32_xmm => {
            if reg0 {
                movd_r_x::<32>
            } else {
                store_lo::<4>
            }
        }
        Movq_rm64_xmm => {
            if reg0 {
                movd_r_x::<64>
            } else {
                store_lo::<8>
            }
        }
        Movq_xmmm64_xmm => {
            if reg0 {
                movq_rr_zx
            } else {
                store_lo::<8>
            }
        }
        Movsd_xmmm64_xmm => {
            if reg0 {
                merge_rr::<64>
            } else {
                store_lo::<8>
            }
        }
        Movss_xmmm32_xmm => {
            if reg0 {
                merge_rr::<32>
            } else {
                store_lo::<4>
            }
        }
        Movlps_m64_xmm | Movlpd_m64_xmm => store_lo::<8>,
        Movaps_xmm_xmmm128 | Movapd_xmm_xmmm128 | Movdqa_xmm_xmmm128 => {
            if reg1 {
                copy_rr
            } else {
                load128::<true>
            }
        }
        Movups_xmm_xmmm128 | Movupd_xmm_xmmm128 | Movdqu_xmm_xmmm128 => {
            if reg1 {
                copy_rr
            } else {
                load128::<false>
            }
        }
        Movaps_xmmm128_xmm | Movapd_xmmm128_xmm | Movdqa_xmmm128_xmm => {
            if reg0 {
                copy_rr
            } else {
                store128::<true>
            }
        }
        Movups_xmmm128_xmm | Movupd_xmmm128_xmm | Movdqu_xmmm128_xmm => {
            if reg0 {
                copy_rr
            } else {
                store128::<false>
            }
        }
        Movntps_m128_xmm | Movntpd_m128_xmm | Movntdq_m128_xmm => store128::<true>,
        Movss_xmm_xmmm32 => {
            if reg1 {
                merge_rr::<32>
            } else {
                load_zx::<4>
            }
        }
        Movsd_xmm_xmmm64 => {
            if reg1 {
                merge_rr::<64>
            } else {
                load_zx::<8>
            }
        }
        Movlps_xmm_m64 | Movlpd_xmm_m64 => load_half::<0>,
        Movhps_xmm_m64 | Movhpd_xmm_m64 => load_half::<64>,
        Movhps_m64_xmm | Movhpd_m64_xmm => store_hi,
        Movhlps_xmm_xmm => movhlps,
        Movlhps_xmm_xmm => movlhps,
        Movnti_m32_r32 => movnti::<32>,
        Movnti_m64_r64 => movnti::<64>,
        Movmskps_r32_xmm | Movmskps_r64_xmm => movmskps,
        Movmskpd_r32_xmm | Movmskpd_r64_xmm => movmskpd,
        Pmovmskb_r32_xmm | Pmovmskb_r64_xmm => pmovmskb,
        Maskmovdqu_rDI_xmm_xmm => maskmovdqu,
        Ldmxcsr_m32 => ldmxcsr,
        Stmxcsr_m32 => stmxcsr,
        Fxsave_m512byte | Fxsave64_m512byte => fxsave,
        Fxrstor_m512byte | Fxrstor64_m512byte => fxrstor,
        Prefetchnta_m8 | Prefetcht0_m8 | Prefetcht1_m8 | Prefetcht2_m8 => nop,
        Clflush_m8 => clflush,
        _ => return None,
    };
    Some(h)
}

// ---- handlers -----------------------------------------------------------------------------

/// MOVD xmm, r32 / MOVQ xmm, r64: zero-extends into the whole register.
fn movd_x_r<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let v = core.reg::<BITS>(ins.op_register(1));
    core.xmm[xr(ins, 0)] = v as u128;
    Ok(())
}

/// MOVD r32, xmm / MOVQ r64, xmm.
fn movd_r_x<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let v = core.xmm[xr(ins, 1)] as u64;
    core.set_reg::<BITS>(ins.op_register(0), v);
    Ok(())
}

/// Loads of 4 or 8 bytes that zero the rest of the register: MOVD/MOVQ xmm, m; MOVSS/MOVSD
/// xmm, m; MOVQ xmm, m64 (F3 0F 7E).
fn load_zx<const BYTES: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = if BYTES == 4 {
        core.load::<u32>(sys, a)? as u128
    } else {
        core.load::<u64>(sys, a)? as u128
    };
    core.xmm[xr(ins, 0)] = v;
    Ok(())
}

/// Stores the low 4 or 8 bytes of the XMM register in operand 1: MOVD/MOVQ m, xmm; MOVSS/MOVSD
/// m, xmm; MOVQ m64, xmm (66 0F D6); MOVLPS/MOVLPD m64, xmm.
fn store_lo<const BYTES: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = core.xmm[xr(ins, 1)];
    if BYTES == 4 {
        core.store::<u32>(sys, a, v as u32)
    } else {
        core.store::<u64>(sys, a, v as u64)
    }
}

/// MOVQ xmm, xmm (F3 0F 7E and 66 0F D6; iced puts the destination in operand 0 for both):
/// the low quadword of the source, upper quadword zeroed.
fn movq_rr_zx(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let v = core.xmm[xr(ins, 1)] & LO64;
    core.xmm[xr(ins, 0)] = v;
    Ok(())
}

/// MOVSS/MOVSD between registers: the low `BITS` of the source replace those of the
/// destination; the rest of the destination is kept. Operand 0 is the destination in both
/// encodings (0F 10 and 0F 11).
fn merge_rr<const BITS: u32>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let m = if BITS == 32 { LO32 } else { LO64 };
    let s = core.xmm[xr(ins, 1)];
    let d = &mut core.xmm[xr(ins, 0)];
    *d = (*d & !m) | (s & m);
    Ok(())
}

/// Register-to-register 128-bit copy (MOVAPS/MOVUPS/MOVDQA/... both directions).
fn copy_rr(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    core.xmm[xr(ins, 0)] = core.xmm[xr(ins, 1)];
    Ok(())
}

/// 128-bit load, aligned (MOVAPS/MOVAPD/MOVDQA) or not (MOVUPS/MOVUPD/MOVDQU).
fn load128<const ALIGNED: bool>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = if ALIGNED {
        load_a16(core, sys, a)?
    } else {
        core.load::<u128>(sys, a)?
    };
    core.xmm[xr(ins, 0)] = v;
    Ok(())
}

/// 128-bit store, aligned (MOVAPS/MOVAPD/MOVDQA, MOVNTPS/MOVNTPD/MOVNTDQ) or not.
fn store128<const ALIGNED: bool>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = core.xmm[xr(ins, 1)];
    if ALIGNED {
        store_a16(core, sys, a, v)
    } else {
        core.store::<u128>(sys, a, v)
    }
}

/// MOVLPS/MOVLPD (`SHIFT` 0) and MOVHPS/MOVHPD (`SHIFT` 64) xmm, m64: replace one quadword.
fn load_half<const SHIFT: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = core.load::<u64>(sys, a)? as u128;
    let d = &mut core.xmm[xr(ins, 0)];
    *d = (*d & !(LO64 << SHIFT)) | (v << SHIFT);
    Ok(())
}

/// MOVHPS/MOVHPD m64, xmm.
fn store_hi(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = (core.xmm[xr(ins, 1)] >> 64) as u64;
    core.store::<u64>(sys, a, v)
}

/// MOVHLPS xmm1, xmm2: xmm1[63:0] = xmm2[127:64].
fn movhlps(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let s = core.xmm[xr(ins, 1)] >> 64;
    let d = &mut core.xmm[xr(ins, 0)];
    *d = (*d & !LO64) | s;
    Ok(())
}

/// MOVLHPS xmm1, xmm2: xmm1[127:64] = xmm2[63:0].
fn movlhps(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let s = core.xmm[xr(ins, 1)] << 64;
    let d = &mut core.xmm[xr(ins, 0)];
    *d = (*d & LO64) | s;
    Ok(())
}

/// MOVNTI m32/m64, r: a plain store (no alignment requirement; no CR0.TS check, it uses no
/// SSE state).
fn movnti<const BITS: u32>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let v = core.reg::<BITS>(ins.op_register(1));
    let a = core.ea(ins);
    core.store_bits::<BITS>(sys, a, v)
}

/// MOVMSKPS r, xmm: the four single-precision sign bits, zero-extended.
fn movmskps(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let x = core.xmm[xr(ins, 1)];
    let m = ((x >> 31) & 1) | ((x >> 62) & 2) | ((x >> 93) & 4) | ((x >> 124) & 8);
    set_gpr_zx(core, ins.op_register(0), m as u64);
    Ok(())
}

/// MOVMSKPD r, xmm: the two double-precision sign bits, zero-extended.
fn movmskpd(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let x = core.xmm[xr(ins, 1)];
    let m = ((x >> 63) & 1) | ((x >> 126) & 2);
    set_gpr_zx(core, ins.op_register(0), m as u64);
    Ok(())
}

/// The sign bit of each byte of `x`, as a 16-bit mask.
#[inline(always)]
pub(super) fn byte_signs(x: u128) -> u32 {
    // Gather bit 7 of each byte: multiply trick per 64-bit half.
    let half = |h: u64| -> u32 {
        let s = (h >> 7) & 0x0101_0101_0101_0101;
        (s.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    half(x as u64) | (half((x >> 64) as u64) << 8)
}

/// PMOVMSKB r, xmm.
fn pmovmskb(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let m = byte_signs(core.xmm[xr(ins, 1)]);
    set_gpr_zx(core, ins.op_register(0), m as u64);
    Ok(())
}

/// MASKMOVDQU xmm1, xmm2: stores the bytes of xmm1 whose byte in xmm2 has its top bit set to
/// DS:[RDI] (EDI with 0x67). No alignment requirement. All selected bytes are checked for
/// writability before any is written; a mask of zero writes nothing and cannot fault (the
/// SDM leaves faults for an all-zero mask implementation-specific).
fn maskmovdqu(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let data = core.xmm[xr(ins, 1)];
    let mask = byte_signs(core.xmm[xr(ins, 2)]);
    if mask == 0 {
        return Ok(());
    }
    let mut a = core.gpr[RDI];
    if ins.op_kind(0) == OpKind::MemorySegEDI {
        a &= 0xFFFF_FFFF;
    }
    a = match ins.segment_prefix() {
        Register::FS => a.wrapping_add(core.fs_base),
        Register::GS => a.wrapping_add(core.gs_base),
        _ => a,
    };
    let first = mask.trailing_zeros() as u64;
    let last = 31 - mask.leading_zeros() as u64;
    core.probe_write(sys, a.wrapping_add(first), last - first + 1)?;
    for i in first..=last {
        if mask & (1 << i) != 0 {
            core.store::<u8>(sys, a.wrapping_add(i), (data >> (8 * i)) as u8)?;
        }
    }
    Ok(())
}

/// LDMXCSR m32 (reserved bits set ⇒ #GP(0)).
fn ldmxcsr(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = core.load::<u32>(sys, a)?;
    if v & !MXCSR_MASK != 0 {
        return Err(gp0());
    }
    core.mxcsr = v;
    Ok(())
}

/// STMXCSR m32.
fn stmxcsr(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let v = core.mxcsr;
    core.store::<u32>(sys, a, v)
}

/// FXSAVE/FXRSTOR: CR0.TS or CR0.EM ⇒ #NM (SDM FXSAVE "Protected Mode Exceptions").
#[inline(always)]
fn fx_avail(core: &Core) -> Result<()> {
    if core.cr0 & (CR0_EM | CR0_TS) != 0 {
        return Err(Fault::new(NM).into());
    }
    Ok(())
}

/// FCW after FNINIT: all x87 exceptions masked, 64-bit precision, round to nearest.
const FCW_DEFAULT: u128 = 0x037F;
/// Offsets in the FXSAVE area (SDM Vol. 1 Table 10-2).
const FX_MXCSR: u64 = 24;
const FX_XMM: u64 = 160;
const FX_END: u64 = 416;

/// FXSAVE/FXSAVE64 m512: pvmlab has no x87/MMX state, so the x87 part is the FNINIT state
/// (FCW 0x037F, FSW 0, all tags empty, FOP/FIP/FDP 0, ST0–7 zero); MXCSR, MXCSR_MASK (0xFFFF)
/// and XMM0–15 are saved. Bytes 416–511 (reserved and software-available) are not written.
/// The area must be 16-byte aligned (else #GP(0)); the whole area is checked writable
/// before anything is stored.
fn fxsave(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    fx_avail(core)?;
    let a = core.ea(ins);
    if a & 15 != 0 {
        return Err(gp0());
    }
    core.probe_write(sys, a, FX_END)?;
    core.store::<u128>(sys, a, FCW_DEFAULT)?;
    let csr = (core.mxcsr as u128) << 64 | (MXCSR_MASK as u128) << 96;
    core.store::<u128>(sys, a + 16, csr)?;
    for i in 0..8 {
        core.store::<u128>(sys, a + 32 + 16 * i, 0)?;
    }
    for i in 0..16 {
        let v = core.xmm[i as usize];
        core.store::<u128>(sys, a + FX_XMM + 16 * i, v)?;
    }
    Ok(())
}

/// FXRSTOR/FXRSTOR64 m512: restores MXCSR (reserved bits set ⇒ #GP(0)) and XMM0–15; the x87
/// part of the image is ignored (pvmlab keeps no x87 state). Everything is read before
/// anything is changed.
fn fxrstor(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    fx_avail(core)?;
    let a = core.ea(ins);
    if a & 15 != 0 {
        return Err(gp0());
    }
    let csr = core.load::<u32>(sys, a + FX_MXCSR)?;
    let mut regs = [0u128; 16];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = core.load::<u128>(sys, a + FX_XMM + 16 * i as u64)?;
    }
    // Touch the x87 part too, so an unreadable area faults as the hardware access would.
    core.load::<u128>(sys, a)?;
    if csr & !MXCSR_MASK != 0 {
        return Err(gp0());
    }
    core.mxcsr = csr;
    core.xmm = regs;
    Ok(())
}

/// PREFETCHh: a hint; never faults.
fn nop(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Ok(())
}

/// CLFLUSH m8: no cache model yet, but the address is translated as a read would be (SDM:
/// #GP for non-canonical, #PF for not present).
fn clflush(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = core.ea(ins);
    core.load::<u8>(sys, a)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::byte_signs;

    #[test]
    fn byte_signs_matches_loop() {
        let xs = [
            0u128,
            u128::MAX,
            0x8000_0000_0000_0000_0000_0000_0000_0080,
            0x7F80_01FF_8081_00FE_0102_8384_7F7E_80C0,
        ];
        for x in xs {
            let mut m = 0;
            for i in 0..16 {
                if (x >> (8 * i + 7)) & 1 != 0 {
                    m |= 1 << i;
                }
            }
            assert_eq!(byte_signs(x), m, "{x:032x}");
        }
    }
}

//! SSE2 128-bit integer instructions (Intel SDM Vol. 2, §4.3 "P…" entries): PADDB/W/D/Q,
//! PSUBB/W/D/Q, PADDSB/W, PADDUSB/W, PSUBSB/W, PSUBUSB/W, PMULLW, PMULHW, PMULHUW, PMULUDQ,
//! PMADDWD, PAVGB/W, PMINUB, PMAXUB, PMINSW, PMAXSW, PSADBW, PCMPEQB/W/D, PCMPGTB/W/D, PAND,
//! PANDN, POR, PXOR, PSLLW/D/Q, PSRLW/D/Q, PSRAW/D (count in xmm/m128 or imm8), PSLLDQ,
//! PSRLDQ, PSHUFD, PSHUFLW, PSHUFHW, PUNPCKL/HBW/WD/DQ/QDQ, PACKSSWB, PACKSSDW, PACKUSWB,
//! PINSRW, PEXTRW. (PMOVMSKB is with the moves.)
//!
//! The lane arithmetic uses the SSE2 intrinsics of `core::arch::x86_64`, i.e. the host's own
//! instructions, which are exact and baseline on every x86-64 host (the only hosts pvmlab
//! targets); the few immediate-controlled shuffles are portable Rust. Legacy-SSE 16-byte
//! memory operands must be 16-byte aligned (#GP(0)). MMX-register forms are not claimed (#UD).
//!
//! The `Bin` machinery here (a lane function of two 128-bit values and an imm8, with
//! register and aligned-memory handlers) is shared with the float logic and shuffle
//! instructions in `sse_float.rs`.

use super::sse_move::{avail, is_reg, load_a16, xr};
use crate::cpu::operand::gpr_index;
use crate::cpu::{Core, Handler, Result, Sys};
use core::arch::x86_64::*;
use iced_x86::{Code, Instruction};

/// A 128-bit value as the SSE type (a bit-for-bit reinterpretation).
#[inline(always)]
pub(super) fn m(x: u128) -> __m128i {
    // SAFETY: u128 and __m128i are both 16 bytes of plain data with no invalid bit patterns.
    unsafe { core::mem::transmute::<u128, __m128i>(x) }
}

/// The inverse of [`m`].
#[inline(always)]
pub(super) fn u(x: __m128i) -> u128 {
    // SAFETY: as in `m`.
    unsafe { core::mem::transmute::<__m128i, u128>(x) }
}

/// A lane operation `dst = f(dst, src, imm8)` with no MXCSR involvement.
pub(super) trait Bin {
    fn f(a: u128, b: u128, imm: u8) -> u128;
}

/// Handler for `op xmm1, xmm2/m128[, imm8]` (aligned memory operand).
pub(super) fn bin<O: Bin>(ins: &Instruction) -> Option<Handler> {
    Some(if is_reg(ins, 1) {
        bin_rr::<O>
    } else {
        bin_rm::<O>
    })
}

fn bin_rr<O: Bin>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let d = xr(ins, 0);
    core.xmm[d] = O::f(core.xmm[d], core.xmm[xr(ins, 1)], ins.immediate8());
    Ok(())
}

fn bin_rm<O: Bin>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let b = load_a16(core, sys, a)?;
    let d = xr(ins, 0);
    core.xmm[d] = O::f(core.xmm[d], b, ins.immediate8());
    Ok(())
}

/// Handler for a shift by imm8 (`op xmm, imm8`): the same lane function as the xmm-count
/// form, with the count zero-extended (counts above the lane width give 0 / all sign bits
/// either way).
fn shift_imm<O: Bin>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let d = xr(ins, 0);
    core.xmm[d] = O::f(core.xmm[d], ins.immediate8() as u128, 0);
    Ok(())
}

/// Defines `Bin` types from SSE2 intrinsics `intr(a, b)`.
macro_rules! intr_ops {
    ($($name:ident = $intr:ident;)*) => {$(
        pub(super) struct $name;
        impl Bin for $name {
            #[inline(always)]
            fn f(a: u128, b: u128, _: u8) -> u128 {
                // SAFETY: SSE2 is part of the x86-64 baseline, so the host always has it;
                // the intrinsic only computes on its register arguments.
                u(unsafe { $intr(m(a), m(b)) })
            }
        }
    )*};
}

/// Defines `Bin` types from an expression of `a`, `b` (u128) and `imm` (u8).
macro_rules! expr_ops {
    ($($name:ident = |$a:ident, $b:ident, $imm:ident| $e:expr;)*) => {$(
        pub(super) struct $name;
        impl Bin for $name {
            #[inline(always)]
            #[allow(unused_variables)]
            fn f($a: u128, $b: u128, $imm: u8) -> u128 {
                $e
            }
        }
    )*};
}

intr_ops! {
    Paddb = _mm_add_epi8;
    Paddw = _mm_add_epi16;
    Paddd = _mm_add_epi32;
    Paddq = _mm_add_epi64;
    Psubb = _mm_sub_epi8;
    Psubw = _mm_sub_epi16;
    Psubd = _mm_sub_epi32;
    Psubq = _mm_sub_epi64;
    Paddsb = _mm_adds_epi8;
    Paddsw = _mm_adds_epi16;
    Paddusb = _mm_adds_epu8;
    Paddusw = _mm_adds_epu16;
    Psubsb = _mm_subs_epi8;
    Psubsw = _mm_subs_epi16;
    Psubusb = _mm_subs_epu8;
    Psubusw = _mm_subs_epu16;
    Pmullw = _mm_mullo_epi16;
    Pmulhw = _mm_mulhi_epi16;
    Pmulhuw = _mm_mulhi_epu16;
    Pmuludq = _mm_mul_epu32;
    Pmaddwd = _mm_madd_epi16;
    Pavgb = _mm_avg_epu8;
    Pavgw = _mm_avg_epu16;
    Pminub = _mm_min_epu8;
    Pmaxub = _mm_max_epu8;
    Pminsw = _mm_min_epi16;
    Pmaxsw = _mm_max_epi16;
    Psadbw = _mm_sad_epu8;
    Pcmpeqb = _mm_cmpeq_epi8;
    Pcmpeqw = _mm_cmpeq_epi16;
    Pcmpeqd = _mm_cmpeq_epi32;
    Pcmpgtb = _mm_cmpgt_epi8;
    Pcmpgtw = _mm_cmpgt_epi16;
    Pcmpgtd = _mm_cmpgt_epi32;
    Psllw = _mm_sll_epi16;
    Pslld = _mm_sll_epi32;
    Psllq = _mm_sll_epi64;
    Psrlw = _mm_srl_epi16;
    Psrld = _mm_srl_epi32;
    Psrlq = _mm_srl_epi64;
    Psraw = _mm_sra_epi16;
    Psrad = _mm_sra_epi32;
    Punpcklbw = _mm_unpacklo_epi8;
    Punpcklwd = _mm_unpacklo_epi16;
    Punpckldq = _mm_unpacklo_epi32;
    Punpcklqdq = _mm_unpacklo_epi64;
    Punpckhbw = _mm_unpackhi_epi8;
    Punpckhwd = _mm_unpackhi_epi16;
    Punpckhdq = _mm_unpackhi_epi32;
    Punpckhqdq = _mm_unpackhi_epi64;
    Packsswb = _mm_packs_epi16;
    Packssdw = _mm_packs_epi32;
    Packuswb = _mm_packus_epi16;
}

/// Word `i` of `x`.
#[inline(always)]
fn word(x: u128, i: u32) -> u128 {
    (x >> (16 * i)) & 0xFFFF
}

/// Dword `i` of `x`.
#[inline(always)]
fn dword(x: u128, i: u32) -> u128 {
    (x >> (32 * i)) & 0xFFFF_FFFF
}

expr_ops! {
    Pand = |a, b, imm| a & b;
    Pandn = |a, b, imm| !a & b;
    Por = |a, b, imm| a | b;
    Pxor = |a, b, imm| a ^ b;
    // PSLLDQ/PSRLDQ: byte shifts; `b` is the imm8 count (only reached through `shift_imm`).
    Pslldq = |a, b, imm| if b > 15 { 0 } else { a << (8 * b) };
    Psrldq = |a, b, imm| if b > 15 { 0 } else { a >> (8 * b) };
    Pshufd = |a, b, imm| {
        let i = imm as u32;
        dword(b, i & 3)
            | dword(b, (i >> 2) & 3) << 32
            | dword(b, (i >> 4) & 3) << 64
            | dword(b, (i >> 6) & 3) << 96
    };
    Pshuflw = |a, b, imm| {
        let i = imm as u32;
        (b & (u128::MAX << 64))
            | word(b, i & 3)
            | word(b, (i >> 2) & 3) << 16
            | word(b, (i >> 4) & 3) << 32
            | word(b, (i >> 6) & 3) << 48
    };
    Pshufhw = |a, b, imm| {
        let i = imm as u32;
        (b & u64::MAX as u128)
            | word(b, 4 + (i & 3)) << 64
            | word(b, 4 + ((i >> 2) & 3)) << 80
            | word(b, 4 + ((i >> 4) & 3)) << 96
            | word(b, 4 + ((i >> 6) & 3)) << 112
    };
}

/// PINSRW xmm, r32/m16, imm8: word `imm & 7` of xmm = the low word of the source.
fn pinsrw<const MEM: bool>(core: &mut Core, sys: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let v = if MEM {
        let a = core.ea(ins);
        core.load::<u16>(sys, a)? as u128
    } else {
        (core.gpr[gpr_index(ins.op_register(1))] & 0xFFFF) as u128
    };
    let sh = 16 * (ins.immediate8() & 7) as u32;
    let d = &mut core.xmm[xr(ins, 0)];
    *d = (*d & !(0xFFFF << sh)) | (v << sh);
    Ok(())
}

/// PEXTRW r32/r64, xmm, imm8: word `imm & 7`, zero-extended into the whole register.
fn pextrw(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let v = word(core.xmm[xr(ins, 1)], (ins.immediate8() & 7) as u32) as u64;
    core.gpr[gpr_index(ins.op_register(0))] = v;
    Ok(())
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    use Code::*;
    match ins.code() {
        Paddb_xmm_xmmm128 => bin::<Paddb>(ins),
        Paddw_xmm_xmmm128 => bin::<Paddw>(ins),
        Paddd_xmm_xmmm128 => bin::<Paddd>(ins),
        Paddq_xmm_xmmm128 => bin::<Paddq>(ins),
        Psubb_xmm_xmmm128 => bin::<Psubb>(ins),
        Psubw_xmm_xmmm128 => bin::<Psubw>(ins),
        Psubd_xmm_xmmm128 => bin::<Psubd>(ins),
        Psubq_xmm_xmmm128 => bin::<Psubq>(ins),
        Paddsb_xmm_xmmm128 => bin::<Paddsb>(ins),
        Paddsw_xmm_xmmm128 => bin::<Paddsw>(ins),
        Paddusb_xmm_xmmm128 => bin::<Paddusb>(ins),
        Paddusw_xmm_xmmm128 => bin::<Paddusw>(ins),
        Psubsb_xmm_xmmm128 => bin::<Psubsb>(ins),
        Psubsw_xmm_xmmm128 => bin::<Psubsw>(ins),
        Psubusb_xmm_xmmm128 => bin::<Psubusb>(ins),
        Psubusw_xmm_xmmm128 => bin::<Psubusw>(ins),
        Pmullw_xmm_xmmm128 => bin::<Pmullw>(ins),
        Pmulhw_xmm_xmmm128 => bin::<Pmulhw>(ins),
        Pmulhuw_xmm_xmmm128 => bin::<Pmulhuw>(ins),
        Pmuludq_xmm_xmmm128 => bin::<Pmuludq>(ins),
        Pmaddwd_xmm_xmmm128 => bin::<Pmaddwd>(ins),
        Pavgb_xmm_xmmm128 => bin::<Pavgb>(ins),
        Pavgw_xmm_xmmm128 => bin::<Pavgw>(ins),
        Pminub_xmm_xmmm128 => bin::<Pminub>(ins),
        Pmaxub_xmm_xmmm128 => bin::<Pmaxub>(ins),
        Pminsw_xmm_xmmm128 => bin::<Pminsw>(ins),
        Pmaxsw_xmm_xmmm128 => bin::<Pmaxsw>(ins),
        Psadbw_xmm_xmmm128 => bin::<Psadbw>(ins),
        Pcmpeqb_xmm_xmmm128 => bin::<Pcmpeqb>(ins),
        Pcmpeqw_xmm_xmmm128 => bin::<Pcmpeqw>(ins),
        Pcmpeqd_xmm_xmmm128 => bin::<Pcmpeqd>(ins),
        Pcmpgtb_xmm_xmmm128 => bin::<Pcmpgtb>(ins),
        Pcmpgtw_xmm_xmmm128 => bin::<Pcmpgtw>(ins),
        Pcmpgtd_xmm_xmmm128 => bin::<Pcmpgtd>(ins),
        Pand_xmm_xmmm128 => bin::<Pand>(ins),
        Pandn_xmm_xmmm128 => bin::<Pandn>(ins),
        Por_xmm_xmmm128 => bin::<Por>(ins),
        Pxor_xmm_xmmm128 => bin::<Pxor>(ins),
        Psllw_xmm_xmmm128 => bin::<Psllw>(ins),
        Pslld_xmm_xmmm128 => bin::<Pslld>(ins),
        Psllq_xmm_xmmm128 => bin::<Psllq>(ins),
        Psrlw_xmm_xmmm128 => bin::<Psrlw>(ins),
        Psrld_xmm_xmmm128 => bin::<Psrld>(ins),
        Psrlq_xmm_xmmm128 => bin::<Psrlq>(ins),
        Psraw_xmm_xmmm128 => bin::<Psraw>(ins),
        Psrad_xmm_xmmm128 => bin::<Psrad>(ins),
        Psllw_xmm_imm8 => Some(shift_imm::<Psllw>),
        Pslld_xmm_imm8 => Some(shift_imm::<Pslld>),
        Psllq_xmm_imm8 => Some(shift_imm::<Psllq>),
        Psrlw_xmm_imm8 => Some(shift_imm::<Psrlw>),
        Psrld_xmm_imm8 => Some(shift_imm::<Psrld>),
        Psrlq_xmm_imm8 => Some(shift_imm::<Psrlq>),
        Psraw_xmm_imm8 => Some(shift_imm::<Psraw>),
        Psrad_xmm_imm8 => Some(shift_imm::<Psrad>),
        Pslldq_xmm_imm8 => Some(shift_imm::<Pslldq>),
        Psrldq_xmm_imm8 => Some(shift_imm::<Psrldq>),
        Pshufd_xmm_xmmm128_imm8 => bin::<Pshufd>(ins),
        Pshuflw_xmm_xmmm128_imm8 => bin::<Pshuflw>(ins),
        Pshufhw_xmm_xmmm128_imm8 => bin::<Pshufhw>(ins),
        Punpcklbw_xmm_xmmm128 => bin::<Punpcklbw>(ins),
        Punpcklwd_xmm_xmmm128 => bin::<Punpcklwd>(ins),
        Punpckldq_xmm_xmmm128 => bin::<Punpckldq>(ins),
        Punpcklqdq_xmm_xmmm128 => bin::<Punpcklqdq>(ins),
        Punpckhbw_xmm_xmmm128 => bin::<Punpckhbw>(ins),
        Punpckhwd_xmm_xmmm128 => bin::<Punpckhwd>(ins),
        Punpckhdq_xmm_xmmm128 => bin::<Punpckhdq>(ins),
        Punpckhqdq_xmm_xmmm128 => bin::<Punpckhqdq>(ins),
        Packsswb_xmm_xmmm128 => bin::<Packsswb>(ins),
        Packssdw_xmm_xmmm128 => bin::<Packssdw>(ins),
        Packuswb_xmm_xmmm128 => bin::<Packuswb>(ins),
        Pinsrw_xmm_r32m16_imm8 | Pinsrw_xmm_r64m16_imm8 => Some(if is_reg(ins, 1) {
            pinsrw::<false>
        } else {
            pinsrw::<true>
        }),
        Pextrw_r32_xmm_imm8 | Pextrw_r64_xmm_imm8 => Some(pextrw),
        _ => None,
    }
}

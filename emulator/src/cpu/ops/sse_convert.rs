//! SSE/SSE2 conversions (Intel SDM Vol. 2): CVTSI2SS, CVTSI2SD (r/m32, r/m64), CVTSS2SI,
//! CVTSD2SI, CVTTSS2SI, CVTTSD2SI (32- and 64-bit destinations), CVTSS2SD, CVTSD2SS,
//! CVTPS2PD, CVTPD2PS, CVTDQ2PS, CVTPS2DQ, CVTTPS2DQ, CVTDQ2PD, CVTPD2DQ, CVTTPD2DQ.
//!
//! Like the arithmetic in `sse_float.rs`, each conversion runs the same instruction on the
//! host under the guest's MXCSR control bits (rounding mode, DAZ, FTZ), so results —
//! including the integer indefinite 0x8000_0000 / 0x8000_0000_0000_0000 for NaN and
//! out-of-range inputs — and exception flags are the host silicon's; this requires an x86-64
//! host. Unmasked exceptions raise #XM without writing the destination (see `sse_float.rs`).
//! The MMX forms (CVTPI2PS, CVTPS2PI, CVTTPS2PI, CVTPI2PD, CVTPD2PI, CVTTPD2PI) are not
//! claimed and raise #UD.

use super::sse_float::{Lanes, commit, fp, fp_ops, host_fp, probe};
use super::sse_int::m;
use super::sse_move::{avail, is_reg, load_mem, xr};
use crate::cpu::operand::gpr_index;
use crate::cpu::{Core, Handler, Result, Sys};
use iced_x86::{Code, Instruction};

fp_ops! {
    Cvtss2sd: "cvtss2sd {x}, {y}", None;
    Cvtsd2ss: "cvtsd2ss {x}, {y}", Ss;
    Cvtps2pd: "cvtps2pd {x}, {y}", None;
    Cvtpd2ps: "cvtpd2ps {x}, {y}", Ps2;
    Cvtdq2ps: "cvtdq2ps {x}, {y}", None;
    Cvtps2dq: "cvtps2dq {x}, {y}", None;
    Cvttps2dq: "cvttps2dq {x}, {y}", None;
    Cvtdq2pd: "cvtdq2pd {x}, {y}", None;
    Cvtpd2dq: "cvtpd2dq {x}, {y}", None;
    Cvttpd2dq: "cvttpd2dq {x}, {y}", None;
}

/// A float-to-integer conversion into a general register.
trait ToInt {
    /// Returns the integer (32-bit results zero-extended) and the MXCSR after.
    fn run(b: u128, csr: u32) -> (u64, u32);
}

/// An integer-to-float conversion `x = cvt(x, r)`.
trait FromInt {
    fn run(a: u128, v: u64, csr: u32) -> (u128, u32);
}

macro_rules! to_int_ops {
    ($($name:ident: $tpl:literal;)*) => {$(
        struct $name;
        impl ToInt for $name {
            #[inline(always)]
            fn run(b: u128, csr: u32) -> (u64, u32) {
                let r: u64;
                let csr = host_fp!(csr; $tpl; r = out(reg) r, y = in(xmm_reg) m(b),);
                (r, csr)
            }
        }
    )*};
}

// A write to a 32-bit register zero-extends, so the 64-bit output holds the 32-bit result.
to_int_ops! {
    Cvtss2si32: "cvtss2si {r:e}, {y}";
    Cvtss2si64: "cvtss2si {r}, {y}";
    Cvttss2si32: "cvttss2si {r:e}, {y}";
    Cvttss2si64: "cvttss2si {r}, {y}";
    Cvtsd2si32: "cvtsd2si {r:e}, {y}";
    Cvtsd2si64: "cvtsd2si {r}, {y}";
    Cvttsd2si32: "cvttsd2si {r:e}, {y}";
    Cvttsd2si64: "cvttsd2si {r}, {y}";
}

macro_rules! from_int_ops {
    ($($name:ident: $tpl:literal;)*) => {$(
        struct $name;
        impl FromInt for $name {
            #[inline(always)]
            fn run(a: u128, v: u64, csr: u32) -> (u128, u32) {
                let mut x = m(a);
                let csr = host_fp!(csr; $tpl; x = inout(xmm_reg) x, r = in(reg) v,);
                (super::sse_int::u(x), csr)
            }
        }
    )*};
}

from_int_ops! {
    Cvtsi2ss32: "cvtsi2ss {x}, {r:e}";
    Cvtsi2ss64: "cvtsi2ss {x}, {r}";
    Cvtsi2sd32: "cvtsi2sd {x}, {r:e}";
    Cvtsi2sd64: "cvtsi2sd {x}, {r}";
}

/// Handler for `cvt r32/r64, xmm/mBYTES`.
fn to_int<O: ToInt, const BYTES: u32>(ins: &Instruction) -> Option<Handler> {
    Some(if is_reg(ins, 1) {
        to_int_rr::<O>
    } else {
        to_int_rm::<O, BYTES>
    })
}

fn to_int_rr<O: ToInt>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let b = core.xmm[xr(ins, 1)];
    to_int_exec::<O>(core, ins, b)
}

fn to_int_rm<O: ToInt, const BYTES: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let b = load_mem::<BYTES>(core, sys, a)?;
    to_int_exec::<O>(core, ins, b)
}

#[inline(always)]
fn to_int_exec<O: ToInt>(core: &mut Core, ins: &Instruction, b: u128) -> Result<()> {
    let (r, out) = O::run(b, probe(core.mxcsr));
    commit(core, out, Lanes::None, 0)?;
    core.gpr[gpr_index(ins.op_register(0))] = r;
    Ok(())
}

/// Handler for `cvtsi2s? xmm, r/mBITS`.
fn from_int<O: FromInt, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    avail(core)?;
    let v = core.read_op::<BITS>(sys, ins, 1)?;
    let d = xr(ins, 0);
    let (r, out) = O::run(core.xmm[d], v, probe(core.mxcsr));
    commit(core, out, Lanes::None, r)?;
    core.xmm[d] = r;
    Ok(())
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    use Code::*;
    match ins.code() {
        Cvtsi2ss_xmm_rm32 => Some(from_int::<Cvtsi2ss32, 32>),
        Cvtsi2ss_xmm_rm64 => Some(from_int::<Cvtsi2ss64, 64>),
        Cvtsi2sd_xmm_rm32 => Some(from_int::<Cvtsi2sd32, 32>),
        Cvtsi2sd_xmm_rm64 => Some(from_int::<Cvtsi2sd64, 64>),
        Cvtss2si_r32_xmmm32 => to_int::<Cvtss2si32, 4>(ins),
        Cvtss2si_r64_xmmm32 => to_int::<Cvtss2si64, 4>(ins),
        Cvttss2si_r32_xmmm32 => to_int::<Cvttss2si32, 4>(ins),
        Cvttss2si_r64_xmmm32 => to_int::<Cvttss2si64, 4>(ins),
        Cvtsd2si_r32_xmmm64 => to_int::<Cvtsd2si32, 8>(ins),
        Cvtsd2si_r64_xmmm64 => to_int::<Cvtsd2si64, 8>(ins),
        Cvttsd2si_r32_xmmm64 => to_int::<Cvttsd2si32, 8>(ins),
        Cvttsd2si_r64_xmmm64 => to_int::<Cvttsd2si64, 8>(ins),
        Cvtss2sd_xmm_xmmm32 => fp::<Cvtss2sd, 4>(ins),
        Cvtsd2ss_xmm_xmmm64 => fp::<Cvtsd2ss, 8>(ins),
        Cvtps2pd_xmm_xmmm64 => fp::<Cvtps2pd, 8>(ins),
        Cvtpd2ps_xmm_xmmm128 => fp::<Cvtpd2ps, 16>(ins),
        Cvtdq2ps_xmm_xmmm128 => fp::<Cvtdq2ps, 16>(ins),
        Cvtps2dq_xmm_xmmm128 => fp::<Cvtps2dq, 16>(ins),
        Cvttps2dq_xmm_xmmm128 => fp::<Cvttps2dq, 16>(ins),
        Cvtdq2pd_xmm_xmmm64 => fp::<Cvtdq2pd, 8>(ins),
        Cvtpd2dq_xmm_xmmm128 => fp::<Cvtpd2dq, 16>(ins),
        Cvttpd2dq_xmm_xmmm128 => fp::<Cvttpd2dq, 16>(ins),
        _ => None,
    }
}

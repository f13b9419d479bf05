//! SSE/SSE2 floating-point arithmetic (Intel SDM Vol. 2): ADDPS/ADDPD/ADDSS/ADDSD,
//! SUB…, MUL…, DIV…, MIN…, MAX…, SQRT…; ANDPS/ANDPD, ANDNPS/ANDNPD, ORPS/ORPD, XORPS/XORPD;
//! CMPPS/CMPPD/CMPSS/CMPSD (predicates 0–7); COMISS/COMISD/UCOMISS/UCOMISD; SHUFPS/SHUFPD,
//! UNPCKLPS/UNPCKHPS/UNPCKLPD/UNPCKHPD. SIMD floating-point exceptions follow SDM Vol. 1
//! §11.5.
//!
//! **Host requirement.** Every instruction that reads MXCSR runs *the same instruction on the
//! host CPU* inside one `asm!` block: load the guest's control bits (RC, FTZ, DAZ) with all
//! exceptions masked and the flags clear, execute, read back the MXCSR (the flags this
//! instruction raised), reload the default MXCSR 0x1F80 that Rust code runs under. Results —
//! NaN propagation, the default NaN, denormals, DAZ/FTZ, rounding — and flags are therefore
//! those of the host silicon bit for bit, and pvmlab's float semantics require an x86-64
//! host (the only hosts the project targets). RCPSS/RSQRTSS/RCPPS/RSQRTPS are left
//! unimplemented (#UD): their approximations differ between Intel and AMD, which would break
//! determinism across machines; rustc does not emit them without fast-math.
//!
//! **Unmasked exceptions.** Since the host runs with everything masked, an unmasked guest
//! exception is reconstructed from the flags (SDM Vol. 1 §11.5.1): if a pre-computation
//! exception (IE, DE, ZE, from any element) is unmasked, only those flags are set; otherwise
//! all raised flags are set, plus UE when underflow is unmasked and a result element is tiny
//! but exact (an unmasked UE is signalled on tininess alone, §11.5.2.4; FTZ is ignored then, so
//! the probe runs without it). If any set flag is unmasked the instruction raises #XM (#UD when
//! CR4.OSXMMEXCPT is clear) and leaves its destination unchanged; MXCSR keeps the flags.
//!
//! This file also defines the machinery `sse_convert.rs` uses (`host_fp!`, `fp_ops!`,
//! `FpOp`, `fp`, `commit`).

use super::sse_int::{
    Bin, Pand, Pandn, Por, Punpckhdq, Punpckhqdq, Punpckldq, Punpcklqdq, Pxor, bin, m,
};
use super::sse_move::{avail, is_reg, load_mem, xr};
use crate::cpu::{CR4_OSXMMEXCPT, Core, Fault, Handler, Result, Stop, Sys, UD, XM};
use iced_x86::{Code, Instruction};

/// MXCSR exception flags (bits 0–5); the masks are the same bits shifted left by 7.
pub(super) const IE: u32 = 1 << 0;
pub(super) const DE: u32 = 1 << 1;
pub(super) const ZE: u32 = 1 << 2;
pub(super) const UE: u32 = 1 << 4;
const FLAGS: u32 = 0x3F;
const ALL_MASKS: u32 = 0x3F << 7;
const UM: u32 = 1 << 11;
const FTZ: u32 = 1 << 15;

/// The MXCSR Rust code runs under (LLVM assumes the default floating-point environment):
/// restored after every host operation instead of saving and reloading the host's value,
/// which costs a serialising STMXCSR→LDMXCSR round trip (about half the cost of an op).
pub(super) static RUST_MXCSR: u32 = 0x1F80;

/// Runs the instruction(s) in the template on the host with MXCSR = `$csr` (which must have
/// all exceptions masked) and evaluates to the MXCSR afterwards; the host MXCSR is then
/// reset to the default 0x1F80 (flags clear). The remaining tokens are the `asm!` operands,
/// each followed by a comma.
macro_rules! host_fp {
    ($csr:expr; $($tpl:literal),+; $($ops:tt)*) => {{
        let mut csr: u32 = $csr;
        // SAFETY: the block loads `csr` into MXCSR (all exceptions masked, so the SSE
        // instruction cannot trap), runs the instruction on its register operands, stores the
        // resulting MXCSR into `csr` and reloads the default MXCSR Rust code expects. It reads
        // and writes only its operands, the local `csr` and the static it is given; it uses no
        // stack.
        unsafe {
            core::arch::asm!(
                "ldmxcsr [{csr}]",
                $($tpl,)+
                "stmxcsr [{csr}]",
                "ldmxcsr [{rust}]",
                csr = in(reg) &raw mut csr,
                rust = in(reg) &raw const $crate::cpu::ops::sse_float::RUST_MXCSR,
                $($ops)*
                options(nostack),
            );
        }
        csr
    }};
}
pub(super) use host_fp;

/// Which result elements can underflow (for the unmasked-UE tininess check).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lanes {
    /// The operation cannot underflow.
    None,
    /// Single precision: element 0 / elements 0–1 / elements 0–3.
    Ss,
    Ps2,
    Ps,
    /// Double precision: element 0 / elements 0–1.
    Sd,
    Pd,
}

/// An XMM-to-XMM floating-point operation `x = op(x, y)` run on the host.
pub(super) trait FpOp {
    const LANES: Lanes;
    /// Runs the operation with host MXCSR = `csr`; returns the result and the MXCSR after.
    fn run(a: u128, b: u128, csr: u32) -> (u128, u32);
}

/// Defines `FpOp` types: `Name: "insn {x}, {y}", Lanes;`.
macro_rules! fp_ops {
    ($($name:ident: $tpl:literal, $lanes:ident;)*) => {$(
        pub(super) struct $name;
        impl $crate::cpu::ops::sse_float::FpOp for $name {
            const LANES: $crate::cpu::ops::sse_float::Lanes =
                $crate::cpu::ops::sse_float::Lanes::$lanes;
            #[inline(always)]
            fn run(a: u128, b: u128, csr: u32) -> (u128, u32) {
                use $crate::cpu::ops::sse_int::{m, u};
                let mut x = m(a);
                let csr = $crate::cpu::ops::sse_float::host_fp!(
                    csr; $tpl; x = inout(xmm_reg) x, y = in(xmm_reg) m(b),
                );
                (u(x), csr)
            }
        }
    )*};
}
pub(super) use fp_ops;

/// The host MXCSR an operation runs under: the guest's RC, FTZ and DAZ, every exception
/// masked, flags clear. FTZ has no effect while underflow is unmasked (SDM Vol. 1 §10.2.3.3),
/// so it is dropped then.
#[inline(always)]
pub(super) fn probe(g: u32) -> u32 {
    // Only the 16 defined bits: a reserved bit would make the host's LDMXCSR fault.
    let c = (g & 0xFFFF & !FLAGS) | ALL_MASKS;
    if g & UM == 0 { c & !FTZ } else { c }
}

/// Records the flags an operation raised (`out`: the host MXCSR after it) in the guest
/// MXCSR, or raises #XM for an unmasked exception. `r` is the result (for tininess).
#[inline(always)]
pub(super) fn commit(core: &mut Core, out: u32, lanes: Lanes, r: u128) -> Result<()> {
    let g = core.mxcsr;
    let raised = out & FLAGS;
    let unmasked = !(g >> 7) & FLAGS;
    if raised & unmasked == 0 && (unmasked & UE == 0 || lanes == Lanes::None) {
        core.mxcsr = g | raised;
        return Ok(());
    }
    commit_slow(core, raised, unmasked, lanes, r)
}

#[cold]
fn commit_slow(core: &mut Core, raised: u32, unmasked: u32, lanes: Lanes, r: u128) -> Result<()> {
    let pre = raised & (IE | DE | ZE);
    let flags = if pre & unmasked != 0 {
        pre
    } else if unmasked & UE != 0 && tiny(lanes, r) {
        raised | UE
    } else {
        raised
    };
    core.mxcsr |= flags;
    if flags & unmasked == 0 {
        return Ok(());
    }
    Err(simd_fault(core))
}

/// #XM, or #UD when the OS has not enabled SIMD exceptions (CR4.OSXMMEXCPT clear).
#[cold]
pub(super) fn simd_fault(core: &Core) -> Stop {
    if core.cr4 & CR4_OSXMMEXCPT != 0 {
        Fault::new(XM).into()
    } else {
        Fault::new(UD).into()
    }
}

/// Whether an element of `r` that `lanes` covers is a (nonzero) denormal: with FTZ off, the
/// result of a tiny exact operation.
fn tiny(lanes: Lanes, r: u128) -> bool {
    let s = |i: u32| {
        let x = (r >> (32 * i)) as u32;
        x & 0x7F80_0000 == 0 && x & 0x007F_FFFF != 0
    };
    let d = |i: u32| {
        let x = (r >> (64 * i)) as u64;
        x & 0x7FF0_0000_0000_0000 == 0 && x & 0x000F_FFFF_FFFF_FFFF != 0
    };
    match lanes {
        Lanes::None => false,
        Lanes::Ss => s(0),
        Lanes::Ps2 => s(0) || s(1),
        Lanes::Ps => (0..4).any(s),
        Lanes::Sd => d(0),
        Lanes::Pd => d(0) || d(1),
    }
}

/// Handler for `op xmm1, xmm2/mBYTES` (`BYTES` = 4, 8, or 16 aligned).
pub(super) fn fp<O: FpOp, const BYTES: u32>(ins: &Instruction) -> Option<Handler> {
    Some(if is_reg(ins, 1) {
        fp_rr::<O>
    } else {
        fp_rm::<O, BYTES>
    })
}

fn fp_rr<O: FpOp>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let b = core.xmm[xr(ins, 1)];
    fp_exec::<O>(core, xr(ins, 0), b)
}

fn fp_rm<O: FpOp, const BYTES: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let b = load_mem::<BYTES>(core, sys, a)?;
    fp_exec::<O>(core, xr(ins, 0), b)
}

#[inline(always)]
fn fp_exec<O: FpOp>(core: &mut Core, d: usize, b: u128) -> Result<()> {
    let (r, out) = O::run(core.xmm[d], b, probe(core.mxcsr));
    commit(core, out, O::LANES, r)?;
    core.xmm[d] = r;
    Ok(())
}

fp_ops! {
    Addps: "addps {x}, {y}", Ps;
    Addpd: "addpd {x}, {y}", Pd;
    Addss: "addss {x}, {y}", Ss;
    Addsd: "addsd {x}, {y}", Sd;
    Subps: "subps {x}, {y}", Ps;
    Subpd: "subpd {x}, {y}", Pd;
    Subss: "subss {x}, {y}", Ss;
    Subsd: "subsd {x}, {y}", Sd;
    Mulps: "mulps {x}, {y}", Ps;
    Mulpd: "mulpd {x}, {y}", Pd;
    Mulss: "mulss {x}, {y}", Ss;
    Mulsd: "mulsd {x}, {y}", Sd;
    Divps: "divps {x}, {y}", Ps;
    Divpd: "divpd {x}, {y}", Pd;
    Divss: "divss {x}, {y}", Ss;
    Divsd: "divsd {x}, {y}", Sd;
    Minps: "minps {x}, {y}", None;
    Minpd: "minpd {x}, {y}", None;
    Minss: "minss {x}, {y}", None;
    Minsd: "minsd {x}, {y}", None;
    Maxps: "maxps {x}, {y}", None;
    Maxpd: "maxpd {x}, {y}", None;
    Maxss: "maxss {x}, {y}", None;
    Maxsd: "maxsd {x}, {y}", None;
    Sqrtps: "sqrtps {x}, {y}", None;
    Sqrtpd: "sqrtpd {x}, {y}", None;
    Sqrtss: "sqrtss {x}, {y}", None;
    Sqrtsd: "sqrtsd {x}, {y}", None;
    Cmpps0: "cmpps {x}, {y}, 0", None;
    Cmpps1: "cmpps {x}, {y}, 1", None;
    Cmpps2: "cmpps {x}, {y}, 2", None;
    Cmpps3: "cmpps {x}, {y}, 3", None;
    Cmpps4: "cmpps {x}, {y}, 4", None;
    Cmpps5: "cmpps {x}, {y}, 5", None;
    Cmpps6: "cmpps {x}, {y}, 6", None;
    Cmpps7: "cmpps {x}, {y}, 7", None;
    Cmppd0: "cmppd {x}, {y}, 0", None;
    Cmppd1: "cmppd {x}, {y}, 1", None;
    Cmppd2: "cmppd {x}, {y}, 2", None;
    Cmppd3: "cmppd {x}, {y}, 3", None;
    Cmppd4: "cmppd {x}, {y}, 4", None;
    Cmppd5: "cmppd {x}, {y}, 5", None;
    Cmppd6: "cmppd {x}, {y}, 6", None;
    Cmppd7: "cmppd {x}, {y}, 7", None;
    Cmpss0: "cmpss {x}, {y}, 0", None;
    Cmpss1: "cmpss {x}, {y}, 1", None;
    Cmpss2: "cmpss {x}, {y}, 2", None;
    Cmpss3: "cmpss {x}, {y}, 3", None;
    Cmpss4: "cmpss {x}, {y}, 4", None;
    Cmpss5: "cmpss {x}, {y}, 5", None;
    Cmpss6: "cmpss {x}, {y}, 6", None;
    Cmpss7: "cmpss {x}, {y}, 7", None;
    Cmpsd0: "cmpsd {x}, {y}, 0", None;
    Cmpsd1: "cmpsd {x}, {y}, 1", None;
    Cmpsd2: "cmpsd {x}, {y}, 2", None;
    Cmpsd3: "cmpsd {x}, {y}, 3", None;
    Cmpsd4: "cmpsd {x}, {y}, 4", None;
    Cmpsd5: "cmpsd {x}, {y}, 5", None;
    Cmpsd6: "cmpsd {x}, {y}, 6", None;
    Cmpsd7: "cmpsd {x}, {y}, 7", None;
}

/// COMISS/COMISD/UCOMISS/UCOMISD: ZF, PF, CF from the comparison, OF = SF = AF = 0.
trait Comi {
    /// Returns the status flags and the MXCSR after.
    fn run(a: u128, b: u128, csr: u32) -> (u64, u32);
}

macro_rules! comi_ops {
    ($($name:ident: $tpl:literal;)*) => {$(
        struct $name;
        impl Comi for $name {
            #[inline(always)]
            fn run(a: u128, b: u128, csr: u32) -> (u64, u32) {
                let (z, p, c): (u8, u8, u8);
                let csr = host_fp!(
                    csr; $tpl, "setz {z}", "setp {p}", "setc {c}";
                    x = in(xmm_reg) m(a), y = in(xmm_reg) m(b),
                    z = out(reg_byte) z, p = out(reg_byte) p, c = out(reg_byte) c,
                );
                use crate::cpu::flags::{CF, PF, ZF};
                let f = (z as u64 * ZF) | (p as u64 * PF) | (c as u64 * CF);
                (f, csr)
            }
        }
    )*};
}

comi_ops! {
    Comiss: "comiss {x}, {y}";
    Comisd: "comisd {x}, {y}";
    Ucomiss: "ucomiss {x}, {y}";
    Ucomisd: "ucomisd {x}, {y}";
}

fn comi<O: Comi, const BYTES: u32>(ins: &Instruction) -> Option<Handler> {
    Some(if is_reg(ins, 1) {
        comi_rr::<O>
    } else {
        comi_rm::<O, BYTES>
    })
}

fn comi_rr<O: Comi>(core: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    avail(core)?;
    let b = core.xmm[xr(ins, 1)];
    comi_exec::<O>(core, xr(ins, 0), b)
}

fn comi_rm<O: Comi, const BYTES: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    avail(core)?;
    let a = core.ea(ins);
    let b = load_mem::<BYTES>(core, sys, a)?;
    comi_exec::<O>(core, xr(ins, 0), b)
}

#[inline(always)]
fn comi_exec<O: Comi>(core: &mut Core, d: usize, b: u128) -> Result<()> {
    let (f, out) = O::run(core.xmm[d], b, probe(core.mxcsr));
    commit(core, out, Lanes::None, 0)?;
    core.set_status(f);
    Ok(())
}

/// SHUFPS: two elements of the destination, then two of the source, chosen by imm8.
struct Shufps;
impl Bin for Shufps {
    #[inline(always)]
    fn f(a: u128, b: u128, imm: u8) -> u128 {
        let e = |x: u128, i: u8| (x >> (32 * (i & 3) as u32)) & 0xFFFF_FFFF;
        e(a, imm) | e(a, imm >> 2) << 32 | e(b, imm >> 4) << 64 | e(b, imm >> 6) << 96
    }
}

/// SHUFPD: one quadword of the destination, then one of the source, chosen by imm8[1:0].
struct Shufpd;
impl Bin for Shufpd {
    #[inline(always)]
    fn f(a: u128, b: u128, imm: u8) -> u128 {
        let lo = if imm & 1 != 0 {
            a >> 64
        } else {
            a & u64::MAX as u128
        };
        let hi = if imm & 2 != 0 {
            b >> 64
        } else {
            b & u64::MAX as u128
        };
        lo | hi << 64
    }
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    use Code::*;
    match ins.code() {
        Addps_xmm_xmmm128 => fp::<Addps, 16>(ins),
        Addpd_xmm_xmmm128 => fp::<Addpd, 16>(ins),
        Addss_xmm_xmmm32 => fp::<Addss, 4>(ins),
        Addsd_xmm_xmmm64 => fp::<Addsd, 8>(ins),
        Subps_xmm_xmmm128 => fp::<Subps, 16>(ins),
        Subpd_xmm_xmmm128 => fp::<Subpd, 16>(ins),
        Subss_xmm_xmmm32 => fp::<Subss, 4>(ins),
        Subsd_xmm_xmmm64 => fp::<Subsd, 8>(ins),
        Mulps_xmm_xmmm128 => fp::<Mulps, 16>(ins),
        Mulpd_xmm_xmmm128 => fp::<Mulpd, 16>(ins),
        Mulss_xmm_xmmm32 => fp::<Mulss, 4>(ins),
        Mulsd_xmm_xmmm64 => fp::<Mulsd, 8>(ins),
        Divps_xmm_xmmm128 => fp::<Divps, 16>(ins),
        Divpd_xmm_xmmm128 => fp::<Divpd, 16>(ins),
        Divss_xmm_xmmm32 => fp::<Divss, 4>(ins),
        Divsd_xmm_xmmm64 => fp::<Divsd, 8>(ins),
        Minps_xmm_xmmm128 => fp::<Minps, 16>(ins),
        Minpd_xmm_xmmm128 => fp::<Minpd, 16>(ins),
        Minss_xmm_xmmm32 => fp::<Minss, 4>(ins),
        Minsd_xmm_xmmm64 => fp::<Minsd, 8>(ins),
        Maxps_xmm_xmmm128 => fp::<Maxps, 16>(ins),
        Maxpd_xmm_xmmm128 => fp::<Maxpd, 16>(ins),
        Maxss_xmm_xmmm32 => fp::<Maxss, 4>(ins),
        Maxsd_xmm_xmmm64 => fp::<Maxsd, 8>(ins),
        Sqrtps_xmm_xmmm128 => fp::<Sqrtps, 16>(ins),
        Sqrtpd_xmm_xmmm128 => fp::<Sqrtpd, 16>(ins),
        Sqrtss_xmm_xmmm32 => fp::<Sqrtss, 4>(ins),
        Sqrtsd_xmm_xmmm64 => fp::<Sqrtsd, 8>(ins),
        Cmpps_xmm_xmmm128_imm8 => match ins.immediate8() & 7 {
            0 => fp::<Cmpps0, 16>(ins),
            1 => fp::<Cmpps1, 16>(ins),
            2 => fp::<Cmpps2, 16>(ins),
            3 => fp::<Cmpps3, 16>(ins),
            4 => fp::<Cmpps4, 16>(ins),
            5 => fp::<Cmpps5, 16>(ins),
            6 => fp::<Cmpps6, 16>(ins),
            _ => fp::<Cmpps7, 16>(ins),
        },
        Cmppd_xmm_xmmm128_imm8 => match ins.immediate8() & 7 {
            0 => fp::<Cmppd0, 16>(ins),
            1 => fp::<Cmppd1, 16>(ins),
            2 => fp::<Cmppd2, 16>(ins),
            3 => fp::<Cmppd3, 16>(ins),
            4 => fp::<Cmppd4, 16>(ins),
            5 => fp::<Cmppd5, 16>(ins),
            6 => fp::<Cmppd6, 16>(ins),
            _ => fp::<Cmppd7, 16>(ins),
        },
        Cmpss_xmm_xmmm32_imm8 => match ins.immediate8() & 7 {
            0 => fp::<Cmpss0, 4>(ins),
            1 => fp::<Cmpss1, 4>(ins),
            2 => fp::<Cmpss2, 4>(ins),
            3 => fp::<Cmpss3, 4>(ins),
            4 => fp::<Cmpss4, 4>(ins),
            5 => fp::<Cmpss5, 4>(ins),
            6 => fp::<Cmpss6, 4>(ins),
            _ => fp::<Cmpss7, 4>(ins),
        },
        Cmpsd_xmm_xmmm64_imm8 => match ins.immediate8() & 7 {
            0 => fp::<Cmpsd0, 8>(ins),
            1 => fp::<Cmpsd1, 8>(ins),
            2 => fp::<Cmpsd2, 8>(ins),
            3 => fp::<Cmpsd3, 8>(ins),
            4 => fp::<Cmpsd4, 8>(ins),
            5 => fp::<Cmpsd5, 8>(ins),
            6 => fp::<Cmpsd6, 8>(ins),
            _ => fp::<Cmpsd7, 8>(ins),
        },
        Comiss_xmm_xmmm32 => comi::<Comiss, 4>(ins),
        Comisd_xmm_xmmm64 => comi::<Comisd, 8>(ins),
        Ucomiss_xmm_xmmm32 => comi::<Ucomiss, 4>(ins),
        Ucomisd_xmm_xmmm64 => comi::<Ucomisd, 8>(ins),
        Andps_xmm_xmmm128 | Andpd_xmm_xmmm128 => bin::<Pand>(ins),
        Andnps_xmm_xmmm128 | Andnpd_xmm_xmmm128 => bin::<Pandn>(ins),
        Orps_xmm_xmmm128 | Orpd_xmm_xmmm128 => bin::<Por>(ins),
        Xorps_xmm_xmmm128 | Xorpd_xmm_xmmm128 => bin::<Pxor>(ins),
        Shufps_xmm_xmmm128_imm8 => bin::<Shufps>(ins),
        Shufpd_xmm_xmmm128_imm8 => bin::<Shufpd>(ins),
        Unpcklps_xmm_xmmm128 => bin::<Punpckldq>(ins),
        Unpckhps_xmm_xmmm128 => bin::<Punpckhdq>(ins),
        Unpcklpd_xmm_xmmm128 => bin::<Punpcklqdq>(ins),
        Unpckhpd_xmm_xmmm128 => bin::<Punpckhqdq>(ins),
        _ => None,
    }
}

// The instruction-level comparison with the host CPU lives in the differential oracle
// (`emulator/tests/oracle_sse_*.rs`); these tests cover what it cannot run natively.
#[cfg(test)]
mod tests {
    use super::super::alu::testing::{BASE, CODE, machine};
    /// The memory operand buffer.
    const BUF: u64 = BASE + 0x8000;
    use crate::cpu::decode::CodeCache;
    use crate::cpu::{
        CF, CR0_EM, CR0_TS, CR4_OSXMMEXCPT, Core, Fault, GP, NM, PF, RAX, RSI, STATUS, Stop, Sys,
        UD, XM, ZF, run,
    };
    use iced_x86::code_asm::*;

    /// Assembles one instruction at CODE and runs it through the block loop.
    fn step(c: &mut Core, s: &mut Sys, f: impl FnOnce(&mut CodeAssembler)) -> Result<(), Stop> {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a);
        let bytes = a.assemble(CODE).unwrap();
        s.ram.write(CODE, &bytes).unwrap();
        s.ram.write(CODE + bytes.len() as u64, &[0xF4]).unwrap();
        c.rip = CODE;
        c.gpr[RSI] = BUF;
        match run(c, s, &mut CodeCache::new(), 1) {
            Some(stop) => {
                assert_eq!(c.rip, CODE, "a faulting instruction does not retire");
                Err(stop)
            }
            None => Ok(()),
        }
    }

    fn fault(v: u8) -> Result<(), Stop> {
        Err(Stop::Fault(Fault::new(v)))
    }

    fn gp0() -> Result<(), Stop> {
        Err(Stop::Fault(Fault::with_code(GP, 0)))
    }

    fn ps(v: [f32; 4]) -> u128 {
        v.iter()
            .enumerate()
            .fold(0, |a, (i, x)| a | (x.to_bits() as u128) << (32 * i))
    }

    const IM: u32 = 1 << 7;
    const ZM: u32 = 1 << 9;
    const UM: u32 = 1 << 11;
    const PM: u32 = 1 << 12;

    #[test]
    fn masked_flags_are_sticky() {
        let (mut c, mut s) = machine();
        c.xmm[0] = ps([1.0, 2.0, 3.0, 4.0]);
        c.xmm[1] = ps([0.0, 1.0, 1.0, 1.0]);
        step(&mut c, &mut s, |a| a.divss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.xmm[0], ps([f32::INFINITY, 2.0, 3.0, 4.0]));
        assert_eq!(c.mxcsr, 0x1F80 | 4);
        c.xmm[0] = ps([1.0, 0.0, 0.0, 0.0]);
        c.xmm[1] = ps([3.0, 0.0, 0.0, 0.0]);
        step(&mut c, &mut s, |a| a.divss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.mxcsr, 0x1F80 | 4 | 32, "ZE stays set, PE added");
    }

    #[test]
    fn unmasked_invalid_raises_xm_without_writing() {
        let (mut c, mut s) = machine();
        c.mxcsr = 0x1F80 & !IM;
        c.xmm[0] = ps([0.0, 1.0, 1.0, 1.0]);
        c.xmm[1] = ps([0.0, 1.0, 1.0, 1.0]);
        let before = c.xmm[0];
        assert_eq!(
            step(&mut c, &mut s, |a| a.divps(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.xmm[0], before);
        assert_eq!(c.mxcsr, (0x1F80 & !IM) | 1);
        // With CR4.OSXMMEXCPT clear the same condition is #UD.
        c.cr4 &= !CR4_OSXMMEXCPT;
        assert_eq!(
            step(&mut c, &mut s, |a| a.divps(xmm0, xmm1).unwrap()),
            fault(UD)
        );
    }

    #[test]
    fn pre_computation_exceptions_come_first() {
        let (mut c, mut s) = machine();
        // Lane 0: 0/0 (IE, pre-computation); lane 1: 1/3 (PE, post-computation).
        let x = ps([0.0, 1.0, 2.0, 2.0]);
        let y = ps([0.0, 3.0, 1.0, 1.0]);
        c.mxcsr = 0x1F80 & !IM & !PM;
        c.xmm[0] = x;
        c.xmm[1] = y;
        assert_eq!(
            step(&mut c, &mut s, |a| a.divps(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.mxcsr & 0x3F, 1, "only the pre-computation flag");
        assert_eq!(c.xmm[0], x);
        // IE masked: the computation proceeds, and the unmasked PE faults with both flags.
        c.mxcsr = 0x1F80 & !PM;
        assert_eq!(
            step(&mut c, &mut s, |a| a.divps(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.mxcsr & 0x3F, 1 | 32);
        assert_eq!(c.xmm[0], x);
        // ZE unmasked, divisor zero in lane 2 only.
        c.mxcsr = 0x1F80 & !ZM;
        c.xmm[1] = ps([1.0, 1.0, 0.0, 1.0]);
        assert_eq!(
            step(&mut c, &mut s, |a| a.divps(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.mxcsr & 0x3F, 4);
    }

    #[test]
    fn unmasked_underflow_signals_on_tiny_exact_results() {
        let (mut c, mut s) = machine();
        let t = f32::from_bits(0x1C80_0000); // 2^-70
        c.xmm[0] = ps([t, 1.0, 1.0, 1.0]);
        c.xmm[1] = ps([t, 1.0, 1.0, 1.0]);
        // Masked: 2^-140 is an exact denormal, so no flag at all.
        step(&mut c, &mut s, |a| a.mulss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.xmm[0] as u32, 1 << 9);
        assert_eq!(c.mxcsr, 0x1F80);
        // Unmasked (FTZ set, which is then ignored): #XM with UE alone.
        c.xmm[0] = ps([t, 1.0, 1.0, 1.0]);
        c.mxcsr = (0x1F80 & !UM) | 1 << 15;
        assert_eq!(
            step(&mut c, &mut s, |a| a.mulss(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.mxcsr & 0x3F, 16);
        // Unmasked but nothing tiny: retires normally.
        c.mxcsr = 0x1F80 & !UM;
        c.xmm[0] = ps([1.0, 1.0, 1.0, 1.0]);
        step(&mut c, &mut s, |a| a.mulps(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.mxcsr, 0x1F80 & !UM);
        // MIN of a denormal is not an underflow.
        c.xmm[0] = 1 << 9;
        c.xmm[1] = ps([1.0; 4]);
        step(&mut c, &mut s, |a| a.minss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.xmm[0] as u32, 1 << 9);
        assert_eq!(c.mxcsr & 0x3F, 2, "DE for the denormal operand");
    }

    #[test]
    fn comis_and_cvt_faults_leave_state() {
        let (mut c, mut s) = machine();
        c.xmm[0] = ps([f32::NAN, 0.0, 0.0, 0.0]);
        c.xmm[1] = ps([1.0, 0.0, 0.0, 0.0]);
        c.rflags = 0x202 | STATUS;
        step(&mut c, &mut s, |a| a.ucomiss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.rflags & STATUS, ZF | PF | CF, "unordered");
        assert_eq!(c.mxcsr, 0x1F80, "QNaN is quiet for UCOMISS");
        step(&mut c, &mut s, |a| a.comiss(xmm0, xmm1).unwrap()).unwrap();
        assert_eq!(c.mxcsr, 0x1F81, "but signals for COMISS");
        c.mxcsr = 0x1F80 & !IM;
        c.rflags = 0x202;
        assert_eq!(
            step(&mut c, &mut s, |a| a.comiss(xmm0, xmm1).unwrap()),
            fault(XM)
        );
        assert_eq!(c.rflags, 0x202);
        c.mxcsr = 0x1F80 & !IM;
        c.gpr[RAX] = 0x1234;
        assert_eq!(
            step(&mut c, &mut s, |a| a.cvttss2si(rax, xmm0).unwrap()),
            fault(XM)
        );
        assert_eq!(c.gpr[RAX], 0x1234);
        c.mxcsr = 0x1F80;
        step(&mut c, &mut s, |a| a.cvttss2si(rax, xmm0).unwrap()).unwrap();
        assert_eq!(c.gpr[RAX], 1 << 63, "integer indefinite");
        step(&mut c, &mut s, |a| a.cvttss2si(eax, xmm0).unwrap()).unwrap();
        assert_eq!(c.gpr[RAX], 0x8000_0000);
    }

    #[test]
    fn alignment() {
        let (mut c, mut s) = machine();
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .movaps(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .movdqa(xmmword_ptr(rsi + 8), xmm0)
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .movntdq(xmmword_ptr(rsi + 8), xmm0)
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .addps(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .paddb(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .psrlw(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .pshufd(xmm0, xmmword_ptr(rsi + 8), 1)
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .andps(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a
                .cvtdq2ps(xmm0, xmmword_ptr(rsi + 8))
                .unwrap()),
            gp0()
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a.fxsave(ptr(rsi + 8)).unwrap()),
            gp0()
        );
        s.ram.write(BUF + 1, &7.5f64.to_le_bytes()).unwrap();
        step(&mut c, &mut s, |a| {
            a.movups(xmm0, xmmword_ptr(rsi + 1)).unwrap()
        })
        .unwrap();
        step(&mut c, &mut s, |a| {
            a.movdqu(xmmword_ptr(rsi + 3), xmm0).unwrap()
        })
        .unwrap();
        step(&mut c, &mut s, |a| {
            a.addsd(xmm1, qword_ptr(rsi + 3)).unwrap()
        })
        .unwrap();
        step(&mut c, &mut s, |a| {
            a.cvtps2pd(xmm1, qword_ptr(rsi + 3)).unwrap()
        })
        .unwrap();
        step(&mut c, &mut s, |a| {
            a.movhps(xmm1, qword_ptr(rsi + 3)).unwrap()
        })
        .unwrap();
        step(&mut c, &mut s, |a| {
            a.movsd_2(xmm2, qword_ptr(rsi + 3)).unwrap()
        })
        .unwrap();
        assert_eq!(c.xmm[2], 7.5f64.to_bits() as u128);
    }

    #[test]
    fn cr0_ts_and_em() {
        let (mut c, mut s) = machine();
        c.cr0 |= CR0_TS;
        assert_eq!(
            step(&mut c, &mut s, |a| a.movaps(xmm0, xmm1).unwrap()),
            fault(NM)
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a.paddb(xmm0, xmm1).unwrap()),
            fault(NM)
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a.fxsave(ptr(rsi)).unwrap()),
            fault(NM)
        );
        // MOVNTI and prefetches use no SSE state.
        step(&mut c, &mut s, |a| a.movnti(ptr(rsi), eax).unwrap()).unwrap();
        step(&mut c, &mut s, |a| a.prefetcht0(ptr(rsi)).unwrap()).unwrap();
        c.cr0 = (c.cr0 & !CR0_TS) | CR0_EM;
        assert_eq!(
            step(&mut c, &mut s, |a| a.addps(xmm0, xmm1).unwrap()),
            fault(UD)
        );
        assert_eq!(
            step(&mut c, &mut s, |a| a.fxsave(ptr(rsi)).unwrap()),
            fault(NM)
        );
    }

    #[test]
    fn ldmxcsr_reserved_bits() {
        let (mut c, mut s) = machine();
        s.ram.write(BUF, &0x1_1F80u32.to_le_bytes()).unwrap();
        assert_eq!(
            step(&mut c, &mut s, |a| a.ldmxcsr(ptr(rsi)).unwrap()),
            gp0()
        );
        assert_eq!(c.mxcsr, 0x1F80);
        s.ram.write(BUF, &0xFFFFu32.to_le_bytes()).unwrap();
        step(&mut c, &mut s, |a| a.ldmxcsr(ptr(rsi)).unwrap()).unwrap();
        assert_eq!(c.mxcsr, 0xFFFF);
    }

    #[test]
    fn fxsave_fxrstor_round_trip() {
        let (mut c, mut s) = machine();
        s.ram.write(BUF, &[0xAA; 512]).unwrap();
        let regs: [u128; 16] =
            std::array::from_fn(|i| 0x0123_4567_89AB_CDEF_u128 * (i as u128 + 1));
        c.xmm = regs;
        c.mxcsr = 0x7F80 | 0x21;
        step(&mut c, &mut s, |a| a.fxsave64(ptr(rsi)).unwrap()).unwrap();
        let mut img = [0u8; 512];
        s.ram.read(BUF, &mut img).unwrap();
        assert_eq!(u16::from_le_bytes([img[0], img[1]]), 0x037F);
        assert_eq!(u32::from_le_bytes(img[24..28].try_into().unwrap()), 0x7FA1);
        assert_eq!(u32::from_le_bytes(img[28..32].try_into().unwrap()), 0xFFFF);
        assert!(img[32..160].iter().all(|&b| b == 0));
        assert!(
            img[416..].iter().all(|&b| b == 0xAA),
            "reserved/available bytes untouched"
        );
        c.xmm = [0; 16];
        c.mxcsr = 0x1F80;
        step(&mut c, &mut s, |a| a.fxrstor(ptr(rsi)).unwrap()).unwrap();
        assert_eq!(c.xmm, regs);
        assert_eq!(c.mxcsr, 0x7FA1);
        // A reserved MXCSR bit in the image: #GP(0), nothing restored.
        s.ram.write(BUF + 24, &0x2_0000u32.to_le_bytes()).unwrap();
        c.xmm = [0; 16];
        assert_eq!(
            step(&mut c, &mut s, |a| a.fxrstor64(ptr(rsi)).unwrap()),
            gp0()
        );
        assert_eq!(c.xmm, [0; 16]);
    }
}

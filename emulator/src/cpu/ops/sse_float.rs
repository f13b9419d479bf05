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

/// A host-vs-emulator differential check of every instruction the four SSE files claim: the
/// same encoded instruction runs natively (in an RWX page) and in the emulator from the same
/// random state; XMM registers, the GPRs it may write, the status flags, MXCSR and a memory
/// buffer must match bit for bit. Exceptions stay masked (an unmasked one would kill the
/// test process natively); the #XM and alignment paths have their own tests below.
#[cfg(all(test, target_os = "linux"))]
pub(super) mod oracle {
    use crate::cpu::decode::CodeCache;
    use crate::cpu::{Core, CpuidInfo, RDI, RSI, RunState, STATUS, Sys, run};
    use crate::memory::{Ram, RamRange};
    use iced_x86::code_asm::*;
    use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
    use std::mem::offset_of;

    #[repr(C, align(16))]
    #[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
    pub struct St {
        pub xmm: [u128; 16],
        /// RAX, RCX, RDX, RBX, RSI, RDI.
        pub gpr: [u64; 6],
        pub mxcsr: u32,
        pub save: u32,
        pub rflags: u64,
    }

    const BASE: u64 = 0x10_0000;
    pub const CODE: u64 = BASE;
    /// The guest address of the memory operand buffer (RSI and RDI point at it).
    pub const BUF: u64 = BASE + 0x8000;
    const BUF_LEN: usize = 64;

    #[repr(C, align(64))]
    struct Buf([u8; BUF_LEN]);

    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const S32: &[u32] = &[
        0,
        0x8000_0000,
        0x3F80_0000,
        0xBF80_0000,
        1,
        0x807F_FFFF,
        0x0080_0000,
        0x7F7F_FFFF,
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0000,
        0xFFC0_0000,
        0x7F80_0001,
        0x7FA0_0000,
        0xFFA1_2345,
        0x4F00_0000,
        0xCF00_0000,
        0x4EFF_FFFF,
        0x5F00_0000,
        0xDF00_0000,
        0x3F00_0000,
        0x3FC0_0000,
        0x4020_0000,
        0x0040_0000,
        0x3F80_0001,
        0x0080_0001,
    ];
    const S64: &[u64] = &[
        0,
        0x8000_0000_0000_0000,
        0x3FF0_0000_0000_0000,
        0xBFF0_0000_0000_0000,
        1,
        0x800F_FFFF_FFFF_FFFF,
        0x0010_0000_0000_0000,
        0x7FEF_FFFF_FFFF_FFFF,
        0x7FF0_0000_0000_0000,
        0xFFF0_0000_0000_0000,
        0x7FF8_0000_0000_0000,
        0xFFF8_0000_0000_0000,
        0x7FF0_0000_0000_0001,
        0x7FF4_0000_0000_0000,
        0x41E0_0000_0000_0000,
        0xC1E0_0000_0000_0000,
        0x41DF_FFFF_FFC0_0000,
        0xC1E0_0000_0020_0000,
        0x43E0_0000_0000_0000,
        0xC3E0_0000_0000_0000,
        0x3FE0_0000_0000_0000,
        0x3FF8_0000_0000_0000,
        0x4004_0000_0000_0000,
        0x0008_0000_0000_0000,
        0x3FF0_0000_0000_0001,
        0x36A0_0000_0000_0000,
        0x3810_0000_0000_0000,
        0x47EF_FFFF_E000_0000,
        0x47F0_0000_0000_0000,
    ];

    fn f32v(r: &mut Rng) -> u32 {
        let x = r.next();
        match r.below(4) {
            0 => S32[(x % S32.len() as u64) as usize],
            1 => (x as u32 & 0x807F_FFFF) | ((100 + (x >> 40) % 56) as u32) << 23,
            2 => (x as u32 & 0x807F_FFFF) | ((((x >> 40) % 20) as u32 + 245) % 256) << 23,
            _ => x as u32,
        }
    }

    fn f64v(r: &mut Rng) -> u64 {
        let x = r.next();
        match r.below(4) {
            0 => S64[(x % S64.len() as u64) as usize],
            1 => (x & 0x800F_FFFF_FFFF_FFFF) | (1000 + (r.next() % 100)) << 52,
            2 => (x & 0x800F_FFFF_FFFF_FFFF) | ((r.next() % 40 + 2030) % 2048) << 52,
            _ => x,
        }
    }

    pub fn xmmv(r: &mut Rng) -> u128 {
        match r.below(6) {
            0 | 1 => (0..4).fold(0, |a, i| a | (f32v(r) as u128) << (32 * i)),
            2 | 3 => f64v(r) as u128 | (f64v(r) as u128) << 64,
            4 => (0..8).fold(0, |a, i| a | ((r.below(70) as u128) << (16 * i))),
            _ => r.next() as u128 | (r.next() as u128) << 64,
        }
    }

    pub fn gprv(r: &mut Rng) -> u64 {
        match r.below(4) {
            0 => [
                0,
                1,
                u64::MAX,
                0x8000_0000,
                0x7FFF_FFFF,
                1 << 63,
                (1 << 63) - 1,
            ][r.below(7) as usize],
            1 => r.below(300),
            _ => r.next(),
        }
    }

    pub fn mxcsrv(r: &mut Rng) -> u32 {
        0x1F80 | (r.next() as u32 & (0x3F | 1 << 6 | 3 << 13 | 1 << 15))
    }

    /// Operand pattern: XMM register, XMM or memory, memory only, GPR, GPR or memory, imm8.
    #[derive(Clone, Copy)]
    pub enum P {
        X,
        Xm,
        M,
        R32,
        R64,
        Rm32,
        Rm64,
        I,
    }

    #[derive(Clone, Copy)]
    enum A {
        R(Register),
        M(MemoryOperand),
        I(u32),
    }

    fn make(code: Code, args: &[A]) -> Instruction {
        use A::*;
        match *args {
            [M(m)] => Instruction::with1(code, m),
            [R(a), R(b)] => Instruction::with2(code, a, b),
            [R(a), M(b)] => Instruction::with2(code, a, b),
            [M(a), R(b)] => Instruction::with2(code, a, b),
            [R(a), I(b)] => Instruction::with2(code, a, b),
            [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
            [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c),
            _ => panic!("operand pattern of {code:?}"),
        }
        .unwrap()
    }

    /// A fresh RWX page, or None where the host refuses executable mappings.
    fn rwx() -> Option<*mut u8> {
        let ret: isize;
        // SAFETY: a plain mmap(2) of a fresh anonymous private RWX page; touches no Rust memory.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") 9isize => ret,
                in("rdi") 0usize,
                in("rsi") 4096usize,
                in("rdx") 7usize,
                in("r10") 0x22usize,
                in("r8") -1isize,
                in("r9") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        (ret > 0).then_some(ret as *mut u8)
    }

    /// Runs `bytes` natively on `st` and `buf` (RSI/RDI = buf).
    fn native(page: *mut u8, bytes: &[u8], st: &mut St, buf: &mut Buf) {
        let x = [
            xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
            xmm14, xmm15,
        ];
        let g = [rax, rcx, rdx, rbx, rsi, rdi];
        let off = |o: usize| o as i32;
        let gpr = offset_of!(St, gpr);
        let mut a = CodeAssembler::new(64).unwrap();
        a.push(rbx).unwrap();
        a.push(r15).unwrap();
        a.mov(r15, rdi).unwrap();
        a.stmxcsr(dword_ptr(r15 + off(offset_of!(St, save))))
            .unwrap();
        a.ldmxcsr(dword_ptr(r15 + off(offset_of!(St, mxcsr))))
            .unwrap();
        for (i, &r) in x.iter().enumerate() {
            a.movdqu(r, xmmword_ptr(r15 + off(16 * i))).unwrap();
        }
        for (i, &r) in g.iter().enumerate() {
            a.mov(r, qword_ptr(r15 + off(gpr + 8 * i))).unwrap();
        }
        a.push(qword_ptr(r15 + off(offset_of!(St, rflags))))
            .unwrap();
        a.popfq().unwrap();
        a.db(bytes).unwrap();
        a.pushfq().unwrap();
        a.pop(qword_ptr(r15 + off(offset_of!(St, rflags)))).unwrap();
        for (i, &r) in g.iter().enumerate() {
            a.mov(qword_ptr(r15 + off(gpr + 8 * i)), r).unwrap();
        }
        for (i, &r) in x.iter().enumerate() {
            a.movdqu(xmmword_ptr(r15 + off(16 * i)), r).unwrap();
        }
        a.stmxcsr(dword_ptr(r15 + off(offset_of!(St, mxcsr))))
            .unwrap();
        a.ldmxcsr(dword_ptr(r15 + off(offset_of!(St, save))))
            .unwrap();
        a.pop(r15).unwrap();
        a.pop(rbx).unwrap();
        a.ret().unwrap();
        let code = a.assemble(page as u64).unwrap();
        assert!(code.len() <= 4096);
        st.gpr[4] = buf.0.as_mut_ptr() as u64;
        st.gpr[5] = buf.0.as_mut_ptr() as u64;
        // SAFETY: `page` is a private RWX page of 4096 bytes; the stub written there is a
        // complete sysv64 function that saves/restores what it must (RBX, R15, MXCSR), and the
        // instruction under test only touches registers and `buf` (via RSI/RDI).
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), page, code.len());
            let f: extern "sysv64" fn(*mut St) = std::mem::transmute(page);
            f(st);
        }
    }

    pub fn machine() -> (Core, Sys) {
        let ram = Ram::new(&[RamRange {
            base: BASE,
            len: 0x10_0000,
            node: 0,
        }])
        .unwrap();
        let sys = Sys::new(
            ram,
            crate::devices::Ports::default(),
            CpuidInfo {
                ncores: 1,
                cores_per_socket: 1,
                tsc_hz: 1_000_000_000,
            },
        );
        let mut core = Core::new(0, 0, 0, 0);
        core.state = RunState::Running;
        (core, sys)
    }

    /// Runs one instruction in the emulator: Err(stop) if it faults.
    pub fn emulate(
        core: &mut Core,
        sys: &mut Sys,
        bytes: &[u8],
        st: &mut St,
        buf: &mut [u8; BUF_LEN],
    ) -> Result<(), crate::cpu::Stop> {
        sys.ram.write(CODE, bytes).unwrap();
        sys.ram.write(CODE + bytes.len() as u64, &[0xF4]).unwrap();
        sys.ram.write(BUF, buf).unwrap();
        core.xmm = st.xmm;
        for (i, r) in [0, 1, 2, 3].into_iter().enumerate() {
            core.gpr[r] = st.gpr[i];
        }
        core.gpr[RSI] = BUF;
        core.gpr[RDI] = BUF;
        core.mxcsr = st.mxcsr;
        core.rflags = st.rflags;
        core.rip = CODE;
        let mut cache = CodeCache::new();
        if let Some(stop) = run(core, sys, &mut cache, 1) {
            return Err(stop);
        }
        assert_eq!(core.rip, CODE + bytes.len() as u64);
        st.xmm = core.xmm;
        for (i, r) in [0, 1, 2, 3].into_iter().enumerate() {
            st.gpr[i] = core.gpr[r];
        }
        st.mxcsr = core.mxcsr;
        st.rflags = core.rflags;
        sys.ram.read(BUF, buf).unwrap();
        Ok(())
    }

    /// Every instruction the SSE files implement, with its operand pattern.
    pub fn table() -> Vec<(Code, &'static [P])> {
        use Code::*;
        use P::*;
        let mut t: Vec<(Code, &'static [P])> = vec![
            (Movd_xmm_rm32, &[X, Rm32]),
            (Movq_xmm_rm64, &[X, Rm64]),
            (Movd_rm32_xmm, &[Rm32, X]),
            (Movq_rm64_xmm, &[Rm64, X]),
            (Movq_xmm_xmmm64, &[X, Xm]),
            (Movq_xmmm64_xmm, &[Xm, X]),
            (Movntps_m128_xmm, &[M, X]),
            (Movntpd_m128_xmm, &[M, X]),
            (Movntdq_m128_xmm, &[M, X]),
            (Movlps_xmm_m64, &[X, M]),
            (Movlpd_xmm_m64, &[X, M]),
            (Movhps_xmm_m64, &[X, M]),
            (Movhpd_xmm_m64, &[X, M]),
            (Movlps_m64_xmm, &[M, X]),
            (Movlpd_m64_xmm, &[M, X]),
            (Movhps_m64_xmm, &[M, X]),
            (Movhpd_m64_xmm, &[M, X]),
            (Movhlps_xmm_xmm, &[X, X]),
            (Movlhps_xmm_xmm, &[X, X]),
            (Movnti_m32_r32, &[M, R32]),
            (Movnti_m64_r64, &[M, R64]),
            (Movmskps_r32_xmm, &[R32, X]),
            (Movmskps_r64_xmm, &[R64, X]),
            (Movmskpd_r32_xmm, &[R32, X]),
            (Movmskpd_r64_xmm, &[R64, X]),
            (Pmovmskb_r32_xmm, &[R32, X]),
            (Pmovmskb_r64_xmm, &[R64, X]),
            (Maskmovdqu_rDI_xmm_xmm, &[X, X]),
            (Ldmxcsr_m32, &[M]),
            (Stmxcsr_m32, &[M]),
            (Cvtsi2ss_xmm_rm32, &[X, Rm32]),
            (Cvtsi2ss_xmm_rm64, &[X, Rm64]),
            (Cvtsi2sd_xmm_rm32, &[X, Rm32]),
            (Cvtsi2sd_xmm_rm64, &[X, Rm64]),
            (Cvtss2si_r32_xmmm32, &[R32, Xm]),
            (Cvtss2si_r64_xmmm32, &[R64, Xm]),
            (Cvttss2si_r32_xmmm32, &[R32, Xm]),
            (Cvttss2si_r64_xmmm32, &[R64, Xm]),
            (Cvtsd2si_r32_xmmm64, &[R32, Xm]),
            (Cvtsd2si_r64_xmmm64, &[R64, Xm]),
            (Cvttsd2si_r32_xmmm64, &[R32, Xm]),
            (Cvttsd2si_r64_xmmm64, &[R64, Xm]),
            (Pinsrw_xmm_r32m16_imm8, &[X, Rm32, I]),
            (Pinsrw_xmm_r64m16_imm8, &[X, Rm64, I]),
            (Pextrw_r32_xmm_imm8, &[R32, X, I]),
            (Pextrw_r64_xmm_imm8, &[R64, X, I]),
        ];
        for c in [
            Movaps_xmmm128_xmm,
            Movapd_xmmm128_xmm,
            Movdqa_xmmm128_xmm,
            Movups_xmmm128_xmm,
            Movupd_xmmm128_xmm,
            Movdqu_xmmm128_xmm,
            Movss_xmmm32_xmm,
            Movsd_xmmm64_xmm,
        ] {
            t.push((c, &[Xm, X]));
        }
        for c in [
            Psrlw_xmm_imm8,
            Psraw_xmm_imm8,
            Psllw_xmm_imm8,
            Psrld_xmm_imm8,
            Psrad_xmm_imm8,
            Pslld_xmm_imm8,
            Psrlq_xmm_imm8,
            Psrldq_xmm_imm8,
            Psllq_xmm_imm8,
            Pslldq_xmm_imm8,
        ] {
            t.push((c, &[X, I]));
        }
        for c in [
            Cmpps_xmm_xmmm128_imm8,
            Cmppd_xmm_xmmm128_imm8,
            Cmpss_xmm_xmmm32_imm8,
            Cmpsd_xmm_xmmm64_imm8,
            Shufps_xmm_xmmm128_imm8,
            Shufpd_xmm_xmmm128_imm8,
            Pshufd_xmm_xmmm128_imm8,
            Pshufhw_xmm_xmmm128_imm8,
            Pshuflw_xmm_xmmm128_imm8,
        ] {
            t.push((c, &[X, Xm, I]));
        }
        // Everything else is `op xmm, xmm/m`.
        let two: &[Code] = &[
            Movaps_xmm_xmmm128,
            Movapd_xmm_xmmm128,
            Movdqa_xmm_xmmm128,
            Movups_xmm_xmmm128,
            Movupd_xmm_xmmm128,
            Movdqu_xmm_xmmm128,
            Movss_xmm_xmmm32,
            Movsd_xmm_xmmm64,
            Addps_xmm_xmmm128,
            Addpd_xmm_xmmm128,
            Addss_xmm_xmmm32,
            Addsd_xmm_xmmm64,
            Subps_xmm_xmmm128,
            Subpd_xmm_xmmm128,
            Subss_xmm_xmmm32,
            Subsd_xmm_xmmm64,
            Mulps_xmm_xmmm128,
            Mulpd_xmm_xmmm128,
            Mulss_xmm_xmmm32,
            Mulsd_xmm_xmmm64,
            Divps_xmm_xmmm128,
            Divpd_xmm_xmmm128,
            Divss_xmm_xmmm32,
            Divsd_xmm_xmmm64,
            Minps_xmm_xmmm128,
            Minpd_xmm_xmmm128,
            Minss_xmm_xmmm32,
            Minsd_xmm_xmmm64,
            Maxps_xmm_xmmm128,
            Maxpd_xmm_xmmm128,
            Maxss_xmm_xmmm32,
            Maxsd_xmm_xmmm64,
            Sqrtps_xmm_xmmm128,
            Sqrtpd_xmm_xmmm128,
            Sqrtss_xmm_xmmm32,
            Sqrtsd_xmm_xmmm64,
            Andps_xmm_xmmm128,
            Andpd_xmm_xmmm128,
            Andnps_xmm_xmmm128,
            Andnpd_xmm_xmmm128,
            Orps_xmm_xmmm128,
            Orpd_xmm_xmmm128,
            Xorps_xmm_xmmm128,
            Xorpd_xmm_xmmm128,
            Comiss_xmm_xmmm32,
            Comisd_xmm_xmmm64,
            Ucomiss_xmm_xmmm32,
            Ucomisd_xmm_xmmm64,
            Unpcklps_xmm_xmmm128,
            Unpckhps_xmm_xmmm128,
            Unpcklpd_xmm_xmmm128,
            Unpckhpd_xmm_xmmm128,
            Cvtss2sd_xmm_xmmm32,
            Cvtsd2ss_xmm_xmmm64,
            Cvtps2pd_xmm_xmmm64,
            Cvtpd2ps_xmm_xmmm128,
            Cvtdq2ps_xmm_xmmm128,
            Cvtps2dq_xmm_xmmm128,
            Cvttps2dq_xmm_xmmm128,
            Cvtdq2pd_xmm_xmmm64,
            Cvtpd2dq_xmm_xmmm128,
            Cvttpd2dq_xmm_xmmm128,
            Paddb_xmm_xmmm128,
            Paddw_xmm_xmmm128,
            Paddd_xmm_xmmm128,
            Paddq_xmm_xmmm128,
            Psubb_xmm_xmmm128,
            Psubw_xmm_xmmm128,
            Psubd_xmm_xmmm128,
            Psubq_xmm_xmmm128,
            Paddsb_xmm_xmmm128,
            Paddsw_xmm_xmmm128,
            Paddusb_xmm_xmmm128,
            Paddusw_xmm_xmmm128,
            Psubsb_xmm_xmmm128,
            Psubsw_xmm_xmmm128,
            Psubusb_xmm_xmmm128,
            Psubusw_xmm_xmmm128,
            Pmullw_xmm_xmmm128,
            Pmulhw_xmm_xmmm128,
            Pmulhuw_xmm_xmmm128,
            Pmuludq_xmm_xmmm128,
            Pmaddwd_xmm_xmmm128,
            Pavgb_xmm_xmmm128,
            Pavgw_xmm_xmmm128,
            Pminub_xmm_xmmm128,
            Pmaxub_xmm_xmmm128,
            Pminsw_xmm_xmmm128,
            Pmaxsw_xmm_xmmm128,
            Psadbw_xmm_xmmm128,
            Pcmpeqb_xmm_xmmm128,
            Pcmpeqw_xmm_xmmm128,
            Pcmpeqd_xmm_xmmm128,
            Pcmpgtb_xmm_xmmm128,
            Pcmpgtw_xmm_xmmm128,
            Pcmpgtd_xmm_xmmm128,
            Pand_xmm_xmmm128,
            Pandn_xmm_xmmm128,
            Por_xmm_xmmm128,
            Pxor_xmm_xmmm128,
            Psllw_xmm_xmmm128,
            Pslld_xmm_xmmm128,
            Psllq_xmm_xmmm128,
            Psrlw_xmm_xmmm128,
            Psrld_xmm_xmmm128,
            Psrlq_xmm_xmmm128,
            Psraw_xmm_xmmm128,
            Psrad_xmm_xmmm128,
            Punpcklbw_xmm_xmmm128,
            Punpcklwd_xmm_xmmm128,
            Punpckldq_xmm_xmmm128,
            Punpcklqdq_xmm_xmmm128,
            Punpckhbw_xmm_xmmm128,
            Punpckhwd_xmm_xmmm128,
            Punpckhdq_xmm_xmmm128,
            Punpckhqdq_xmm_xmmm128,
            Packsswb_xmm_xmmm128,
            Packssdw_xmm_xmmm128,
            Packuswb_xmm_xmmm128,
        ];
        t.extend(two.iter().map(|&c| (c, &[X, Xm] as &[P])));
        t
    }

    /// A random instance of `code` with operand pattern `p`.
    pub fn instance(r: &mut Rng, code: Code, p: &[P]) -> Instruction {
        if code == Code::Maskmovdqu_rDI_xmm_xmm {
            let a = Register::XMM0 + r.below(16) as u32;
            let b = Register::XMM0 + r.below(16) as u32;
            return Instruction::with_maskmovdqu(64, a, b, Register::None).unwrap();
        }
        let gp32 = [Register::EAX, Register::ECX, Register::EDX, Register::EBX];
        let gp64 = [Register::RAX, Register::RCX, Register::RDX, Register::RBX];
        // 16-byte aligned within the buffer, so aligned-operand forms never fault natively.
        let mem = MemoryOperand::with_base_displ(Register::RSI, 16 * r.below(3) as i64);
        let args: Vec<A> = p
            .iter()
            .map(|k| {
                let m = r.below(2) == 0;
                match k {
                    P::X => A::R(Register::XMM0 + r.below(16) as u32),
                    P::Xm if m => A::M(mem),
                    P::Xm => A::R(Register::XMM0 + r.below(16) as u32),
                    P::M => A::M(mem),
                    P::R32 => A::R(gp32[r.below(4) as usize]),
                    P::R64 => A::R(gp64[r.below(4) as usize]),
                    P::Rm32 if m => A::M(mem),
                    P::Rm32 => A::R(gp32[r.below(4) as usize]),
                    P::Rm64 if m => A::M(mem),
                    P::Rm64 => A::R(gp64[r.below(4) as usize]),
                    P::I => A::I(if r.below(2) == 0 {
                        r.below(70)
                    } else {
                        r.below(256)
                    } as u32),
                }
            })
            .collect();
        make(code, &args)
    }

    pub fn random_state(r: &mut Rng) -> (St, [u8; BUF_LEN]) {
        let mut st = St::default();
        for x in st.xmm.iter_mut() {
            *x = xmmv(r);
        }
        for g in st.gpr.iter_mut().take(4) {
            *g = gprv(r);
        }
        st.mxcsr = mxcsrv(r);
        st.rflags = 0x202 | (r.next() & STATUS);
        let mut buf = [0u8; BUF_LEN];
        for c in buf.chunks_mut(16) {
            c.copy_from_slice(&xmmv(r).to_le_bytes());
        }
        (st, buf)
    }

    pub fn encode(ins: &Instruction) -> Vec<u8> {
        let mut e = Encoder::new(64);
        e.encode(ins, CODE).unwrap();
        e.take_buffer()
    }

    #[test]
    fn host_equivalence() {
        let Some(page) = rwx() else {
            eprintln!("host_equivalence skipped: the host refuses an RWX mapping");
            return;
        };
        let (mut core, mut sys) = machine();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let iters: usize = std::env::var("SSE_ORACLE_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400);
        let mut failures = Vec::new();
        for (code, p) in table() {
            for _ in 0..iters {
                let ins = instance(&mut r, code, p);
                let bytes = encode(&ins);
                let (mut s0, mut b0) = random_state(&mut r);
                if code == Code::Ldmxcsr_m32 {
                    let off = ins.memory_displacement64() as usize;
                    b0[off..off + 4].copy_from_slice(&mxcsrv(&mut r).to_le_bytes());
                }
                s0.save = 0;
                let mut nst = s0;
                let mut nbuf = Buf(b0);
                native(page, &bytes, &mut nst, &mut nbuf);
                let mut est = s0;
                let mut ebuf = b0;
                emulate(&mut core, &mut sys, &bytes, &mut est, &mut ebuf)
                    .unwrap_or_else(|e| panic!("{ins} faulted in the emulator: {e:?}"));
                let same = nst.xmm == est.xmm
                    && nst.gpr[..4] == est.gpr[..4]
                    && nst.mxcsr == est.mxcsr
                    && nst.rflags & STATUS == est.rflags & STATUS
                    && nbuf.0 == ebuf;
                if !same {
                    let mut msg = format!("{ins} ({code:?}) mxcsr in {:#x}\n", s0.mxcsr);
                    for i in 0..16 {
                        if nst.xmm[i] != est.xmm[i] {
                            msg += &format!(
                                "  xmm{i}: in {:032x} host {:032x} emu {:032x}\n",
                                s0.xmm[i], nst.xmm[i], est.xmm[i]
                            );
                        }
                    }
                    msg += &format!("  buf in {:02x?}\n", &b0[..48]);
                    if nst.gpr[..4] != est.gpr[..4] {
                        msg += &format!(
                            "  gpr in {:x?} host {:x?} emu {:x?}\n",
                            s0.gpr, nst.gpr, est.gpr
                        );
                    }
                    if nst.mxcsr != est.mxcsr {
                        msg += &format!("  mxcsr host {:#x} emu {:#x}\n", nst.mxcsr, est.mxcsr);
                    }
                    if nst.rflags & STATUS != est.rflags & STATUS {
                        msg += &format!(
                            "  flags in {:#x} host {:#x} emu {:#x}\n",
                            s0.rflags & STATUS,
                            nst.rflags & STATUS,
                            est.rflags & STATUS
                        );
                    }
                    if nbuf.0 != ebuf {
                        msg += &format!(
                            "  buf host {:02x?}\n  buf emu  {:02x?}\n",
                            &nbuf.0[..48],
                            &ebuf[..48]
                        );
                    }
                    failures.push(msg);
                    break;
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} instructions differ:\n{}",
            failures.len(),
            failures.join("")
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::oracle::{BUF, CODE, machine};
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

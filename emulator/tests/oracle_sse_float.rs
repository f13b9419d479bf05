//! Differential oracle: SSE/SSE2 floating point (SDM Vol. 2: ADD/SUB/MUL/DIV/MIN/MAX/SQRT
//! SS/SD/PS/PD, CMPccSS/SD/PS/PD with predicates 0-7, COMISS/COMISD/UCOMISS/UCOMISD,
//! AND/ANDN/OR/XOR PS/PD, SHUFPS/SHUFPD, UNPCKL/H PS/PD), with NaNs (quiet and signalling),
//! infinities, denormals, ±0, every MXCSR rounding mode, FTZ and DAZ, and sticky flags in;
//! exceptions stay masked (an unmasked one would trap natively). MXCSR is compared exactly.
//! RCPSS/RCPPS/RSQRTSS/RSQRTPS are left out: their approximations are implementation-specific.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::Mnemonic as M;
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

const ARITH: &[M] = &[
    M::Addss,
    M::Addsd,
    M::Addps,
    M::Addpd,
    M::Subss,
    M::Subsd,
    M::Subps,
    M::Subpd,
    M::Mulss,
    M::Mulsd,
    M::Mulps,
    M::Mulpd,
    M::Divss,
    M::Divsd,
    M::Divps,
    M::Divpd,
    M::Minss,
    M::Minsd,
    M::Minps,
    M::Minpd,
    M::Maxss,
    M::Maxsd,
    M::Maxps,
    M::Maxpd,
    M::Sqrtss,
    M::Sqrtsd,
    M::Sqrtps,
    M::Sqrtpd,
];
const COMPARE: &[M] = &[
    M::Cmpss,
    M::Cmpsd,
    M::Cmpps,
    M::Cmppd,
    M::Comiss,
    M::Comisd,
    M::Ucomiss,
    M::Ucomisd,
];
const LOGIC_SHUFFLE: &[M] = &[
    M::Andps,
    M::Andpd,
    M::Andnps,
    M::Andnpd,
    M::Orps,
    M::Orpd,
    M::Xorps,
    M::Xorpd,
    M::Shufps,
    M::Shufpd,
    M::Unpcklps,
    M::Unpcklpd,
    M::Unpckhps,
    M::Unpckhpd,
];

fn family(name: &str, mnemonics: &[M], cases: usize) {
    let codes = make::codes_of(mnemonics);
    assert!(codes.len() >= mnemonics.len(), "{codes:?}");
    run_family(
        Family {
            test: "oracle_sse_float",
            name,
            cases,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            let c = make::generic(rng, code, GenOpts::default())?;
            // CMPccPS/PD/SS/SD: imm8[7:3] are reserved in the legacy encoding.
            if matches!(c.ins.mnemonic(), M::Cmpss | M::Cmpsd | M::Cmpps | M::Cmppd)
                && c.ins.immediate(2) > 7
            {
                return None;
            }
            Some(c)
        },
    );
}

#[test]
fn sse_arith() {
    family("sse_arith", ARITH, 5000);
}

#[test]
fn sse_compare() {
    family("sse_compare", COMPARE, 3000);
}

#[test]
fn sse_logic_shuffle() {
    family("sse_logic_shuffle", LOGIC_SHUFFLE, 2000);
}

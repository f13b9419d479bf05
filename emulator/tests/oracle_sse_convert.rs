//! Differential oracle: SSE/SSE2 conversions (SDM Vol. 2: CVTSI2SS/SD from 32- and 64-bit
//! integers, CVT(T)SS2SI/CVT(T)SD2SI to 32 and 64 bits, CVTSS2SD, CVTSD2SS, CVTPS2PD,
//! CVTPD2PS, CVTDQ2PS, CVT(T)PS2DQ, CVTDQ2PD, CVT(T)PD2DQ), with out-of-range values (integer
//! indefinite), NaNs, denormals, halfway cases under every rounding mode, FTZ/DAZ.
//! The MMX forms (CVTPI2PS, CVTPS2PI, ...) are not implemented by the emulated CPU.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::Mnemonic as M;
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

const MNEMONICS: &[M] = &[
    M::Cvtsi2ss,
    M::Cvtsi2sd,
    M::Cvtss2si,
    M::Cvtsd2si,
    M::Cvttss2si,
    M::Cvttsd2si,
    M::Cvtss2sd,
    M::Cvtsd2ss,
    M::Cvtps2pd,
    M::Cvtpd2ps,
    M::Cvtdq2ps,
    M::Cvtps2dq,
    M::Cvttps2dq,
    M::Cvtdq2pd,
    M::Cvtpd2dq,
    M::Cvttpd2dq,
];

#[test]
fn sse_convert() {
    let codes = make::codes_of(MNEMONICS);
    assert!(codes.len() >= MNEMONICS.len(), "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_sse_convert",
            name: "sse_convert",
            cases: 4000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            make::generic(rng, code, GenOpts::default())
        },
    );
}

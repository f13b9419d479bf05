//! Differential oracle: shifts and rotates (SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR,
//! SHLD, SHRD), by 1, by imm8 and by CL, every width, register and memory destinations.
//! Counts are biased to 0, 1, width-1, width, width+1 and the masking boundaries.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Mnemonic as M, OpKind};
use oracle::check::{count_of, op0_bits};
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

const MNEMONICS: &[M] = &[
    M::Shl,
    M::Sal,
    M::Shr,
    M::Sar,
    M::Rol,
    M::Ror,
    M::Rcl,
    M::Rcr,
    M::Shld,
    M::Shrd,
];

#[test]
fn shift() {
    let codes = make::codes_of(MNEMONICS);
    assert!(codes.len() > 50, "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_shift",
            name: "shift",
            cases: 4000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            let mut c = make::generic(rng, code, GenOpts::default())?;
            let bits = op0_bits(&c.ins);
            let n = if matches!(c.ins.mnemonic(), M::Shld | M::Shrd) {
                2
            } else {
                1
            };
            if c.ins.op_kind(n) == OpKind::Register {
                let cnt = make::shift_count(rng, bits);
                if !c.set_op_value(n, cnt) {
                    return None;
                }
            }
            // SHLD/SHRD of 16 bits by more than 16: result and flags undefined (SDM); not generated.
            if n == 2 && bits == 16 && count_of(&c.ins, &c.regs, 2) & 0x1F > 16 {
                return None;
            }
            Some(c)
        },
    );
}

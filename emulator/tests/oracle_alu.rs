//! Differential oracle: integer ALU (SDM Vol. 2: ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST,
//! INC, DEC, NEG, NOT), every legacy encoding, register and memory forms, with LOCK.

mod oracle;

use iced_x86::Mnemonic as M;
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

const MNEMONICS: &[M] = &[
    M::Add,
    M::Or,
    M::Adc,
    M::Sbb,
    M::And,
    M::Sub,
    M::Xor,
    M::Cmp,
    M::Test,
    M::Inc,
    M::Dec,
    M::Neg,
    M::Not,
];

#[test]
fn alu() {
    let codes = make::codes_of(MNEMONICS);
    assert!(codes.len() > 100, "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_alu",
            name: "alu",
            cases: 4000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            make::generic(rng, code, GenOpts::default())
        },
    );
}

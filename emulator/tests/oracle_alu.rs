//! Differential oracle: integer ALU (SDM Vol. 2: ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST,
//! INC, DEC, NEG, NOT), every legacy encoding, register and memory forms, with LOCK.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

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

/// LOCK on a register destination, or on an instruction that cannot take it, is #UD.
#[test]
fn lock_ud() {
    let mut rng = make::Rng::new(0x10c);
    let mut errs = Vec::new();
    for bytes in [
        &[0xF0, 0x01, 0xC0][..],       // lock add eax, eax
        &[0xF0, 0x48, 0x31, 0xD8][..], // lock xor rax, rbx
        &[0xF0, 0x8B, 0x03][..],       // lock mov eax, [rbx]
        &[0xF0, 0x39, 0x03][..],       // lock cmp [rbx], eax
    ] {
        let mut c = make::base_case(&mut rng, make::Lane::Any);
        c.regs.gpr[3] = oracle::DATA + 0x100;
        c.bytes = bytes.to_vec();
        if let Err(e) = oracle::expect_fault(&c, 6) {
            errs.push(format!("{bytes:02x?}: {e}"));
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

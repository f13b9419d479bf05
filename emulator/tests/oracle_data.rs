//! Differential oracle: data movement and flag instructions (SDM Vol. 2: MOV incl. moffs and
//! imm64, MOVZX, MOVSX, MOVSXD, LEA incl. 32-bit addressing, CMOVcc, SETcc, BSWAP, CBW/CWDE/
//! CDQE, CWD/CDQ/CQO, LAHF, SAHF, CLC, STC, CMC, CLD, STD), plus no-ops with operands
//! (multi-byte NOP, PAUSE, fences, prefetches); XLAT separately (may stay unimplemented).

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Code, Mnemonic as M};
use oracle::make::{self, GenOpts};
use oracle::{DATA, Family, run_family};

#[test]
fn data() {
    let plain = [
        M::Mov,
        M::Movzx,
        M::Movsx,
        M::Movsxd,
        M::Lea,
        M::Bswap,
        M::Cbw,
        M::Cwde,
        M::Cdqe,
        M::Cwd,
        M::Cdq,
        M::Cqo,
        M::Lahf,
        M::Sahf,
        M::Clc,
        M::Stc,
        M::Cmc,
        M::Cld,
        M::Std,
    ];
    // BSWAP of a 16-bit register is undefined (SDM): not generated.
    let codes = make::codes_where(|c| {
        c != Code::Bswap_r16
            && (plain.contains(&c.mnemonic())
                || make::mnemonic_starts(c, "Cmov")
                || make::mnemonic_starts(c, "Set"))
    });
    assert!(codes.len() > 100, "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_data",
            name: "data",
            cases: 5000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            make::generic(rng, code, GenOpts::default())
        },
    );
}

/// XLATB (AL = [RBX + AL]): legacy, not emitted by compilers; may stay unimplemented.
#[test]
fn xlat() {
    run_family(
        Family {
            test: "oracle_data",
            name: "xlat",
            cases: 200,
            strict: false,
        },
        |rng| {
            let mut c = make::base_case(rng, make::Lane::Any);
            c.regs.gpr[3] = DATA + rng.below(0x3F00);
            c.set_bytes(vec![0xD7]);
            Some(c)
        },
    );
}

#[test]
fn misc() {
    let codes = make::codes_of(&[
        M::Nop,
        M::Pause,
        M::Lfence,
        M::Sfence,
        M::Mfence,
        M::Prefetchnta,
        M::Prefetcht0,
        M::Prefetcht1,
        M::Prefetcht2,
    ]);
    assert!(codes.len() >= 9, "{codes:?}");
    run_family(
        Family {
            test: "oracle_data",
            name: "misc",
            cases: 500,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            make::generic(rng, code, GenOpts::default())
        },
    );
}

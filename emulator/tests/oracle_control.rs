//! Differential oracle: near control transfers in 64-bit mode (SDM Vol. 2: Jcc rel8/rel32 for
//! all conditions, JMP rel8/rel32/r/m64, CALL rel32/r/m64, RET, RET imm16, LOOP/LOOPE/LOOPNE
//! and JRCXZ/JECXZ with RCX and ECX). Targets are landing pads in the code area, which record
//! where the host went; the emulator's RIP must agree, and CALL's pushed return address must
//! match byte for byte. The 16-bit operand-size forms are left out: Intel and AMD differ.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Code, Instruction, Mnemonic as M, OpKind};
use oracle::make::{self, GenOpts, Rng};
use oracle::native::{PADS, PADS_END};
use oracle::{Case, Family, TEST_RIP, run_family};

/// A pad address reachable from `next_ip` (±127 bytes when `short`).
fn target(rng: &mut Rng, next_ip: u64, short: bool) -> u64 {
    loop {
        let t = if short {
            (next_ip as i64 + rng.range(-128, 127)) as u64 & !15
        } else {
            rng.range(PADS as i64, PADS_END as i64 - 16) as u64 & !15
        };
        let near = t + 16 > TEST_RIP && t < TEST_RIP + 0x30;
        let reach = !short || (t as i64 - next_ip as i64).abs() < 127;
        if !near && reach && (PADS..PADS_END).contains(&t) {
            return t;
        }
    }
}

fn codes() -> Vec<Code> {
    Code::values()
        .filter(|&c| {
            let n = format!("{c:?}");
            let m = c.mnemonic();
            let branch = make::mnemonic_starts(c, "J")
                || matches!(m, M::Loop | M::Loope | M::Loopne | M::Call | M::Ret);
            let op = c.op_code();
            branch
                && op.encoding() == iced_x86::EncodingKind::Legacy
                && op.mode64()
                && (n.ends_with("_64")
                    || n.contains("_64_")
                    || n.ends_with("rm64")
                    || n.starts_with("Retnq"))
                && !n.contains("rel16")
                && !c
                    .cpuid_features()
                    .iter()
                    .any(|f| format!("{f:?}").contains("CET"))
        })
        .collect()
}

fn draw(rng: &mut Rng, codes: &[Code]) -> Option<Case> {
    let code = rng.pick(codes);
    let n = format!("{code:?}");
    let mut c = make::base_case(rng, make::Lane::Any);
    let ins = if n.ends_with("rm64") {
        // JMP/CALL r/m64: the target comes from a register or memory.
        let mut c2 = make::generic(
            rng,
            code,
            GenOpts {
                mem_pct: 50,
                ..GenOpts::default()
            },
        )?;
        let t = target(rng, TEST_RIP + 16, false);
        if c2.ins.op0_kind() == OpKind::Register && c2.ins.op0_register() == iced_x86::Register::RSP
        {
            return None;
        }
        if !c2.set_op_value(0, t) {
            return None;
        }
        return Some(c2);
    } else if n.starts_with("Retnq") {
        let t = target(rng, TEST_RIP + 16, false);
        let sp = c.regs.gpr[4];
        c.write_u64(sp, t, 8);
        if code == Code::Retnq_imm16 {
            let any = rng.below(0x10000) as u32;
            Instruction::with1(code, rng.pick(&[0u32, 8, 16, 0x100, 0xFFF8, any])).ok()?
        } else {
            Instruction::with(code)
        }
    } else {
        let short = n.contains("rel8");
        // The length is at most 6 (0F 8x rel32) + prefixes; aim from the longest next_ip.
        let t = target(rng, TEST_RIP + 3, short);
        Instruction::with_branch(code, t).ok()?
    };
    if matches!(
        code.mnemonic(),
        M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz
    ) {
        let any = rng.next();
        let v = rng.pick(&[0u64, 1, 2, 0x1_0000_0000, 0x1_0000_0001, any]);
        c.regs.gpr[1] = v;
    }
    c.set_bytes(make::encode(&ins)?);
    Some(c)
}

#[test]
fn control() {
    let codes = codes();
    assert!(codes.len() >= 40, "{codes:?}");
    run_family(
        Family {
            test: "oracle_control",
            name: "control",
            cases: 3000,
            strict: true,
        },
        |rng| draw(rng, &codes),
    );
}

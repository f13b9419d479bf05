//! Differential oracle: string instructions (SDM Vol. 2: MOVS, STOS, LODS, CMPS, SCAS of
//! bytes, words, dwords and qwords; REP, REPE, REPNE; DF clear and set; 64- and 32-bit
//! address sizes (RSI/RDI/RCX vs ESI/EDI/ECX); counts 0, 1 and small; overlapping MOVS;
//! CMPS/SCAS over mostly-equal data so REPE/REPNE runs stop at the interesting place).

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Instruction, Register, RepPrefixKind as Rep};
use oracle::make::{self, Rng};
use oracle::{Case, DATA, DATA_END, Family, run_family};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

fn build(op: Op, size: u32, asz: u32, rep: Rep) -> Instruction {
    let n = Register::None;
    let r = match (op, size) {
        (Op::Movs, 1) => Instruction::with_movsb(asz, n, rep),
        (Op::Movs, 2) => Instruction::with_movsw(asz, n, rep),
        (Op::Movs, 4) => Instruction::with_movsd(asz, n, rep),
        (Op::Movs, _) => Instruction::with_movsq(asz, n, rep),
        (Op::Stos, 1) => Instruction::with_stosb(asz, rep),
        (Op::Stos, 2) => Instruction::with_stosw(asz, rep),
        (Op::Stos, 4) => Instruction::with_stosd(asz, rep),
        (Op::Stos, _) => Instruction::with_stosq(asz, rep),
        (Op::Lods, 1) => Instruction::with_lodsb(asz, n, rep),
        (Op::Lods, 2) => Instruction::with_lodsw(asz, n, rep),
        (Op::Lods, 4) => Instruction::with_lodsd(asz, n, rep),
        (Op::Lods, _) => Instruction::with_lodsq(asz, n, rep),
        (Op::Cmps, 1) => Instruction::with_cmpsb(asz, n, rep),
        (Op::Cmps, 2) => Instruction::with_cmpsw(asz, n, rep),
        (Op::Cmps, 4) => Instruction::with_cmpsd(asz, n, rep),
        (Op::Cmps, _) => Instruction::with_cmpsq(asz, n, rep),
        (Op::Scas, 1) => Instruction::with_scasb(asz, rep),
        (Op::Scas, 2) => Instruction::with_scasw(asz, rep),
        (Op::Scas, 4) => Instruction::with_scasd(asz, rep),
        (Op::Scas, _) => Instruction::with_scasq(asz, rep),
    };
    r.unwrap()
}

fn draw(rng: &mut Rng) -> Option<Case> {
    let op = rng.pick(&[Op::Movs, Op::Stos, Op::Lods, Op::Cmps, Op::Scas]);
    let size = rng.pick(&[1u32, 2, 4, 8]);
    let asz = if rng.pct(85) { 64 } else { 32 };
    let rep = match op {
        Op::Cmps | Op::Scas => rng.pick(&[Rep::None, Rep::Repe, Rep::Repe, Rep::Repne, Rep::Repne]),
        _ => rng.pick(&[Rep::None, Rep::Repe, Rep::Repe]),
    };
    let mut c = make::base_case(rng, make::Lane::Any);
    let count: u64 = match rng.below(4) {
        0 => rng.pick(&[0, 1, 2, 3]),
        1 => rng.below(64),
        _ => rng.below(17),
    };
    let df = rng.pct(50);
    if df {
        c.regs.rflags |= 1 << 10;
    } else {
        c.regs.rflags &= !(1 << 10);
    }
    let span = (count.max(1) * size as u64) + 16;
    let lo = DATA + span;
    let hi = DATA_END - span;
    let place = |rng: &mut Rng| -> u64 {
        let p = rng.range(lo as i64, hi as i64) as u64;
        if rng.pct(50) {
            p & !(size as u64 - 1)
        } else {
            p
        }
    };
    let rsi = place(rng);
    let rdi = if op == Op::Movs && rng.pct(25) {
        // Overlapping copy, either direction.
        let d = rng.range(-(2 * size as i64 + 3), 2 * size as i64 + 3);
        (rsi as i64 + d).clamp(lo as i64, hi as i64) as u64
    } else {
        place(rng)
    };
    let hi32 = |rng: &mut Rng| {
        if asz == 32 {
            rng.next() & !0xFFFF_FFFF
        } else {
            0
        }
    };
    c.regs.gpr[6] = rsi | hi32(rng);
    c.regs.gpr[7] = rdi | hi32(rng);
    c.regs.gpr[1] = if rep == Rep::None {
        make::gpr_value(rng)
    } else {
        count | hi32(rng)
    };
    // Mostly-equal data for CMPS/SCAS, so REPE runs go on and REPNE runs stop early or late.
    let n = (count.max(1) * size as u64) as usize;
    let (s0, d0) = if df {
        (rsi + size as u64 - n as u64, rdi + size as u64 - n as u64)
    } else {
        (rsi, rdi)
    };
    match op {
        Op::Cmps if rng.pct(70) => {
            let src: Vec<u8> = (0..n)
                .map(|i| c.mem[(s0 - oracle::SCRATCH_BASE) as usize + i])
                .collect();
            c.write_mem(d0, &src);
            if rng.pct(60) {
                let k = rng.below(n as u64);
                c.write_mem(d0 + k, &[rng.next() as u8]);
            }
        }
        Op::Scas if rng.pct(70) => {
            let v = c.regs.gpr[0].to_le_bytes();
            let fill: Vec<u8> = (0..n).map(|i| v[i % size as usize]).collect();
            c.write_mem(d0, &fill);
            if rng.pct(60) {
                let k = rng.below(n as u64);
                c.write_mem(d0 + k, &[rng.next() as u8]);
            }
        }
        _ => {}
    }
    let ins = build(op, size, asz, rep);
    c.set_bytes(make::encode(&ins)?);
    c.max_steps = count as u32 + 2;
    Some(c)
}

#[test]
fn string() {
    run_family(
        Family {
            test: "oracle_string",
            name: "string",
            cases: 4000,
            strict: true,
        },
        draw,
    );
}

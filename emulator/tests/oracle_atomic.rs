//! Differential oracle: exchanges (SDM Vol. 2: XCHG incl. the accumulator short forms, XADD,
//! CMPXCHG, CMPXCHG8B, CMPXCHG16B), register and memory forms, with and without LOCK, with the
//! comparison made to succeed about half the time.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Mnemonic as M, Register};
use oracle::make::{self, GenOpts};
use oracle::{Case, Family, run_family};

/// Sets register `r` unless it addresses the memory operand.
fn set(c: &mut Case, r: Register, v: u64) -> bool {
    if c.is_addr_slot(make::gpr_slot(r).0) {
        return false;
    }
    c.set_reg(r, v);
    true
}

fn draw(rng: &mut make::Rng, codes: &[iced_x86::Code]) -> Option<Case> {
    let code = rng.pick(codes);
    let mut c = make::generic(
        rng,
        code,
        GenOpts {
            mem_pct: 60,
            lock_pct: 50,
            ..GenOpts::default()
        },
    )?;
    let equal = rng.pct(50);
    match c.ins.mnemonic() {
        M::Cmpxchg if equal => {
            let v = c.op_value(0);
            let acc = match c.ins.op1_register().size() {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            };
            if !set(&mut c, acc, v) {
                return None;
            }
        }
        M::Cmpxchg8b if equal => {
            let a = c.ea().unwrap();
            let (lo, hi) = (c.read_mem(a, 4), c.read_mem(a + 4, 4));
            if !set(&mut c, Register::EAX, lo) || !set(&mut c, Register::EDX, hi) {
                return None;
            }
        }
        M::Cmpxchg16b if equal => {
            let a = c.ea().unwrap();
            let (lo, hi) = (c.read_mem(a, 8), c.read_mem(a + 8, 8));
            if !set(&mut c, Register::RAX, lo) || !set(&mut c, Register::RDX, hi) {
                return None;
            }
        }
        _ => {}
    }
    Some(c)
}

#[test]
fn atomic() {
    let codes = make::codes_of(&[M::Xchg, M::Xadd, M::Cmpxchg, M::Cmpxchg8b]);
    assert!(codes.len() >= 16, "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_atomic",
            name: "atomic",
            cases: 4000,
            strict: true,
        },
        |rng| draw(rng, &codes),
    );
}

/// CMPXCHG16B: the emulated CPU does not advertise CX16, so it may stay unimplemented.
#[test]
fn cmpxchg16b() {
    let codes = make::codes_of(&[M::Cmpxchg16b]);
    assert_eq!(codes.len(), 1);
    run_family(
        Family {
            test: "oracle_atomic",
            name: "cmpxchg16b",
            cases: 300,
            strict: false,
        },
        |rng| draw(rng, &codes),
    );
}

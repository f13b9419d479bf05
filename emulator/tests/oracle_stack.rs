//! Differential oracle: the stack (SDM Vol. 2: PUSH/POP of registers, memory (incl.
//! RSP-based addresses, which POP computes after incrementing RSP) and immediates, 64- and
//! 16-bit; PUSHF/PUSHFQ, POPF/POPFQ with status flags and DF; ENTER with nesting levels;
//! LEAVE). RSP points into the scratch data area.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Code, Mnemonic as M};
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

/// The 16-bit operand-size forms of PUSHF/POPF/ENTER/LEAVE: legal, but no compiler emits
/// them; tested separately and allowed to stay unimplemented.
const RARE: &[Code] = &[
    Code::Pushfw,
    Code::Popfw,
    Code::Enterw_imm16_imm8,
    Code::Leavew,
];

#[test]
fn stack() {
    let codes: Vec<Code> = make::codes_of(&[
        M::Push,
        M::Pop,
        M::Pushf,
        M::Pushfq,
        M::Popf,
        M::Popfq,
        M::Enter,
        M::Leave,
    ])
    .into_iter()
    .filter(|c| !RARE.contains(c))
    .collect();
    assert!(codes.len() >= 16, "{codes:?}");
    run_family(
        Family {
            test: "oracle_stack",
            name: "stack",
            cases: 4000,
            strict: true,
        },
        |rng| draw(rng, &codes),
    );
}

#[test]
fn stack16() {
    run_family(
        Family {
            test: "oracle_stack",
            name: "stack16",
            cases: 300,
            strict: false,
        },
        |rng| draw(rng, RARE),
    );
}

fn draw(rng: &mut make::Rng, codes: &[Code]) -> Option<oracle::Case> {
    {
        let code = rng.pick(codes);
        let mut c = make::generic(rng, code, GenOpts::default())?;
        match c.ins.mnemonic() {
            M::Popf | M::Popfq => {
                // Only what user mode can load (status flags, DF); TF would trap natively.
                let sp = c.regs.gpr[4];
                let n = if c.ins.mnemonic() == M::Popf { 2 } else { 8 };
                c.write_u64(sp, make::rflags_value(rng), n);
            }
            M::Leave | M::Enter => {
                if c.is_addr_slot(5) {
                    return None;
                }
                c.regs.gpr[5] = make::stack_pointer(rng);
                if c.ins.mnemonic() == M::Enter && rng.pct(80) {
                    // Mostly small nesting levels and frames.
                    let level = rng.pick(&[0u8, 0, 1, 2, 3, 31, 32, 33]);
                    let size = rng.pick(&[0u16, 8, 16, 0x20, 0x1234, 0xFFFF]);
                    let mut b = c.bytes.clone();
                    let n = b.len();
                    b[n - 3..n - 1].copy_from_slice(&size.to_le_bytes());
                    b[n - 1] = level;
                    c.set_bytes(b);
                }
                if c.ins.mnemonic() == M::Enter {
                    // Silicon touches the whole new frame (the host faults below the scratch
                    // mapping): keep it inside.
                    let level = c.ins.immediate(1) & 31;
                    let size = c.ins.immediate(0);
                    let bottom = c.regs.gpr[4] as i64 - 8 - 8 * level as i64 - size as i64;
                    if bottom < oracle::SCRATCH_BASE as i64 + 0x100 {
                        return None;
                    }
                }
            }
            _ => {}
        }
        Some(c)
    }
}

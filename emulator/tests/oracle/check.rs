//! What to compare: the flags the SDM (Vol. 2, each instruction's "Flags Affected") leaves
//! undefined are masked, per mnemonic and, for shifts and rotates, per masked count.

use super::Regs;
use iced_x86::{Instruction, Mnemonic, OpKind};

pub const CF: u64 = 1 << 0;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const DF: u64 = 1 << 10;
pub const OF: u64 = 1 << 11;
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
/// The RFLAGS bits user mode controls and the oracle compares.
pub const COMPARED: u64 = STATUS | DF;

/// Operand size in bits of operand 0 (register or memory).
pub fn op0_bits(ins: &Instruction) -> u32 {
    match ins.op0_kind() {
        OpKind::Register => ins.op0_register().size() as u32 * 8,
        _ => ins.memory_size().size() as u32 * 8,
    }
}

/// The shift/rotate count operand `n` as the instruction sees it (CL or an immediate).
pub fn count_of(ins: &Instruction, regs: &Regs, n: u32) -> u64 {
    match ins.op_kind(n) {
        OpKind::Register => regs.gpr[1] & 0xFF,
        _ => ins.immediate(n) & 0xFF,
    }
}

/// Flags whose value after `ins` the SDM calls undefined, given the input state.
pub fn undefined_flags(ins: &Instruction, regs: &Regs) -> u64 {
    use Mnemonic as M;
    let bits = op0_bits(ins);
    let cmask = if bits == 64 { 0x3F } else { 0x1F };
    match ins.mnemonic() {
        M::And | M::Or | M::Xor | M::Test => AF,
        M::Mul | M::Imul => SF | ZF | AF | PF,
        M::Div | M::Idiv => STATUS,
        // `rep bsf` runs as BSF (no BMI1), compared against native BSF.
        M::Bsf | M::Bsr | M::Tzcnt => CF | OF | SF | AF | PF,
        M::Bt | M::Bts | M::Btr | M::Btc => OF | SF | AF | PF,
        M::Shl | M::Sal | M::Shr | M::Sar => {
            let c = count_of(ins, regs, 1) & cmask;
            if c == 0 {
                0
            } else {
                let mut u = AF;
                if c != 1 {
                    u |= OF;
                }
                if ins.mnemonic() != M::Sar && c >= bits as u64 {
                    u |= CF;
                }
                u
            }
        }
        M::Rol | M::Ror | M::Rcl | M::Rcr => {
            let c = count_of(ins, regs, 1) & cmask;
            if c == 0 || c == 1 { 0 } else { OF }
        }
        M::Shld | M::Shrd => {
            let c = count_of(ins, regs, 2) & cmask;
            if c == 0 {
                0
            } else if c > bits as u64 {
                STATUS
            } else if c == 1 {
                AF
            } else {
                AF | OF
            }
        }
        _ => 0,
    }
}

pub fn flag_names(f: u64) -> String {
    let mut s = Vec::new();
    for (bit, n) in [
        (CF, "CF"),
        (PF, "PF"),
        (AF, "AF"),
        (ZF, "ZF"),
        (SF, "SF"),
        (1 << 8, "TF"),
        (1 << 9, "IF"),
        (DF, "DF"),
        (OF, "OF"),
        (1 << 18, "AC"),
        (1 << 21, "ID"),
    ] {
        if f & bit != 0 {
            s.push(n);
        }
    }
    format!("{:#x} [{}]", f, s.join(" "))
}

pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

pub fn xmm_hex(v: u128) -> String {
    format!("{:016x}_{:016x}", (v >> 64) as u64, v as u64)
}

pub fn mxcsr_names(m: u32) -> String {
    let mut s = Vec::new();
    for (bit, n) in [
        (0, "IE"),
        (1, "DE"),
        (2, "ZE"),
        (3, "OE"),
        (4, "UE"),
        (5, "PE"),
        (6, "DAZ"),
        (15, "FTZ"),
    ] {
        if m & (1 << bit) != 0 {
            s.push(n);
        }
    }
    let rc = ["RN", "RD", "RU", "RZ"][((m >> 13) & 3) as usize];
    s.insert(0, rc);
    if m & 0x1F80 != 0x1F80 {
        s.push("UNMASKED");
    }
    format!("{:#06x} [{}]", m, s.join(" "))
}

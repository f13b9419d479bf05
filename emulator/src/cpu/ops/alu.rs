//! Integer arithmetic and logic (SDM Vol. 2A/2B: ADD, ADC, SUB, SBB, AND, OR, XOR, CMP, TEST,
//! INC, DEC, NEG, NOT) and the flag instructions (CLC, STC, CMC, CLD, STD, LAHF, SAHF).
//!
//! Handlers are specialised at resolve time by operation, width and operand form (register or
//! memory destination; register, memory or immediate source). Status flags are computed
//! eagerly with the helpers of `flags.rs`; a memory destination is written before the flags,
//! so an instruction whose store faults leaves RFLAGS as it was.
//!
//! Undefined flags: AF after AND/OR/XOR/TEST is cleared (the SDM leaves it undefined).
//!
//! LOCK: iced rejects (decodes as invalid, hence #UD) a LOCK prefix on a register destination
//! or on an instruction that is not lockable; the lockable memory forms run as plain
//! read-modify-writes, which are atomic by construction since one host thread runs all cores.
//!
//! This file also holds the small resolve-time helpers (`op_bits`, `sel!`, immediates, operand
//! reads by form) the other integer families (shift, muldiv, bits, atomic) share.

use crate::cpu::flags::{AF, CF, DF, PF, SF, STATUS, ZF, add_flags, logic_flags, mask, sub_flags};
use crate::cpu::{Core, Handler, Result, Sys};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

// ---- shared helpers ----------------------------------------------------------------------

/// Width in bits of operand `n` (register or memory).
pub(super) fn op_bits(ins: &Instruction, n: u32) -> u32 {
    match ins.op_kind(n) {
        OpKind::Register => ins.op_register(n).size() as u32 * 8,
        _ => ins.memory_size().size() as u32 * 8,
    }
}

/// Operand `n` is an immediate that iced sign-extends from 8 bits.
pub(super) fn is_imm8(ins: &Instruction, n: u32) -> bool {
    matches!(
        ins.op_kind(n),
        OpKind::Immediate8
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
    )
}

/// Operand `n` is an immediate of any size.
pub(super) fn is_imm(ins: &Instruction, n: u32) -> bool {
    matches!(
        ins.op_kind(n),
        OpKind::Immediate8
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64
    )
}

/// The immediate of the instruction, sign-extended to 64 bits (8-bit immediates when `IMM8`,
/// otherwise 16/32-bit ones; a 16-bit immediate comes out zero-extended, which is the same
/// once masked to 16 bits). Callers mask to the operand width.
#[inline(always)]
pub(super) fn imm<const IMM8: bool>(ins: &Instruction) -> u64 {
    if IMM8 {
        ins.immediate8to64() as u64
    } else {
        ins.immediate32to64() as u64
    }
}

/// Reads operand `n`, a register or (when `MEM`) the memory operand, at `BITS` bits.
#[inline(always)]
pub(super) fn get<const MEM: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
    n: u32,
) -> Result<u64> {
    if MEM {
        let a = core.ea(ins);
        core.load_bits::<BITS>(sys, a)
    } else {
        Ok(core.reg::<BITS>(ins.op_register(n)))
    }
}

/// Picks `f::<C.., BITS>` for a width in bits known at resolve time.
macro_rules! sel {
    ($bits:expr, $f:ident $(, $c:expr)*) => {
        match $bits {
            64 => $f::<$({ $c },)* 64> as $crate::cpu::Handler,
            32 => $f::<$({ $c },)* 32> as $crate::cpu::Handler,
            16 => $f::<$({ $c },)* 16> as $crate::cpu::Handler,
            _ => $f::<$({ $c },)* 8> as $crate::cpu::Handler,
        }
    };
}
pub(super) use sel;

// ---- binary operations -------------------------------------------------------------------

const ADD: u8 = 0;
const OR: u8 = 1;
const ADC: u8 = 2;
const SBB: u8 = 3;
const AND: u8 = 4;
const SUB: u8 = 5;
const XOR: u8 = 6;
const CMP: u8 = 7;
const TEST: u8 = 8;

/// Result and status flags of `a OP b` (`a`, `b` masked to `BITS`).
#[inline(always)]
fn arith<const OP: u8, const BITS: u32>(rflags: u64, a: u64, b: u64) -> (u64, u64) {
    let m = mask(BITS);
    match OP {
        ADD => {
            let r = a.wrapping_add(b) & m;
            (r, add_flags(a, b, r, 0, BITS))
        }
        ADC => {
            let c = rflags & CF;
            let r = a.wrapping_add(b).wrapping_add(c) & m;
            (r, add_flags(a, b, r, c, BITS))
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b) & m;
            (r, sub_flags(a, b, r, 0, BITS))
        }
        SBB => {
            let c = rflags & CF;
            let r = a.wrapping_sub(b).wrapping_sub(c) & m;
            (r, sub_flags(a, b, r, c, BITS))
        }
        AND | TEST => {
            let r = a & b;
            (r, logic_flags(r, BITS))
        }
        OR => {
            let r = a | b;
            (r, logic_flags(r, BITS))
        }
        _ => {
            let r = a ^ b;
            (r, logic_flags(r, BITS))
        }
    }
}

/// The operation writes its destination (CMP and TEST only set flags).
const fn writes(op: u8) -> bool {
    op != CMP && op != TEST
}

fn bin_rr<const OP: u8, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let a = core.reg::<BITS>(ins.op0_register());
    let b = core.reg::<BITS>(ins.op1_register());
    let (r, f) = arith::<OP, BITS>(core.rflags, a, b);
    if writes(OP) {
        core.set_reg::<BITS>(ins.op0_register(), r);
    }
    core.set_status(f);
    Ok(())
}

fn bin_ri<const OP: u8, const IMM8: bool, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let a = core.reg::<BITS>(ins.op0_register());
    let b = imm::<IMM8>(ins) & mask(BITS);
    let (r, f) = arith::<OP, BITS>(core.rflags, a, b);
    if writes(OP) {
        core.set_reg::<BITS>(ins.op0_register(), r);
    }
    core.set_status(f);
    Ok(())
}

fn bin_rm<const OP: u8, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let b = core.load_bits::<BITS>(sys, ea)?;
    let a = core.reg::<BITS>(ins.op0_register());
    let (r, f) = arith::<OP, BITS>(core.rflags, a, b);
    if writes(OP) {
        core.set_reg::<BITS>(ins.op0_register(), r);
    }
    core.set_status(f);
    Ok(())
}

fn bin_mr<const OP: u8, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let b = core.reg::<BITS>(ins.op1_register());
    let (r, f) = arith::<OP, BITS>(core.rflags, a, b);
    if writes(OP) {
        core.store_bits::<BITS>(sys, ea, r)?;
    }
    core.set_status(f);
    Ok(())
}

fn bin_mi<const OP: u8, const IMM8: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let b = imm::<IMM8>(ins) & mask(BITS);
    let (r, f) = arith::<OP, BITS>(core.rflags, a, b);
    if writes(OP) {
        core.store_bits::<BITS>(sys, ea, r)?;
    }
    core.set_status(f);
    Ok(())
}

/// LOCK on a register destination or on CMP/TEST is rejected by iced (the instruction
/// decodes as invalid); this guard keeps such a form from ever running as if it were valid.
pub(super) fn bad_lock(ins: &Instruction, lockable: bool) -> bool {
    ins.has_lock_prefix() && (!lockable || ins.op0_kind() != OpKind::Memory)
}

fn binop<const OP: u8>(ins: &Instruction) -> Option<Handler> {
    if bad_lock(ins, writes(OP)) {
        return Some(super::invalid);
    }
    let bits = op_bits(ins, 0);
    let imm8 = is_imm8(ins, 1);
    Some(match (ins.op0_kind(), ins.op1_kind()) {
        (OpKind::Register, OpKind::Register) => sel!(bits, bin_rr, OP),
        (OpKind::Register, OpKind::Memory) => sel!(bits, bin_rm, OP),
        (OpKind::Memory, OpKind::Register) => sel!(bits, bin_mr, OP),
        (OpKind::Register, _) if is_imm(ins, 1) => {
            if imm8 {
                sel!(bits, bin_ri, OP, true)
            } else {
                sel!(bits, bin_ri, OP, false)
            }
        }
        (OpKind::Memory, _) if is_imm(ins, 1) => {
            if imm8 {
                sel!(bits, bin_mi, OP, true)
            } else {
                sel!(bits, bin_mi, OP, false)
            }
        }
        _ => return None,
    })
}

// ---- unary operations --------------------------------------------------------------------

const INC: u8 = 0;
const DEC: u8 = 1;
const NEG: u8 = 2;
const NOT: u8 = 3;

/// Result, flags and which flags `OP a` changes.
#[inline(always)]
fn unary<const OP: u8, const BITS: u32>(a: u64) -> (u64, u64, u64) {
    let m = mask(BITS);
    match OP {
        // INC and DEC leave CF alone (SDM INC/DEC "Flags Affected").
        INC => {
            let r = a.wrapping_add(1) & m;
            (r, add_flags(a, 1, r, 0, BITS), STATUS & !CF)
        }
        DEC => {
            let r = a.wrapping_sub(1) & m;
            (r, sub_flags(a, 1, r, 0, BITS), STATUS & !CF)
        }
        // NEG is 0 - a: CF = (a != 0).
        NEG => {
            let r = a.wrapping_neg() & m;
            (r, sub_flags(0, a, r, 0, BITS), STATUS)
        }
        // NOT changes no flags.
        _ => (!a & m, 0, 0),
    }
}

fn un_r<const OP: u8, const BITS: u32>(
    core: &mut Core,
    _: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let a = core.reg::<BITS>(ins.op0_register());
    let (r, f, which) = unary::<OP, BITS>(a);
    core.set_reg::<BITS>(ins.op0_register(), r);
    core.set_flags(which, f);
    Ok(())
}

fn un_m<const OP: u8, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let ea = core.ea(ins);
    let a = core.load_bits::<BITS>(sys, ea)?;
    let (r, f, which) = unary::<OP, BITS>(a);
    core.store_bits::<BITS>(sys, ea, r)?;
    core.set_flags(which, f);
    Ok(())
}

fn unop<const OP: u8>(ins: &Instruction) -> Option<Handler> {
    if ins.op_count() != 1 {
        return None;
    }
    if bad_lock(ins, true) {
        return Some(super::invalid);
    }
    let bits = op_bits(ins, 0);
    Some(match ins.op0_kind() {
        OpKind::Register => sel!(bits, un_r, OP),
        OpKind::Memory => sel!(bits, un_m, OP),
        _ => return None,
    })
}

// ---- flag instructions -------------------------------------------------------------------

fn clc(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    core.rflags &= !CF;
    Ok(())
}

fn stc(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    core.rflags |= CF;
    Ok(())
}

fn cmc(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    core.rflags ^= CF;
    Ok(())
}

fn cld(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    core.rflags &= !DF;
    Ok(())
}

fn std(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    core.rflags |= DF;
    Ok(())
}

/// LAHF: AH ← SF:ZF:0:AF:0:PF:1:CF (SDM LAHF; valid in 64-bit mode with CPUID
/// LAHF-SAHF, which pvmlab advertises).
fn lahf(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    let ah = (core.rflags & (SF | ZF | AF | PF | CF)) | 2;
    core.gpr[0] = (core.gpr[0] & !0xFF00) | (ah << 8);
    Ok(())
}

/// SAHF: SF, ZF, AF, PF, CF ← AH bits 7, 6, 4, 2, 0; OF is unchanged.
fn sahf(core: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    let ah = (core.gpr[0] >> 8) & 0xFF;
    core.set_flags(SF | ZF | AF | PF | CF, ah);
    Ok(())
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    match ins.mnemonic() {
        Mnemonic::Add => binop::<ADD>(ins),
        Mnemonic::Or => binop::<OR>(ins),
        Mnemonic::Adc => binop::<ADC>(ins),
        Mnemonic::Sbb => binop::<SBB>(ins),
        Mnemonic::And => binop::<AND>(ins),
        Mnemonic::Sub => binop::<SUB>(ins),
        Mnemonic::Xor => binop::<XOR>(ins),
        Mnemonic::Cmp => binop::<CMP>(ins),
        Mnemonic::Test => binop::<TEST>(ins),
        Mnemonic::Inc => unop::<INC>(ins),
        Mnemonic::Dec => unop::<DEC>(ins),
        Mnemonic::Neg => unop::<NEG>(ins),
        Mnemonic::Not => unop::<NOT>(ins),
        _ => match ins.code() {
            Code::Clc => Some(clc),
            Code::Stc => Some(stc),
            Code::Cmc => Some(cmc),
            Code::Cld => Some(cld),
            Code::Std => Some(std),
            Code::Lahf => Some(lahf),
            Code::Sahf => Some(sahf),
            _ => None,
        },
    }
}

/// Test scaffolding shared by the integer families' unit tests.
#[cfg(test)]
pub(super) mod testing {
    use crate::cpu::{Core, CpuidInfo, RunState, Stop, Sys, run};
    use crate::memory::{Ram, RamRange};
    use iced_x86::{Decoder, DecoderOptions};

    pub const BASE: u64 = 0x10_0000;
    pub const CODE: u64 = BASE;
    /// Start of a scratch data area.
    pub const DATA: u64 = BASE + 0x8_0000;

    pub fn machine() -> (Core, Sys) {
        let ram = Ram::new(&[RamRange {
            base: BASE,
            len: 0x10_0000,
            node: 0,
        }])
        .unwrap();
        let sys = Sys::new(
            ram,
            crate::devices::Ports::default(),
            CpuidInfo {
                ncores: 1,
                cores_per_socket: 1,
                tsc_hz: 1_000_000_000,
            },
        );
        let mut core = Core::new(0, 0, 0, 0);
        core.state = RunState::Running;
        (core, sys)
    }

    /// Runs the handler of one instruction given as bytes (at `CODE`), as the block loop would.
    pub fn exec(core: &mut Core, sys: &mut Sys, bytes: &[u8]) -> Result<(), Stop> {
        let mut d = Decoder::with_ip(64, bytes, CODE, DecoderOptions::NONE);
        let ins = d.decode();
        assert_eq!(ins.len(), bytes.len(), "one instruction: {bytes:02x?}");
        let h =
            super::super::resolve(&ins).unwrap_or_else(|| panic!("unresolved {:?}", ins.code()));
        core.rip = ins.next_ip();
        let r = h(core, sys, &ins);
        if r.is_err() {
            core.rip = ins.ip();
        }
        r
    }

    /// Runs bytes placed at `CODE` through the real block loop for `n` instructions.
    pub fn run_code(core: &mut Core, sys: &mut Sys, bytes: &[u8], n: u64) -> Option<Stop> {
        sys.ram.write(CODE, bytes).unwrap();
        core.rip = CODE;
        let mut cache = crate::cpu::decode::CodeCache::new();
        run(core, sys, &mut cache, n)
    }

    pub fn flags(core: &Core) -> u64 {
        core.rflags & crate::cpu::STATUS
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use crate::cpu::*;

    #[test]
    fn add_sub_flags() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = u64::MAX;
        c.gpr[RBX] = 1;
        exec(&mut c, &mut s, &[0x48, 0x01, 0xd8]).unwrap(); // add rax, rbx
        assert_eq!(c.gpr[RAX], 0);
        assert_eq!(flags(&c), CF | ZF | PF | AF);
        c.gpr[RAX] = 0x7F;
        exec(&mut c, &mut s, &[0x04, 0x01]).unwrap(); // add al, 1
        assert_eq!(c.gpr[RAX], 0x80);
        assert_eq!(flags(&c), OF | SF | AF);
        c.gpr[RAX] = 0xFFFF_FFFF_0000_0000;
        exec(&mut c, &mut s, &[0x83, 0xe8, 0x01]).unwrap(); // sub eax, 1
        assert_eq!(c.gpr[RAX], 0xFFFF_FFFF);
        assert_eq!(flags(&c), CF | SF | PF | AF);
        // adc with carry in: 0xFF + 0 + 1
        c.gpr[RAX] = 0xFF;
        c.rflags |= CF;
        exec(&mut c, &mut s, &[0x14, 0x00]).unwrap(); // adc al, 0
        assert_eq!(c.gpr[RAX], 0);
        assert_eq!(flags(&c), CF | ZF | PF | AF);
        // sbb: 0 - 0 - 1
        c.gpr[RAX] = 0;
        exec(&mut c, &mut s, &[0x48, 0x1d, 0, 0, 0, 0]).unwrap(); // sbb rax, 0
        assert_eq!(c.gpr[RAX], u64::MAX);
        assert_eq!(flags(&c), CF | SF | PF | AF);
    }

    #[test]
    fn cmp_test_and_logic() {
        let (mut c, mut s) = machine();
        c.gpr[RCX] = 5;
        exec(&mut c, &mut s, &[0x48, 0x83, 0xf9, 0x07]).unwrap(); // cmp rcx, 7
        assert_eq!(c.gpr[RCX], 5);
        assert_eq!(flags(&c), CF | SF | AF);
        c.rflags |= CF | OF;
        exec(&mut c, &mut s, &[0x48, 0x85, 0xc9]).unwrap(); // test rcx, rcx
        assert_eq!(flags(&c), PF);
        c.gpr[RAX] = 0xDEAD_BEEF_1234_5678;
        exec(&mut c, &mut s, &[0x31, 0xc0]).unwrap(); // xor eax, eax
        assert_eq!(c.gpr[RAX], 0);
        assert_eq!(flags(&c), ZF | PF);
        c.gpr[RAX] = 0x1234;
        exec(&mut c, &mut s, &[0x80, 0xcc, 0x80]).unwrap(); // or ah, 0x80
        assert_eq!(c.gpr[RAX], 0x9234);
        assert_eq!(flags(&c), SF);
    }

    #[test]
    fn memory_forms() {
        let (mut c, mut s) = machine();
        c.gpr[RDI] = DATA;
        c.store::<u64>(&mut s, DATA, 41).unwrap();
        exec(&mut c, &mut s, &[0xf0, 0x48, 0x83, 0x07, 0x01]).unwrap(); // lock add qword [rdi], 1
        assert_eq!(c.load::<u64>(&mut s, DATA).unwrap(), 42);
        exec(&mut c, &mut s, &[0xfe, 0x0f]).unwrap(); // dec byte [rdi]
        assert_eq!(c.load::<u64>(&mut s, DATA).unwrap(), 41);
        exec(&mut c, &mut s, &[0x48, 0xf7, 0x1f]).unwrap(); // neg qword [rdi]
        assert_eq!(c.load::<u64>(&mut s, DATA).unwrap(), (-41i64) as u64);
        assert!(c.flag(CF));
        c.gpr[RDX] = 1;
        exec(&mut c, &mut s, &[0x48, 0x03, 0x17]).unwrap(); // add rdx, [rdi]
        assert_eq!(c.gpr[RDX], (-40i64) as u64);
        // A faulting access leaves the flags alone.
        c.gpr[RDI] = 0x10;
        let before = c.rflags;
        assert!(exec(&mut c, &mut s, &[0x48, 0x01, 0x17]).is_err()); // add [rdi], rdx
        assert_eq!(c.rflags, before);
    }

    #[test]
    fn inc_dec_keep_cf() {
        let (mut c, mut s) = machine();
        c.rflags |= CF;
        c.gpr[RAX] = 0x7FFF_FFFF;
        exec(&mut c, &mut s, &[0xff, 0xc0]).unwrap(); // inc eax
        assert_eq!(c.gpr[RAX], 0x8000_0000);
        assert_eq!(flags(&c), CF | OF | SF | AF | PF);
        c.gpr[RBX] = 0x100;
        exec(&mut c, &mut s, &[0x66, 0xff, 0xcb]).unwrap(); // dec bx
        assert_eq!(c.gpr[RBX], 0xFF);
        assert_eq!(flags(&c), CF | AF | PF);
        exec(&mut c, &mut s, &[0xf7, 0xd3]).unwrap(); // not ebx
        assert_eq!(c.gpr[RBX], 0xFFFF_FF00);
        assert_eq!(flags(&c), CF | AF | PF);
    }

    #[test]
    fn flag_instructions() {
        let (mut c, mut s) = machine();
        exec(&mut c, &mut s, &[0xf9]).unwrap();
        assert!(c.flag(CF));
        exec(&mut c, &mut s, &[0xf5]).unwrap();
        assert!(!c.flag(CF));
        exec(&mut c, &mut s, &[0xfd]).unwrap();
        assert!(c.flag(DF));
        exec(&mut c, &mut s, &[0xfc]).unwrap();
        assert!(!c.flag(DF));
        c.rflags |= SF | CF | OF;
        exec(&mut c, &mut s, &[0x9f]).unwrap(); // lahf
        assert_eq!((c.gpr[RAX] >> 8) & 0xFF, 0x83);
        c.gpr[RAX] = 0x4400; // ZF | PF
        exec(&mut c, &mut s, &[0x9e]).unwrap(); // sahf
        assert_eq!(flags(&c), ZF | PF | OF);
    }

    #[test]
    fn invalid_lock_is_ud() {
        let (mut c, mut s) = machine();
        // lock add eax, eax: iced decodes it as invalid.
        let e = run_code(&mut c, &mut s, &[0xf0, 0x01, 0xc0], 1);
        assert!(matches!(e, Some(Stop::Fault(f)) if f.vector == UD));
    }
}

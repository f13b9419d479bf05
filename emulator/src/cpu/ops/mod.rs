//! Instruction semantics, one file per family. Each family's `resolve` maps an iced `Code`
//! (and, where it pays, the operand forms) to a handler once, at decode time; `resolve` below
//! asks each family in turn. A `Code` no family claims runs [`unimplemented`].

use super::{Core, Fault, Handler, Missing, Result, Stop, Sys, UD};
use iced_x86::{Code, Instruction, Mnemonic};

mod alu;
mod atomic;
mod bits;
mod control;
mod data;
mod muldiv;
mod privileged;
mod shift;
mod sse_convert;
mod sse_float;
mod sse_int;
mod sse_move;
mod stack;
mod string;
mod system;

/// The handler for a decoded instruction, if pvmlab implements it.
pub fn resolve(ins: &Instruction) -> Option<Handler> {
    data::resolve(ins)
        .or_else(|| alu::resolve(ins))
        .or_else(|| control::resolve(ins))
        .or_else(|| stack::resolve(ins))
        .or_else(|| shift::resolve(ins))
        .or_else(|| muldiv::resolve(ins))
        .or_else(|| bits::resolve(ins))
        .or_else(|| atomic::resolve(ins))
        .or_else(|| string::resolve(ins))
        .or_else(|| system::resolve(ins))
        .or_else(|| privileged::resolve(ins))
        .or_else(|| sse_move::resolve(ins))
        .or_else(|| sse_float::resolve(ins))
        .or_else(|| sse_int::resolve(ins))
        .or_else(|| sse_convert::resolve(ins))
}

/// Instructions after which the next instruction must be looked up afresh although flow
/// control is `Next`: they change state that decoding or translation depends on, or stop the
/// core.
pub fn ends_block(ins: &Instruction) -> bool {
    matches!(
        ins.mnemonic(),
        Mnemonic::Hlt
            | Mnemonic::Wrmsr
            | Mnemonic::Lgdt
            | Mnemonic::Lidt
            | Mnemonic::Ltr
            | Mnemonic::Invlpg
            | Mnemonic::Sti
            | Mnemonic::Popfq
            | Mnemonic::Popf
            | Mnemonic::Swapgs
    ) || (ins.mnemonic() == Mnemonic::Mov
        && matches!(ins.code(), Code::Mov_cr_r64 | Code::Mov_dr_r64))
}

/// Base latency of an instruction in core cycles, by class: what it costs with every memory
/// access an L1 hit. Figures are rounded Skylake-SP latencies from Agner Fog's instruction
/// tables ("Instruction tables", 2022) and the Intel Optimization Reference Manual; the
/// interpreter is in-order, so these are latencies, not reciprocal throughputs.
pub fn base_cost(ins: &Instruction) -> u32 {
    use Mnemonic as M;
    let wide = ins.op_count() > 0
        && ins.op0_kind() == iced_x86::OpKind::Register
        && ins.op0_register().size() == 8;
    match ins.mnemonic() {
        M::Imul
        | M::Mul
        | M::Pmullw
        | M::Pmulhw
        | M::Pmulhuw
        | M::Pmuludq
        | M::Pmaddwd
        | M::Psadbw => 3,
        M::Div | M::Idiv => {
            if wide || ins.memory_size().size() == 8 {
                40
            } else {
                26
            }
        }
        M::Addss | M::Addsd | M::Addps | M::Addpd | M::Subss | M::Subsd | M::Subps | M::Subpd => 4,
        M::Mulss | M::Mulsd | M::Mulps | M::Mulpd | M::Minss | M::Minsd | M::Maxss | M::Maxsd => 4,
        M::Minps | M::Minpd | M::Maxps | M::Maxpd | M::Cmpss | M::Cmpsd | M::Cmpps | M::Cmppd => 4,
        M::Divss | M::Divps => 11,
        M::Divsd | M::Divpd => 14,
        M::Sqrtss | M::Sqrtps => 12,
        M::Sqrtsd | M::Sqrtpd => 18,
        M::Cvtsi2ss | M::Cvtsi2sd | M::Cvtss2si | M::Cvtsd2si | M::Cvttss2si | M::Cvttsd2si => 6,
        M::Cvtss2sd | M::Cvtsd2ss | M::Cvtps2pd | M::Cvtpd2ps | M::Cvtdq2ps | M::Cvtps2dq => 5,
        M::Cvttps2dq | M::Cvtdq2pd | M::Cvtpd2dq | M::Cvttpd2dq => 5,
        M::Comiss | M::Comisd | M::Ucomiss | M::Ucomisd => 3,
        M::Cpuid => 100,
        M::Rdtsc | M::Rdtscp => 20,
        M::Rdmsr | M::Wrmsr => 100,
        M::Mfence | M::Lfence | M::Sfence => 30,
        // Skylake-SP made PAUSE ~140 cycles (Intel Optimization Reference Manual §2.5.4).
        M::Pause => 140,
        // Locked read-modify-write (xchg with memory is implicitly locked).
        M::Xchg | M::Cmpxchg | M::Cmpxchg8b | M::Xadd
            if (0..ins.op_count()).any(|n| ins.op_kind(n) == iced_x86::OpKind::Memory) =>
        {
            18
        }
        M::In | M::Out => 100,
        _ if ins.has_lock_prefix() => 18,
        _ => 1,
    }
}

/// Instructions that order memory like a full fence: `lock`-prefixed read-modify-writes,
/// `xchg` with memory (implicitly locked), `mfence` and `sfence` (SDM Vol. 3A §9.2.2). With
/// the timing model, the core waits for its posted stores after them.
pub fn drains_stores(ins: &Instruction) -> bool {
    let mem = (0..ins.op_count()).any(|n| ins.op_kind(n) == iced_x86::OpKind::Memory);
    ins.has_lock_prefix()
        || (ins.mnemonic() == Mnemonic::Xchg && mem)
        || matches!(ins.mnemonic(), Mnemonic::Mfence | Mnemonic::Sfence)
}

/// An invalid encoding (SDM Vol. 2 §2: reserved opcodes raise #UD).
pub fn invalid(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Err(Stop::Fault(Fault::new(UD)))
}

/// A valid instruction outside what pvmlab implements: raised as #UD, marked so the report
/// can say so.
pub fn unimplemented(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Err(Stop::Fault(Fault::not_implemented(Missing::Instruction)))
}

/// Picks the width-specialised handler from the operand size of operand `n`.
macro_rules! by_width {
    ($ins:expr, $n:expr, $f:ident) => {
        match $ins.op_kind($n) {
            iced_x86::OpKind::Register => match $ins.op_register($n).size() {
                8 => Some($f::<64> as $crate::cpu::Handler),
                4 => Some($f::<32> as $crate::cpu::Handler),
                2 => Some($f::<16> as $crate::cpu::Handler),
                _ => Some($f::<8> as $crate::cpu::Handler),
            },
            _ => match $ins.memory_size().size() {
                8 => Some($f::<64> as $crate::cpu::Handler),
                4 => Some($f::<32> as $crate::cpu::Handler),
                2 => Some($f::<16> as $crate::cpu::Handler),
                _ => Some($f::<8> as $crate::cpu::Handler),
            },
        }
    };
}
pub(crate) use by_width;

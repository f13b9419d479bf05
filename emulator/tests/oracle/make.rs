//! Generators: a seeded PRNG, edge-biased register/float/memory values, memory operands that
//! land in the scratch data area, and a generic instruction generator driven by iced's
//! per-`Code` operand table (`Code::op_code().op_kinds()`), so that every legacy encoding of a
//! mnemonic (reg/rm directions, immediate sizes, accumulator short forms, aliases) is covered.

use super::{Case, DATA, DATA_END, Regs, SCRATCH_BASE, SCRATCH_LEN, STACK_HI, STACK_LO, TEST_RIP};
use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, Encoder, EncodingKind, Instruction, MemoryOperand,
    MemorySize, Mnemonic, OpCodeOperandKind as K, Register,
};

// ---- PRNG -------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and fully determined by its seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `pct`%.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<T: Copy>(&mut self, s: &[T]) -> T {
        s[self.below(s.len() as u64) as usize]
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

// ---- registers --------------------------------------------------------------------------

pub const R64: [Register; 16] = {
    use Register::*;
    [
        RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15,
    ]
};
pub const R32: [Register; 16] = {
    use Register::*;
    [
        EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D, R15D,
    ]
};
pub const R16: [Register; 16] = {
    use Register::*;
    [
        AX, CX, DX, BX, SP, BP, SI, DI, R8W, R9W, R10W, R11W, R12W, R13W, R14W, R15W,
    ]
};
pub const R8: [Register; 20] = {
    use Register::*;
    [
        AL, CL, DL, BL, AH, CH, DH, BH, SPL, BPL, SIL, DIL, R8L, R9L, R10L, R11L, R12L, R13L, R14L,
        R15L,
    ]
};
pub const XMM: [Register; 16] = {
    use Register::*;
    [
        XMM0, XMM1, XMM2, XMM3, XMM4, XMM5, XMM6, XMM7, XMM8, XMM9, XMM10, XMM11, XMM12, XMM13,
        XMM14, XMM15,
    ]
};

/// Index into `Regs::gpr` of a general register of any width, and whether it is AH..BH.
pub fn gpr_slot(r: Register) -> (usize, bool) {
    use Register::*;
    if matches!(r, AH | CH | DH | BH) {
        return ((r as usize - AH as usize) & 3, true);
    }
    let full = r.full_register();
    (
        R64.iter()
            .position(|&x| x == full)
            .expect("a general register"),
        false,
    )
}

pub fn is_gpr(r: Register) -> bool {
    r.is_gpr()
}

pub fn xmm_slot(r: Register) -> usize {
    XMM.iter().position(|&x| x == r).expect("an XMM register")
}

// ---- values -----------------------------------------------------------------------------

const EDGE64: [u64; 12] = [
    0,
    1,
    u64::MAX,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    0x8000_0000_0000_0001,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    2,
    0xFFFF_FFFF_FFFF_FFFE,
];
const EDGE32: [u32; 8] = [
    0,
    1,
    u32::MAX,
    0x7FFF_FFFF,
    0x8000_0000,
    0x8000_0001,
    0xFFFF,
    0x1_0000,
];
const EDGE16: [u16; 7] = [0, 1, u16::MAX, 0x7FFF, 0x8000, 0x8001, 0xFF];
const EDGE8: [u8; 7] = [0, 1, 0xFF, 0x7F, 0x80, 0x81, 0xFE];

/// A 64-bit register value biased toward edge values at every operand width.
pub fn gpr_value(rng: &mut Rng) -> u64 {
    let hi = rng.next();
    match rng.below(10) {
        0..=2 => rng.next(),
        3 => rng.pick(&EDGE64),
        4 => (hi & !0xFFFF_FFFF) | rng.pick(&EDGE32) as u64,
        5 => (hi & !0xFFFF) | rng.pick(&EDGE16) as u64,
        6 => (hi & !0xFF) | rng.pick(&EDGE8) as u64,
        7 => (hi & !0xFF00) | (rng.pick(&EDGE8) as u64) << 8,
        8 => rng.below(70),
        _ => (rng.below(70) as i64).wrapping_neg() as u64,
    }
}

/// An immediate of `bits` bits (sign-extended to i64), edge-biased.
pub fn imm_value(rng: &mut Rng, bits: u32, signed: bool) -> i64 {
    let v: u64 = match rng.below(6) {
        0 => rng.pick(&EDGE64),
        1 => rng.below(66),
        2 => (rng.below(66) as i64).wrapping_neg() as u64,
        _ => rng.next(),
    };
    let s = 64 - bits;
    if signed || bits == 64 {
        ((v << s) as i64) >> s
    } else {
        ((v << s) >> s) as i64
    }
}

const F32_SPECIAL: [u32; 28] = [
    0x0000_0000, // +0
    0x8000_0000, // -0
    0x3F80_0000, // 1
    0xBF80_0000, // -1
    0x7F80_0000, // +inf
    0xFF80_0000, // -inf
    0x7FC0_0000, // qNaN
    0xFFC0_0000, // -qNaN (default NaN)
    0x7F80_0001, // sNaN
    0xFFA0_1234, // -sNaN with payload
    0x7FC1_2345, // qNaN with payload
    0x0000_0001, // smallest denormal
    0x007F_FFFF, // largest denormal
    0x8000_0001, // -smallest denormal
    0x0080_0000, // smallest normal
    0x7F7F_FFFF, // largest normal
    0xFF7F_FFFF, // -largest normal
    0x4F00_0000, // 2^31
    0xCF00_0000, // -2^31
    0x4EFF_FFFF, // just below 2^31
    0x5F00_0000, // 2^63
    0xDF00_0000, // -2^63
    0x3F00_0000, // 0.5
    0x3FC0_0000, // 1.5
    0x4020_0000, // 2.5
    0xBFC0_0000, // -1.5
    0x3EAA_AAAB, // 1/3
    0x4B00_0000, // 2^23
];
const F64_SPECIAL: [u64; 28] = [
    0,
    0x8000_0000_0000_0000,
    0x3FF0_0000_0000_0000,
    0xBFF0_0000_0000_0000,
    0x7FF0_0000_0000_0000,
    0xFFF0_0000_0000_0000,
    0x7FF8_0000_0000_0000,
    0xFFF8_0000_0000_0000,
    0x7FF0_0000_0000_0001,
    0xFFF4_0000_1234_5678,
    0x7FF8_1234_5678_9ABC,
    1,
    0x000F_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0001,
    0x0010_0000_0000_0000,
    0x7FEF_FFFF_FFFF_FFFF,
    0xFFEF_FFFF_FFFF_FFFF,
    0x41E0_0000_0000_0000, // 2^31
    0xC1E0_0000_0000_0000, // -2^31
    0x41DF_FFFF_FFC0_0000, // 2^31 - 1
    0x43E0_0000_0000_0000, // 2^63
    0xC3E0_0000_0000_0000, // -2^63
    0x3FE0_0000_0000_0000, // 0.5
    0x3FF8_0000_0000_0000, // 1.5
    0x4004_0000_0000_0000, // 2.5
    0xBFF8_0000_0000_0000, // -1.5
    0x47EF_FFFF_E000_0000, // f32::MAX as f64
    0x3690_0000_0000_0000, // below the smallest f32 denormal
];

pub fn f32_value(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0..=3 => rng.pick(&F32_SPECIAL),
        4 => ((rng.range(-3000, 3000) as f32) + rng.pick(&[0.0f32, 0.5, 0.25, 0.75])).to_bits(),
        5 => ((rng.next() as i64 as f64 / (1u64 << rng.below(64)) as f64) as f32).to_bits(),
        6 => (rng.next() as u32 & 0x807F_FFFF) | 0x3F80_0000, // [1, 2) with random sign
        7 => rng.next() as u32 & 0x80FF_FFFF,                 // tiny: denormal or near
        _ => rng.next() as u32,
    }
}

pub fn f64_value(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=3 => rng.pick(&F64_SPECIAL),
        4 => ((rng.range(-3_000_000_000, 3_000_000_000) as f64)
            + rng.pick(&[0.0f64, 0.5, 0.25, 0.75]))
        .to_bits(),
        5 => (f32::from_bits(f32_value(rng)) as f64).to_bits(),
        6 => (rng.next() & 0x800F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000,
        7 => rng.next() & 0x801F_FFFF_FFFF_FFFF,
        _ => rng.next(),
    }
}

/// How to fill vector lanes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lane {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    Any,
}

pub fn lane_of(ms: MemorySize) -> Lane {
    use MemorySize as M;
    match ms.element_type() {
        M::Float32 => Lane::F32,
        M::Float64 => Lane::F64,
        M::Int8 | M::UInt8 => Lane::I8,
        M::Int16 | M::UInt16 => Lane::I16,
        M::Int32 | M::UInt32 => Lane::I32,
        M::Int64 | M::UInt64 => Lane::I64,
        _ => Lane::Any,
    }
}

/// `n` bytes of lanes of kind `lane` (edge-biased).
pub fn lane_bytes(rng: &mut Rng, lane: Lane, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    let lane = if lane == Lane::Any {
        rng.pick(&[
            Lane::F32,
            Lane::F64,
            Lane::I8,
            Lane::I16,
            Lane::I32,
            Lane::I64,
            Lane::Any,
        ])
    } else {
        lane
    };
    while out.len() < n {
        match lane {
            Lane::F32 => out.extend_from_slice(&f32_value(rng).to_le_bytes()),
            Lane::F64 => out.extend_from_slice(&f64_value(rng).to_le_bytes()),
            Lane::I8 => out.push(if rng.pct(50) {
                rng.pick(&EDGE8)
            } else {
                rng.next() as u8
            }),
            Lane::I16 => out.extend_from_slice(
                &(if rng.pct(50) {
                    rng.pick(&EDGE16)
                } else {
                    rng.next() as u16
                })
                .to_le_bytes(),
            ),
            Lane::I32 => out.extend_from_slice(
                &(if rng.pct(50) {
                    rng.pick(&EDGE32)
                } else {
                    rng.next() as u32
                })
                .to_le_bytes(),
            ),
            Lane::I64 => out.extend_from_slice(&gpr_value(rng).to_le_bytes()),
            Lane::Any => out.extend_from_slice(&rng.next().to_le_bytes()),
        }
    }
    out.truncate(n);
    out
}

pub fn xmm_value(rng: &mut Rng, lane: Lane) -> u128 {
    // Mostly the instruction's own lane type, sometimes another, so conversions and bitwise
    // operations see float-shaped and integer-shaped data alike.
    let lane = if rng.pct(70) { lane } else { Lane::Any };
    let b = lane_bytes(rng, lane, 16);
    u128::from_le_bytes(b.try_into().unwrap())
}

/// A random MXCSR: exceptions masked (so nothing traps natively), any rounding mode, FTZ and
/// DAZ sometimes, some sticky flags sometimes.
pub fn mxcsr_value(rng: &mut Rng) -> u32 {
    let mut m = 0x1F80 | (rng.below(4) as u32) << 13;
    if rng.pct(25) {
        m |= 1 << 15; // FTZ
    }
    if rng.pct(25) {
        m |= 1 << 6; // DAZ
    }
    if rng.pct(20) {
        m |= rng.next() as u32 & 0x3F;
    }
    m
}

/// RFLAGS input: IF and bit 1 as user mode has them, random status flags, DF sometimes.
pub fn rflags_value(rng: &mut Rng) -> u64 {
    let mut f = 0x202 | (rng.next() & 0x8D5);
    if rng.pct(20) {
        f |= 0x400;
    }
    f
}

/// A random initial state: registers, flags, MXCSR, XMM, and scratch memory.
pub fn base_case(rng: &mut Rng, lane: Lane) -> Case {
    let mut regs = Regs::default();
    for g in regs.gpr.iter_mut() {
        *g = gpr_value(rng);
    }
    regs.gpr[4] = stack_pointer(rng);
    regs.rflags = rflags_value(rng);
    regs.mxcsr = mxcsr_value(rng);
    for x in regs.xmm.iter_mut() {
        *x = xmm_value(rng, lane);
    }
    let mut mem = vec![0u8; SCRATCH_LEN];
    let d = (DATA - SCRATCH_BASE) as usize..(DATA_END - SCRATCH_BASE) as usize;
    let fill = lane_bytes(rng, Lane::Any, d.len());
    mem[d].copy_from_slice(&fill);
    Case::new(regs, mem)
}

/// RSP: inside the data area with room both ways, usually 8-aligned.
pub fn stack_pointer(rng: &mut Rng) -> u64 {
    let sp = rng.range(STACK_LO as i64, STACK_HI as i64) as u64;
    if rng.pct(90) { sp & !7 } else { sp }
}

// ---- memory operands --------------------------------------------------------------------

/// A target address for an access of `size` bytes: aligned, page-straddling or anywhere.
pub fn target_address(rng: &mut Rng, size: u64, align: u64) -> u64 {
    let size = size.max(1);
    if align > 1 {
        let a = rng.range(DATA as i64, (DATA_END - size) as i64) as u64;
        return a & !(align - 1);
    }
    match rng.below(10) {
        0..=2 if size > 1 => {
            // Straddles a page boundary inside the data area.
            let page = DATA + 0x1000 * rng.range(1, ((DATA_END - DATA) / 0x1000 - 1) as i64) as u64;
            page - rng.range(1, size as i64 - 1) as u64
        }
        3..=5 => {
            rng.range(DATA as i64, (DATA_END - size) as i64) as u64
                & !(size.next_power_of_two() - 1)
        }
        _ => rng.range(DATA as i64, (DATA_END - size) as i64) as u64,
    }
}

/// Which registers a memory operand may use.
#[derive(Clone, Copy)]
pub struct MemRules {
    /// GPR slots that must not be used as base or index.
    pub avoid: u16,
    pub allow_rip: bool,
    pub allow_addr32: bool,
}

impl Default for MemRules {
    fn default() -> Self {
        MemRules {
            avoid: 0,
            allow_rip: true,
            allow_addr32: true,
        }
    }
}

/// Builds a memory operand whose effective address is `a`, setting the base/index registers
/// of `regs` accordingly (RSP keeps its value: the displacement absorbs it).
pub fn memory_operand(rng: &mut Rng, regs: &mut Regs, a: u64, rules: MemRules) -> MemoryOperand {
    let mode = rng.below(100);
    if rules.allow_rip && mode < 6 {
        // RIP-relative; with 0x67 EIP-relative (the code lies below 4 GiB).
        let eip = rules.allow_addr32 && rng.pct(25);
        return MemoryOperand::new(
            if eip { Register::EIP } else { Register::RIP },
            Register::None,
            1,
            a as i64,
            8,
            false,
            Register::None,
        );
    }
    if mode < 11 {
        return MemoryOperand::new(
            Register::None,
            Register::None,
            1,
            a as i64,
            4,
            false,
            Register::None,
        );
    }
    let addr32 = rules.allow_addr32 && mode < 22;
    let ok = |s: usize| rules.avoid & (1 << s) == 0;
    let bases: Vec<usize> = (0..16).filter(|&s| ok(s)).collect();
    let indexes: Vec<usize> = (0..16).filter(|&s| s != 4 && ok(s)).collect();
    let base = if rng.pct(92) && !bases.is_empty() {
        Some(rng.pick(&bases))
    } else {
        None
    };
    let index = if rng.pct(45) && !indexes.is_empty() {
        Some(rng.pick(&indexes))
    } else {
        None
    };
    let base = if base.is_none() && index.is_none() {
        bases.first().copied()
    } else {
        base
    };
    let scale = rng.pick(&[1u64, 2, 4, 8]);
    let wmask: u64 = if addr32 { 0xFFFF_FFFF } else { u64::MAX };
    let hi = |rng: &mut Rng| if addr32 { rng.next() & !0xFFFF_FFFF } else { 0 };
    let small_disp = |rng: &mut Rng| -> i64 {
        match rng.below(4) {
            0 => 0,
            1 => rng.range(-128, 127),
            2 => rng.range(-0x8000_0000, 0x7FFF_FFFF),
            _ => rng.range(-4096, 4096),
        }
    };
    let disp: i64;
    match (base, index) {
        (Some(4), idx) => {
            // RSP keeps its value.
            let sp = regs.gpr[4] & wmask;
            let iv = if idx.is_some() {
                rng.range(-300, 300) as u64
            } else {
                0
            };
            if let Some(i) = idx {
                regs.gpr[i] = (iv & wmask) | hi(rng);
            }
            disp = (a.wrapping_sub(sp).wrapping_sub(iv.wrapping_mul(scale)) & wmask) as i32 as i64;
        }
        (Some(b), Some(i)) if b == i => {
            let v = rng.below(a / (1 + scale));
            regs.gpr[b] = v | hi(rng);
            disp = (a - v * (1 + scale)) as i64;
        }
        (Some(b), idx) => {
            disp = small_disp(rng);
            let iv = match idx {
                Some(i) => {
                    let v = if rng.pct(50) {
                        rng.range(-500, 500) as u64
                    } else {
                        gpr_value(rng)
                    };
                    regs.gpr[i] = (v & wmask) | hi(rng);
                    v
                }
                None => 0,
            };
            let bv = a
                .wrapping_sub(disp as u64)
                .wrapping_sub(iv.wrapping_mul(scale));
            regs.gpr[b] = (bv & wmask) | hi(rng);
        }
        (None, Some(i)) => {
            let v = rng.range(-500, 500) as u64;
            regs.gpr[i] = (v & wmask) | hi(rng);
            disp = a.wrapping_sub(v.wrapping_mul(scale)) as i64;
        }
        (None, None) => unreachable!(),
    }
    let name = |s: usize| if addr32 { R32[s] } else { R64[s] };
    // ES/CS/SS/DS overrides are accepted and ignored in 64-bit mode.
    let seg = if rng.pct(5) {
        rng.pick(&[Register::ES, Register::CS, Register::SS, Register::DS])
    } else {
        Register::None
    };
    MemoryOperand::new(
        base.map_or(Register::None, name),
        index.map_or(Register::None, name),
        if index.is_some() { scale as u32 } else { 1 },
        disp,
        if disp != 0 { 1 } else { 0 },
        false,
        seg,
    )
}

// ---- instructions -----------------------------------------------------------------------

/// An operand for [`build`].
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    R(Register),
    M(MemoryOperand),
    I(i64),
}

/// `Instruction::withN(code, args...)` for the operand combinations legacy instructions have.
pub fn build(code: Code, args: &[Arg]) -> Option<Instruction> {
    use Arg::*;
    let i32_ = |v: i64| v as i32;
    let r = match args {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, *a),
        [M(a)] => Instruction::with1(code, *a),
        [I(a)] => Instruction::with1(code, i32_(*a)),
        [R(a), R(b)] => Instruction::with2(code, *a, *b),
        [R(a), M(b)] => Instruction::with2(code, *a, *b),
        [R(a), I(b)] if a.size() == 8 && code.op_code().op1_kind() == K::imm64 => {
            Instruction::with2(code, *a, *b)
        }
        [R(a), I(b)] => Instruction::with2(code, *a, i32_(*b)),
        [M(a), R(b)] => Instruction::with2(code, *a, *b),
        [M(a), I(b)] => Instruction::with2(code, *a, i32_(*b)),
        [I(a), R(b)] => Instruction::with2(code, i32_(*a), *b),
        [I(a), I(b)] => Instruction::with2(code, i32_(*a), i32_(*b)),
        [R(a), R(b), R(c)] => Instruction::with3(code, *a, *b, *c),
        [R(a), R(b), I(c)] => Instruction::with3(code, *a, *b, i32_(*c)),
        [R(a), R(b), M(c)] => Instruction::with3(code, *a, *b, *c),
        [R(a), M(b), R(c)] => Instruction::with3(code, *a, *b, *c),
        [R(a), M(b), I(c)] => Instruction::with3(code, *a, *b, i32_(*c)),
        [M(a), R(b), R(c)] => Instruction::with3(code, *a, *b, *c),
        [M(a), R(b), I(c)] => Instruction::with3(code, *a, *b, i32_(*c)),
        _ => return None,
    };
    r.ok()
}

pub fn encode(ins: &Instruction) -> Option<Vec<u8>> {
    let mut e = Encoder::new(64);
    e.encode(ins, TEST_RIP).ok()?;
    Some(e.take_buffer())
}

pub fn decode(bytes: &[u8]) -> Instruction {
    let mut d = Decoder::with_ip(64, bytes, TEST_RIP, DecoderOptions::NONE);
    d.decode()
}

/// CPUID features of the emulated CPU (the x86-64 baseline), plus TZCNT: `rep bsf`, which
/// the emulator runs as BSF (the family test compares it with native BSF).
const BASELINE: &[CpuidFeature] = &[
    CpuidFeature::INTEL8086,
    CpuidFeature::INTEL186,
    CpuidFeature::INTEL286,
    CpuidFeature::INTEL386,
    CpuidFeature::INTEL486,
    CpuidFeature::X64,
    CpuidFeature::CMOV,
    CpuidFeature::CX8,
    CpuidFeature::CMPXCHG16B,
    CpuidFeature::SSE,
    CpuidFeature::SSE2,
    CpuidFeature::FXSR,
    CpuidFeature::MULTIBYTENOP,
    CpuidFeature::PAUSE,
    CpuidFeature::CLFSH,
    CpuidFeature::BMI1,
];

/// Whether the generic generator can produce every operand of `code`.
pub fn supported(code: Code) -> bool {
    let op = code.op_code();
    op.encoding() == EncodingKind::Legacy
        && op.mode64()
        && op.is_instruction()
        && op.decoder_option() == 0
        && !op.is_input_output()
        && !op.is_privileged()
        && code.cpuid_features().iter().all(|f| BASELINE.contains(f))
        && op.op_kinds().iter().all(|k| {
            matches!(
                k,
                K::r8_or_mem
                    | K::r16_or_mem
                    | K::r32_or_mem
                    | K::r64_or_mem
                    | K::xmm_or_mem
                    | K::mem
                    | K::mem_offs
                    | K::r8_reg
                    | K::r8_opcode
                    | K::r16_reg
                    | K::r16_rm
                    | K::r16_opcode
                    | K::r32_reg
                    | K::r32_rm
                    | K::r32_opcode
                    | K::r64_reg
                    | K::r64_rm
                    | K::r64_opcode
                    | K::xmm_reg
                    | K::xmm_rm
                    | K::al
                    | K::cl
                    | K::ax
                    | K::dx
                    | K::eax
                    | K::rax
                    | K::imm8
                    | K::imm8_const_1
                    | K::imm8sex16
                    | K::imm8sex32
                    | K::imm8sex64
                    | K::imm16
                    | K::imm32
                    | K::imm32sex64
                    | K::imm64
            )
        })
}

/// Every generator-supported legacy `Code` of the given mnemonics, in `Code` order.
pub fn codes_of(mnemonics: &[Mnemonic]) -> Vec<Code> {
    Code::values()
        .filter(|c| mnemonics.contains(&c.mnemonic()) && supported(*c))
        .collect()
}

/// Every generator-supported legacy `Code` for which `pred` holds.
pub fn codes_where(pred: impl Fn(Code) -> bool) -> Vec<Code> {
    Code::values()
        .filter(|c| supported(*c) && pred(*c))
        .collect()
}

/// Whether the mnemonic's name starts with `prefix` (`Cmov`, `Set`, `J`).
pub fn mnemonic_starts(code: Code, prefix: &str) -> bool {
    format!("{:?}", code.mnemonic()).starts_with(prefix)
}

/// A shift/rotate count biased toward the interesting values for a `bits`-bit operand.
pub fn shift_count(rng: &mut Rng, bits: u32) -> u64 {
    let b = bits as u64;
    match rng.below(4) {
        0 => rng.pick(&[
            0,
            1,
            2,
            b - 1,
            b,
            b + 1,
            31,
            32,
            33,
            63,
            64,
            65,
            0x7F,
            0x80,
            0xFF,
        ]),
        1 => rng.below(bits as u64 + 2),
        2 => rng.below(256),
        _ => rng.below(4),
    }
}

/// Legacy SSE instructions with a 16-byte memory operand require 16-byte alignment (#GP
/// otherwise), except the explicitly unaligned moves.
pub fn needs_align16(code: Code) -> bool {
    let op = code.op_code();
    op.memory_size().size() == 16
        && !matches!(
            code.mnemonic(),
            Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu | Mnemonic::Lddqu
        )
        && op
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::xmm_or_mem | K::mem))
        && op
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::xmm_reg | K::xmm_rm | K::xmm_or_mem))
}

/// Options of [`generic`].
#[derive(Clone, Copy)]
pub struct GenOpts {
    pub mem_pct: u64,
    pub lock_pct: u64,
    pub rules: MemRules,
}

impl Default for GenOpts {
    fn default() -> Self {
        GenOpts {
            mem_pct: 45,
            lock_pct: 40,
            rules: MemRules::default(),
        }
    }
}

fn imm_of(rng: &mut Rng, k: K) -> i64 {
    match k {
        K::imm8 => {
            if rng.pct(50) {
                rng.pick(&[
                    0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF,
                ])
            } else {
                imm_value(rng, 8, false)
            }
        }
        K::imm8_const_1 => 1,
        K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => imm_value(rng, 8, true),
        K::imm16 => imm_value(rng, 16, false),
        K::imm32 => imm_value(rng, 32, false) as u32 as i32 as i64,
        K::imm32sex64 => imm_value(rng, 32, true),
        K::imm64 => imm_value(rng, 64, true),
        _ => unreachable!(),
    }
}

/// A random case for `code`: random state, random operands of every kind its encoding has,
/// memory operands landing in the data area (filled with lanes of the operand's type), a lock
/// prefix sometimes where allowed. `None` when the combination cannot be encoded (e.g. AH
/// with a REX prefix); callers retry.
pub fn generic(rng: &mut Rng, code: Code, opts: GenOpts) -> Option<Case> {
    let op = code.op_code();
    let lane = lane_of(op.memory_size());
    let mut case = base_case(rng, lane);
    let kinds: Vec<K> = op.op_kinds().to_vec();
    let use_mem = rng.pct(opts.mem_pct);
    let msize = op.memory_size().size().max(1) as u64;
    let align = if needs_align16(code) || code.mnemonic() == Mnemonic::Cmpxchg16b {
        16
    } else {
        1
    };
    let mut args = Vec::with_capacity(kinds.len());
    let mut mem_at = None;
    for &k in &kinds {
        let a = match k {
            K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::xmm_or_mem
                if !use_mem =>
            {
                Arg::R(match k {
                    K::r8_or_mem => rng.pick(&R8),
                    K::r16_or_mem => rng.pick(&R16),
                    K::r32_or_mem => rng.pick(&R32),
                    K::r64_or_mem => rng.pick(&R64),
                    _ => rng.pick(&XMM),
                })
            }
            K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::xmm_or_mem
            | K::mem => {
                let a = target_address(rng, msize, align);
                mem_at = Some(a);
                Arg::M(memory_operand(rng, &mut case.regs, a, opts.rules))
            }
            K::mem_offs => {
                let a = target_address(rng, msize, 1);
                mem_at = Some(a);
                Arg::M(MemoryOperand::new(
                    Register::None,
                    Register::None,
                    1,
                    a as i64,
                    8,
                    false,
                    Register::None,
                ))
            }
            K::r8_reg | K::r8_opcode => Arg::R(rng.pick(&R8)),
            K::r16_reg | K::r16_rm | K::r16_opcode => Arg::R(rng.pick(&R16)),
            K::r32_reg | K::r32_rm | K::r32_opcode => Arg::R(rng.pick(&R32)),
            K::r64_reg | K::r64_rm | K::r64_opcode => Arg::R(rng.pick(&R64)),
            K::xmm_reg | K::xmm_rm => Arg::R(rng.pick(&XMM)),
            K::al => Arg::R(Register::AL),
            K::cl => Arg::R(Register::CL),
            K::ax => Arg::R(Register::AX),
            K::dx => Arg::R(Register::DX),
            K::eax => Arg::R(Register::EAX),
            K::rax => Arg::R(Register::RAX),
            _ => Arg::I(imm_of(rng, k)),
        };
        args.push(a);
    }
    let mut ins = build(code, &args)?;
    if mem_at.is_some()
        && op.can_use_lock_prefix()
        && matches!(args.first(), Some(Arg::M(_)))
        && rng.pct(opts.lock_pct)
    {
        ins.set_has_lock_prefix(true);
    }
    let bytes = encode(&ins)?;
    if let Some(a) = mem_at {
        let b = lane_bytes(rng, lane, msize as usize);
        case.write_mem(a, &b);
    }
    case.set_bytes(bytes);
    if let Some(a) = mem_at {
        let ea = case.ea();
        assert_eq!(
            ea,
            Some(a),
            "oracle harness: effective address of {} is off",
            case.text()
        );
    }
    Some(case)
}

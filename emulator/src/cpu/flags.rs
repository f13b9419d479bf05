//! RFLAGS, control-register bits and the status-flag arithmetic shared by all integer
//! instructions (SDM Vol. 1 §3.4.3, Vol. 3A §2.5). Flags are computed eagerly: every
//! instruction leaves `Core::rflags` exactly as silicon would for the defined flags.

pub const CF: u64 = 1 << 0;
pub const FIXED1: u64 = 1 << 1;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const TF: u64 = 1 << 8;
pub const IF: u64 = 1 << 9;
pub const DF: u64 = 1 << 10;
pub const OF: u64 = 1 << 11;
pub const IOPL: u64 = 3 << 12;
pub const NT: u64 = 1 << 14;
pub const RF: u64 = 1 << 16;
pub const AC: u64 = 1 << 18;
pub const ID: u64 = 1 << 21;
/// The six arithmetic status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
pub const RFLAGS_FIXED: u64 = FIXED1;

pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_EM: u64 = 1 << 2;
pub const CR0_TS: u64 = 1 << 3;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_AM: u64 = 1 << 18;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_PGE: u64 = 1 << 7;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const EFER_SCE: u64 = 1 << 0;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;
/// MXCSR at reset: all exceptions masked, round to nearest (SDM Vol. 1 §10.2.3).
pub const MXCSR_DEFAULT: u32 = 0x1F80;

/// Value mask of an operand of `BITS` bits.
#[inline(always)]
pub const fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The sign bit of an operand of `BITS` bits.
#[inline(always)]
pub const fn sign(bits: u32) -> u64 {
    1u64 << (bits - 1)
}

/// Sign-extends the low `bits` of `v` to 64 bits.
#[inline(always)]
pub const fn sext(v: u64, bits: u32) -> u64 {
    let s = 64 - bits;
    (((v << s) as i64) >> s) as u64
}

const fn parity_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u32).count_ones().is_multiple_of(2) as u8;
        i += 1;
    }
    t
}
static PARITY: [u8; 256] = parity_table();

/// PF, ZF and SF of a result of `BITS` bits (already masked).
#[inline(always)]
pub fn szp(r: u64, bits: u32) -> u64 {
    let mut f = (PARITY[(r & 0xFF) as usize] as u64) << 2;
    if r == 0 {
        f |= ZF;
    }
    if r & sign(bits) != 0 {
        f |= SF;
    }
    f
}

/// Status flags of `a + b + carry_in = r` (`r` masked to `bits`).
#[inline(always)]
pub fn add_flags(a: u64, b: u64, r: u64, carry_in: u64, bits: u32) -> u64 {
    let m = mask(bits);
    let carry = if carry_in == 0 { r < a } else { r <= a };
    let _ = m;
    let mut f = szp(r, bits) | ((a ^ b ^ r) & AF);
    if carry {
        f |= CF;
    }
    if ((a ^ r) & (b ^ r)) & sign(bits) != 0 {
        f |= OF;
    }
    f
}

/// Status flags of `a - b - borrow_in = r` (`r` masked to `bits`).
#[inline(always)]
pub fn sub_flags(a: u64, b: u64, r: u64, borrow_in: u64, bits: u32) -> u64 {
    let borrow = if borrow_in == 0 { a < b } else { a <= b };
    let mut f = szp(r, bits) | ((a ^ b ^ r) & AF);
    if borrow {
        f |= CF;
    }
    if ((a ^ b) & (a ^ r)) & sign(bits) != 0 {
        f |= OF;
    }
    f
}

/// Status flags of a logical operation (CF = OF = 0; AF is undefined and left clear).
#[inline(always)]
pub fn logic_flags(r: u64, bits: u32) -> u64 {
    szp(r, bits)
}

/// Evaluates an iced condition code against RFLAGS (SDM Vol. 1 Appendix B).
#[inline(always)]
pub fn condition(cc: iced_x86::ConditionCode, f: u64) -> bool {
    use iced_x86::ConditionCode as C;
    let cf = f & CF != 0;
    let zf = f & ZF != 0;
    let sf = f & SF != 0;
    let of = f & OF != 0;
    let pf = f & PF != 0;
    match cc {
        C::None => true,
        C::o => of,
        C::no => !of,
        C::b => cf,
        C::ae => !cf,
        C::e => zf,
        C::ne => !zf,
        C::be => cf || zf,
        C::a => !cf && !zf,
        C::s => sf,
        C::ns => !sf,
        C::p => pf,
        C::np => !pf,
        C::l => sf != of,
        C::ge => sf == of,
        C::le => zf || sf != of,
        C::g => !zf && sf == of,
    }
}

impl super::Core {
    /// Replaces the six status flags with `f`.
    #[inline(always)]
    pub fn set_status(&mut self, f: u64) {
        self.rflags = (self.rflags & !STATUS) | f;
    }

    /// Replaces the flags selected by `which` with those of `f`.
    #[inline(always)]
    pub fn set_flags(&mut self, which: u64, f: u64) {
        self.rflags = (self.rflags & !which) | (f & which);
    }

    #[inline(always)]
    pub fn flag(&self, f: u64) -> bool {
        self.rflags & f != 0
    }
}

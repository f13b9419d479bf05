//! Operand access: registers by iced `Register`, effective addresses, and reads/writes of
//! register, memory and immediate operands of a given width.
//!
//! Widths are const generics (`BITS` = 8, 16, 32, 64) so each handler is compiled per width.

use super::{Core, Result, Sys, flags::mask};
use iced_x86::{Instruction, OpKind, Register};

// iced numbers the general registers in blocks of 16 (plus the four legacy high bytes); see
// `iced_x86::Register`. These offsets turn a register into an index into `Core::gpr`.
const R64: usize = Register::RAX as usize;
const R32: usize = Register::EAX as usize;
const R16: usize = Register::AX as usize;
const AH: usize = Register::AH as usize;
const BH: usize = Register::BH as usize;
const AL: usize = Register::AL as usize;
const XMM0: usize = Register::XMM0 as usize;

/// `Core::gpr` index of each general register (any width), by iced `Register` number.
static GPR_INDEX: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut r = 0;
    while r < 256 {
        t[r] = (if r >= R64 {
            r - R64
        } else if r >= R32 {
            r - R32
        } else if r >= R16 {
            r - R16
        } else if AH <= r && r <= BH {
            r - AH
        } else if r > BH {
            r - 5
        } else {
            // AL..=BL; `None` (0) maps to 0, never used.
            r.saturating_sub(AL)
        } & 15) as u8;
        r += 1;
    }
    t
};

/// How each register takes part in an address: `0..16` a 64-bit register, `16..32` a 32-bit
/// one (0x67 prefix: the address wraps at 4 GiB), `ADDR_EIP` EIP-relative, `ADDR_NONE` none
/// or RIP (whose displacement iced has already made absolute).
static ADDR_REG: [u8; 256] = {
    let mut t = [ADDR_NONE; 256];
    let mut r = R32;
    while r < R32 + 16 {
        t[r] = (r - R32) as u8 | 16;
        t[r + 16] = (r - R32) as u8;
        r += 1;
    }
    t[Register::EIP as usize] = ADDR_EIP;
    t
};
const ADDR_NONE: u8 = 0xFF;
const ADDR_EIP: u8 = 0xFE;

/// Index into `Core::gpr` of any general register.
#[inline(always)]
pub fn gpr_index(r: Register) -> usize {
    GPR_INDEX[r as usize] as usize
}

/// Index of an XMM register.
#[inline(always)]
pub fn xmm_index(r: Register) -> usize {
    (r as usize).wrapping_sub(XMM0) & 15
}

impl Core {
    /// Reads a general register of `BITS` bits (zero-extended).
    #[inline(always)]
    pub fn reg<const BITS: u32>(&self, r: Register) -> u64 {
        let n = r as usize;
        match BITS {
            64 => self.gpr[(n - R64) & 15],
            32 => self.gpr[(n - R32) & 15] as u32 as u64,
            16 => self.gpr[(n - R16) & 15] as u16 as u64,
            _ => {
                if (AH..=BH).contains(&n) {
                    (self.gpr[n - AH] >> 8) & 0xFF
                } else {
                    self.gpr[gpr_index(r)] & 0xFF
                }
            }
        }
    }

    /// Writes a general register of `BITS` bits: 32-bit writes zero the upper half, 8- and
    /// 16-bit writes keep the other bits (SDM Vol. 1 §3.4.1.1).
    #[inline(always)]
    pub fn set_reg<const BITS: u32>(&mut self, r: Register, v: u64) {
        let n = r as usize;
        match BITS {
            64 => self.gpr[(n - R64) & 15] = v,
            32 => self.gpr[(n - R32) & 15] = v as u32 as u64,
            16 => {
                let g = &mut self.gpr[(n - R16) & 15];
                *g = (*g & !0xFFFF) | (v & 0xFFFF);
            }
            _ => {
                if (AH..=BH).contains(&n) {
                    let g = &mut self.gpr[n - AH];
                    *g = (*g & !0xFF00) | ((v & 0xFF) << 8);
                } else {
                    let g = &mut self.gpr[gpr_index(r)];
                    *g = (*g & !0xFF) | (v & 0xFF);
                }
            }
        }
    }

    /// The effective (linear) address of the memory operand, FS/GS base included.
    /// RIP-relative displacements are already absolute in iced (`memory_displacement64`).
    #[inline(always)]
    pub fn ea(&self, ins: &Instruction) -> u64 {
        let a = self.offset(ins);
        match ins.segment_prefix() {
            Register::FS => a.wrapping_add(self.fs_base),
            Register::GS => a.wrapping_add(self.gs_base),
            _ => a,
        }
    }

    /// The address computation alone, without segment base (what `lea` stores).
    #[inline(always)]
    pub fn offset(&self, ins: &Instruction) -> u64 {
        let mut a = ins.memory_displacement64();
        let base = ADDR_REG[ins.memory_base() as usize];
        let index = ADDR_REG[ins.memory_index() as usize];
        if base < 32 {
            a = a.wrapping_add(self.gpr[(base & 15) as usize]);
        }
        if index < 32 {
            a = a.wrapping_add(
                self.gpr[(index & 15) as usize] << ins.memory_index_scale().trailing_zeros(),
            );
        }
        // A 32-bit base or index (0x67 prefix) or EIP-relative addressing wraps at 4 GiB.
        if (base >> 4 == 1) | (index >> 4 == 1) | (base == ADDR_EIP) {
            a &= 0xFFFF_FFFF;
        }
        a
    }

    /// Loads `BITS` bits from memory, zero-extended.
    #[inline(always)]
    pub fn load_bits<const BITS: u32>(&mut self, sys: &mut Sys, a: u64) -> Result<u64> {
        Ok(match BITS {
            64 => self.load::<u64>(sys, a)?,
            32 => self.load::<u32>(sys, a)? as u64,
            16 => self.load::<u16>(sys, a)? as u64,
            _ => self.load::<u8>(sys, a)? as u64,
        })
    }

    /// Stores the low `BITS` bits of `v`.
    #[inline(always)]
    pub fn store_bits<const BITS: u32>(&mut self, sys: &mut Sys, a: u64, v: u64) -> Result<()> {
        match BITS {
            64 => self.store::<u64>(sys, a, v),
            32 => self.store::<u32>(sys, a, v as u32),
            16 => self.store::<u16>(sys, a, v as u16),
            _ => self.store::<u8>(sys, a, v as u8),
        }
    }

    /// Reads operand `n` (register, memory or immediate) at `BITS` bits, zero-extended;
    /// immediates arrive sign-extended to the operand size as iced reports them.
    #[inline(always)]
    pub fn read_op<const BITS: u32>(
        &mut self,
        sys: &mut Sys,
        ins: &Instruction,
        n: u32,
    ) -> Result<u64> {
        match ins.op_kind(n) {
            OpKind::Register => Ok(self.reg::<BITS>(ins.op_register(n))),
            OpKind::Memory => {
                let a = self.ea(ins);
                self.load_bits::<BITS>(sys, a)
            }
            _ => Ok(ins.immediate(n) & mask(BITS)),
        }
    }

    /// Writes operand `n` (register or memory) at `BITS` bits.
    #[inline(always)]
    pub fn write_op<const BITS: u32>(
        &mut self,
        sys: &mut Sys,
        ins: &Instruction,
        n: u32,
        v: u64,
    ) -> Result<()> {
        if ins.op_kind(n) == OpKind::Register {
            self.set_reg::<BITS>(ins.op_register(n), v);
            Ok(())
        } else {
            let a = self.ea(ins);
            self.store_bits::<BITS>(sys, a, v)
        }
    }

    /// Reads an XMM register or a 128-bit memory operand (`n`).
    #[inline(always)]
    pub fn read_xmm_op(&mut self, sys: &mut Sys, ins: &Instruction, n: u32) -> Result<u128> {
        if ins.op_kind(n) == OpKind::Register {
            Ok(self.xmm[xmm_index(ins.op_register(n))])
        } else {
            let a = self.ea(ins);
            self.load::<u128>(sys, a)
        }
    }
}

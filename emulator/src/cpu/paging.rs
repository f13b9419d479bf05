//! Linear-to-physical translation: 4-level paging with 4 KiB, 2 MiB and 1 GiB pages
//! (SDM Vol. 3A §4.5), access rights (§4.6) and page-fault error codes (§4.7).
//!
//! Walks read the tables in RAM, set accessed and dirty bits as the SDM says, and are timed
//! memory accesses when the timing model runs. Simplifications: no PCID, no global-page
//! distinction in the soft TLB (every CR3 write flushes all), no SMEP/SMAP/PKE, no
//! protection keys; a table entry pointing outside RAM raises #MC.
//!
//! Linear addresses are 48-bit canonical (§3.3.7.1): `translate` raises #GP(0) for a
//! non-canonical one; accesses through SS turn that into #SS(0) with [`stack_fault`].

use super::{Core, Fault, GP, PAGE_FAULT, RSI, Stop, Sys};
use crate::cpu::flags::{CR0_WP, EFER_NXE, sext};
use crate::cpu::operand::gpr_index;
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

/// #SS, the stack-fault exception (SDM Vol. 3A §6.15, interrupt 12).
pub const STACK_FAULT: u8 = 12;

/// Whether `va` is canonical: bits 63:47 all equal (48-bit linear addresses).
#[inline(always)]
pub const fn canonical(va: u64) -> bool {
    (((va as i64) << 16) >> 16) as u64 == va
}

/// `stop`, raised by an access of `len` bytes at `va` through SS, as the SDM reports it: a
/// stack address that is not canonical (any of its bytes) raises #SS(0), not #GP(0) (SDM
/// Vol. 3A §6.15, interrupt 12, "64-bit mode"; the "64-Bit Mode Exceptions" of PUSH, POP,
/// CALL, RET, ENTER, LEAVE, IRET). Any other stop passes through. Called only on the error
/// path of stack accesses, so it costs nothing when they succeed.
#[cold]
#[inline(never)]
pub fn stack_fault(stop: Stop, va: u64, len: u64) -> Stop {
    let gp0 = Stop::Fault(Fault::with_code(GP, 0));
    let last = va.wrapping_add(len.max(1) - 1);
    if stop == gp0 && (!canonical(va) || !canonical(last)) {
        Stop::Fault(Fault::with_code(STACK_FAULT, 0))
    } else {
        stop
    }
}

/// [`stack_fault`] for an access of `len` bytes at `va` made for `ins`'s memory operand,
/// if that operand's segment is SS: RSP or RBP as base, or an SS prefix (iced's
/// `memory_segment`). Through any other segment a non-canonical address stays #GP(0).
#[cold]
#[inline(never)]
pub fn operand_fault(ins: &Instruction, stop: Stop, va: u64, len: u64) -> Stop {
    if ins.memory_segment() == Register::SS {
        stack_fault(stop, va, len)
    } else {
        stop
    }
}

impl Core {
    /// [`operand_fault`] for `stop`, raised by `ins`'s memory operand with the registers as
    /// they were when the instruction started (its address, size from iced).
    #[cold]
    #[inline(never)]
    pub fn memory_operand_fault(&self, ins: &Instruction, stop: Stop) -> Stop {
        let len = ins.memory_size().size().max(1) as u64;
        operand_fault(ins, stop, self.ea(ins), len)
    }

    /// [`stack_fault`] for `stop`, a #GP(0) that `ins` raised and that the block loop is about
    /// to report (`cpu::stopped`), whatever the instruction family: if `ins` has a memory
    /// operand that goes through SS (RSP or RBP as base, or an SS prefix) and that operand
    /// lies at a non-canonical address, the fault is #SS(0). The operand is the explicit one
    /// (for a bit-string `bt*` with a register offset, the operand the offset selects), or
    /// the SS-prefixed source `[rsi]` of a string instruction at its current element (the
    /// destination `es:[rdi]` never goes through SS). Registers are as they were when the
    /// element faulted: a faulting instruction has changed none, a REP string instruction
    /// only its completed iterations.
    #[cold]
    #[inline(never)]
    pub(crate) fn stack_operand_fault(&self, ins: &Instruction, stop: Stop) -> Stop {
        if ins.memory_segment() != Register::SS {
            return stop;
        }
        let len = ins.memory_size().size().max(1) as u64;
        for n in 0..ins.op_count() {
            match ins.op_kind(n) {
                OpKind::Memory => {
                    let mut va = self.ea(ins);
                    if matches!(
                        ins.mnemonic(),
                        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
                    ) && ins.op1_kind() == OpKind::Register
                    {
                        // Bit(BitBase, BitOffset): a signed offset in bits, in units of the
                        // operand size (SDM BT).
                        let bits = (len * 8) as u32;
                        let off = sext(self.gpr[gpr_index(ins.op1_register())], bits) as i64;
                        let units = off >> bits.trailing_zeros();
                        va = va.wrapping_add((units as u64).wrapping_mul(len));
                    }
                    return stack_fault(stop, va, len);
                }
                // 64-bit addressing; with a 0x67 prefix ESI is zero-extended, always canonical.
                OpKind::MemorySegRSI => return stack_fault(stop, self.gpr[RSI], len),
                _ => {}
            }
        }
        stop
    }
}

const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
/// Physical-address bits of an entry (MAXPHYADDR = 48, CPUID 0x8000_0008).
const ADDR: u64 = 0x0000_FFFF_FFFF_F000;
/// Bits 51:48 must be zero.
const RSVD_HIGH: u64 = 0x000F_0000_0000_0000;

/// What an access wants of a page.
#[derive(Clone, Copy)]
pub struct Access {
    pub write: bool,
    pub fetch: bool,
    /// The access is made at CPL 3 (not an implicit supervisor access such as a walk or a
    /// descriptor-table read).
    pub user: bool,
}

/// #PF error-code bits.
const PF_P: u32 = 1;
const PF_W: u32 = 1 << 1;
const PF_U: u32 = 1 << 2;
const PF_RSVD: u32 = 1 << 3;
const PF_I: u32 = 1 << 4;

/// Machine check for table entries that point at no RAM.
const MC: u8 = 18;

impl Core {
    /// Translates `va` for `acc`, walking the tables at CR3.
    pub(crate) fn translate(&mut self, sys: &mut Sys, va: u64, acc: Access) -> Result<u64, Fault> {
        // Non-canonical addresses raise #GP(0) (SDM Vol. 3A §3.3.7.1); the callers of stack
        // accesses turn it into #SS(0) (`stack_fault`).
        if !canonical(va) {
            return Err(Fault::with_code(GP, 0));
        }
        let pf = |bits: u32| {
            let code = bits
                | if acc.write { PF_W } else { 0 }
                | if acc.user { PF_U } else { 0 }
                | if acc.fetch && self.efer & EFER_NXE != 0 {
                    PF_I
                } else {
                    0
                };
            Fault::with_code(PAGE_FAULT, code)
        };
        // A bare core that was never given page tables (CR3 = 0: the machine has no RAM
        // there, so no image can point CR3 at it) sees linear = physical. The loader and
        // every image set CR3; the instruction-level tests build bare cores.
        if self.cr3 == 0 {
            // …and only RAM is mapped, as under the loader's identity map.
            return if sys.ram.node_of(va).is_some() {
                Ok(va)
            } else {
                Err(pf(0))
            };
        }
        let nxe = self.efer & EFER_NXE != 0;
        let mut table = self.cr3 & ADDR;
        let (mut writable, mut user, mut nx) = (true, true, false);
        for shift in [39u32, 30, 21, 12] {
            let at = table + ((va >> shift) & 511) * 8;
            let mut b = [0u8; 8];
            if sys.ram.read(at, &mut b).is_none() {
                return Err(Fault::new(MC));
            }
            if let Some(t) = sys.timing.as_deref_mut() {
                self.cycles += t.access(self.index, self.cycles, at, false);
            }
            let e = u64::from_le_bytes(b);
            if e & P == 0 {
                return Err(pf(0));
            }
            let leaf = shift == 12 || (e & PS != 0 && shift != 39);
            let rsvd = e & RSVD_HIGH != 0
                || (e & NX != 0 && !nxe)
                || (shift == 39 && e & PS != 0)
                || (leaf && shift == 30 && e & 0x3FFF_E000 != 0)
                || (leaf && shift == 21 && e & 0x1F_E000 != 0);
            if rsvd {
                return Err(pf(PF_P | PF_RSVD));
            }
            writable &= e & RW != 0;
            user &= e & US != 0;
            nx |= e & NX != 0;
            let mut set = A;
            if leaf {
                if acc.user && !user {
                    return Err(pf(PF_P));
                }
                if acc.write && !writable && (acc.user || self.cr0 & CR0_WP != 0) {
                    return Err(pf(PF_P));
                }
                if acc.fetch && nx && nxe {
                    return Err(pf(PF_P));
                }
                if acc.write {
                    set |= D;
                }
            }
            if e & set != set {
                let _ = sys.ram.write(at, &(e | set).to_le_bytes());
            }
            if leaf {
                let offset_mask = (1u64 << shift) - 1;
                return Ok((e & ADDR & !offset_mask) | (va & offset_mask));
            }
            table = e & ADDR;
        }
        unreachable!("the walk ends at a leaf by level 1")
    }
}

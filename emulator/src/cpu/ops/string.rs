//! String instructions (SDM Vol. 2B: MOVS, STOS, LODS, CMPS, SCAS; Vol. 2B "REP/REPE/REPZ/
//! REPNE/REPNZ") at 8/16/32/64 bits, with 64-bit addresses (RSI/RDI/RCX) and 32-bit ones
//! (0x67: ESI/EDI/ECX, zero-extended on update).
//!
//! - DF selects the direction. The source (DS:rSI) honours an FS/GS override; the
//!   destination is always ES:rDI (base 0 in 64-bit mode).
//! - REP with a zero count does nothing. Each iteration updates rSI/rDI/rCX as the SDM says,
//!   so when an access faults part-way the registers describe the iterations done and the
//!   instruction (rip restored by the block loop) resumes where it stopped.
//! - F3 on CMPS/SCAS is REPE, F2 REPNE; on MOVS/STOS/LODS either prefix is a plain REP.
//! - A long REP instruction runs in chunks (`CHUNK_BYTES` for MOVS/STOS, `CHUNK_ITERS`
//!   iterations otherwise). After a chunk with work left it points rip back at itself and
//!   ends the block, as an interrupted REP does on hardware; the block loop then counts the
//!   chunk as one retired instruction and re-executes it. This bounds the host time of one
//!   "instruction" and lets the scheduler and interrupts in between. RFLAGS.RF is set while
//!   work is left, as after an interrupted iteration.
//! - An iteration that hits a data breakpoint ends the chunk, so the #DB trap comes after
//!   that iteration (`crate::cpu::debug`); pages holding one are never copied in bulk.
//! - `rep movs`/`rep stos` with 64-bit addresses copy or fill page by page through the
//!   per-core host translation (the same soft TLB `load`/`store` use, so faults, RAM write
//!   tracking and self-modifying-code detection are unchanged); in timing mode each chunk
//!   charges the cache hierarchy for the lines it reads and writes (`Core::timed`).
//!   Overlapping operands keep the element-by-element semantics (e.g. `rep movsb` with
//!   RDI = RSI + 1 replicates the first byte).

use super::alu::sel;
use crate::cpu::flags::{DF, RF, ZF, mask, sub_flags};
use crate::cpu::{Core, Handler, RAX, RCX, RDI, RSI, Result, Sys};
use crate::memory::PAGE_SIZE;
use iced_x86::{Code, Instruction, OpKind, Register};

const MOVS: u8 = 0;
const STOS: u8 = 1;
const LODS: u8 = 2;
const CMPS: u8 = 3;
const SCAS: u8 = 4;

/// Repeat prefix, as resolved: none, REP/REPE, REPNE.
const ONCE: u8 = 0;
const REPE: u8 = 1;
const REPNE: u8 = 2;

/// Bytes one execution of `rep movs`/`rep stos` moves at most before restarting.
const CHUNK_BYTES: u64 = 64 * 1024;
/// Iterations one execution of the other REP forms does at most before restarting.
const CHUNK_ITERS: u64 = 16 * 1024;

const fn uses_si(op: u8) -> bool {
    matches!(op, MOVS | LODS | CMPS)
}

const fn uses_di(op: u8) -> bool {
    op != LODS
}

/// rSI, rDI, rCX as the instruction runs (masked to the address size), and iterations done.
struct Regs {
    si: u64,
    di: u64,
    cx: u64,
    done: u64,
}

/// Base of the source segment: FS/GS when overridden, 0 otherwise (64-bit mode).
#[inline(always)]
fn src_base(core: &Core, ins: &Instruction) -> u64 {
    match ins.segment_prefix() {
        Register::FS => core.fs_base,
        Register::GS => core.gs_base,
        _ => 0,
    }
}

/// Writes AL/AX/EAX/RAX.
#[inline(always)]
fn set_acc<const BITS: u32>(core: &mut Core, v: u64) {
    let g = &mut core.gpr[RAX];
    *g = match BITS {
        64 => v,
        32 => v & 0xFFFF_FFFF,
        _ => (*g & !mask(BITS)) | v,
    };
}

/// One iteration at the current registers.
#[inline(always)]
fn once<const OP: u8, const A32: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    st: &mut Regs,
    seg: u64,
    back: bool,
) -> Result<()> {
    let am = if A32 { 0xFFFF_FFFF } else { u64::MAX };
    let size = (BITS / 8) as u64;
    let step = if back { size.wrapping_neg() } else { size };
    match OP {
        MOVS => {
            let v = core.load_bits::<BITS>(sys, seg.wrapping_add(st.si))?;
            core.store_bits::<BITS>(sys, st.di, v)?;
        }
        STOS => {
            let v = core.gpr[RAX] & mask(BITS);
            core.store_bits::<BITS>(sys, st.di, v)?;
        }
        LODS => {
            let v = core.load_bits::<BITS>(sys, seg.wrapping_add(st.si))?;
            set_acc::<BITS>(core, v);
        }
        CMPS => {
            let a = core.load_bits::<BITS>(sys, seg.wrapping_add(st.si))?;
            let b = core.load_bits::<BITS>(sys, st.di)?;
            let r = a.wrapping_sub(b) & mask(BITS);
            core.set_status(sub_flags(a, b, r, 0, BITS));
        }
        _ => {
            let b = core.load_bits::<BITS>(sys, st.di)?;
            let a = core.gpr[RAX] & mask(BITS);
            let r = a.wrapping_sub(b) & mask(BITS);
            core.set_status(sub_flags(a, b, r, 0, BITS));
        }
    }
    if uses_si(OP) {
        st.si = st.si.wrapping_add(step) & am;
    }
    if uses_di(OP) {
        st.di = st.di.wrapping_add(step) & am;
    }
    st.done += 1;
    Ok(())
}

/// Host pointer to the start of the page holding `va`, through the soft TLB (filling it, or
/// faulting, as `load`/`store` would).
#[inline(always)]
fn host_page(core: &mut Core, sys: &mut Sys, va: u64, write: bool) -> Result<*mut u8> {
    let hit = if write {
        core.tlb.write(va)
    } else {
        core.tlb.read(va)
    };
    match hit {
        Some(h) => Ok(h),
        None if write => core.fill_write(sys, va),
        None => core.fill_read(sys, va),
    }
}

/// How many `size`-byte elements, starting at `a` and going up (or down when `back`), lie
/// entirely within `a`'s page.
#[inline(always)]
fn room(a: u64, size: u64, back: bool) -> u64 {
    let off = a & (PAGE_SIZE - 1);
    if !back {
        (PAGE_SIZE - off) / size
    } else if off + size <= PAGE_SIZE {
        off / size + 1
    } else {
        0
    }
}

/// Copies one element of `BITS` bits.
///
/// # Safety
/// `s` must be readable and `d` writable for `BITS / 8` bytes.
#[inline(always)]
unsafe fn copy_elem<const BITS: u32>(s: *const u8, d: *mut u8) {
    // SAFETY: the caller guarantees both ranges; unaligned accesses are used throughout.
    unsafe {
        match BITS {
            8 => d.write(s.read()),
            16 => (d as *mut u16).write_unaligned((s as *const u16).read_unaligned()),
            32 => (d as *mut u32).write_unaligned((s as *const u32).read_unaligned()),
            _ => (d as *mut u64).write_unaligned((s as *const u64).read_unaligned()),
        }
    }
}

/// `rep movs`/`rep stos` with 64-bit addresses: moves as many elements (at most `max`) as lie
/// within the current source and destination pages through host pointers, and updates `st`.
/// Returns the number done; 0 when the next element straddles a page (the caller then runs
/// one iteration the slow way).
#[inline(always)]
fn bulk<const OP: u8, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    st: &mut Regs,
    seg: u64,
    back: bool,
    max: u64,
) -> Result<u64> {
    let size = (BITS / 8) as u64;
    let s = seg.wrapping_add(st.si);
    let d = st.di;
    let mut n = room(d, size, back).min(st.cx).min(max);
    if OP == MOVS {
        n = n.min(room(s, size, back));
    }
    if n == 0 {
        return Ok(0);
    }
    // Translate the next element's pages (source first, as the first iteration would) before
    // touching anything; the rest of the chunk lies on the same pages.
    let sp = if OP == MOVS {
        host_page(core, sys, s, false)?
    } else {
        std::ptr::null_mut()
    };
    let dp = host_page(core, sys, d, true)?;
    if (OP == MOVS && sp.is_null()) || dp.is_null() {
        // A device window (MMIO): element by element through `load`/`store`.
        return Ok(0);
    }
    let bytes = n * size;
    let span = bytes - size;
    let (lo_s, lo_d) = if back {
        (s.wrapping_sub(span), d.wrapping_sub(span))
    } else {
        (s, d)
    };
    let page = PAGE_SIZE - 1;
    // SAFETY: `sp`/`dp` are the host addresses of the mapped 4 KiB pages holding `s`/`d`
    // (Ram::host_page via the soft TLB); `room` guarantees that [lo, lo + bytes) lies within
    // each page, so every offset below stays inside the page.
    unsafe {
        let dp = dp.add((lo_d & page) as usize);
        if OP == MOVS {
            let sp = sp.add((lo_s & page) as usize) as *const u8;
            let b = bytes as usize;
            // A sequential copy equals memmove unless the destination overlaps the part of
            // the source not yet read.
            let hazard = if back {
                (dp as *const u8) < sp && dp.add(b) as *const u8 > sp
            } else {
                (dp as *const u8) > sp && sp.add(b) > dp as *const u8
            };
            if !hazard {
                std::ptr::copy(sp, dp, b);
            } else if !back {
                for i in 0..n as usize {
                    copy_elem::<BITS>(sp.add(i * size as usize), dp.add(i * size as usize));
                }
            } else {
                for i in (0..n as usize).rev() {
                    copy_elem::<BITS>(sp.add(i * size as usize), dp.add(i * size as usize));
                }
            }
        } else {
            let v = core.gpr[RAX];
            match BITS {
                8 => std::ptr::write_bytes(dp, v as u8, bytes as usize),
                16 => (0..n as usize)
                    .for_each(|i| (dp.add(i * 2) as *mut u16).write_unaligned(v as u16)),
                32 => (0..n as usize)
                    .for_each(|i| (dp.add(i * 4) as *mut u32).write_unaligned(v as u32)),
                _ => (0..n as usize).for_each(|i| (dp.add(i * 8) as *mut u64).write_unaligned(v)),
            }
        }
    }
    if sys.timing.is_some() {
        // The bulk copy bypasses `load`/`store`; charge its cache lines the same way.
        if OP == MOVS {
            core.timed(sys, lo_s, bytes, false);
        }
        core.timed(sys, lo_d, bytes, true);
    }
    if back {
        st.si = st.si.wrapping_sub(bytes);
        st.di = st.di.wrapping_sub(bytes);
    } else {
        st.si = st.si.wrapping_add(bytes);
        st.di = st.di.wrapping_add(bytes);
    }
    st.cx -= n;
    st.done += n;
    Ok(n)
}

/// The REP loop: `Ok(true)` when the instruction is complete, `Ok(false)` when the chunk
/// budget ran out with work left.
#[inline(always)]
fn repeat<const OP: u8, const REP: u8, const A32: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    st: &mut Regs,
    seg: u64,
    back: bool,
) -> Result<bool> {
    let am = if A32 { 0xFFFF_FFFF } else { u64::MAX };
    if (OP == MOVS || OP == STOS) && !A32 {
        let mut budget = CHUNK_BYTES / (BITS / 8) as u64;
        loop {
            let mut n = bulk::<OP, BITS>(core, sys, st, seg, back, budget)?;
            if n == 0 {
                once::<OP, A32, BITS>(core, sys, st, seg, back)?;
                st.cx -= 1;
                n = 1;
            }
            if st.cx == 0 {
                return Ok(true);
            }
            if core.dbg.hits != 0 {
                // A data breakpoint: trap after this iteration (`bulk` never touches its page).
                return Ok(false);
            }
            budget = budget.saturating_sub(n);
            if budget == 0 {
                return Ok(false);
            }
        }
    }
    let mut budget = CHUNK_ITERS;
    loop {
        once::<OP, A32, BITS>(core, sys, st, seg, back)?;
        st.cx = st.cx.wrapping_sub(1) & am;
        if st.cx == 0 {
            return Ok(true);
        }
        if OP == CMPS || OP == SCAS {
            let zf = core.rflags & ZF != 0;
            if (REP == REPE && !zf) || (REP == REPNE && zf) {
                return Ok(true);
            }
        }
        if core.dbg.hits != 0 {
            // A data breakpoint: trap after this iteration.
            return Ok(false);
        }
        budget -= 1;
        if budget == 0 {
            return Ok(false);
        }
    }
}

fn string<const OP: u8, const REP: u8, const A32: bool, const BITS: u32>(
    core: &mut Core,
    sys: &mut Sys,
    ins: &Instruction,
) -> Result<()> {
    let am = if A32 { 0xFFFF_FFFF } else { u64::MAX };
    let back = core.rflags & DF != 0;
    let seg = if uses_si(OP) { src_base(core, ins) } else { 0 };
    let mut st = Regs {
        si: core.gpr[RSI] & am,
        di: core.gpr[RDI] & am,
        cx: core.gpr[RCX] & am,
        done: 0,
    };
    let r = if REP == ONCE {
        once::<OP, A32, BITS>(core, sys, &mut st, seg, back).map(|()| true)
    } else if st.cx == 0 {
        return Ok(());
    } else {
        repeat::<OP, REP, A32, BITS>(core, sys, &mut st, seg, back)
    };
    if st.done > 0 {
        // 32-bit address-size updates are 32-bit register writes (zero-extended).
        if uses_si(OP) {
            core.gpr[RSI] = st.si;
        }
        if uses_di(OP) {
            core.gpr[RDI] = st.di;
        }
        if REP != ONCE {
            core.gpr[RCX] = st.cx;
        }
    }
    if !r? {
        // Work left: run this instruction again, from a fresh block lookup. RF is set, as
        // after an interrupted iteration (SDM Vol. 3B §18.3.1.1): what comes in between (an
        // interrupt, a data-breakpoint trap) saves RF = 1, and resuming does not report the
        // instruction's breakpoint again.
        core.rip = ins.ip();
        core.rflags |= RF;
        sys.end_block = true;
    }
    Ok(())
}

fn pick<const OP: u8>(ins: &Instruction, bits: u32) -> Option<Handler> {
    let a32 = (0..ins.op_count())
        .any(|n| matches!(ins.op_kind(n), OpKind::MemorySegESI | OpKind::MemoryESEDI));
    let a16 = (0..ins.op_count())
        .any(|n| matches!(ins.op_kind(n), OpKind::MemorySegSI | OpKind::MemoryESDI));
    if a16 || ins.has_lock_prefix() {
        return None;
    }
    let rep = if ins.has_repne_prefix() {
        if matches!(OP, CMPS | SCAS) {
            REPNE
        } else {
            REPE
        }
    } else if ins.has_rep_prefix() {
        REPE
    } else {
        ONCE
    };
    Some(match (rep, a32) {
        (ONCE, false) => sel!(bits, string, OP, ONCE, false),
        (ONCE, true) => sel!(bits, string, OP, ONCE, true),
        (REPE, false) => sel!(bits, string, OP, REPE, false),
        (REPE, true) => sel!(bits, string, OP, REPE, true),
        (_, false) => sel!(bits, string, OP, REPNE, false),
        (_, true) => sel!(bits, string, OP, REPNE, true),
    })
}

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    match ins.code() {
        Code::Movsb_m8_m8 => pick::<MOVS>(ins, 8),
        Code::Movsw_m16_m16 => pick::<MOVS>(ins, 16),
        Code::Movsd_m32_m32 => pick::<MOVS>(ins, 32),
        Code::Movsq_m64_m64 => pick::<MOVS>(ins, 64),
        Code::Stosb_m8_AL => pick::<STOS>(ins, 8),
        Code::Stosw_m16_AX => pick::<STOS>(ins, 16),
        Code::Stosd_m32_EAX => pick::<STOS>(ins, 32),
        Code::Stosq_m64_RAX => pick::<STOS>(ins, 64),
        Code::Lodsb_AL_m8 => pick::<LODS>(ins, 8),
        Code::Lodsw_AX_m16 => pick::<LODS>(ins, 16),
        Code::Lodsd_EAX_m32 => pick::<LODS>(ins, 32),
        Code::Lodsq_RAX_m64 => pick::<LODS>(ins, 64),
        Code::Cmpsb_m8_m8 => pick::<CMPS>(ins, 8),
        Code::Cmpsw_m16_m16 => pick::<CMPS>(ins, 16),
        Code::Cmpsd_m32_m32 => pick::<CMPS>(ins, 32),
        Code::Cmpsq_m64_m64 => pick::<CMPS>(ins, 64),
        Code::Scasb_AL_m8 => pick::<SCAS>(ins, 8),
        Code::Scasw_AX_m16 => pick::<SCAS>(ins, 16),
        Code::Scasd_EAX_m32 => pick::<SCAS>(ins, 32),
        Code::Scasq_RAX_m64 => pick::<SCAS>(ins, 64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::alu::testing::*;
    use crate::cpu::*;

    fn fill(c: &mut Core, s: &mut Sys, at: u64, len: u64) {
        for i in 0..len {
            c.store::<u8>(s, at + i, (i * 7 + 3) as u8).unwrap();
        }
    }

    /// Runs the one instruction `code` to completion (through its restarts); the number of
    /// executions it took.
    fn run_one(c: &mut Core, s: &mut Sys, code: &[u8]) -> u64 {
        s.ram.write(CODE, code).unwrap();
        c.rip = CODE;
        let mut cache = crate::cpu::decode::CodeCache::new();
        let mut n = 0;
        while c.rip == CODE {
            let stop = run(c, s, &mut cache, 1);
            assert!(stop.is_none(), "{stop:?} cr2 {:#x}", c.cr2);
            n += 1;
        }
        assert_eq!(c.rip, CODE + code.len() as u64);
        n
    }

    fn bytes(c: &mut Core, s: &mut Sys, at: u64, len: u64) -> Vec<u8> {
        (0..len).map(|i| c.load::<u8>(s, at + i).unwrap()).collect()
    }

    /// Reference: sequential element copy on a byte vector.
    fn model_movs(mem: &mut [u8], mut si: i64, mut di: i64, n: u64, size: i64, back: bool) {
        for _ in 0..n {
            let e: Vec<u8> = mem[si as usize..(si + size) as usize].to_vec();
            mem[di as usize..(di + size) as usize].copy_from_slice(&e);
            let st = if back { -size } else { size };
            si += st;
            di += st;
        }
    }

    #[test]
    fn rep_movs_matches_sequential_model() {
        let (mut c, mut s) = machine();
        // (element size, code, src offset, dst offset, count, backwards)
        let cases: &[(i64, &[u8], i64, i64, u64)] = &[
            (1, &[0xf3, 0xa4], 0, 0x3000, 10000),
            (1, &[0xf3, 0xa4], 0x10, 0x11, 9000),
            (1, &[0xf3, 0xa4], 0x11, 0x10, 9000),
            (8, &[0xf3, 0x48, 0xa5], 0xFFC, 0x2003, 1500),
            (8, &[0xf3, 0x48, 0xa5], 0x100, 0x104, 1000),
            (4, &[0xf3, 0xa5], 0x7, 0x2FF1, 3000),
            (2, &[0xf3, 0x66, 0xa5], 0x40, 0x20, 5000),
        ];
        let region = 0x8000u64;
        for back in [false, true] {
            for &(size, code, so, dof, n) in cases {
                fill(&mut c, &mut s, DATA, region);
                let mut model = bytes(&mut c, &mut s, DATA, region);
                let (si, di) = if back {
                    (so + (n as i64 - 1) * size, dof + (n as i64 - 1) * size)
                } else {
                    (so, dof)
                };
                model_movs(&mut model, si, di, n, size, back);
                c.gpr[RSI] = DATA + si as u64;
                c.gpr[RDI] = DATA + di as u64;
                c.gpr[RCX] = n;
                c.rflags = if back { c.rflags | DF } else { c.rflags & !DF };
                run_one(&mut c, &mut s, code);
                assert_eq!(c.gpr[RCX], 0);
                let st = if back { -size } else { size };
                assert_eq!(c.gpr[RSI], DATA.wrapping_add((si + st * n as i64) as u64));
                assert_eq!(c.gpr[RDI], DATA.wrapping_add((di + st * n as i64) as u64));
                assert!(
                    bytes(&mut c, &mut s, DATA, region) == model,
                    "size {size} {so:#x}->{dof:#x} back {back}"
                );
            }
        }
    }

    #[test]
    fn rep_stos_and_restart() {
        let (mut c, mut s) = machine();
        c.gpr[RDI] = DATA + 1;
        c.gpr[RCX] = 200_000 / 8;
        c.gpr[RAX] = 0x0102_0304_0506_0708;
        // Runs in several chunks: each restart is a separate retired instruction.
        assert_eq!(run_one(&mut c, &mut s, &[0xf3, 0x48, 0xab]), 4);
        assert_eq!(c.gpr[RCX], 0);
        assert_eq!(c.gpr[RDI], DATA + 1 + 200_000);
        assert_eq!(
            c.load::<u64>(&mut s, DATA + 1 + 8 * 1234).unwrap(),
            0x0102_0304_0506_0708
        );
        // A zero count does nothing.
        exec(&mut c, &mut s, &[0xf3, 0xaa]).unwrap();
        assert_eq!(c.gpr[RDI], DATA + 1 + 200_000);
    }

    #[test]
    fn fault_midway_keeps_progress() {
        let (mut c, mut s) = machine();
        let end = BASE + 0x10_0000; // end of RAM
        c.gpr[RDI] = end - 100;
        c.gpr[RCX] = 1000;
        c.gpr[RAX] = 0xAB;
        let stop = run_code(&mut c, &mut s, &[0xf3, 0xaa], 10);
        assert!(matches!(stop, Some(Stop::Fault(f)) if f.vector == PAGE_FAULT));
        assert_eq!(c.rip, CODE);
        assert_eq!(c.gpr[RDI], end);
        assert_eq!(c.gpr[RCX], 900);
        assert_eq!(c.cr2, end);
    }

    #[test]
    fn scas_cmps_lods() {
        let (mut c, mut s) = machine();
        let text = b"hello, world\0";
        s.ram.write(DATA, text).unwrap();
        s.ram.write(DATA + 0x100, b"hello, there").unwrap();
        // repne scasb: find the NUL.
        c.gpr[RDI] = DATA;
        c.gpr[RCX] = u64::MAX;
        c.gpr[RAX] = 0;
        exec(&mut c, &mut s, &[0xf2, 0xae]).unwrap();
        assert_eq!(c.gpr[RDI], DATA + text.len() as u64);
        assert_eq!(c.gpr[RCX], u64::MAX - text.len() as u64);
        assert!(c.flag(ZF));
        // repe cmpsb: first difference at index 7.
        c.gpr[RSI] = DATA;
        c.gpr[RDI] = DATA + 0x100;
        c.gpr[RCX] = 12;
        exec(&mut c, &mut s, &[0xf3, 0xa6]).unwrap();
        assert_eq!(c.gpr[RSI], DATA + 8);
        assert_eq!(c.gpr[RCX], 4);
        assert!(!c.flag(ZF) && !c.flag(CF)); // 'w' > 't'
        // lodsd with DF=1, 32-bit address size.
        c.rflags |= DF;
        c.gpr[RSI] = 0xFFFF_FFFF_0000_0000 | DATA;
        c.gpr[RAX] = u64::MAX;
        exec(&mut c, &mut s, &[0x67, 0xad]).unwrap();
        assert_eq!(c.gpr[RAX], u32::from_le_bytes(*b"hell") as u64);
        assert_eq!(c.gpr[RSI], DATA - 4);
        // scasw without rep
        c.rflags &= !DF;
        c.gpr[RDI] = DATA;
        c.gpr[RAX] = u16::from_le_bytes(*b"he") as u64;
        exec(&mut c, &mut s, &[0x66, 0xaf]).unwrap();
        assert!(c.flag(ZF));
        assert_eq!(c.gpr[RDI], DATA + 2);
    }
}

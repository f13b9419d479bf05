//! Segment loads, stack accesses and far returns in 64-bit mode, as the Intel SDM specifies
//! them and silicon behaves: `mov`/`pop` to DS/ES/FS/GS/SS with their descriptor checks and
//! the FS/GS base taken from the descriptor (SDM Vol. 2B MOV, POP; Vol. 3A §3.4.4, §5.5–5.8),
//! `push`/`pop` FS/GS, `iretq`'s checks (SDM Vol. 2A IRET, "64-Bit Mode Exceptions"), #SS(0)
//! for non-canonical stack addresses (Vol. 3A §6.15, interrupt 12), and #GP(0) at a branch to
//! a non-canonical address, which does not complete.
//!
//! Each program loads its own GDT (below), a TSS whose IST1 every gate uses (so a fault with
//! a broken RSP is still delivered), an IDT and page tables (the first 4 GiB identity-mapped,
//! user-accessible, and the last 2 MiB below the canonical hole mapped for code at its very
//! top). Its handlers for #UD, #NP, #SS, #GP, #PF and #DF log the fault — vector, error code,
//! the saved RIP, CS, RFLAGS, RSP, SS, and RAX — and end the run with exit status
//! `0x100 + vector`; a program that does not fault exits with 0. Handlers clobber RAX, R13,
//! R14 and R15 only.

use emulator::{Machine, MachineDesc, RunConfig, RunEnd, run_image};
use iced_x86::code_asm::*;

mod common;

const BASE: u64 = 0x20_0000;
const DATA: u64 = 0x30_0000;
const LOG: u64 = DATA;
/// A page for memory operands and test stacks.
const SCRATCH: u64 = DATA + 0x1000;
const PML4: u64 = DATA + 0x2000;
const PDPT: u64 = DATA + 0x3000;
const PDPT_HI: u64 = DATA + 0x4000;
const PD_HI: u64 = DATA + 0x5000;
const GDT: u64 = DATA + 0x6000;
const TSS: u64 = DATA + 0x6800;
const IDT: u64 = DATA + 0x7000;
const IDTR: u64 = DATA + 0x8000;
const GDTR: u64 = DATA + 0x8010;
const IST_TOP: u64 = DATA + 0xA000;
const KSTACK_TOP: u64 = DATA + 0xC000;
const USTACK_TOP: u64 = DATA + 0xD000;
const DATA_LEN: u64 = 0xD000;

/// The 2 MiB page at the top of the lower canonical half, and the RAM behind it.
const HI_PAGE: u64 = 0x7FFF_FFE0_0000;
const HI_PHYS: u64 = 0x40_0000;
/// Where the high code lies: the last 4 KiB page below the canonical hole.
const HI_CODE: u64 = 0x7FFF_FFFF_F000;
/// The first non-canonical address.
const HOLE: u64 = 0x8000_0000_0000;

// The GDT. Selectors name what each test needs.
const K_CODE: u16 = 0x08;
const K_DATA: u16 = 0x10;
const U_DATA: u16 = 0x18;
const U_CODE: u16 = 0x20;
/// User data, DPL 3, base 0x1234_5678.
const U_DATA_BASE: u16 = 0x28;
/// User data, DPL 3, not present.
const U_DATA_NP: u16 = 0x30;
/// 64-bit code, execute-only (not readable).
const K_CODE_XO: u16 = 0x38;
/// 64-bit conforming readable code, DPL 0.
const K_CODE_CONF: u16 = 0x40;
/// 32-bit code (L = 0, D = 1): compatibility mode.
const K_CODE32: u16 = 0x48;
/// Code with L = 1 and D = 1 (reserved).
const K_CODE_LD: u16 = 0x50;
/// 64-bit code, not present.
const K_CODE_NP: u16 = 0x58;
/// Read-only data, DPL 0.
const K_DATA_RO: u16 = 0x60;
/// Writable data, DPL 0, base 0xFEDC_BA98.
const K_DATA_BASE: u16 = 0x68;
/// Writable data, DPL 0, not present.
const K_DATA_NP: u16 = 0x70;
/// An LDT descriptor (a system segment).
const LDT_DESC: u16 = 0x78;
const TSS_SEL: u16 = 0x80;
/// The first selector past the GDT limit.
const PAST_GDT: u16 = 0x90;

const GP: u64 = 13;
const NP: u64 = 11;
const SS: u64 = 12;
const UD: u64 = 6;

const IOPL3: u64 = 3 << 12;
const NT: u64 = 1 << 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    vector: u64,
    code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
    rax: u64,
}

struct Program {
    image: Vec<u8>,
    /// The address of the label the body set with `at` (the instruction expected to fault).
    at: Option<u64>,
}

/// Assembles `body` after a prologue that loads the GDT, the TSS, the page tables and (if
/// `idt`) the IDT, with RSP at the top of a kernel stack; `hi` is code assembled at
/// [`HI_CODE`]. The body may set `at` on the instruction it expects to fault.
fn program_with(
    idt: bool,
    body: impl FnOnce(&mut CodeAssembler, &mut CodeLabel),
    hi: &[u8],
) -> Program {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut at = a.create_label();
    a.mov(rax, GDTR).unwrap();
    a.lgdt(ptr(rax)).unwrap();
    if idt {
        a.mov(rax, IDTR).unwrap();
        a.lidt(ptr(rax)).unwrap();
    }
    a.mov(eax, TSS_SEL as u32).unwrap();
    a.ltr(ax).unwrap();
    a.mov(rax, PML4).unwrap();
    a.mov(cr3, rax).unwrap();
    a.mov(rsp, KSTACK_TOP).unwrap();
    body(&mut a, &mut at);
    a.xor(eax, eax).unwrap();
    a.out(0xF4, eax).unwrap();

    // The handlers: a stub per vector (the error code, if any, into r15), then the log.
    let mut common = a.create_label();
    let mut stubs = Vec::new();
    for (vector, code) in [
        (6u32, false),
        (8, true),
        (11, true),
        (12, true),
        (13, true),
        (14, true),
    ] {
        let mut l = a.create_label();
        a.set_label(&mut l).unwrap();
        if code {
            a.pop(r15).unwrap();
        } else {
            a.xor(r15d, r15d).unwrap();
        }
        a.mov(r14d, vector).unwrap();
        a.jmp(common).unwrap();
        stubs.push((vector, l));
    }
    a.set_label(&mut common).unwrap();
    a.mov(r13, LOG).unwrap();
    a.mov(qword_ptr(r13), r14).unwrap();
    a.mov(qword_ptr(r13 + 8), r15).unwrap();
    for i in 0..5 {
        a.mov(r15, qword_ptr(rsp + 8 * i)).unwrap();
        a.mov(qword_ptr(r13 + 16 + 8 * i), r15).unwrap();
    }
    a.mov(qword_ptr(r13 + 56), rax).unwrap();
    a.lea(eax, ptr(r14 + 0x100)).unwrap();
    a.out(0xF4, eax).unwrap();

    let r = a
        .assemble_options(
            BASE,
            iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    let handlers: Vec<(u32, u64)> = stubs
        .iter()
        .map(|(v, l)| (*v, r.label_ip(l).unwrap()))
        .collect();
    let at = r.label_ip(&at).ok();
    let mut segs = vec![(BASE, r.inner.code_buffer), (DATA, platform(&handlers))];
    if !hi.is_empty() {
        segs.push((HI_PHYS + (HI_CODE - HI_PAGE), hi.to_vec()));
    }
    Program {
        image: common::elf_segments(&segs, BASE, 0),
        at,
    }
}

fn program(body: impl FnOnce(&mut CodeAssembler, &mut CodeLabel)) -> Program {
    program_with(true, body, &[])
}

/// The data segment: GDT, TSS (IST1), IDT, IDTR/GDTR and the page tables.
fn platform(handlers: &[(u32, u64)]) -> Vec<u8> {
    let mut d = vec![0u8; DATA_LEN as usize];
    let mut put = |at: u64, v: &[u8]| {
        let o = (at - DATA) as usize;
        d[o..o + v.len()].copy_from_slice(v);
    };
    for &(v, h) in handlers {
        let mut g = [0u8; 16];
        g[0..2].copy_from_slice(&(h as u16).to_le_bytes());
        g[2..4].copy_from_slice(&K_CODE.to_le_bytes());
        g[4] = 1; // IST1
        g[5] = 0x8E; // present, DPL 0, 64-bit interrupt gate
        g[6..8].copy_from_slice(&((h >> 16) as u16).to_le_bytes());
        g[8..12].copy_from_slice(&((h >> 32) as u32).to_le_bytes());
        put(IDT + 16 * v as u64, &g);
    }
    let mut idtr = (256u16 * 16 - 1).to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    put(IDTR, &idtr);
    let tss_lo = 0x67 | (TSS & 0xFF_FFFF) << 16 | 0x89 << 40 | (TSS >> 24 & 0xFF) << 56;
    let gdt: [u64; 18] = [
        0,
        0x00AF_9A00_0000_FFFF, // K_CODE
        0x00CF_9200_0000_FFFF, // K_DATA
        0x00CF_F200_0000_FFFF, // U_DATA
        0x00AF_FA00_0000_FFFF, // U_CODE
        0x12CF_F234_5678_FFFF, // U_DATA_BASE
        0x00CF_7200_0000_FFFF, // U_DATA_NP
        0x00AF_9800_0000_FFFF, // K_CODE_XO
        0x00AF_9E00_0000_FFFF, // K_CODE_CONF
        0x00CF_9A00_0000_FFFF, // K_CODE32
        0x00EF_9A00_0000_FFFF, // K_CODE_LD
        0x00AF_1A00_0000_FFFF, // K_CODE_NP
        0x00CF_9000_0000_FFFF, // K_DATA_RO
        0xFECF_92DC_BA98_FFFF, // K_DATA_BASE
        0x00CF_1200_0000_FFFF, // K_DATA_NP
        0x0000_8200_0000_0000, // LDT_DESC
        tss_lo,
        TSS >> 32,
    ];
    for (i, e) in gdt.iter().enumerate() {
        put(GDT + 8 * i as u64, &e.to_le_bytes());
    }
    let mut gdtr = ((gdt.len() * 8 - 1) as u16).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    put(GDTR, &gdtr);
    put(TSS + 0x24, &IST_TOP.to_le_bytes());
    // Present, writable, user: the first 4 GiB with 1 GiB pages, and one 2 MiB page at
    // HI_PAGE (PML4 entry 255, PDPT entry 511, PD entry 511).
    put(PML4, &(PDPT | 0x7).to_le_bytes());
    put(PML4 + 8 * 255, &(PDPT_HI | 0x7).to_le_bytes());
    for i in 0..4u64 {
        put(PDPT + 8 * i, &((i << 30) | 0x87).to_le_bytes());
    }
    put(PDPT_HI + 8 * 511, &(PD_HI | 0x7).to_le_bytes());
    put(PD_HI + 8 * 511, &(HI_PHYS | 0x87).to_le_bytes());
    d
}

fn run(p: &Program) -> (Machine, Option<RunEnd>) {
    let desc = MachineDesc::load("1s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&p.image, true, "").unwrap();
    let end = m.run_for(u64::MAX, Some(10_000));
    (m, end)
}

fn read_u64(m: &Machine, at: u64) -> u64 {
    let mut b = [0u8; 8];
    m.sys.ram.read(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn event(m: &Machine) -> Event {
    let q = |i: u64| read_u64(m, LOG + 8 * i);
    Event {
        vector: q(0),
        code: q(1),
        rip: q(2),
        cs: q(3),
        rflags: q(4),
        rsp: q(5),
        ss: q(6),
        rax: q(7),
    }
}

/// Runs `p`, which must end without a fault.
fn runs_clean(p: &Program) -> Machine {
    let (m, end) = run(p);
    assert_eq!(end, Some(RunEnd::Exit(0)), "{:#x?}", event(&m));
    m
}

/// Runs `p`, which must fault with `vector` and error code `code` at its `at` label.
fn faults(p: &Program, vector: u64, code: u64) -> (Machine, Event) {
    let (m, end) = run(p);
    let e = event(&m);
    assert_eq!(
        end,
        Some(RunEnd::Exit(0x100 + vector as u32)),
        "expected vector {vector}, got {e:#x?}"
    );
    assert_eq!((e.vector, e.code), (vector, code), "{e:#x?}");
    if let Some(at) = p.at {
        assert_eq!(e.rip, at, "the saved RIP is the faulting instruction's");
    }
    (m, e)
}

/// Enters ring 3 at the next instruction with `iretq` (IOPL 3, so that ring 3 may `out`),
/// on the user stack.
fn to_ring3(a: &mut CodeAssembler) {
    let mut user = a.create_label();
    a.push((U_DATA | 3) as i32).unwrap();
    a.mov(rax, USTACK_TOP).unwrap();
    a.push(rax).unwrap();
    a.push((IOPL3 | 2) as i32).unwrap();
    a.push((U_CODE | 3) as i32).unwrap();
    a.lea(rax, ptr(user)).unwrap();
    a.push(rax).unwrap();
    a.iretq().unwrap();
    a.set_label(&mut user).unwrap();
}

/// `mov <sreg>, ax` with `sel` in AX, the `mov` marked as `at`.
fn mov_sreg(a: &mut CodeAssembler, at: &mut CodeLabel, sreg: AsmRegisterSegment, sel: u16) {
    a.mov(eax, sel as u32).unwrap();
    a.set_label(at).unwrap();
    a.mov(sreg, ax).unwrap();
}

// ---- MOV to DS/ES/FS/GS -------------------------------------------------------------------

#[test]
fn mov_fs_gs_load_the_descriptor_base_zero_extended() {
    let p = program(|a, _| {
        a.mov(eax, (U_DATA_BASE | 3) as u32).unwrap();
        a.mov(fs, ax).unwrap();
        a.mov(eax, K_DATA_BASE as u32).unwrap();
        a.mov(gs, ax).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!((c.fs, c.fs_base), (U_DATA_BASE | 3, 0x1234_5678));
    assert_eq!(
        (c.gs, c.gs_base),
        (K_DATA_BASE, 0xFEDC_BA98),
        "base bits 63:32 are zero, not a sign extension"
    );
}

#[test]
fn a_selector_load_replaces_an_msr_base_and_a_null_selector_zeroes_it() {
    let p = program(|a, _| {
        // GS base from the MSR, then a selector load: the descriptor's base.
        a.mov(ecx, 0xC000_0101u32).unwrap();
        a.mov(eax, 0x5555_0000u32).unwrap();
        a.mov(edx, 0x7FFFu32).unwrap();
        a.wrmsr().unwrap();
        a.mov(eax, K_DATA_BASE as u32).unwrap();
        a.mov(gs, ax).unwrap();
        // FS base from the MSR, then the null selector with RPL 3: base 0 (Intel).
        a.mov(ecx, 0xC000_0100u32).unwrap();
        a.mov(eax, 0x6666_0000u32).unwrap();
        a.wrmsr().unwrap();
        a.mov(eax, 3u32).unwrap();
        a.mov(fs, ax).unwrap();
        // DS and ES take the null selector without a fault.
        a.xor(eax, eax).unwrap();
        a.mov(ds, ax).unwrap();
        a.mov(es, ax).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!((c.gs, c.gs_base), (K_DATA_BASE, 0xFEDC_BA98));
    assert_eq!((c.fs, c.fs_base), (3, 0));
    assert_eq!((c.ds, c.es), (0, 0));
}

#[test]
fn mov_fs_from_memory_through_rbp() {
    let p = program(|a, _| {
        a.mov(rbp, SCRATCH).unwrap();
        a.mov(word_ptr(rbp + 8), (U_DATA_BASE | 3) as u32).unwrap();
        a.mov(fs, word_ptr(rbp + 8)).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!(
        (m.cores[0].fs, m.cores[0].fs_base),
        (U_DATA_BASE | 3, 0x1234_5678)
    );
}

/// A failed load leaves the register and its base as they were.
fn fs_unchanged(m: &Machine) {
    let c = &m.cores[0];
    assert_eq!((c.fs, c.fs_base), (0x10, 0), "FS as the loader left it");
}

#[test]
fn mov_fs_with_a_ti_selector_is_gp_selector() {
    // No LDT: TI = 1 is outside every table.
    let sel = 0x18 | 4 | 3;
    let p = program(|a, at| mov_sreg(a, at, fs, sel));
    let (m, _) = faults(&p, GP, 0x1C);
    fs_unchanged(&m);
}

#[test]
fn mov_gs_past_the_gdt_limit_is_gp_selector() {
    let p = program(|a, at| mov_sreg(a, at, gs, PAST_GDT | 2));
    faults(&p, GP, PAST_GDT as u64);
}

#[test]
fn mov_fs_of_a_not_present_segment_is_np_selector() {
    let p = program(|a, at| mov_sreg(a, at, fs, U_DATA_NP | 3));
    let (m, _) = faults(&p, NP, U_DATA_NP as u64);
    fs_unchanged(&m);
}

#[test]
fn mov_ds_of_execute_only_code_or_a_system_segment_is_gp_selector() {
    let p = program(|a, at| mov_sreg(a, at, ds, K_CODE_XO));
    faults(&p, GP, K_CODE_XO as u64);
    let p = program(|a, at| mov_sreg(a, at, es, LDT_DESC));
    faults(&p, GP, LDT_DESC as u64);
    let p = program(|a, at| mov_sreg(a, at, gs, TSS_SEL));
    faults(&p, GP, TSS_SEL as u64);
}

#[test]
fn mov_ds_of_readable_code_is_allowed() {
    let p = program(|a, _| {
        a.mov(eax, K_CODE as u32).unwrap();
        a.mov(ds, ax).unwrap();
    });
    assert_eq!(runs_clean(&p).cores[0].ds, K_CODE);
}

#[test]
fn mov_es_with_rpl_above_dpl_is_gp_selector() {
    // CPL 0, RPL 3, DPL 0: max(CPL, RPL) > DPL.
    let p = program(|a, at| mov_sreg(a, at, es, K_DATA | 3));
    faults(&p, GP, K_DATA as u64);
}

#[test]
fn ring3_mov_ds_of_a_dpl0_segment_is_gp_but_conforming_code_is_allowed() {
    let p = program(|a, at| {
        to_ring3(a);
        mov_sreg(a, at, ds, K_DATA | 3);
    });
    let (_, e) = faults(&p, GP, K_DATA as u64);
    assert_eq!(e.cs, (U_CODE | 3) as u64, "raised in ring 3");
    let p = program(|a, _| {
        to_ring3(a);
        a.mov(eax, (K_CODE_CONF | 3) as u32).unwrap();
        a.mov(ds, ax).unwrap();
        a.mov(eax, (U_DATA_BASE | 3) as u32).unwrap();
        a.mov(gs, ax).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!(c.cs, U_CODE | 3);
    assert_eq!(c.ds, K_CODE_CONF | 3);
    assert_eq!((c.gs, c.gs_base), (U_DATA_BASE | 3, 0x1234_5678));
}

// ---- MOV SS ---------------------------------------------------------------------------------

#[test]
fn mov_ss_checks_rpl_type_dpl_and_presence() {
    // RPL ≠ CPL.
    let p = program(|a, at| mov_sreg(a, at, ss, K_DATA | 3));
    faults(&p, GP, K_DATA as u64);
    // Read-only data.
    let p = program(|a, at| mov_sreg(a, at, ss, K_DATA_RO));
    faults(&p, GP, K_DATA_RO as u64);
    // Code.
    let p = program(|a, at| mov_sreg(a, at, ss, K_CODE));
    faults(&p, GP, K_CODE as u64);
    // DPL 3 ≠ CPL 0 (RPL 0).
    let p = program(|a, at| mov_sreg(a, at, ss, U_DATA));
    faults(&p, GP, U_DATA as u64);
    // Not present: #SS(selector), not #NP.
    let p = program(|a, at| mov_sreg(a, at, ss, K_DATA_NP));
    faults(&p, SS, K_DATA_NP as u64);
    // Past the limit.
    let p = program(|a, at| mov_sreg(a, at, ss, PAST_GDT));
    faults(&p, GP, PAST_GDT as u64);
    // A writable DPL-0 data segment loads.
    let p = program(|a, _| {
        a.mov(eax, K_DATA_BASE as u32).unwrap();
        a.mov(ss, ax).unwrap();
    });
    assert_eq!(runs_clean(&p).cores[0].ss, K_DATA_BASE);
}

#[test]
fn a_null_ss_is_allowed_only_below_ring3_with_rpl_equal_to_cpl() {
    let p = program(|a, _| {
        a.xor(eax, eax).unwrap();
        a.mov(ss, ax).unwrap();
    });
    assert_eq!(runs_clean(&p).cores[0].ss, 0);
    let p = program(|a, at| mov_sreg(a, at, ss, 1));
    faults(&p, GP, 0);
    let p = program(|a, at| {
        to_ring3(a);
        mov_sreg(a, at, ss, 3);
    });
    faults(&p, GP, 0);
}

// ---- PUSH/POP FS/GS -------------------------------------------------------------------------

#[test]
fn push_fs_gs_push_the_zero_extended_selector() {
    let p = program(|a, _| {
        a.mov(rsp, SCRATCH + 0x100).unwrap();
        a.mov(rax, -1i64).unwrap();
        for i in 1..=4 {
            a.mov(qword_ptr(rsp - 8 * i), rax).unwrap();
        }
        a.mov(eax, (U_DATA_BASE | 3) as u32).unwrap();
        a.mov(fs, ax).unwrap();
        a.mov(eax, K_DATA_BASE as u32).unwrap();
        a.mov(gs, ax).unwrap();
        a.mov(esi, 0x5151u32).unwrap();
        a.mov(edi, 0x7171u32).unwrap();
        a.db(&[0x0F, 0xA0]).unwrap(); // push fs
        a.db(&[0x0F, 0xA8]).unwrap(); // push gs
        a.db(&[0x66, 0x0F, 0xA0]).unwrap(); // push fs, 16-bit
        a.mov(rbx, rsp).unwrap();
    });
    let m = runs_clean(&p);
    let top = SCRATCH + 0x100;
    assert_eq!(m.cores[0].gpr[3], top - 18, "8 + 8 + 2 bytes pushed");
    assert_eq!(read_u64(&m, top - 8), (U_DATA_BASE | 3) as u64);
    assert_eq!(read_u64(&m, top - 16), K_DATA_BASE as u64);
    assert_eq!(
        read_u64(&m, top - 24),
        0x002B_FFFF_FFFF_FFFF,
        "the 16-bit push writes the selector's 2 bytes, nothing below"
    );
    assert_eq!(
        (m.cores[0].gpr[6], m.cores[0].gpr[7]),
        (0x5151, 0x7171),
        "SI and DI are not involved"
    );
}

#[test]
fn pop_fs_gs_load_the_segment_and_its_base() {
    let p = program(|a, _| {
        a.mov(rsp, SCRATCH + 0x100).unwrap();
        a.mov(esi, 0x5151u32).unwrap();
        a.mov(rax, 0xFFFF_0000_0000_0000u64 | (U_DATA_BASE | 3) as u64)
            .unwrap();
        a.push(rax).unwrap();
        a.db(&[0x0F, 0xA1]).unwrap(); // pop fs: the low 16 bits of 8
        a.db(&[0x66, 0x6A, K_DATA_BASE as u8]).unwrap(); // push word
        a.db(&[0x66, 0x0F, 0xA9]).unwrap(); // pop gs, 16-bit
        a.mov(rbx, rsp).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!(c.gpr[3], SCRATCH + 0x100, "8 and 2 bytes popped");
    assert_eq!((c.fs, c.fs_base), (U_DATA_BASE | 3, 0x1234_5678));
    assert_eq!((c.gs, c.gs_base), (K_DATA_BASE, 0xFEDC_BA98));
    assert_eq!(c.gpr[6], 0x5151, "SI untouched");
}

#[test]
fn pop_gs_of_a_bad_selector_faults_and_leaves_rsp() {
    let p = program(|a, at| {
        a.mov(rsp, SCRATCH + 0x100).unwrap();
        a.push(PAST_GDT as i32).unwrap();
        a.set_label(at).unwrap();
        a.db(&[0x0F, 0xA9]).unwrap(); // pop gs
    });
    let (m, e) = faults(&p, GP, PAST_GDT as u64);
    assert_eq!(e.rsp, SCRATCH + 0x100 - 8, "RSP as before the pop");
    assert_eq!((m.cores[0].gs, m.cores[0].gs_base), (0x10, 0));
    let p = program(|a, at| {
        a.mov(rsp, SCRATCH + 0x100).unwrap();
        a.push((U_DATA_NP | 3) as i32).unwrap();
        a.set_label(at).unwrap();
        a.db(&[0x0F, 0xA1]).unwrap(); // pop fs
    });
    faults(&p, NP, U_DATA_NP as u64);
}

#[test]
fn push_pop_of_cs_ds_es_ss_are_invalid_in_64_bit_mode() {
    for bytes in [[0x0E], [0x1E], [0x06], [0x16], [0x1F], [0x07], [0x17]] {
        let p = program(|a, at| {
            a.set_label(at).unwrap();
            a.db(&bytes).unwrap();
        });
        faults(&p, UD, 0);
    }
}

// ---- IRETQ ----------------------------------------------------------------------------------

/// Pushes an IRETQ frame (SS = `stack`, RSP = the current RSP, RFLAGS = 2, CS = `code`,
/// RIP = `target`) and
/// marks the `iretq` as `at`.
fn iretq_to(a: &mut CodeAssembler, at: &mut CodeLabel, code: u16, stack: u16, target: &CodeLabel) {
    a.mov(rax, rsp).unwrap();
    a.push(stack as i32).unwrap();
    a.push(rax).unwrap();
    a.push(2).unwrap();
    a.push(code as i32).unwrap();
    a.lea(rax, ptr(*target)).unwrap();
    a.push(rax).unwrap();
    a.set_label(at).unwrap();
    a.iretq().unwrap();
}

/// A program whose body is one `iretq` to (`code`, `stack`) at the instruction after it.
fn iretq_program(code: u16, stack: u16) -> Program {
    program(|a, at| {
        let mut next = a.create_label();
        iretq_to(a, at, code, stack, &next);
        a.set_label(&mut next).unwrap();
        a.nop().unwrap();
    })
}

#[test]
fn iretq_with_nt_set_is_gp0() {
    let p = program(|a, at| {
        let mut next = a.create_label();
        a.pushfq().unwrap();
        a.or(qword_ptr(rsp), NT as i32).unwrap();
        a.popfq().unwrap();
        iretq_to(a, at, K_CODE, K_DATA, &next);
        a.set_label(&mut next).unwrap();
    });
    let (_, e) = faults(&p, GP, 0);
    assert_ne!(e.rflags & NT, 0);
}

#[test]
fn iretq_checks_the_code_segment() {
    // Null.
    faults(&iretq_program(0, K_DATA), GP, 0);
    // Outside the GDT; TI = 1.
    faults(&iretq_program(PAST_GDT, K_DATA), GP, PAST_GDT as u64);
    faults(&iretq_program(K_CODE | 4, K_DATA), GP, (K_CODE | 4) as u64);
    // Data, not code.
    faults(&iretq_program(K_DATA, K_DATA), GP, K_DATA as u64);
    // Nonconforming code with DPL 0 ≠ RPL 3.
    faults(&iretq_program(K_CODE | 3, U_DATA | 3), GP, K_CODE as u64);
    // L = D = 1.
    faults(&iretq_program(K_CODE_LD, K_DATA), GP, K_CODE_LD as u64);
    // Not present.
    faults(&iretq_program(K_CODE_NP, K_DATA), NP, K_CODE_NP as u64);
}

#[test]
fn iretq_from_ring3_to_ring0_is_gp_cs() {
    let p = program(|a, at| {
        let mut next = a.create_label();
        to_ring3(a);
        iretq_to(a, at, K_CODE, K_DATA, &next);
        a.set_label(&mut next).unwrap();
    });
    let (_, e) = faults(&p, GP, K_CODE as u64);
    assert_eq!(e.cs, (U_CODE | 3) as u64);
}

#[test]
fn iretq_checks_ss_against_the_new_cpl() {
    // Ring 3: a null SS is never allowed.
    faults(&iretq_program(U_CODE | 3, 3), GP, 0);
    // SS.RPL ≠ CS.RPL.
    faults(&iretq_program(U_CODE | 3, U_DATA), GP, U_DATA as u64);
    // DPL 0 ≠ 3.
    faults(&iretq_program(U_CODE | 3, K_DATA | 3), GP, K_DATA as u64);
    // Same level: read-only data, not present, null with RPL ≠ CPL.
    faults(&iretq_program(K_CODE, K_DATA_RO), GP, K_DATA_RO as u64);
    faults(&iretq_program(K_CODE, K_DATA_NP), NP, K_DATA_NP as u64);
    faults(&iretq_program(K_CODE, 1), GP, 0);
    // A null SS with RPL 0 returning to ring 0 is allowed (the SS an interrupt from ring 3
    // leaves).
    let m = runs_clean(&iretq_program(K_CODE, 0));
    assert_eq!((m.cores[0].cs, m.cores[0].ss), (K_CODE, 0));
}

#[test]
fn iretq_to_a_non_canonical_rip_is_gp0() {
    let p = program(|a, at| {
        a.mov(rax, rsp).unwrap();
        a.push(K_DATA as i32).unwrap();
        a.push(rax).unwrap();
        a.push(2).unwrap();
        a.push(K_CODE as i32).unwrap();
        a.mov(rax, HOLE).unwrap();
        a.push(rax).unwrap();
        a.set_label(at).unwrap();
        a.iretq().unwrap();
    });
    let (_, e) = faults(&p, GP, 0);
    assert_eq!(e.rsp, KSTACK_TOP - 40, "nothing was popped");
}

#[test]
fn iretq_to_conforming_code_and_to_ring3_nulls_inaccessible_data_segments() {
    // Conforming code with DPL 0 may be returned to at RPL 3; DS/ES (DPL 0) become null, FS
    // (DPL 3) stays, GS (DPL 0) becomes null but keeps its base.
    let p = program(|a, _| {
        a.mov(eax, (U_DATA_BASE | 3) as u32).unwrap();
        a.mov(fs, ax).unwrap();
        a.mov(eax, K_DATA_BASE as u32).unwrap();
        a.mov(gs, ax).unwrap();
        let mut user = a.create_label();
        let mut iret = a.create_label();
        a.mov(rax, USTACK_TOP).unwrap();
        a.push((U_DATA | 3) as i32).unwrap();
        a.push(rax).unwrap();
        a.push((IOPL3 | 2) as i32).unwrap();
        a.push((K_CODE_CONF | 3) as i32).unwrap();
        a.lea(rax, ptr(user)).unwrap();
        a.push(rax).unwrap();
        a.set_label(&mut iret).unwrap();
        a.iretq().unwrap();
        a.set_label(&mut user).unwrap();
        a.mov(rbx, rsp).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!((c.cs, c.ss), (K_CODE_CONF | 3, U_DATA | 3));
    assert_eq!(c.gpr[3], USTACK_TOP);
    assert_eq!((c.ds, c.es), (0, 0), "DPL-0 data segments are nulled");
    assert_eq!((c.fs, c.fs_base), (U_DATA_BASE | 3, 0x1234_5678));
    assert_eq!((c.gs, c.gs_base), (0, 0xFEDC_BA98));
}

#[test]
fn iretq_to_32_bit_code_is_not_implemented() {
    // Compatibility mode is not modelled: never run 32-bit code as 64-bit code. Without an
    // IDT the run ends with status 127 and a report; with one, the image's #UD handler runs.
    let p = program_with(
        false,
        |a, at| {
            let mut next = a.create_label();
            iretq_to(a, at, K_CODE32, K_DATA, &next);
            a.set_label(&mut next).unwrap();
        },
        &[],
    );
    let cfg = RunConfig {
        bsp_only: true,
        ..Default::default()
    };
    let o = run_image(&p.image, &cfg).unwrap();
    let RunEnd::Fault {
        vector,
        rip,
        report,
    } = &o.end
    else {
        panic!("{:?}", o.end)
    };
    assert_eq!((*vector, *rip), (6, p.at.unwrap()));
    assert!(report.contains("not implemented"), "{report}");
    assert_eq!(o.end.exit_status(), 127);
    let (m, _) = faults(&iretq_program(K_CODE32, K_DATA), UD, 0);
    assert_eq!(m.cores[0].cs, K_CODE, "CS is unchanged");
}

#[test]
fn sysret_to_32_bit_code_is_not_implemented() {
    let p = program_with(
        false,
        |a, at| {
            a.set_label(at).unwrap();
            a.db(&[0x0F, 0x07]).unwrap(); // sysret (no REX.W)
        },
        &[],
    );
    let cfg = RunConfig {
        bsp_only: true,
        ..Default::default()
    };
    let o = run_image(&p.image, &cfg).unwrap();
    assert_eq!(o.end.exit_status(), 127, "{:?}", o.end);
}

// ---- #SS(0) for non-canonical stack addresses -----------------------------------------------

/// Emits one instruction.
type Emit = fn(&mut CodeAssembler);

/// A program that sets `reg` to `value`, then runs `op` (marked `at`).
fn with_reg(reg: AsmRegister64, value: u64, op: impl FnOnce(&mut CodeAssembler)) -> Program {
    program(|a, at| {
        a.mov(reg, value).unwrap();
        a.set_label(at).unwrap();
        op(a);
    })
}

#[test]
fn implicit_stack_accesses_through_a_non_canonical_rsp_are_ss0() {
    let ops: [(&str, Emit); 9] = [
        ("push", |a| a.push(rax).unwrap()),
        ("pop", |a| a.pop(rax).unwrap()),
        ("pushfq", |a| a.pushfq().unwrap()),
        ("push imm", |a| a.push(1).unwrap()),
        ("push fs", |a| a.db(&[0x0F, 0xA0]).unwrap()),
        ("pop gs", |a| a.db(&[0x0F, 0xA9]).unwrap()),
        ("ret", |a| a.ret().unwrap()),
        ("enter", |a| a.enter(16u32, 0u32).unwrap()),
        ("iretq", |a| a.iretq().unwrap()),
    ];
    for (name, op) in ops {
        let (_, e) = faults(&with_reg(rsp, HOLE + 0x1000, op), SS, 0);
        assert_eq!(e.rsp, HOLE + 0x1000, "{name}: RSP unchanged");
    }
    // A call pushes its return address: #SS(0) at the call.
    let p = program(|a, at| {
        let mut f = a.create_label();
        a.mov(rsp, HOLE + 0x1000).unwrap();
        a.set_label(at).unwrap();
        a.call(f).unwrap();
        a.set_label(&mut f).unwrap();
    });
    faults(&p, SS, 0);
}

#[test]
fn leave_through_a_non_canonical_rbp_is_ss0() {
    faults(
        &with_reg(rbp, 0xFFFF_0000_0000_0000, |a| a.leave().unwrap()),
        SS,
        0,
    );
}

#[test]
fn a_push_that_straddles_the_canonical_boundary_is_ss0() {
    // The first half lies on the mapped page below the hole, the second is not canonical.
    faults(&with_reg(rsp, HOLE + 4, |a| a.push(rax).unwrap()), SS, 0);
}

#[test]
fn memory_operands_are_ss0_through_rsp_or_rbp_and_gp0_otherwise() {
    let p = with_reg(rbp, HOLE, |a| a.push(qword_ptr(rbp + 8)).unwrap());
    faults(&p, SS, 0);
    let p = with_reg(rbx, HOLE, |a| a.push(qword_ptr(rbx + 8)).unwrap());
    faults(&p, GP, 0);
    let p = with_reg(rbp, HOLE, |a| a.mov(fs, word_ptr(rbp)).unwrap());
    faults(&p, SS, 0);
    let p = with_reg(rbp, HOLE, |a| a.jmp(qword_ptr(rbp)).unwrap());
    faults(&p, SS, 0);
    let p = with_reg(rax, HOLE, |a| a.call(qword_ptr(rax)).unwrap());
    faults(&p, GP, 0);
}

// ---- Branches to non-canonical addresses ----------------------------------------------------

#[test]
fn indirect_branches_to_non_canonical_targets_fault_at_the_branch() {
    let ops: [(&str, Emit); 4] = [
        ("jmp reg", |a| a.jmp(rbx).unwrap()),
        ("call reg", |a| a.call(rbx).unwrap()),
        ("jmp mem", |a| a.jmp(qword_ptr(rax)).unwrap()),
        ("call mem", |a| a.call(qword_ptr(rax)).unwrap()),
    ];
    for (name, op) in ops {
        let p = program(|a, at| {
            a.mov(rbx, HOLE).unwrap();
            a.mov(rax, SCRATCH).unwrap();
            a.mov(qword_ptr(rax), rbx).unwrap();
            a.set_label(at).unwrap();
            op(a);
        });
        let (_, e) = faults(&p, GP, 0);
        assert_eq!(e.rsp, KSTACK_TOP, "{name}: nothing pushed");
    }
}

#[test]
fn returns_to_non_canonical_addresses_fault_at_the_ret_and_leave_rsp() {
    let ops: [Emit; 2] = [|a| a.ret().unwrap(), |a| a.ret_1(16).unwrap()];
    for op in ops {
        let p = program(|a, at| {
            a.mov(rax, 0xFFFF_7FFF_FFFF_FFF0u64).unwrap();
            a.push(rax).unwrap();
            a.set_label(at).unwrap();
            op(a);
        });
        let (_, e) = faults(&p, GP, 0);
        assert_eq!(e.rsp, KSTACK_TOP - 8, "the return address was not popped");
    }
}

/// Runs `hi` placed at `HI_CODE + offset` (jumped to from the low code), with RCX = `count`
/// and ZF = `zf`. Returns the program and the address of `hi`.
fn at_the_top(offset: u64, hi: &[u8], count: u64, zf: bool) -> (Program, u64) {
    let mut code = vec![0xCC; offset as usize];
    code.extend_from_slice(hi);
    let entry = HI_CODE + offset;
    let p = program_with(
        true,
        |a, _| {
            a.mov(rdx, entry).unwrap();
            a.mov(rcx, count).unwrap();
            if zf {
                a.cmp(eax, eax).unwrap();
            } else {
                a.test(rsp, rsp).unwrap();
            }
            a.jmp(rdx).unwrap();
        },
        &code,
    );
    (p, entry)
}

/// `mov eax, 0; out 0xF4, eax`: the program ends without a fault.
const EXIT0: [u8; 7] = [0xB8, 0, 0, 0, 0, 0xE7, 0xF4];

#[test]
fn relative_branches_across_the_canonical_hole_fault_at_the_branch() {
    // Each branch lies at the end of the last page below the hole; its target is past it.
    let cases: [(&str, Vec<u8>, u64, bool); 5] = [
        ("jmp rel32", vec![0xE9, 0, 1, 0, 0], 0, false),
        ("call rel32", vec![0xE8, 0, 1, 0, 0], 0, false),
        ("jz rel32, taken", vec![0x0F, 0x84, 0, 1, 0, 0], 0, true),
        ("loop rel8, taken", vec![0xE2, 0x7F], 5, false),
        ("jrcxz rel8, taken", vec![0xE3, 0x7F], 0, false),
    ];
    for (name, bytes, count, zf) in cases {
        let offset = 0x1000 - 0x10;
        let (p, entry) = at_the_top(offset, &bytes, count, zf);
        let (m, end) = run(&p);
        let e = event(&m);
        assert_eq!(
            end,
            Some(RunEnd::Exit(0x100 + GP as u32)),
            "{name}: {e:#x?}"
        );
        assert_eq!((e.vector, e.code, e.rip), (GP, 0, entry), "{name}");
        assert_eq!(e.rsp, KSTACK_TOP, "{name}: nothing pushed");
        assert_eq!(m.cores[0].gpr[1], count, "{name}: RCX as before");
    }
}

#[test]
fn relative_branches_to_non_canonical_targets_that_are_not_taken_fall_through() {
    let cases: [(&str, &[u8], u64, bool, u64); 3] = [
        (
            "jz rel32, not taken",
            &[0x0F, 0x84, 0, 1, 0, 0],
            0,
            false,
            0,
        ),
        ("loop rel8, last count", &[0xE2, 0x7F], 1, false, 0),
        ("jrcxz rel8, not taken", &[0xE3, 0x7F], 9, false, 9),
    ];
    for (name, bytes, count, zf, count_after) in cases {
        let mut hi = bytes.to_vec();
        hi.extend_from_slice(&EXIT0);
        let (p, _) = at_the_top(0x1000 - 0x20, &hi, count, zf);
        let (m, end) = run(&p);
        assert_eq!(end, Some(RunEnd::Exit(0)), "{name}: {:#x?}", event(&m));
        assert_eq!(m.cores[0].gpr[1], count_after, "{name}");
    }
}

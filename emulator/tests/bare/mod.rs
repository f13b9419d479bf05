//! A bare-metal harness for the system-level tests of `control_registers.rs` and
//! `delivery.rs`: a program assembled with iced's `CodeAssembler` after a prologue that loads
//! its own GDT, TSS, IDT and page tables, with handlers that log an exception and end the run.
//!
//! The handlers (vectors 0–31, 0x40, 0x41) log the vector, the error code (0 if none), the
//! frame (RIP, CS, RFLAGS, RSP, SS), RAX and CR2 at [`LOG`], then end the run with exit status
//! `0x100 + vector`; a program that reaches its end exits with 0. Vectors 0–31 use IST1 and
//! DPL 0; 0x40 and 0x41 use the current stack (IST 0) and DPL 3, so that `int 0x40` works from
//! ring 3 and shows the stack the SDM picks. Handlers clobber RAX, R13, R14 and R15 only.
//!
//! Paging: the first GiB through 2 MiB pages, present, writable and user, identity-mapped,
//! except the first 2 MiB (linear 0 maps physical [`LOW_PHYS`]; RAM starts at 1 MiB) and
//! [`RO_PAGE`], read-only; the next three GiB with 1 GiB pages.
#![allow(dead_code)] // each test binary uses its own subset

use emulator::{Machine, MachineDesc, RunEnd};
use iced_x86::code_asm::*;

pub const BASE: u64 = 0x20_0000;
pub const DATA: u64 = 0x30_0000;
pub const LOG: u64 = DATA;
/// A page for memory operands and test values.
pub const SCRATCH: u64 = DATA + 0x1000;
pub const PML4: u64 = DATA + 0x2000;
pub const PDPT: u64 = DATA + 0x3000;
pub const PD0: u64 = DATA + 0x4000;
pub const GDT: u64 = DATA + 0x6000;
pub const TSS: u64 = DATA + 0x6800;
pub const IDT: u64 = DATA + 0x7000;
pub const IDTR: u64 = DATA + 0x8000;
pub const GDTR: u64 = DATA + 0x8010;
pub const IST_TOP: u64 = DATA + 0xA000;
pub const KSTACK_TOP: u64 = DATA + 0xC000;
pub const USTACK_TOP: u64 = DATA + 0xD000;
const DATA_LEN: u64 = 0xD000;

/// Where linear 0..2 MiB lands.
pub const LOW_PHYS: u64 = 0x40_0000;
/// A read-only 2 MiB page (user), identity-mapped.
pub const RO_PAGE: u64 = 0x80_0000;

// The GDT.
pub const K_CODE: u16 = 0x08;
pub const K_DATA: u16 = 0x10;
pub const U_DATA: u16 = 0x18;
/// 64-bit code, DPL 3.
pub const U_CODE: u16 = 0x20;
/// 32-bit code (L = 0, D = 1), DPL 0.
pub const K_CODE32: u16 = 0x28;
/// Code with L = 1 and D = 1 (reserved), DPL 0.
pub const K_CODE_LD: u16 = 0x30;
/// 64-bit code, DPL 0, not present.
pub const K_CODE_NP: u16 = 0x38;
/// 64-bit conforming code, DPL 0.
pub const K_CODE_CONF: u16 = 0x40;
/// 16-bit code (L = 0, D = 0), DPL 0.
pub const K_CODE16: u16 = 0x48;
pub const TSS_SEL: u16 = 0x50;
/// The first selector past the GDT limit.
pub const PAST_GDT: u16 = 0x60;

pub const UD: u64 = 6;
pub const NP: u64 = 11;
pub const SS: u64 = 12;
pub const GP: u64 = 13;
pub const PF: u64 = 14;
pub const AC: u64 = 17;

pub const IOPL3: u64 = 3 << 12;
pub const RFLAGS_AC: u64 = 1 << 18;
/// A non-canonical address (the first one above the lower half).
pub const HOLE: u64 = 0x8000_0000_0000;

/// Vectors with a logging handler.
const VECTORS: [u32; 34] = {
    let mut v = [0u32; 34];
    let mut i = 0;
    while i < 32 {
        v[i] = i as u32;
        i += 1;
    }
    v[32] = 0x40;
    v[33] = 0x41;
    v
};

/// Whether an exception pushes an error code (SDM Vol. 3A Table 6-1).
fn has_error_code(v: u32) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub vector: u64,
    pub code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub rax: u64,
    pub cr2: u64,
}

pub struct Program {
    pub image: Vec<u8>,
    /// The address of the label the body set with `at` (the instruction expected to fault).
    pub at: Option<u64>,
}

/// Assembles `body` after a prologue that loads the GDT, the TSS, the IDT (if `idt`) and the
/// page tables, with RSP at the top of a kernel stack. The body may set `at` on the
/// instruction it expects to fault.
pub fn program_with(idt: bool, body: impl FnOnce(&mut CodeAssembler, &mut CodeLabel)) -> Program {
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

    let mut common = a.create_label();
    let mut stubs = Vec::new();
    for v in VECTORS {
        let mut l = a.create_label();
        a.set_label(&mut l).unwrap();
        if has_error_code(v) {
            a.pop(r15).unwrap();
        } else {
            a.xor(r15d, r15d).unwrap();
        }
        a.mov(r14d, v).unwrap();
        a.jmp(common).unwrap();
        stubs.push((v, l));
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
    a.mov(rax, cr2).unwrap();
    a.mov(qword_ptr(r13 + 64), rax).unwrap();
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
    let segs = vec![(BASE, r.inner.code_buffer), (DATA, platform(&handlers))];
    Program {
        image: super::common::elf_segments(&segs, BASE, 0),
        at,
    }
}

pub fn program(body: impl FnOnce(&mut CodeAssembler, &mut CodeLabel)) -> Program {
    program_with(true, body)
}

/// A 64-bit interrupt gate to `handler` through `selector`.
pub fn gate(handler: u64, selector: u16, ist: u8, dpl: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    g[2..4].copy_from_slice(&selector.to_le_bytes());
    g[4] = ist;
    g[5] = 0x8E | (dpl << 5); // present, 64-bit interrupt gate
    g[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    g
}

/// The data segment: GDT, TSS (RSP0, IST1), IDT, IDTR/GDTR and the page tables.
fn platform(handlers: &[(u32, u64)]) -> Vec<u8> {
    let mut d = vec![0u8; DATA_LEN as usize];
    let mut put = |at: u64, v: &[u8]| {
        let o = (at - DATA) as usize;
        d[o..o + v.len()].copy_from_slice(v);
    };
    for &(v, h) in handlers {
        let (ist, dpl) = if v < 32 { (1, 0) } else { (0, 3) };
        put(IDT + 16 * v as u64, &gate(h, K_CODE, ist, dpl));
    }
    let mut idtr = (256u16 * 16 - 1).to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    put(IDTR, &idtr);
    let tss_lo = 0x67 | (TSS & 0xFF_FFFF) << 16 | 0x89 << 40 | (TSS >> 24 & 0xFF) << 56;
    let gdt: [u64; 12] = [
        0,
        0x00AF_9A00_0000_FFFF, // K_CODE
        0x00CF_9200_0000_FFFF, // K_DATA
        0x00CF_F200_0000_FFFF, // U_DATA
        0x00AF_FA00_0000_FFFF, // U_CODE
        0x00CF_9A00_0000_FFFF, // K_CODE32
        0x00EF_9A00_0000_FFFF, // K_CODE_LD
        0x00AF_1A00_0000_FFFF, // K_CODE_NP
        0x00AF_9E00_0000_FFFF, // K_CODE_CONF
        0x008F_9A00_0000_FFFF, // K_CODE16
        tss_lo,
        TSS >> 32,
    ];
    for (i, e) in gdt.iter().enumerate() {
        put(GDT + 8 * i as u64, &e.to_le_bytes());
    }
    let mut gdtr = ((gdt.len() * 8 - 1) as u16).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    put(GDTR, &gdtr);
    put(TSS + 4, &KSTACK_TOP.to_le_bytes()); // RSP0
    put(TSS + 0x24, &IST_TOP.to_le_bytes()); // IST1
    put(PML4, &(PDPT | 0x7).to_le_bytes());
    put(PDPT, &(PD0 | 0x7).to_le_bytes());
    for i in 1..4u64 {
        put(PDPT + 8 * i, &((i << 30) | 0x87).to_le_bytes());
    }
    for i in 0..512u64 {
        let e = match i << 21 {
            0 => LOW_PHYS | 0x87,
            RO_PAGE => RO_PAGE | 0x85,
            a => a | 0x87,
        };
        put(PD0 + 8 * i, &e.to_le_bytes());
    }
    d
}

pub fn run(p: &Program) -> (Machine, Option<RunEnd>) {
    let desc = MachineDesc::load("1s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&p.image, true, "").unwrap();
    let end = m.run_for(u64::MAX, Some(100_000));
    (m, end)
}

pub fn read_u64(m: &Machine, at: u64) -> u64 {
    let mut b = [0u8; 8];
    m.sys.ram.read(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

pub fn event(m: &Machine) -> Event {
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
        cr2: q(8),
    }
}

/// Runs `p`, which must end without a fault.
pub fn runs_clean(p: &Program) -> Machine {
    let (m, end) = run(p);
    assert_eq!(end, Some(RunEnd::Exit(0)), "{:#x?}", event(&m));
    m
}

/// Runs `p`, which must raise `vector` with error code `code`, at its `at` label if it set
/// one.
pub fn faults(p: &Program, vector: u64, code: u64) -> (Machine, Event) {
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
/// on the user stack, with `rflags` added to the RFLAGS it loads.
pub fn to_ring3_with(a: &mut CodeAssembler, rflags: u64) {
    let mut user = a.create_label();
    a.push((U_DATA | 3) as i32).unwrap();
    a.mov(rax, USTACK_TOP).unwrap();
    a.push(rax).unwrap();
    a.push((IOPL3 | 2 | rflags) as i32).unwrap();
    a.push((U_CODE | 3) as i32).unwrap();
    a.lea(rax, ptr(user)).unwrap();
    a.push(rax).unwrap();
    a.iretq().unwrap();
    a.set_label(&mut user).unwrap();
}

pub fn to_ring3(a: &mut CodeAssembler) {
    to_ring3_with(a, 0)
}

/// `wrmsr` of `value` to `msr`.
pub fn wrmsr(a: &mut CodeAssembler, msr: u32, value: u64) {
    a.mov(ecx, msr).unwrap();
    a.mov(eax, value as u32).unwrap();
    a.mov(edx, (value >> 32) as u32).unwrap();
    a.wrmsr().unwrap();
}

/// Rewrites the selector of `vector`'s gate.
pub fn set_gate_selector(a: &mut CodeAssembler, vector: u64, selector: u16) {
    a.mov(rdi, IDT + 16 * vector).unwrap();
    a.mov(word_ptr(rdi + 2), selector as u32).unwrap();
}

/// Rewrites the IST field of `vector`'s gate.
pub fn set_gate_ist(a: &mut CodeAssembler, vector: u64, ist: u8) {
    a.mov(rdi, IDT + 16 * vector).unwrap();
    a.mov(byte_ptr(rdi + 4), ist as u32).unwrap();
}

/// Points `vector`'s gate at `handler` (64-bit interrupt gate, K_CODE, IST 0, DPL 3).
pub fn set_gate_handler(a: &mut CodeAssembler, vector: u64, handler: CodeLabel) {
    a.mov(rdi, IDT + 16 * vector).unwrap();
    a.lea(rax, ptr(handler)).unwrap();
    a.mov(word_ptr(rdi), ax).unwrap();
    a.shr(rax, 16).unwrap();
    a.mov(word_ptr(rdi + 6), ax).unwrap();
    a.shr(rax, 16).unwrap();
    a.mov(dword_ptr(rdi + 8), eax).unwrap();
}

//! Debug registers and #DB on bare metal (Intel SDM Vol. 3B chapter 18; the model is
//! documented in `emulator::cpu::debug`): instruction breakpoints as faults resumed with RF,
//! data breakpoints as traps (writes, reads, length masking, REP string iterations),
//! single-step combined with a data breakpoint, general detect, #UD and #GP of `mov dr`
//! (ring 3 included), DR6/DR7 reserved bits, and a checkpoint taken with breakpoints armed.
//!
//! Each program has an IDT whose #DB, #UD and #GP handlers append an event to a log in RAM —
//! vector, DR6 (#DB) or error code (#GP) or 0 (#UD), saved RIP, saved RFLAGS, RCX, RDI —
//! and the program exits with the number of events. The #UD and #GP handlers resume after the faulting instruction (its
//! length in r13).

use emulator::{Machine, MachineDesc, RunEnd};
use iced_x86::code_asm::*;

mod common;

const BASE: u64 = 0x20_0000;
/// A data segment of the image, apart from the code (its own pages).
const DATA: u64 = 0x30_0000;
const LOG: u64 = DATA;
const LOG_LEN: u64 = 0x4000;
const EVENT: u64 = 48;
const VARS: u64 = DATA + 0x4000;
const SRC: u64 = DATA + 0x5000;
const DST: u64 = DATA + 0x6000;
const PML4: u64 = DATA + 0x7000;
const PDPT: u64 = DATA + 0x8000;
const GDT: u64 = DATA + 0x9000;
const TSS: u64 = DATA + 0x9100;
const IDTR: u64 = DATA + 0x9200;
const GDTR: u64 = DATA + 0x9210;
/// Handler settings: [0] is ORed into the RFLAGS the #DB handler returns with (RF to resume
/// after an instruction breakpoint); the #DB handler clears TF in it once the log holds [1]
/// bytes of events.
const CFG: u64 = DATA + 0x9300;
const IDT: u64 = DATA + 0xA000;
/// Top of the ring-0 stack taken on entries from ring 3 (TSS.RSP0), and of the ring-3 stack.
const KSTACK: u64 = DATA + 0xC000;
const USTACK: u64 = DATA + 0xD000;
const DATA_LEN: u64 = 0xD000;

const RF: u64 = 1 << 16;
const TF: u64 = 1 << 8;
const DR6: u64 = 0xFFFF_0FF0;
const BD: u64 = 1 << 13;
const BS: u64 = 1 << 14;
/// DR7: bit 10 reads as 1; L0..L3; R/W and LEN of breakpoint n.
const DR7: u64 = 0x400;
const fn l(n: u32) -> u64 {
    1 << (2 * n)
}
const fn rw_len(n: u32, rw: u64, len: u64) -> u64 {
    (rw | len << 2) << (16 + 4 * n)
}
const W: u64 = 0b01;
const RW: u64 = 0b11;
const LEN1: u64 = 0b00;
const LEN4: u64 = 0b11;
const LEN8: u64 = 0b10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    vector: u64,
    /// DR6 for #DB, the error code for #GP, 0 for #UD.
    code: u64,
    rip: u64,
    rflags: u64,
    rcx: u64,
    rdi: u64,
}

/// An assembled program: its image and the addresses of the labels the body named.
struct Program {
    image: Vec<u8>,
    labels: Vec<(&'static str, u64)>,
}

impl Program {
    fn at(&self, name: &str) -> u64 {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no label {name}"))
            .1
    }
}

/// Assembles `body` between a prologue that loads the IDT and the log pointers and an
/// epilogue that exits with the number of events; `data` may fill the data segment.
fn program(
    body: impl FnOnce(&mut CodeAssembler) -> Vec<(&'static str, CodeLabel)>,
    data: impl FnOnce(&mut [u8]),
) -> Program {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut db = a.create_label();
    let mut ud = a.create_label();
    let mut gp = a.create_label();
    let mut overflow = a.create_label();
    a.mov(rax, IDTR).unwrap();
    a.lidt(ptr(rax)).unwrap();
    a.mov(r14, LOG).unwrap();
    a.xor(r15d, r15d).unwrap();
    let named = body(&mut a);
    exit_with_count(&mut a);

    // #DB: log, then RFLAGS |= CFG[0], TF cleared once the log holds CFG[1] bytes, DR6
    // cleared for the next event.
    a.set_label(&mut db).unwrap();
    a.push(rax).unwrap();
    a.push(rbx).unwrap();
    log_event(&mut a, &mut overflow, 1, Code::Dr6, 16);
    a.mov(rax, CFG).unwrap();
    a.mov(rbx, qword_ptr(rax)).unwrap();
    a.or(qword_ptr(rsp + 32), rbx).unwrap();
    let mut keep_tf = a.create_label();
    a.cmp(r15, qword_ptr(rax + 8)).unwrap();
    a.jb(keep_tf).unwrap();
    a.and(qword_ptr(rsp + 32), !(TF as i32)).unwrap();
    a.set_label(&mut keep_tf).unwrap();
    a.xor(eax, eax).unwrap();
    a.mov(dr6, rax).unwrap();
    a.pop(rbx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();

    // #UD: log, resume r13 bytes further.
    a.set_label(&mut ud).unwrap();
    a.push(rax).unwrap();
    a.push(rbx).unwrap();
    log_event(&mut a, &mut overflow, 6, Code::Zero, 16);
    a.add(qword_ptr(rsp + 16), r13).unwrap();
    a.pop(rbx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();

    // #GP: log with the error code, resume r13 bytes further.
    a.set_label(&mut gp).unwrap();
    a.push(rax).unwrap();
    a.push(rbx).unwrap();
    log_event(&mut a, &mut overflow, 13, Code::Stack(16), 24);
    a.add(qword_ptr(rsp + 24), r13).unwrap();
    a.pop(rbx).unwrap();
    a.pop(rax).unwrap();
    a.add(rsp, 8).unwrap();
    a.iretq().unwrap();

    a.set_label(&mut overflow).unwrap();
    a.mov(eax, 0xDEAD).unwrap();
    a.out(0xF4, eax).unwrap();

    let r = a
        .assemble_options(
            BASE,
            iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    let handlers = [
        (1, r.label_ip(&db).unwrap()),
        (6, r.label_ip(&ud).unwrap()),
        (13, r.label_ip(&gp).unwrap()),
    ];
    let labels = named
        .iter()
        .map(|(n, l)| (*n, r.label_ip(l).unwrap()))
        .collect();
    let mut d = platform(&handlers);
    data(&mut d);
    Program {
        image: common::elf_segments(&[(BASE, r.inner.code_buffer), (DATA, d)], BASE, 0),
        labels,
    }
}

/// What an event's second word holds.
enum Code {
    Dr6,
    Zero,
    /// The error code, at [rsp + offset].
    Stack(i32),
}

/// Appends an event: `vector`, `code`, the RIP at [rsp+rip_at] and the RFLAGS two slots
/// above it, RCX, RDI. rax/rbx are saved by the caller.
fn log_event(
    a: &mut CodeAssembler,
    overflow: &mut CodeLabel,
    vector: i32,
    code: Code,
    rip_at: i32,
) {
    a.cmp(r15, (LOG_LEN - EVENT) as i32).unwrap();
    a.ja(*overflow).unwrap();
    a.lea(rbx, ptr(r14 + r15)).unwrap();
    a.mov(qword_ptr(rbx), vector).unwrap();
    match code {
        Code::Dr6 => a.mov(rax, dr6).unwrap(),
        Code::Zero => a.xor(eax, eax).unwrap(),
        Code::Stack(at) => a.mov(rax, qword_ptr(rsp + at)).unwrap(),
    }
    a.mov(qword_ptr(rbx + 8), rax).unwrap();
    a.mov(rax, qword_ptr(rsp + rip_at)).unwrap();
    a.mov(qword_ptr(rbx + 16), rax).unwrap();
    a.mov(rax, qword_ptr(rsp + rip_at + 16)).unwrap();
    a.mov(qword_ptr(rbx + 24), rax).unwrap();
    a.mov(qword_ptr(rbx + 32), rcx).unwrap();
    a.mov(qword_ptr(rbx + 40), rdi).unwrap();
    a.add(r15, EVENT as i32).unwrap();
}

fn exit_with_count(a: &mut CodeAssembler) {
    a.mov(rax, r15).unwrap();
    a.xor(edx, edx).unwrap();
    a.mov(ecx, EVENT as u32).unwrap();
    a.div(rcx).unwrap();
    a.out(0xF4, eax).unwrap();
}

/// The data segment's tables: the IDT with the handlers, IDTR, and for ring 3 a GDT (kernel
/// code 0x08, data 0x10, user data 0x20, user code 0x28, TSS 0x30), the TSS with RSP0, and
/// page tables mapping the first 4 GiB user-accessible with 1 GiB pages.
fn platform(handlers: &[(usize, u64)]) -> Vec<u8> {
    let mut d = vec![0u8; DATA_LEN as usize];
    let mut put = |at: u64, v: &[u8]| {
        let o = (at - DATA) as usize;
        d[o..o + v.len()].copy_from_slice(v);
    };
    for &(v, h) in handlers {
        let mut g = [0u8; 16];
        g[0..2].copy_from_slice(&(h as u16).to_le_bytes());
        g[2..4].copy_from_slice(&0x08u16.to_le_bytes());
        g[5] = 0x8E; // present, DPL 0, 64-bit interrupt gate
        g[6..8].copy_from_slice(&((h >> 16) as u16).to_le_bytes());
        g[8..12].copy_from_slice(&((h >> 32) as u32).to_le_bytes());
        put(IDT + 16 * v as u64, &g);
    }
    let mut idtr = (256u16 * 16 - 1).to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    put(IDTR, &idtr);
    let tss_lo = 0x67 | (TSS & 0xFF_FFFF) << 16 | 0x89 << 40 | (TSS >> 24 & 0xFF) << 56;
    let gdt: [u64; 8] = [
        0,
        0x00AF_9A00_0000_FFFF,
        0x00CF_9200_0000_FFFF,
        0,
        0x00CF_F200_0000_FFFF,
        0x00AF_FA00_0000_FFFF,
        tss_lo,
        TSS >> 32,
    ];
    for (i, e) in gdt.iter().enumerate() {
        put(GDT + 8 * i as u64, &e.to_le_bytes());
    }
    let mut gdtr = (8u16 * 8 - 1).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    put(GDTR, &gdtr);
    put(TSS + 4, &KSTACK.to_le_bytes());
    put(PML4, &(PDPT | 0x7).to_le_bytes());
    for i in 0..4u64 {
        // Present, writable, user, 1 GiB page.
        put(PDPT + 8 * i, &((i << 30) | 0x87).to_le_bytes());
    }
    d
}

fn machine(p: &Program) -> Machine {
    let desc = MachineDesc::load("1s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&p.image, true, "").unwrap();
    m
}

fn events(m: &Machine, n: usize) -> Vec<Event> {
    let mut b = vec![0u8; n * EVENT as usize];
    m.sys.ram.read(LOG, &mut b).unwrap();
    b.chunks(EVENT as usize)
        .map(|c| {
            let q = |i: usize| u64::from_le_bytes(c[8 * i..8 * i + 8].try_into().unwrap());
            Event {
                vector: q(0),
                code: q(1),
                rip: q(2),
                rflags: q(3),
                rcx: q(4),
                rdi: q(5),
            }
        })
        .collect()
}

fn read_u64(m: &Machine, at: u64) -> u64 {
    let mut b = [0u8; 8];
    m.sys.ram.read(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

/// Runs `p` to its exit and returns the logged events, checking the exit status counts them.
fn run(p: &Program) -> (Machine, Vec<Event>) {
    let mut m = machine(p);
    let end = m.run_for(u64::MAX, Some(100_000));
    let Some(RunEnd::Exit(n)) = end else {
        panic!("the program did not exit: {end:?}")
    };
    assert_ne!(n, 0xDEAD, "the event log overflowed (a breakpoint looped)");
    let ev = events(&m, n as usize);
    (m, ev)
}

/// Loads DRn with `addr` and DR7 with `dr7`.
fn arm(a: &mut CodeAssembler, n: u32, addr: u64, dr7_value: u64) {
    a.mov(rax, addr).unwrap();
    match n {
        0 => a.mov(dr0, rax).unwrap(),
        1 => a.mov(dr1, rax).unwrap(),
        2 => a.mov(dr2, rax).unwrap(),
        _ => a.mov(dr3, rax).unwrap(),
    }
    a.mov(rax, dr7_value).unwrap();
    a.mov(dr7, rax).unwrap();
}

fn set_cfg(a: &mut CodeAssembler, rflags_or: u64, clear_tf_after: u64) {
    a.mov(rax, CFG).unwrap();
    a.mov(qword_ptr(rax), rflags_or as i32).unwrap();
    a.mov(qword_ptr(rax + 8), (clear_tf_after * EVENT) as i32)
        .unwrap();
}

#[test]
fn instruction_breakpoints_fault_before_the_instruction_and_rf_resumes() {
    let p = program(
        |a| {
            let mut top = a.create_label();
            let mut target = a.create_label();
            set_cfg(a, RF, 0);
            // DR0 at `target` (inside a block), DR1 at `top` (a branch target, and inside the
            // block that falls into it the first time), DR2 at the second byte of `target`
            // (never the start of an instruction).
            a.lea(rax, ptr(target)).unwrap();
            a.mov(dr0, rax).unwrap();
            a.inc(rax).unwrap();
            a.mov(dr2, rax).unwrap();
            a.lea(rax, ptr(top)).unwrap();
            a.mov(dr1, rax).unwrap();
            a.mov(rax, DR7 | l(0) | l(1) | l(2)).unwrap();
            a.mov(dr7, rax).unwrap();
            a.xor(r12d, r12d).unwrap();
            a.mov(ecx, 3).unwrap();
            a.set_label(&mut top).unwrap();
            a.nop().unwrap();
            a.set_label(&mut target).unwrap();
            a.inc(r12).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(top).unwrap();
            a.mov(rax, VARS).unwrap();
            a.mov(qword_ptr(rax), r12).unwrap();
            vec![("top", top), ("target", target)]
        },
        |_| {},
    );
    let (m, ev) = run(&p);
    let mut want = Vec::new();
    for left in [3, 2, 1] {
        want.push((p.at("top"), DR6 | 0b10, left));
        want.push((p.at("target"), DR6 | 0b01, left));
    }
    let got: Vec<_> = ev.iter().map(|e| (e.rip, e.code, e.rcx)).collect();
    assert_eq!(got, want, "{ev:#x?}");
    for e in &ev {
        assert_eq!(e.vector, 1);
        assert_eq!(e.rflags & RF, 0, "an instruction breakpoint pushes RF = 0");
    }
    assert_eq!(read_u64(&m, VARS), 3, "each instruction ran once");
    assert_eq!(
        m.cores[0].rflags & RF,
        0,
        "RF is cleared after one instruction"
    );
}

#[test]
fn data_write_breakpoint_traps_after_the_store_and_not_on_reads() {
    let var = VARS + 8;
    let p = program(
        |a| {
            let mut after = [a.create_label(), a.create_label(), a.create_label()];
            // The page is in the soft TLB before the breakpoint is armed.
            a.mov(rbx, var).unwrap();
            a.mov(qword_ptr(rbx + 16), rbx).unwrap();
            arm(a, 0, var, DR7 | l(0) | rw_len(0, W, LEN8));
            a.mov(rax, 0x1122_3344_5566_7788u64).unwrap();
            a.mov(rcx, qword_ptr(rbx)).unwrap(); // a read: no trap
            a.mov(qword_ptr(rbx), rax).unwrap();
            a.set_label(&mut after[0]).unwrap();
            a.mov(byte_ptr(rbx + 7), 0x55).unwrap(); // a byte inside
            a.set_label(&mut after[1]).unwrap();
            a.mov(qword_ptr(rbx + 8), rax).unwrap(); // just past the range
            a.mov(byte_ptr(rbx - 1), al).unwrap(); // the byte before
            a.mov(qword_ptr(rbx - 4), rcx).unwrap(); // overlapping the start
            a.set_label(&mut after[2]).unwrap();
            a.nop().unwrap();
            vec![("a0", after[0]), ("a1", after[1]), ("a2", after[2])]
        },
        |_| {},
    );
    let (m, ev) = run(&p);
    let got: Vec<_> = ev.iter().map(|e| (e.vector, e.code, e.rip)).collect();
    assert_eq!(
        got,
        vec![
            (1, DR6 | 1, p.at("a0")),
            (1, DR6 | 1, p.at("a1")),
            (1, DR6 | 1, p.at("a2")),
        ],
        "{ev:#x?}"
    );
    assert!(ev.iter().all(|e| e.rflags & RF == 0), "traps push RF = 0");
    // The stores took effect before the traps.
    assert_eq!(read_u64(&m, var), 0x5522_3344_0000_0000);
    assert_eq!(read_u64(&m, var + 8), 0x1122_3344_5566_7788);
}

#[test]
fn read_write_breakpoint_with_length_masking() {
    // DR1 = VARS + 0x21 with LEN 4 covers VARS + 0x20 .. VARS + 0x24.
    let p = program(
        |a| {
            let mut after = [a.create_label(), a.create_label(), a.create_label()];
            arm(a, 1, VARS + 0x21, DR7 | l(1) | rw_len(1, RW, LEN4));
            a.mov(rbx, VARS).unwrap();
            a.mov(al, byte_ptr(rbx + 0x23)).unwrap(); // the last byte: hit
            a.set_label(&mut after[0]).unwrap();
            a.mov(al, byte_ptr(rbx + 0x24)).unwrap(); // just after
            a.mov(al, byte_ptr(rbx + 0x1F)).unwrap(); // just before
            a.mov(eax, dword_ptr(rbx + 0x1E)).unwrap(); // overlapping the first byte: hit
            a.set_label(&mut after[1]).unwrap();
            a.add(byte_ptr(rbx + 0x22), 1).unwrap(); // read and write: one trap
            a.set_label(&mut after[2]).unwrap();
            a.nop().unwrap();
            vec![("a0", after[0]), ("a1", after[1]), ("a2", after[2])]
        },
        |_| {},
    );
    let (_, ev) = run(&p);
    let got: Vec<_> = ev.iter().map(|e| (e.vector, e.code, e.rip)).collect();
    assert_eq!(
        got,
        vec![
            (1, DR6 | 0b10, p.at("a0")),
            (1, DR6 | 0b10, p.at("a1")),
            (1, DR6 | 0b10, p.at("a2")),
        ],
        "{ev:#x?}"
    );
}

#[test]
fn rep_movs_traps_after_the_iteration_and_resumes() {
    // DR0 on the 6th destination quadword, DR1 on the last one.
    let p = program(
        |a| {
            let mut rep = a.create_label();
            let mut after = a.create_label();
            arm(a, 0, DST + 40, DR7 | l(0) | rw_len(0, W, LEN8));
            arm(
                a,
                1,
                DST + 120,
                DR7 | l(0) | rw_len(0, W, LEN8) | l(1) | rw_len(1, W, LEN8),
            );
            a.mov(rsi, SRC).unwrap();
            a.mov(rdi, DST).unwrap();
            a.mov(ecx, 16).unwrap();
            a.cld().unwrap();
            a.set_label(&mut rep).unwrap();
            a.rep().movsq().unwrap();
            a.set_label(&mut after).unwrap();
            a.nop().unwrap();
            vec![("rep", rep), ("after", after)]
        },
        |d| {
            for i in 0..16u64 {
                let o = (SRC - DATA + 8 * i) as usize;
                d[o..o + 8].copy_from_slice(&(0xA0A0_0000 + i).to_le_bytes());
            }
        },
    );
    let (m, ev) = run(&p);
    assert_eq!(ev.len(), 2, "{ev:#x?}");
    // After the 6th iteration: the instruction's own RIP, RF = 1, 10 left.
    assert_eq!(
        (ev[0].code, ev[0].rip, ev[0].rcx, ev[0].rdi),
        (DR6 | 1, p.at("rep"), 10, DST + 48),
        "{ev:#x?}"
    );
    assert_ne!(ev[0].rflags & RF, 0, "not the last iteration: RF = 1");
    // After the last: the next instruction, RF = 0.
    assert_eq!(
        (ev[1].code, ev[1].rip, ev[1].rcx, ev[1].rdi),
        (DR6 | 0b10, p.at("after"), 0, DST + 128),
        "{ev:#x?}"
    );
    assert_eq!(ev[1].rflags & RF, 0);
    for i in 0..16 {
        assert_eq!(read_u64(&m, DST + 8 * i), 0xA0A0_0000 + i, "quadword {i}");
    }
}

#[test]
fn single_step_and_a_data_breakpoint_report_together() {
    let p = program(
        |a| {
            let mut s2 = a.create_label();
            let mut s3 = a.create_label();
            set_cfg(a, 0, 2);
            arm(a, 0, VARS + 0x40, DR7 | l(0) | rw_len(0, W, LEN1));
            a.mov(rbx, VARS).unwrap();
            a.pushfq().unwrap();
            a.or(qword_ptr(rsp), TF as i32).unwrap();
            a.popfq().unwrap();
            a.mov(byte_ptr(rbx + 0x40), al).unwrap();
            a.set_label(&mut s2).unwrap();
            a.nop().unwrap();
            a.set_label(&mut s3).unwrap();
            a.nop().unwrap();
            vec![("s2", s2), ("s3", s3)]
        },
        |_| {},
    );
    let (_, ev) = run(&p);
    let got: Vec<_> = ev.iter().map(|e| (e.vector, e.code, e.rip)).collect();
    assert_eq!(
        got,
        vec![(1, DR6 | BS | 1, p.at("s2")), (1, DR6 | BS, p.at("s3"))],
        "{ev:#x?}"
    );
}

#[test]
fn general_detect_faults_on_mov_dr_then_clears_gd() {
    let p = program(
        |a| {
            let mut at = a.create_label();
            a.mov(rax, DR7 | (1 << 13)).unwrap();
            a.mov(dr7, rax).unwrap();
            a.set_label(&mut at).unwrap();
            a.mov(rcx, dr0).unwrap();
            a.mov(rax, dr7).unwrap();
            a.mov(rbx, VARS).unwrap();
            a.mov(qword_ptr(rbx), rax).unwrap();
            vec![("at", at)]
        },
        |_| {},
    );
    let (m, ev) = run(&p);
    assert_eq!(ev.len(), 1, "{ev:#x?}");
    assert_eq!(
        (ev[0].vector, ev[0].code, ev[0].rip),
        (1, DR6 | BD, p.at("at"))
    );
    assert_ne!(ev[0].rflags & RF, 0, "a fault-class #DB pushes RF = 1");
    assert_eq!(
        read_u64(&m, VARS),
        DR7,
        "GD was cleared when the handler was entered"
    );
}

#[test]
fn dr4_dr5_ud_with_cr4_de_and_upper_bits_gp() {
    let p = program(
        |a| {
            let names = ["ud4", "ud5", "gp7", "gp6"];
            let mut at: Vec<CodeLabel> = names.iter().map(|_| a.create_label()).collect();
            a.mov(rbx, VARS).unwrap();
            // CR4.DE = 0: DR4/DR5 are DR6/DR7.
            a.mov(rax, 0xFFFF_FFFFu64 & !(1 << 13)).unwrap();
            a.mov(dr5, rax).unwrap();
            a.mov(rax, dr4).unwrap();
            a.mov(qword_ptr(rbx), rax).unwrap();
            a.mov(rax, dr7).unwrap();
            a.mov(qword_ptr(rbx + 8), rax).unwrap();
            a.xor(eax, eax).unwrap();
            a.mov(dr7, rax).unwrap();
            // CR4.DE = 1: #UD.
            a.mov(rax, cr4).unwrap();
            a.or(rax, 8).unwrap();
            a.mov(cr4, rax).unwrap();
            a.mov(r13, 3u64).unwrap();
            a.set_label(&mut at[0]).unwrap();
            a.mov(rax, dr4).unwrap();
            a.set_label(&mut at[1]).unwrap();
            a.mov(dr5, rax).unwrap();
            // Ones in bits 63:32 of DR7/DR6: #GP(0), nothing written.
            a.mov(rax, 1u64 << 32 | 1).unwrap();
            a.set_label(&mut at[2]).unwrap();
            a.mov(dr7, rax).unwrap();
            a.set_label(&mut at[3]).unwrap();
            a.mov(dr6, rax).unwrap();
            a.mov(rax, dr7).unwrap();
            a.mov(qword_ptr(rbx + 16), rax).unwrap();
            a.mov(rax, dr6).unwrap();
            a.mov(qword_ptr(rbx + 24), rax).unwrap();
            names.iter().copied().zip(at).collect()
        },
        |_| {},
    );
    let (m, ev) = run(&p);
    let got: Vec<_> = ev.iter().map(|e| (e.vector, e.code, e.rip)).collect();
    assert_eq!(
        got,
        vec![
            (6, 0, p.at("ud4")),
            (6, 0, p.at("ud5")),
            (13, 0, p.at("gp7")),
            (13, 0, p.at("gp6")),
        ],
        "{ev:#x?}"
    );
    // DR6 read through DR4 at reset; DR7 written through DR5 with its reserved bits.
    assert_eq!(read_u64(&m, VARS), DR6);
    assert_eq!(read_u64(&m, VARS + 8), 0xFFFF_07FF);
    assert_eq!(read_u64(&m, VARS + 16), DR7);
    assert_eq!(read_u64(&m, VARS + 24), DR6);
}

#[test]
fn mov_dr_in_ring_3_is_gp() {
    let p = program(
        |a| {
            let mut user = a.create_label();
            let names = ["r7", "w0"];
            let mut at: Vec<CodeLabel> = names.iter().map(|_| a.create_label()).collect();
            a.mov(rax, GDTR).unwrap();
            a.lgdt(ptr(rax)).unwrap();
            a.mov(eax, 0x30).unwrap();
            a.ltr(ax).unwrap();
            a.mov(rax, PML4).unwrap();
            a.mov(cr3, rax).unwrap();
            // To ring 3 with IOPL 3 (so that it can exit through the port).
            a.push(0x23).unwrap();
            a.mov(rax, USTACK).unwrap();
            a.push(rax).unwrap();
            a.push(0x3002).unwrap();
            a.push(0x2B).unwrap();
            a.lea(rax, ptr(user)).unwrap();
            a.push(rax).unwrap();
            a.iretq().unwrap();
            a.set_label(&mut user).unwrap();
            a.mov(r13, 3u64).unwrap();
            a.set_label(&mut at[0]).unwrap();
            a.mov(rax, dr7).unwrap();
            a.set_label(&mut at[1]).unwrap();
            a.mov(dr0, rax).unwrap();
            names.iter().copied().zip(at).collect()
        },
        |_| {},
    );
    let (m, ev) = run(&p);
    let got: Vec<_> = ev.iter().map(|e| (e.vector, e.code, e.rip)).collect();
    assert_eq!(
        got,
        vec![(13, 0, p.at("r7")), (13, 0, p.at("w0"))],
        "{ev:#x?}"
    );
    assert_eq!(m.cores[0].cs & 3, 3, "the program ended in ring 3");
    assert_eq!(m.cores[0].dbg.dr[0], 0, "nothing written");
}

/// Breakpoints armed across a checkpoint: the restored machine reports the same events and
/// ends in the same state as the uninterrupted run, with the timing model on (accesses to
/// the watched page stay out of the soft TLB on both sides).
#[test]
fn checkpoint_with_breakpoints_armed_continues_exactly() {
    let p = program(
        |a| {
            let mut top = a.create_label();
            let mut target = a.create_label();
            set_cfg(a, RF, 0);
            a.lea(rax, ptr(target)).unwrap();
            a.mov(dr0, rax).unwrap();
            arm(a, 1, VARS + 0x10, DR7 | l(0) | l(1) | rw_len(1, RW, LEN8));
            a.mov(rbx, VARS).unwrap();
            a.mov(ecx, 60).unwrap();
            a.set_label(&mut top).unwrap();
            a.add(qword_ptr(rbx + 0x10), rcx).unwrap();
            a.add(qword_ptr(rbx + 0x18), rcx).unwrap();
            a.set_label(&mut target).unwrap();
            a.dec(ecx).unwrap();
            a.jnz(top).unwrap();
            vec![]
        },
        |_| {},
    );
    let fresh = || {
        let mut m = machine(&p);
        m.enable_timing();
        m
    };
    let mut whole = fresh();
    let end = whole.run_for(u64::MAX, Some(100_000));
    assert_eq!(
        end,
        Some(RunEnd::Exit(120)),
        "60 data traps, 60 instruction faults"
    );
    let ev = events(&whole, 120);
    let total = whole.cycles();
    for at in [total / 5, total / 2, total * 4 / 5] {
        let mut m = fresh();
        assert_eq!(m.run_until_cycle(at, Some(100_000)), None, "cycle {at}");
        let mut r = Machine::restore(&m.checkpoint()).unwrap();
        assert_eq!(r.run_for(u64::MAX, Some(100_000)), end, "cycle {at}");
        assert_eq!(events(&r, 120), ev, "cycle {at}");
        assert_eq!(r.state_hash(), whole.state_hash(), "cycle {at}");
        assert_eq!(r.cycles(), whole.cycles(), "cycle {at}");
    }
}

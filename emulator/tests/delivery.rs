//! Event delivery through the IDT in IA-32e mode, as the Intel SDM specifies it (Vol. 2A INT n,
//! "IA-32e-MODE", "TRAP-OR-INTERRUPT-GATE", "INTER-/INTRA-PRIVILEGE-LEVEL-INTERRUPT" and its
//! "64-Bit Mode Exceptions"; Vol. 3A §6.12–6.14): the handler's code segment must be a present
//! 64-bit code segment (#GP/#NP with the selector and EXT), a non-canonical handler address or
//! stack faults during delivery (#GP(EXT), #SS(EXT)) rather than after it, and descriptor-table
//! addresses wrap instead of overflowing.
//!
//! EXT (bit 0 of the error code) is 1 when the event being delivered is an exception or an
//! external interrupt, 0 for `int n`. A fault while delivering #UD (benign) is delivered
//! itself, with the RIP of the instruction that raised the #UD.

use iced_x86::code_asm::*;

mod bare;
mod common;

use bare::*;

/// `ud2` marked as `at`, after `setup`.
fn ud2_after(setup: impl FnOnce(&mut CodeAssembler)) -> Program {
    program(|a, at| {
        setup(a);
        a.set_label(at).unwrap();
        a.ud2().unwrap();
    })
}

/// `int 0x40` marked as `at`, after `setup`.
fn int40_after(setup: impl FnOnce(&mut CodeAssembler)) -> Program {
    program(|a, at| {
        setup(a);
        a.set_label(at).unwrap();
        a.int(0x40).unwrap();
    })
}

// ---- The handler's code segment -----------------------------------------------------------

#[test]
fn the_handlers_code_segment_must_be_64_bit_code() {
    for (what, sel, vector) in [
        ("32-bit code (L = 0, D = 1)", K_CODE32, GP),
        ("16-bit code (L = 0, D = 0)", K_CODE16, GP),
        ("L = 1 with D = 1", K_CODE_LD, GP),
        ("a data segment", K_DATA, GP),
        ("a system segment (the TSS)", TSS_SEL, GP),
        ("DPL 3 above CPL 0", U_CODE, GP),
        ("past the GDT limit", PAST_GDT, GP),
        ("not present", K_CODE_NP, NP),
    ] {
        // An exception (EXT = 1)…
        let p = ud2_after(|a| set_gate_selector(a, UD, sel));
        let (m, e) = faults(&p, vector, sel as u64 | 1);
        assert_eq!(
            e.cs, K_CODE as u64,
            "{what}: the fault is delivered from ring 0"
        );
        assert_eq!(m.cores[0].cs, K_CODE, "{what}");
        // …and `int n` (EXT = 0).
        let p = int40_after(|a| set_gate_selector(a, 0x40, sel));
        let (_, e) = faults(&p, vector, sel as u64);
        assert_eq!(e.vector, vector, "{what}");
    }
}

#[test]
fn a_null_handler_selector_is_gp_ext() {
    let p = ud2_after(|a| set_gate_selector(a, UD, 0));
    faults(&p, GP, 1);
    let p = int40_after(|a| set_gate_selector(a, 0x40, 3));
    faults(&p, GP, 0);
}

#[test]
fn a_bad_code_segment_for_an_external_interrupt_is_gp_selector_ext() {
    let p = program(|a, at| {
        set_gate_selector(a, 0x41, K_CODE32);
        wrmsr(a, 0x80F, 0x1FF); // SVR: software-enabled
        wrmsr(a, 0x83F, 0x41); // SELF IPI
        a.sti().unwrap();
        a.nop().unwrap();
        a.set_label(at).unwrap();
        a.nop().unwrap();
    });
    faults(&p, GP, K_CODE32 as u64 | 1);
}

#[test]
fn a_conforming_handler_segment_runs_at_the_current_privilege_level() {
    // From ring 3 through a conforming DPL-0 code segment: CPL stays 3, no stack switch. The
    // handler notes the saved CS and its RSP, and ends the run.
    let p = program(|a, _| {
        let mut handler = a.create_label();
        let mut body = a.create_label();
        a.jmp(body).unwrap();
        a.set_label(&mut handler).unwrap();
        a.mov(r12, qword_ptr(rsp + 8)).unwrap();
        a.mov(r9, rsp).unwrap();
        a.xor(eax, eax).unwrap();
        a.out(0xF4, eax).unwrap();
        a.set_label(&mut body).unwrap();
        set_gate_handler(a, 0x40, handler);
        set_gate_selector(a, 0x40, K_CODE_CONF);
        to_ring3(a);
        a.mov(rbx, USTACK_TOP - 0x100).unwrap();
        a.mov(rsp, rbx).unwrap();
        a.int(0x40).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!(c.cs, K_CODE_CONF | 3, "CS.RPL = CPL = 3");
    assert_eq!(c.gpr[12], (U_CODE | 3) as u64, "the saved CS");
    assert_eq!(
        c.gpr[9],
        USTACK_TOP - 0x100 - 40,
        "the frame is on the same stack"
    );
}

// ---- Non-canonical handler addresses and stacks -------------------------------------------

/// Makes `vector`'s handler address non-canonical (bits 47:32 = 0x8000).
fn non_canonical_handler(a: &mut CodeAssembler, vector: u64) {
    a.mov(rdi, IDT + 16 * vector).unwrap();
    a.mov(dword_ptr(rdi + 8), 0x8000).unwrap();
}

#[test]
fn a_non_canonical_handler_address_is_gp_during_delivery() {
    let p = ud2_after(|a| non_canonical_handler(a, UD));
    let (_, e) = faults(&p, GP, 1);
    assert_eq!(e.cs, K_CODE as u64);
    let p = int40_after(|a| non_canonical_handler(a, 0x40));
    let (_, e) = faults(&p, GP, 0);
    assert_eq!(e.rsp, KSTACK_TOP, "the int pushed nothing");
}

#[test]
fn a_non_canonical_stack_is_ss_during_delivery() {
    // The current stack (IST 0, no privilege change): #SS(EXT), RSP untouched.
    let p = ud2_after(|a| {
        set_gate_ist(a, UD, 0);
        a.mov(rsp, HOLE + 0x100).unwrap();
    });
    let (_, e) = faults(&p, SS, 1);
    assert_eq!(e.rsp, HOLE + 0x100);
    let p = int40_after(|a| {
        a.mov(rsp, HOLE + 0x100).unwrap();
    });
    let (_, e) = faults(&p, SS, 0);
    assert_eq!(e.rsp, HOLE + 0x100);
    // A canonical stack pointer whose frame would reach below the upper half's start.
    let p = int40_after(|a| {
        a.mov(rsp, 0xFFFF_8000_0000_0010u64).unwrap();
    });
    faults(&p, SS, 0);
}

#[test]
fn a_non_canonical_stack_from_the_tss_is_ss_ext() {
    // RSP0 (a privilege change from ring 3)…
    let p = program(|a, at| {
        a.mov(rbx, HOLE).unwrap();
        a.mov(rdi, TSS + 4).unwrap();
        a.mov(qword_ptr(rdi), rbx).unwrap();
        set_gate_ist(a, UD, 0);
        to_ring3(a);
        a.nop().unwrap();
        a.set_label(at).unwrap();
        a.ud2().unwrap();
    });
    let (_, e) = faults(&p, SS, 1);
    assert_eq!(e.cs, (U_CODE | 3) as u64);
    // …and an IST slot (IST2, for vector 0x40).
    let p = int40_after(|a| {
        a.mov(rbx, HOLE).unwrap();
        a.mov(rdi, TSS + 0x2C).unwrap();
        a.mov(qword_ptr(rdi), rbx).unwrap();
        set_gate_ist(a, 0x40, 2);
    });
    faults(&p, SS, 0);
}

// ---- Table addresses wrap -----------------------------------------------------------------

#[test]
fn an_idt_base_near_the_top_wraps_around_to_its_gates() {
    // IDTR.base = 2^64 - 0x100: vector 0x40's gate is at linear 0x300 (mapped to LOW_PHYS).
    let p = program(|a, _| {
        let mut handler = a.create_label();
        let mut body = a.create_label();
        a.jmp(body).unwrap();
        a.set_label(&mut handler).unwrap();
        a.mov(r12d, 0x40).unwrap();
        a.xor(eax, eax).unwrap();
        a.out(0xF4, eax).unwrap();
        a.set_label(&mut body).unwrap();
        // Build the gate at linear 0x300.
        a.lea(rax, ptr(handler)).unwrap();
        a.mov(word_ptr(0x300), ax).unwrap();
        a.mov(word_ptr(0x302), K_CODE as u32).unwrap();
        a.mov(word_ptr(0x304), 0x8E00).unwrap();
        a.shr(rax, 16).unwrap();
        a.mov(word_ptr(0x306), ax).unwrap();
        a.mov(qword_ptr(0x308), 0).unwrap();
        // lidt [SCRATCH] with limit 0xFFF.
        a.mov(rbx, SCRATCH).unwrap();
        a.mov(word_ptr(rbx), 0xFFF).unwrap();
        a.mov(rax, 0xFFFF_FFFF_FFFF_FF00u64).unwrap();
        a.mov(qword_ptr(rbx + 2), rax).unwrap();
        a.lidt(ptr(rbx)).unwrap();
        a.int(0x40).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!(
        m.cores[0].gpr[12], 0x40,
        "the gate at the wrapped address ran"
    );
}

#[test]
fn a_tss_base_near_the_top_wraps_around_to_its_stacks() {
    // A TSS whose 64-bit base is 2^64 - 0x10: IST1 (offset 0x24) is at linear 0x14.
    let p = program(|a, _| {
        // The TSS descriptor at TSS_SEL + 0x10 (past the GDT's entries, inside a new limit).
        let base = 0xFFFF_FFFF_FFFF_FFF0u64;
        let lo = 0x67 | (base & 0xFF_FFFF) << 16 | 0x89 << 40 | (base >> 24 & 0xFF) << 56;
        a.mov(rdi, GDT + 0x60).unwrap();
        a.mov(rax, lo).unwrap();
        a.mov(qword_ptr(rdi), rax).unwrap();
        a.mov(rax, base >> 32).unwrap();
        a.mov(qword_ptr(rdi + 8), rax).unwrap();
        a.mov(rbx, GDTR).unwrap();
        a.mov(word_ptr(rbx), 0x6F).unwrap();
        a.lgdt(ptr(rbx)).unwrap();
        a.mov(eax, 0x60).unwrap();
        a.ltr(ax).unwrap();
        // IST1 = SCRATCH + 0x800, at linear 0x14.
        a.mov(rax, SCRATCH + 0x800).unwrap();
        a.mov(qword_ptr(0x14), rax).unwrap();
        a.ud2().unwrap();
    });
    let (m, _) = faults(&p, UD, 0);
    assert_eq!(
        m.cores[0].gpr[4],
        SCRATCH + 0x800 - 40,
        "the handler runs on the stack read at the wrapped address"
    );
}

#[test]
fn a_gdt_base_near_the_top_wraps_around_to_its_descriptors() {
    // GDTR.base = 2^64 - 8: selector 0x08 is at linear 0, 0x10 at linear 8.
    let p = program(|a, _| {
        for (at, d) in [(0u64, 0x00AF_9A00_0000_FFFFu64), (8, 0x00CF_9200_0000_FFFF)] {
            a.mov(rax, d).unwrap();
            a.mov(qword_ptr(at), rax).unwrap();
        }
        a.mov(rbx, SCRATCH).unwrap();
        a.mov(word_ptr(rbx), 0x17).unwrap();
        a.mov(rax, 0xFFFF_FFFF_FFFF_FFF8u64).unwrap();
        a.mov(qword_ptr(rbx + 2), rax).unwrap();
        a.lgdt(ptr(rbx)).unwrap();
        a.mov(eax, K_DATA as u32).unwrap();
        a.mov(ds, ax).unwrap();
        // Delivery reads the handler's code segment (0x08) at the wrapped address.
        a.int(0x40).unwrap();
    });
    let (m, e) = faults(&p, 0x40, 0);
    assert_eq!(e.cs, K_CODE as u64);
    assert_eq!(m.cores[0].ds, K_DATA);
}

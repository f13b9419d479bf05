//! Control registers, the TSC, alignment checks and the fault reports of what pvmlab does not
//! implement, as the Intel SDM specifies them and silicon behaves:
//! - `mov cr0`: WP applies to every access (a translation cached while WP = 0 grants no
//!   supervisor write once WP = 1); NW = 1 with CD = 0, clearing PG or PE, and bits 63:32
//!   raise #GP(0); reserved bits of 31:0 are ignored (SDM Vol. 2B MOV CRn; Vol. 3A §2.5);
//! - `mov cr3`: bits 63:48 are reserved (#GP(0)); PWT and PCD read back;
//! - `mov cr4`: a bit of a feature CPUID does not report raises #GP(0) (Vol. 3A §2.5, §2.6);
//!   CR4.TSD makes `rdtsc`/`rdtscp` privileged (Vol. 2B RDTSC);
//! - CR8 is TPR[7:4] of the local APIC, and its priority masks interrupts (Vol. 3A §11.8.6);
//! - `wrmsr` IA32_TSC sets the TSC, which the TSC-deadline timer compares against (Vol. 3B
//!   §18.17, Vol. 3A §11.5.4.1);
//! - #AC(0) for unaligned data accesses at CPL 3 with CR0.AM = RFLAGS.AC = 1 (Vol. 3A §6.15,
//!   interrupt 17);
//! - #SS(0), not #GP(0), for a non-canonical memory operand through SS in any instruction
//!   (Vol. 3A §6.15, interrupt 12);
//! - the report of a transfer to compatibility mode, and the count of "not implemented" #UDs
//!   an image's handler received.

use emulator::RunEnd;
use iced_x86::code_asm::*;

mod bare;
mod common;

use bare::*;

const CR0_WP: u64 = 1 << 16;
const CR0_AM: u64 = 1 << 18;
const CR4_TSD: u64 = 1 << 2;

/// `mov rax, cr0; <op> rax, bit; mov cr0, rax`.
fn cr0_bit(a: &mut CodeAssembler, bit: u32, set: bool) {
    a.mov(rax, cr0).unwrap();
    if set {
        a.bts(rax, bit).unwrap();
    } else {
        a.btr(rax, bit).unwrap();
    }
    a.mov(cr0, rax).unwrap();
}

/// `mov <cr>, rbx` with `value` in RBX, marked as `at`.
fn mov_to_cr(a: &mut CodeAssembler, at: &mut CodeLabel, cr: AsmRegisterCr, value: u64) {
    a.mov(rbx, value).unwrap();
    a.set_label(at).unwrap();
    a.mov(cr, rbx).unwrap();
}

// ---- CR0 ----------------------------------------------------------------------------------

#[test]
fn setting_cr0_wp_again_applies_to_a_translation_cached_without_it() {
    // With WP = 0 a ring-0 write to a read-only page succeeds and leaves its translation in
    // the TLB; after WP = 1 the same write faults at once (SDM Vol. 3A §4.6.1: WP is applied
    // to each access).
    let p = program(|a, at| {
        cr0_bit(a, 16, false);
        a.mov(rbx, RO_PAGE).unwrap();
        a.mov(qword_ptr(rbx), 0x1234).unwrap();
        cr0_bit(a, 16, true);
        a.set_label(at).unwrap();
        a.mov(qword_ptr(rbx), 0x5678).unwrap();
    });
    let (m, e) = faults(&p, PF, 0b011);
    assert_eq!(e.cr2, RO_PAGE);
    assert_eq!(
        read_u64(&m, RO_PAGE),
        0x1234,
        "the second write did not happen"
    );
    assert_ne!(m.cores[0].cr0 & CR0_WP, 0);
}

#[test]
fn clearing_cr0_wp_lets_ring0_write_a_read_only_page() {
    let p = program(|a, _| {
        a.mov(rbx, RO_PAGE).unwrap();
        // A read first: the read-only page's translation is cached before WP changes.
        a.mov(rax, qword_ptr(rbx)).unwrap();
        cr0_bit(a, 16, false);
        a.mov(qword_ptr(rbx + 8), 0x55).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!(read_u64(&m, RO_PAGE + 8), 0x55);
}

#[test]
fn invalid_cr0_values_are_gp0_and_change_nothing() {
    let start = 0x8001_0033u64; // PE, MP, ET, NE, WP, PG (the loader's)
    for (what, value) in [
        ("NW = 1 with CD = 0", start | 1 << 29),
        ("PG = 0", start & !(1 << 31)),
        ("PE = 0 with PG = 1", start & !1),
        ("bit 32", start | 1 << 32),
        ("bit 63", start | 1 << 63),
    ] {
        let p = program(|a, at| mov_to_cr(a, at, cr0, value));
        let (m, _) = faults(&p, GP, 0);
        assert_eq!(m.cores[0].cr0, start, "{what}");
    }
}

#[test]
fn reserved_cr0_bits_31_0_are_ignored_and_cd_nw_together_are_accepted() {
    let start = 0x8001_0033u64;
    let p = program(|a, _| {
        a.mov(rbx, start | 0x1FFA_FFC0).unwrap();
        a.mov(cr0, rbx).unwrap();
        a.mov(r12, cr0).unwrap();
        // CD = 1 with NW = 1 is valid (caching off); so is CD alone.
        a.mov(rbx, start | 3 << 29).unwrap();
        a.mov(cr0, rbx).unwrap();
        a.mov(r13, cr0).unwrap();
        a.mov(rbx, start | 1 << 30).unwrap();
        a.mov(cr0, rbx).unwrap();
        a.mov(rbx, start).unwrap();
        a.mov(cr0, rbx).unwrap();
    });
    let m = runs_clean(&p);
    let g = &m.cores[0].gpr;
    assert_eq!(g[12], start, "reserved bits read back as 0");
    assert_eq!(g[13], start | 3 << 29);
}

// ---- CR3 ----------------------------------------------------------------------------------

#[test]
fn cr3_bits_above_maxphyaddr_are_gp0_and_pwt_pcd_read_back() {
    for bit in [48, 51, 52, 62, 63] {
        let p = program(|a, at| mov_to_cr(a, at, cr3, PML4 | 1 << bit));
        let (m, _) = faults(&p, GP, 0);
        assert_eq!(m.cores[0].cr3, PML4, "bit {bit}");
    }
    let p = program(|a, _| {
        // PWT and PCD are kept; bits 2:0 and 11:5 are ignored without PCIDs.
        a.mov(rbx, PML4 | 0xFFF).unwrap();
        a.mov(cr3, rbx).unwrap();
        a.mov(r12, cr3).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!(m.cores[0].gpr[12], PML4 | 0x18);
}

// ---- CR4 ----------------------------------------------------------------------------------

#[test]
fn cr4_bits_of_features_cpuid_does_not_report_are_gp0() {
    let start = 0x620u64; // PAE, OSFXSR, OSXMMEXCPT
    // VME, PVI, MCE, UMIP, LA57, VMXE, SMXE, 15, FSGSBASE, PCIDE, OSXSAVE, KL, SMEP, SMAP,
    // PKE, CET, PKS, UINTR, 26, 31, 32, 63.
    for bit in [
        0, 1, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 31, 32, 63,
    ] {
        let p = program(|a, at| mov_to_cr(a, at, cr4, start | 1 << bit));
        let (m, _) = faults(&p, GP, 0);
        assert_eq!(m.cores[0].cr4, start, "bit {bit}: nothing written");
    }
    let p = program(|a, at| mov_to_cr(a, at, cr4, start & !(1 << 5)));
    faults(&p, GP, 0);
}

#[test]
fn cr4_bits_of_reported_features_are_kept() {
    // TSD, DE, PSE, PAE, PGE, PCE, OSFXSR, OSXMMEXCPT.
    let all = 0x7BC;
    let p = program(|a, _| {
        a.mov(rbx, all).unwrap();
        a.mov(cr4, rbx).unwrap();
        a.mov(r12, cr4).unwrap();
        // 2 MiB pages still work with PSE set (it is ignored in IA-32e mode).
        a.mov(rbx, SCRATCH).unwrap();
        a.mov(qword_ptr(rbx), 7).unwrap();
        a.mov(r13, qword_ptr(rbx)).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!((m.cores[0].gpr[12], m.cores[0].gpr[13]), (all, 7));
}

#[test]
fn cr4_tsd_makes_rdtsc_and_rdtscp_privileged() {
    for rdtscp in [false, true] {
        let p = program(|a, at| {
            a.mov(rax, cr4).unwrap();
            a.or(rax, CR4_TSD as i32).unwrap();
            a.mov(cr4, rax).unwrap();
            // Ring 0 may still read it.
            a.rdtsc().unwrap();
            to_ring3(a);
            a.nop().unwrap();
            a.set_label(at).unwrap();
            if rdtscp {
                a.rdtscp().unwrap();
            } else {
                a.rdtsc().unwrap();
            }
        });
        let (_, e) = faults(&p, GP, 0);
        assert_eq!(e.cs, (U_CODE | 3) as u64);
    }
    // Without TSD, ring 3 reads it.
    let p = program(|a, _| {
        to_ring3(a);
        a.rdtsc().unwrap();
        a.rdtscp().unwrap();
    });
    runs_clean(&p);
}

// ---- CR8 ----------------------------------------------------------------------------------

#[test]
fn cr8_is_the_priority_class_of_the_apic_tpr() {
    let p = program(|a, at| {
        wrmsr(a, 0x808, 0x5A); // TPR
        a.mov(r12, cr8).unwrap();
        a.mov(ebx, 9).unwrap();
        a.mov(cr8, rbx).unwrap();
        a.mov(ecx, 0x808).unwrap();
        a.rdmsr().unwrap();
        a.mov(r9, rax).unwrap();
        // Bits 63:4 are reserved.
        mov_to_cr(a, at, cr8, 0x10);
    });
    let (m, _) = faults(&p, GP, 0);
    let c = &m.cores[0];
    assert_eq!(c.gpr[12], 5, "CR8 = TPR[7:4]");
    assert_eq!(c.gpr[9], 0x90, "TPR[7:4] = CR8[3:0], TPR[3:0] = 0");
    assert_eq!(c.apic.tpr, 0x90, "the faulting write changed nothing");
}

#[test]
fn cr8_holds_off_interrupts_of_its_class_and_below() {
    let p = program(|a, at| {
        wrmsr(a, 0x80F, 0x1FF); // SVR: software-enabled
        a.mov(eax, 4).unwrap();
        a.mov(cr8, rax).unwrap();
        wrmsr(a, 0x83F, 0x41); // SELF IPI, class 4
        a.sti().unwrap();
        for _ in 0..8 {
            a.nop().unwrap();
        }
        a.mov(r12d, 1).unwrap();
        a.mov(eax, 3).unwrap();
        a.mov(cr8, rax).unwrap();
        a.set_label(at).unwrap();
        a.mov(r12d, 2).unwrap();
    });
    let (m, _) = faults(&p, 0x41, 0);
    assert_eq!(
        m.cores[0].gpr[12], 1,
        "taken right after CR8 dropped below its class"
    );
}

// ---- The TSC ------------------------------------------------------------------------------

/// EDX:EAX of `rdtsc`/`rdmsr` into `dst`.
fn edx_eax(a: &mut CodeAssembler, dst: AsmRegister64) {
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
    a.mov(dst, rax).unwrap();
}

#[test]
fn wrmsr_ia32_tsc_sets_the_tsc() {
    let p = program(|a, _| {
        wrmsr(a, 0x10, 1 << 48);
        a.rdtsc().unwrap();
        edx_eax(a, r12);
        a.mov(ecx, 0x10).unwrap();
        a.rdmsr().unwrap();
        edx_eax(a, r13);
        // Back to a small value: the TSC is not monotonic across writes.
        wrmsr(a, 0x10, 5);
        a.rdtscp().unwrap();
        edx_eax(a, r14);
    });
    let m = runs_clean(&p);
    let g = &m.cores[0].gpr;
    assert!((1 << 48..(1 << 48) + 1000).contains(&g[12]), "{:#x}", g[12]);
    assert!(g[13] > g[12] && g[13] < g[12] + 1000, "{:#x}", g[13]);
    assert!(g[14] > 5 && g[14] < 1000, "{:#x}", g[14]);
    assert!(m.cores[0].cycles < 100_000, "the clock itself did not move");
}

/// Enables the APIC with the timer in TSC-deadline mode on vector 0x40.
fn tsc_deadline_mode(a: &mut CodeAssembler) {
    wrmsr(a, 0x80F, 0x1FF);
    wrmsr(a, 0x832, 2 << 17 | 0x40);
}

/// `wrmsr` IA32_TSC_DEADLINE = TSC + `ahead`; the deadline into R12.
fn deadline_in(a: &mut CodeAssembler, ahead: u32) {
    a.rdtsc().unwrap();
    edx_eax(a, r12);
    a.add(r12, ahead as i32).unwrap();
    a.mov(rax, r12).unwrap();
    a.mov(rdx, r12).unwrap();
    a.shr(rdx, 32).unwrap();
    a.mov(ecx, 0x6E0).unwrap();
    a.wrmsr().unwrap();
}

#[test]
fn the_tsc_deadline_timer_compares_against_the_written_tsc() {
    let p = program(|a, _| {
        tsc_deadline_mode(a);
        wrmsr(a, 0x10, 1 << 40);
        deadline_in(a, 5000);
        a.mov(ecx, 0x6E0).unwrap();
        a.rdmsr().unwrap();
        edx_eax(a, r9);
        a.sti().unwrap();
        a.hlt().unwrap();
    });
    let (m, _) = faults(&p, 0x40, 0);
    let c = &m.cores[0];
    assert_eq!(c.gpr[9], c.gpr[12], "IA32_TSC_DEADLINE reads back");
    assert!(c.tsc() >= c.gpr[12], "fired at the deadline, not before");
    assert!(
        c.cycles < 100_000,
        "fired 5000 TSC ticks later: {}",
        c.cycles
    );
}

#[test]
fn writing_the_tsc_moves_an_armed_deadline() {
    let p = program(|a, _| {
        tsc_deadline_mode(a);
        deadline_in(a, 1_000_000_000);
        // The TSC jumps to 100 ticks before the deadline.
        a.lea(rax, ptr(r12 - 100)).unwrap();
        a.mov(rdx, rax).unwrap();
        a.shr(rdx, 32).unwrap();
        a.mov(ecx, 0x10).unwrap();
        a.wrmsr().unwrap();
        a.sti().unwrap();
        a.hlt().unwrap();
    });
    let (m, _) = faults(&p, 0x40, 0);
    let c = &m.cores[0];
    assert!(c.tsc() >= c.gpr[12]);
    assert!(c.cycles < 100_000, "{}", c.cycles);
    // A deadline the written TSC has already passed fires at once.
    let p = program(|a, at| {
        tsc_deadline_mode(a);
        deadline_in(a, 1_000_000_000);
        wrmsr(a, 0x10, 1 << 50);
        // Taken after the instruction that follows `sti` (the STI shadow).
        a.sti().unwrap();
        a.nop().unwrap();
        a.set_label(at).unwrap();
        a.nop().unwrap();
    });
    faults(&p, 0x40, 0);
}

// ---- Alignment checks ---------------------------------------------------------------------

#[test]
fn unaligned_accesses_raise_ac_only_in_ring3_with_am_and_ac() {
    let p = program(|a, at| {
        a.mov(rbx, SCRATCH).unwrap();
        // Ring 0 with AM and AC: no check.
        cr0_bit(a, 18, true);
        a.pushfq().unwrap();
        a.or(qword_ptr(rsp), RFLAGS_AC as i32).unwrap();
        a.popfq().unwrap();
        a.mov(eax, dword_ptr(rbx + 1)).unwrap();
        // Ring 3 with AM, AC clear: no check.
        to_ring3(a);
        a.mov(eax, dword_ptr(rbx + 1)).unwrap();
        a.mov(rbx, SCRATCH).unwrap();
        // AC set: bytes, aligned accesses and 16-byte SSE accesses pass…
        a.pushfq().unwrap();
        a.or(qword_ptr(rsp), RFLAGS_AC as i32).unwrap();
        a.popfq().unwrap();
        a.mov(al, byte_ptr(rbx + 3)).unwrap();
        a.mov(ax, word_ptr(rbx + 2)).unwrap();
        a.mov(eax, dword_ptr(rbx + 4)).unwrap();
        a.mov(rax, qword_ptr(rbx + 8)).unwrap();
        a.movups(xmm0, xmmword_ptr(rbx + 1)).unwrap();
        a.mov(r12d, 1).unwrap();
        // …a misaligned dword does not.
        a.set_label(at).unwrap();
        a.mov(eax, dword_ptr(rbx + 2)).unwrap();
    });
    let (m, e) = faults(&p, AC, 0);
    assert_eq!(e.cs, (U_CODE | 3) as u64);
    assert_ne!(e.rflags & RFLAGS_AC, 0);
    assert_eq!(m.cores[0].gpr[12], 1);
}

/// A ring-3 program with CR0.AM and RFLAGS.AC set running `body`.
fn aligned_ring3(body: impl FnOnce(&mut CodeAssembler, &mut CodeLabel)) -> Program {
    program(|a, at| {
        cr0_bit(a, 18, true);
        to_ring3_with(a, RFLAGS_AC);
        body(a, at);
    })
}

#[test]
fn alignment_checks_cover_stack_string_and_page_straddling_accesses() {
    // A push through a misaligned RSP.
    let p = aligned_ring3(|a, at| {
        a.sub(rsp, 4).unwrap();
        a.set_label(at).unwrap();
        a.push(rax).unwrap();
    });
    let (_, e) = faults(&p, AC, 0);
    assert_eq!(e.rsp, USTACK_TOP - 4, "RSP as before the push");
    // A string instruction, element by element: the first misaligned element faults.
    let p = aligned_ring3(|a, at| {
        a.mov(rsi, SCRATCH + 2).unwrap();
        a.mov(rdi, SCRATCH + 0x100).unwrap();
        a.mov(ecx, 4).unwrap();
        a.set_label(at).unwrap();
        a.rep().movsd().unwrap();
    });
    let (m, _) = faults(&p, AC, 0);
    assert_eq!(m.cores[0].gpr[1], 4, "no element moved");
    // An access across a page boundary is misaligned: #AC, not a split access.
    let p = aligned_ring3(|a, at| {
        a.mov(rbx, SCRATCH + 0xFFE).unwrap();
        a.set_label(at).unwrap();
        a.mov(dword_ptr(rbx), eax).unwrap();
    });
    faults(&p, AC, 0);
    // Aligned string moves run.
    let p = aligned_ring3(|a, _| {
        a.mov(rsi, SCRATCH).unwrap();
        a.mov(rdi, SCRATCH + 0x100).unwrap();
        a.mov(ecx, 64).unwrap();
        a.rep().movsq().unwrap();
    });
    runs_clean(&p);
}

#[test]
fn clearing_ac_or_am_ends_alignment_checks() {
    // popf clears AC in ring 3.
    let p = aligned_ring3(|a, _| {
        a.pushfq().unwrap();
        a.and(qword_ptr(rsp), !(RFLAGS_AC as i32)).unwrap();
        a.popfq().unwrap();
        a.mov(eax, dword_ptr(SCRATCH as i32 + 1)).unwrap();
    });
    runs_clean(&p);
    // AM cleared in ring 0, then back to ring 3 with AC set.
    let p = program(|a, _| {
        cr0_bit(a, 18, true);
        cr0_bit(a, 18, false);
        to_ring3_with(a, RFLAGS_AC);
        a.mov(eax, dword_ptr(SCRATCH as i32 + 1)).unwrap();
    });
    let m = runs_clean(&p);
    assert_eq!(m.cores[0].cr0 & CR0_AM, 0);
}

// ---- #SS for memory operands through SS ---------------------------------------------------

/// `op` with `reg` = `value`, marked as `at`.
fn with_reg(reg: AsmRegister64, value: u64, op: impl FnOnce(&mut CodeAssembler)) -> Program {
    program(|a, at| {
        a.mov(reg, value).unwrap();
        a.set_label(at).unwrap();
        op(a);
    })
}

#[test]
fn non_canonical_memory_operands_through_ss_are_ss0_in_every_family() {
    let cases: Vec<(&str, Program)> = vec![
        (
            "mov rax, [rbp]",
            with_reg(rbp, HOLE, |a| a.mov(rax, qword_ptr(rbp)).unwrap()),
        ),
        (
            "add qword [rsp+8], 1",
            with_reg(rsp, HOLE, |a| a.add(qword_ptr(rsp + 8), 1).unwrap()),
        ),
        (
            "movdqu xmm0, [rbp+0x10]",
            with_reg(rbp, HOLE - 0x10, |a| {
                a.movdqu(xmm0, xmmword_ptr(rbp + 0x10)).unwrap()
            }),
        ),
        (
            "imul rax, [rsp]",
            with_reg(rsp, HOLE, |a| a.imul_2(rax, qword_ptr(rsp)).unwrap()),
        ),
        (
            "ss lodsq",
            with_reg(rsi, HOLE, |a| a.db(&[0x36, 0x48, 0xAD]).unwrap()),
        ),
        (
            "ss movsb",
            with_reg(rsi, HOLE, |a| a.db(&[0x36, 0xA4]).unwrap()),
        ),
        (
            "mov rax, ss:[rbx]",
            with_reg(rbx, HOLE, |a| a.db(&[0x36, 0x48, 0x8B, 0x03]).unwrap()),
        ),
        (
            // The operand the bit offset selects: [rbp + 0x1000] is non-canonical.
            "bt [rbp], rax",
            program(|a, at| {
                a.mov(rbp, HOLE - 0x1000).unwrap();
                a.mov(eax, 0x8000).unwrap();
                a.set_label(at).unwrap();
                a.bt(qword_ptr(rbp), rax).unwrap();
            }),
        ),
    ];
    for (what, p) in &cases {
        let (_, e) = faults(p, SS, 0);
        assert_eq!(e.vector, SS, "{what}");
    }
    // Through DS (or FS, GS, ES) a non-canonical address stays #GP(0).
    let cases: Vec<(&str, Program)> = vec![
        (
            "mov rax, [rbx]",
            with_reg(rbx, HOLE, |a| a.mov(rax, qword_ptr(rbx)).unwrap()),
        ),
        ("lodsq", with_reg(rsi, HOLE, |a| a.lodsq().unwrap())),
        (
            "movsb to a non-canonical rdi from ss:[rsi]",
            program(|a, at| {
                a.mov(rsi, SCRATCH).unwrap();
                a.mov(rdi, HOLE).unwrap();
                a.set_label(at).unwrap();
                a.db(&[0x36, 0xA4]).unwrap();
            }),
        ),
        (
            "bt [rbp], rax within the canonical range, through ds:",
            program(|a, at| {
                a.mov(rbx, HOLE - 0x1000).unwrap();
                a.mov(eax, 0x8000).unwrap();
                a.set_label(at).unwrap();
                a.bt(qword_ptr(rbx), rax).unwrap();
            }),
        ),
    ];
    for (what, p) in &cases {
        let (_, e) = faults(p, GP, 0);
        assert_eq!(e.vector, GP, "{what}");
    }
}

// ---- What pvmlab does not implement -------------------------------------------------------

#[test]
fn iretq_to_32_bit_code_reports_compatibility_mode() {
    let p = program_with(false, |a, at| {
        let mut next = a.create_label();
        a.push(K_DATA as i32).unwrap();
        a.push(KSTACK_TOP as i32).unwrap();
        a.push(2).unwrap();
        a.push(K_CODE32 as i32).unwrap();
        a.lea(rax, ptr(next)).unwrap();
        a.push(rax).unwrap();
        a.set_label(at).unwrap();
        a.iretq().unwrap();
        a.set_label(&mut next).unwrap();
    });
    let (_, end) = run(&p);
    let Some(RunEnd::Fault {
        vector,
        rip,
        report,
    }) = &end
    else {
        panic!("{end:?}")
    };
    assert_eq!((*vector, *rip), (6, p.at.unwrap()));
    assert!(
        report.contains(
            "not implemented by pvmlab: compatibility mode (a code segment with L = 0), at `iretq "
        ),
        "{report}"
    );
    assert!(!report.contains("instruction not implemented"), "{report}");
    assert_eq!(end.unwrap().exit_status(), 127);
}

#[test]
fn unimplemented_instructions_given_to_the_images_ud_handler_are_counted() {
    // The #UD handler skips R12 bytes and returns; the program runs two `popcnt`, an x87
    // `fld1`, a `ud2` (invalid, not counted) and an `iretq` to 32-bit code.
    let p = program(|a, _| {
        let mut handler = a.create_label();
        let mut body = a.create_label();
        a.jmp(body).unwrap();
        a.set_label(&mut handler).unwrap();
        a.add(qword_ptr(rsp), r12).unwrap();
        a.iretq().unwrap();
        a.set_label(&mut body).unwrap();
        set_gate_handler(a, UD, handler);
        for (len, bytes) in [
            (5, &[0xF3, 0x48, 0x0F, 0xB8, 0xC3][..]), // popcnt rax, rbx
            (5, &[0xF3, 0x48, 0x0F, 0xB8, 0xC3][..]),
            (2, &[0xD9, 0xE8][..]), // fld1
            (2, &[0x0F, 0x0B][..]), // ud2
        ] {
            a.mov(r12d, len).unwrap();
            a.db(bytes).unwrap();
        }
        // iretq to 32-bit code: the handler skips it; its frame stays on the stack.
        let mut next = a.create_label();
        a.mov(r12d, 2).unwrap();
        a.push(K_DATA as i32).unwrap();
        a.push(KSTACK_TOP as i32).unwrap();
        a.push(2).unwrap();
        a.push(K_CODE32 as i32).unwrap();
        a.lea(rax, ptr(next)).unwrap();
        a.push(rax).unwrap();
        a.iretq().unwrap();
        a.set_label(&mut next).unwrap();
        a.add(rsp, 40).unwrap();
    });
    let m = runs_clean(&p);
    let c = &m.cores[0];
    assert_eq!(c.unimplemented_ud, 4, "popcnt twice, fld1, iretq; not ud2");
    let first: Vec<&str> = c
        .unimplemented_first
        .iter()
        .map(|u| u.what.as_str())
        .collect();
    assert_eq!(
        first,
        [
            "popcnt",
            "fld1",
            "compatibility mode (a code segment with L = 0)"
        ]
    );
    let rips: Vec<u64> = c.unimplemented_first.iter().map(|u| u.rip).collect();
    assert!(
        rips[0] > BASE && rips.is_sorted() && rips[0] < rips[1],
        "{rips:#x?}"
    );
    assert_eq!(m.report(1.0).cores[0].unimplemented_ud, 4);
}

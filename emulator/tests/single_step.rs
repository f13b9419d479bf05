//! RFLAGS.TF single-stepping: a #DB trap after each instruction, delivered through the IDT
//! with the next instruction's RIP, starting after the instruction that follows the POPF that
//! set TF (SDM Vol. 3A §17.3.1.4); without an IDT the run ends with a #DB report.

use emulator::{RunConfig, RunEnd, run_image};
use iced_x86::code_asm::*;

mod common;

const BASE: u64 = 0x20_0000;

/// Installs a #DB handler that counts traps in r15 and records each saved RIP at [r14], sets
/// TF, runs straight-line code, and exits with the count once the handler clears TF after 5.
/// Returns the image bytes, the address of the RIP log, and the RIP the first trap must save.
fn program(with_idt: bool) -> (Vec<u8>, u64, u64) {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut handler = a.create_label();
    let mut idt = a.create_label();
    let mut idtr = a.create_label();
    let mut log = a.create_label();
    let mut done = a.create_label();
    if with_idt {
        // Gate for vector 1 at idt+16: 64-bit interrupt gate, selector 0x08, DPL 0.
        a.lea(rax, ptr(handler)).unwrap();
        a.lea(rbx, ptr(idt)).unwrap();
        a.mov(word_ptr(rbx + 16), ax).unwrap();
        a.mov(word_ptr(rbx + 18), 0x08).unwrap();
        a.mov(word_ptr(rbx + 20), 0x8E00).unwrap();
        a.shr(rax, 16).unwrap();
        a.mov(word_ptr(rbx + 22), ax).unwrap();
        a.shr(rax, 16).unwrap();
        a.mov(dword_ptr(rbx + 24), eax).unwrap();
        a.lea(rax, ptr(idtr)).unwrap();
        a.mov(word_ptr(rax), 32 - 1).unwrap();
        a.mov(qword_ptr(rax + 2), rbx).unwrap();
        a.lidt(ptr(rax)).unwrap();
    }
    a.xor(r15d, r15d).unwrap();
    a.lea(r14, ptr(log)).unwrap();
    a.pushfq().unwrap();
    a.or(qword_ptr(rsp), 0x100).unwrap();
    let mut popf = a.create_label();
    a.set_label(&mut popf).unwrap();
    a.popfq().unwrap();
    for _ in 0..20 {
        a.nop().unwrap();
    }
    a.set_label(&mut done).unwrap();
    a.mov(eax, r15d).unwrap();
    a.out(0xF4, eax).unwrap();

    a.set_label(&mut handler).unwrap();
    a.mov(rax, qword_ptr(rsp)).unwrap(); // saved RIP
    a.mov(qword_ptr(r14 + r15 * 8), rax).unwrap();
    a.inc(r15d).unwrap();
    a.cmp(r15d, 5).unwrap();
    let mut back = a.create_label();
    a.jb(back).unwrap();
    a.and(qword_ptr(rsp + 16), !0x100i32).unwrap(); // clear TF in the saved RFLAGS
    a.set_label(&mut back).unwrap();
    a.iretq().unwrap();

    a.set_label(&mut idt).unwrap();
    a.db(&[0u8; 32]).unwrap();
    a.set_label(&mut idtr).unwrap();
    a.db(&[0u8; 16]).unwrap();
    a.set_label(&mut log).unwrap();
    a.db(&[0u8; 64]).unwrap();
    let r = a
        .assemble_options(
            BASE,
            iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    // The first trap comes after the instruction following POPFQ: it saves the RIP of the
    // second NOP, popfq (1 byte) + nop (1 byte) past the POPFQ.
    let first = r.label_ip(&popf).unwrap() + 2;
    let log_at = r.label_ip(&log).unwrap();
    (r.inner.code_buffer, log_at, first)
}

#[test]
fn tf_traps_after_each_instruction_until_cleared() {
    let (code, log, first) = program(true);
    let desc = emulator::MachineDesc::load("1s").unwrap();
    let mut m = emulator::Machine::new(&desc).unwrap();
    m.load_elf(&common::elf(&code, BASE, BASE), true, "")
        .unwrap();
    let end = m.run_for(u64::MAX, Some(10_000));
    assert_eq!(
        end,
        Some(RunEnd::Exit(5)),
        "five #DB traps, then TF cleared by the handler"
    );
    // Saved RIPs: each trap after one 1-byte NOP, the first after the NOP following POPFQ.
    let mut b = [0u8; 40];
    m.sys.ram.read(log, &mut b).unwrap();
    let rips: Vec<u64> = b
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(rips[0], first, "{rips:x?}");
    for w in rips.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{rips:x?}");
    }
}

#[test]
fn without_an_idt_single_step_ends_the_run_with_a_report() {
    let (code, _, _) = program(false);
    let cfg = RunConfig {
        bsp_only: true,
        ..Default::default()
    };
    let o = run_image(&common::elf(&code, BASE, BASE), &cfg).unwrap();
    let RunEnd::Fault { vector, report, .. } = &o.end else {
        panic!("{:?}", o.end)
    };
    assert_eq!(*vector, 1);
    assert!(report.contains("#DB"), "{report}");
}

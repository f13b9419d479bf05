//! The annotation port (abi::annotate): domains named and announced by software get the work
//! of the cores that run them, and bad arguments are ignored without a fault.

use emulator::{RunConfig, RunEnd, run_image};
use iced_x86::code_asm::*;

mod common;

const BASE: u64 = 0x20_0000;

/// Names domain 7 "guest", runs 1000 loop iterations in it, then 500 in unnamed domain 9,
/// sends two bad commands, and exits.
fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut name = a.create_label();
    let mut l1 = a.create_label();
    let mut l2 = a.create_label();
    a.mov(edi, 7).unwrap();
    a.lea(rsi, ptr(name)).unwrap();
    a.mov(edx, 5).unwrap();
    a.mov(eax, 1).unwrap();
    a.out(0xEA, eax).unwrap();
    a.mov(esi, 0).unwrap();
    a.mov(eax, 2).unwrap();
    a.out(0xEA, eax).unwrap();
    a.mov(ecx, 1000).unwrap();
    a.set_label(&mut l1).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(l1).unwrap();
    a.mov(edi, 9).unwrap();
    a.mov(eax, 2).unwrap();
    a.out(0xEA, eax).unwrap();
    a.mov(ecx, 500).unwrap();
    a.set_label(&mut l2).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(l2).unwrap();
    // Bad: an unknown command, and a name at an unmapped address.
    a.mov(eax, 77).unwrap();
    a.out(0xEA, eax).unwrap();
    a.mov(edi, 3).unwrap();
    a.mov(esi, 0x10).unwrap();
    a.mov(edx, 4).unwrap();
    a.mov(eax, 1).unwrap();
    a.out(0xEA, eax).unwrap();
    a.mov(eax, 0).unwrap();
    a.out(0xF4, eax).unwrap();
    a.set_label(&mut name).unwrap();
    a.db(b"guest").unwrap();
    a.assemble(BASE).unwrap()
}

#[test]
fn work_is_charged_to_the_announced_domains() {
    let cfg = RunConfig {
        bsp_only: true,
        timing: true,
        ..Default::default()
    };
    let o = run_image(&common::elf(&program(), BASE, BASE), &cfg).unwrap();
    assert_eq!(o.end, RunEnd::Exit(0));
    let d = &o.report.domains;
    let guest = d.iter().find(|d| d.domain == 7).expect("domain 7 reported");
    assert_eq!(guest.name, "guest");
    // `mov ecx`, 1000 iterations of dec+jnz, and the three instructions announcing domain 9.
    assert_eq!(guest.instructions, 1 + 2000 + 3);
    let other = d.iter().find(|d| d.domain == 9).expect("domain 9 reported");
    assert_eq!(other.name, "");
    assert!(other.instructions >= 1000);
    let none = d
        .iter()
        .find(|d| d.domain == abi::annotate::NO_DOMAIN)
        .unwrap();
    assert_eq!(none.name, "(none)");
    assert_eq!(
        none.instructions, 8,
        "the instructions before the first announcement"
    );
    let total: u64 = d.iter().map(|d| d.instructions).sum();
    assert_eq!(
        total, o.instructions,
        "every instruction is charged to exactly one domain"
    );
    let cycles: u64 = d.iter().map(|d| d.cycles).sum();
    assert_eq!(cycles, o.cycles);
    assert!(
        !d.iter().any(|d| d.domain == 3),
        "the unreadable name was ignored"
    );
}

#[test]
fn nothing_announced_means_no_domain_table() {
    let code = [0xB8, 0, 0, 0, 0, 0xE7, 0xF4]; // mov eax, 0; out 0xF4, eax
    let o = run_image(
        &common::elf(&code, BASE, BASE),
        &RunConfig {
            bsp_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(o.report.domains.is_empty());
}

//! Self-tests of the differential oracle's harness: the native stub really runs the
//! instruction (known results), and the comparison really catches a difference.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::code_asm::*;
use oracle::make::{self, Rng};
use oracle::{Case, TEST_RIP, Verdict, native, run_case};

fn asm(f: impl FnOnce(&mut CodeAssembler)) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a);
    a.assemble(TEST_RIP).unwrap()
}

fn case(rng: &mut Rng, bytes: Vec<u8>) -> Case {
    let mut c = make::base_case(rng, make::Lane::Any);
    c.set_bytes(bytes);
    c
}

#[test]
fn native_runs_the_instruction() {
    let mut rng = Rng::new(1);
    let mut c = case(&mut rng, asm(|a| a.add(rax, rcx).unwrap()));
    c.regs.gpr[0] = u64::MAX;
    c.regs.gpr[1] = 2;
    c.regs.rflags = 0x202;
    let (out, mem) = native::run(&c.bytes, &c.regs, &c.mem);
    assert_eq!(out.gpr[0], 1);
    assert_eq!(out.gpr[1], 2);
    assert_eq!(out.rflags & 0x8D5, 0x11, "CF and AF"); // CF | AF
    assert_eq!(out.rip, TEST_RIP + c.bytes.len() as u64);
    assert_eq!(mem, c.mem);
    for i in 2..16 {
        assert_eq!(out.gpr[i], c.regs.gpr[i], "gpr {i}");
    }
    assert_eq!(out.xmm, c.regs.xmm);
    assert_eq!(out.mxcsr, c.regs.mxcsr);

    // A store through RSP lands in the scratch memory; DF and MXCSR round-trip.
    let mut c = case(&mut rng, asm(|a| a.push(rbx).unwrap()));
    c.regs.rflags = 0x202 | 0x400 | 0x80;
    c.regs.mxcsr = 0x7F80 | 0x3F;
    let sp0 = c.regs.gpr[4];
    let (out, mem) = native::run(&c.bytes, &c.regs, &c.mem);
    assert_eq!(out.gpr[4], sp0 - 8);
    let o = (sp0 - 8 - oracle::SCRATCH_BASE) as usize;
    assert_eq!(
        u64::from_le_bytes(mem[o..o + 8].try_into().unwrap()),
        c.regs.gpr[3]
    );
    assert_eq!(out.rflags & 0xCD5, 0x480);
    assert_eq!(out.mxcsr, 0x7F80 | 0x3F);

    // A taken branch lands on a pad that records its address.
    let c = case(&mut rng, asm(|a| a.jmp(TEST_RIP + 0x100).unwrap()));
    let (out, _) = native::run(&c.bytes, &c.regs, &c.mem);
    assert_eq!(out.rip, TEST_RIP + 0x100);

    // SSE: the XMM file and MXCSR flags come back.
    let mut c = case(&mut rng, asm(|a| a.divss(xmm3, xmm9).unwrap()));
    c.regs.xmm[3] = 1.0f32.to_bits() as u128;
    c.regs.xmm[9] = 0.0f32.to_bits() as u128;
    c.regs.mxcsr = 0x1F80;
    let (out, _) = native::run(&c.bytes, &c.regs, &c.mem);
    assert_eq!(out.xmm[3] as u32, f32::INFINITY.to_bits());
    assert_eq!(out.mxcsr, 0x1F80 | 4, "ZE");
}

#[test]
fn comparison_catches_differences() {
    let mut rng = Rng::new(2);
    for (emu, host) in [
        (
            asm(|a| a.add(rax, rcx).unwrap()),
            asm(|a| a.sub(rax, rcx).unwrap()),
        ),
        (
            asm(|a| a.mov(qword_ptr(rsp - 8), rax).unwrap()),
            asm(|a| a.mov(qword_ptr(rsp - 16), rax).unwrap()),
        ),
        (
            asm(|a| a.addps(xmm1, xmm2).unwrap()),
            asm(|a| a.mulps(xmm1, xmm2).unwrap()),
        ),
        (asm(|a| a.stc().unwrap()), asm(|a| a.clc().unwrap())),
        (asm(|a| a.std().unwrap()), asm(|a| a.cld().unwrap())),
    ] {
        let mut c = case(&mut rng, emu);
        c.regs.xmm[1] = 0x3F80_0000_4000_0000;
        c.regs.xmm[2] = 0x4040_0000_4080_0000;
        c.regs.gpr[1] = 5;
        c.native_bytes = Some(host);
        match run_case(&c) {
            Verdict::Mismatch(r) => println!("{r}\n"),
            Verdict::Pass => panic!("{}: difference not caught", c.text()),
            Verdict::Unimplemented => println!("{}: not implemented", c.text()),
        }
    }
}

//! The native side of the oracle: the instruction under test runs on the host CPU.
//!
//! Two fixed mappings, the same addresses the emulated machine uses (its RAM is identity
//! mapped from 1 MiB up), so RIP-relative operands, branch targets and data addresses are
//! identical on both sides:
//!
//! - `CODE_BASE` (RWX): page 0 holds the state block the stub loads and stores with absolute
//!   `[disp32]` operands; page 1 the prologue and epilogue; pages 2..4 landing pads, each
//!   `mov dword [STATE.rip], pad_address; jmp epilogue` (16 bytes), with the instruction under
//!   test written at `TEST_RIP` followed by the pad of its fall-through address.
//! - `SCRATCH_BASE` (RW): the data memory the instruction may touch, and its stack.
//!
//! The prologue saves the host's callee-saved registers, RSP and MXCSR, loads XMM0-15, MXCSR,
//! RFLAGS (status flags and DF, through `popfq`) and all 16 GPRs, RSP last, and jumps to the
//! instruction. Whatever pad it lands on records its address as the new RIP and jumps to the
//! epilogue, which stores the GPRs, switches back to the host stack, stores RFLAGS, XMM and
//! MXCSR, restores the host MXCSR, clears DF and returns.

use super::{CODE_BASE, Regs, SCRATCH_BASE, SCRATCH_LEN, TEST_RIP};
use iced_x86::code_asm::*;
use std::mem::offset_of;
use std::sync::Mutex;

pub const CODE_LEN: usize = 0x5000;
const STATE: u64 = CODE_BASE;
const HOST_RSP: u64 = CODE_BASE + 0x800;
const HOST_MXCSR: u64 = CODE_BASE + 0x808;
const PROLOGUE: u64 = CODE_BASE + 0x1000;
const EPILOGUE: u64 = CODE_BASE + 0x1800;
/// Landing pads cover `[PADS, PADS_END)`, one every 16 bytes.
pub const PADS: u64 = CODE_BASE + 0x2000;
pub const PADS_END: u64 = CODE_BASE + 0x5000;

struct Native {
    code: *mut u8,
    scratch: *mut u8,
}

// SAFETY: the two mappings are process-global and only touched under the `NATIVE` lock.
unsafe impl Send for Native {}

static NATIVE: Mutex<Option<Native>> = Mutex::new(None);

fn map_fixed(addr: u64, len: usize, prot: i32) -> *mut u8 {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    assert!(
        p as u64 == addr,
        "oracle: cannot map {len:#x} bytes at {addr:#x} (got {p:?}, errno {})",
        std::io::Error::last_os_error()
    );
    p as *mut u8
}

fn gprs() -> [AsmRegister64; 16] {
    [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ]
}

fn xmms() -> [AsmRegisterXmm; 16] {
    [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
        xmm14, xmm15,
    ]
}

fn gpr_at(i: usize) -> u64 {
    STATE + offset_of!(Regs, gpr) as u64 + 8 * i as u64
}
fn xmm_at(i: usize) -> u64 {
    STATE + offset_of!(Regs, xmm) as u64 + 16 * i as u64
}
const RFLAGS_AT: u64 = STATE + offset_of!(Regs, rflags) as u64;
const MXCSR_AT: u64 = STATE + offset_of!(Regs, mxcsr) as u64;
const RIP_AT: u64 = STATE + offset_of!(Regs, rip) as u64;

fn prologue() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r).unwrap();
    }
    a.mov(qword_ptr(HOST_RSP), rsp).unwrap();
    a.stmxcsr(dword_ptr(HOST_MXCSR)).unwrap();
    for (i, x) in xmms().into_iter().enumerate() {
        a.movdqu(x, xmmword_ptr(xmm_at(i))).unwrap();
    }
    a.ldmxcsr(dword_ptr(MXCSR_AT)).unwrap();
    a.push(qword_ptr(RFLAGS_AT)).unwrap();
    a.popfq().unwrap();
    for (i, r) in gprs().into_iter().enumerate() {
        if i != 4 {
            a.mov(r, qword_ptr(gpr_at(i))).unwrap();
        }
    }
    a.mov(rsp, qword_ptr(gpr_at(4))).unwrap();
    a.jmp(TEST_RIP).unwrap();
    a.assemble(PROLOGUE).unwrap()
}

fn epilogue() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    for (i, r) in gprs().into_iter().enumerate() {
        a.mov(qword_ptr(gpr_at(i)), r).unwrap();
    }
    a.mov(rsp, qword_ptr(HOST_RSP)).unwrap();
    a.pushfq().unwrap();
    a.pop(rax).unwrap();
    a.mov(qword_ptr(RFLAGS_AT), rax).unwrap();
    for (i, x) in xmms().into_iter().enumerate() {
        a.movdqu(xmmword_ptr(xmm_at(i)), x).unwrap();
    }
    a.stmxcsr(dword_ptr(MXCSR_AT)).unwrap();
    a.ldmxcsr(dword_ptr(HOST_MXCSR)).unwrap();
    a.cld().unwrap();
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r).unwrap();
    }
    a.ret().unwrap();
    a.assemble(EPILOGUE).unwrap()
}

/// The 16-byte landing pad at `at`: records `at` as the RIP reached and jumps to the epilogue.
pub fn pad(at: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..3].copy_from_slice(&[0xC7, 0x04, 0x25]);
    p[3..7].copy_from_slice(&(RIP_AT as u32).to_le_bytes());
    p[7..11].copy_from_slice(&(at as u32).to_le_bytes());
    p[11] = 0xE9;
    let rel = EPILOGUE.wrapping_sub(at + 16) as u32;
    p[12..16].copy_from_slice(&rel.to_le_bytes());
    p
}

impl Native {
    fn new() -> Native {
        let code = map_fixed(
            CODE_BASE,
            CODE_LEN,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        );
        let scratch = map_fixed(
            SCRATCH_BASE,
            SCRATCH_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
        );
        let n = Native { code, scratch };
        n.write(PROLOGUE, &prologue());
        n.write(EPILOGUE, &epilogue());
        n.reset_pads(PADS, PADS_END);
        n
    }

    fn write(&self, at: u64, bytes: &[u8]) {
        assert!(at >= CODE_BASE && at + bytes.len() as u64 <= CODE_BASE + CODE_LEN as u64);
        // SAFETY: checked to lie inside the code mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.code.add((at - CODE_BASE) as usize),
                bytes.len(),
            )
        };
    }

    fn reset_pads(&self, from: u64, to: u64) {
        let mut a = from & !15;
        while a < to {
            self.write(a, &pad(a));
            a += 16;
        }
    }

    fn run(&self, bytes: &[u8], regs: &Regs, mem: &[u8]) -> (Regs, Vec<u8>) {
        assert_eq!(mem.len(), SCRATCH_LEN);
        self.write(TEST_RIP, bytes);
        let fall = TEST_RIP + bytes.len() as u64;
        self.write(fall, &pad(fall));
        // SAFETY: the scratch mapping is SCRATCH_LEN bytes long.
        unsafe { std::ptr::copy_nonoverlapping(mem.as_ptr(), self.scratch, SCRATCH_LEN) };
        let mut state = *regs;
        state.rip = 0;
        // SAFETY: the state block is at the start of the code mapping (page 0).
        unsafe { std::ptr::write(STATE as *mut Regs, state) };
        // SAFETY: the stub saves and restores every callee-saved register, RSP, MXCSR and DF
        // (System V ABI); everything else it clobbers is caller-saved. The instruction under
        // test touches only the scratch mapping and its own registers (the generators make
        // sure of that), and cannot fault (the generators avoid inputs that would).
        unsafe {
            let f: extern "C" fn() = std::mem::transmute(PROLOGUE as usize);
            f();
        }
        // SAFETY: as above.
        let out = unsafe { std::ptr::read(STATE as *const Regs) };
        let mut after = vec![0u8; SCRATCH_LEN];
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(self.scratch, after.as_mut_ptr(), SCRATCH_LEN) };
        self.reset_pads(TEST_RIP, fall + 16);
        (out, after)
    }
}

/// Runs `bytes` (one instruction, at `TEST_RIP`) natively from `regs` and scratch memory
/// `mem`; returns the registers (with `rip` = where execution went) and memory after.
pub fn run(bytes: &[u8], regs: &Regs, mem: &[u8]) -> (Regs, Vec<u8>) {
    let mut g = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(Native::new).run(bytes, regs, mem)
}

//! The IDT (SDM Vol. 3A §6.10–6.14): interrupt gates for every exception vector, two
//! software-interrupt vectors (one callable from ring 3, one not), #DF on its own IST stack;
//! entry stubs that save the interrupted state into a [`TrapFrame`] (switching GS with
//! `swapgs` when they come from ring 3), and the dispatcher that handles what the kernel
//! expects and reports what it does not.

use core::arch::naked_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use super::arch::{Global, cr2};
use super::gdt::{self, KERNEL_CS};
use super::syscall::resume_kernel;
use super::{apic, debug, log, net, paging, percpu, smp, user};
use baremetal::Console;

pub const DE: u8 = 0;
pub const DB: u8 = 1;
pub const BP: u8 = 3;
pub const UD: u8 = 6;
pub const DF: u8 = 8;
pub const GP: u8 = 13;
pub const PF: u8 = 14;
/// `int 0x80`: a gate with DPL 3, so ring 3 may raise it.
pub const INT_USER: u8 = 0x80;
/// `int 0x81`: DPL 0, so `int 0x81` in ring 3 is a #GP.
pub const INT_KERNEL: u8 = 0x81;

/// What `enter_user` returns when the expected #DF ended the ring-3 program.
pub const STATUS_DOUBLE_FAULT: u64 = 0xDF;
/// Exit status after an exception the kernel did not expect.
pub const EXIT_UNEXPECTED: u32 = 3;
/// Exit status after a double fault the kernel did not expect.
pub const EXIT_DOUBLE_FAULT: u32 = 8;

/// The interrupted state, as the stubs leave it on the stack (lowest address first): general
/// registers, then the vector and error code (0 if the CPU pushed none), then the CPU's frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The part shared by every stub: [rsp] = vector, [rsp + 8] = error code, [rsp + 24] = CS.
/// XMM registers are saved too: the handlers are compiled Rust, which may use them.
#[unsafe(naked)]
extern "C" fn isr_common() {
    naked_asm!(
        "test byte ptr [rsp + 24], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "push rax", "push rcx", "push rdx", "push rbx", "push rbp", "push rsi", "push rdi",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "lea rdi, [rsp]",
        "sub rsp, 256",
        "movaps [rsp], xmm0", "movaps [rsp + 16], xmm1", "movaps [rsp + 32], xmm2",
        "movaps [rsp + 48], xmm3", "movaps [rsp + 64], xmm4", "movaps [rsp + 80], xmm5",
        "movaps [rsp + 96], xmm6", "movaps [rsp + 112], xmm7", "movaps [rsp + 128], xmm8",
        "movaps [rsp + 144], xmm9", "movaps [rsp + 160], xmm10", "movaps [rsp + 176], xmm11",
        "movaps [rsp + 192], xmm12", "movaps [rsp + 208], xmm13", "movaps [rsp + 224], xmm14",
        "movaps [rsp + 240], xmm15",
        "cld",
        "call {trap}",
        "movaps xmm0, [rsp]", "movaps xmm1, [rsp + 16]", "movaps xmm2, [rsp + 32]",
        "movaps xmm3, [rsp + 48]", "movaps xmm4, [rsp + 64]", "movaps xmm5, [rsp + 80]",
        "movaps xmm6, [rsp + 96]", "movaps xmm7, [rsp + 112]", "movaps xmm8, [rsp + 128]",
        "movaps xmm9, [rsp + 144]", "movaps xmm10, [rsp + 160]", "movaps xmm11, [rsp + 176]",
        "movaps xmm12, [rsp + 192]", "movaps xmm13, [rsp + 208]", "movaps xmm14, [rsp + 224]",
        "movaps xmm15, [rsp + 240]",
        "add rsp, 256",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rdi", "pop rsi", "pop rbp", "pop rbx", "pop rdx", "pop rcx", "pop rax",
        "test byte ptr [rsp + 24], 3",
        "jz 3f",
        "swapgs",
        "3:",
        "add rsp, 16",
        "iretq",
        trap = sym trap,
    );
}

/// One entry stub per vector: pushes a zero error code where the CPU pushes none, then the
/// vector, and joins `isr_common`.
macro_rules! stubs {
    ($($name:ident = $vector:literal $($err:ident)?;)*) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $name() {
                naked_asm!(
                    stubs!(@zero $($err)?),
                    "push {vector}",
                    "jmp {common}",
                    vector = const $vector,
                    common = sym isr_common,
                );
            }
        )*
        /// (vector, stub) for every stub.
        const STUBS: &[(u8, extern "C" fn())] = &[$(($vector, $name)),*];
    };
    (@zero err) => { "" };
    (@zero) => { "push 0" };
}

stubs! {
    vec0 = 0; vec1 = 1; vec2 = 2; vec3 = 3; vec4 = 4; vec5 = 5; vec6 = 6; vec7 = 7;
    vec8 = 8 err; vec9 = 9; vec10 = 10 err; vec11 = 11 err; vec12 = 12 err; vec13 = 13 err;
    vec14 = 14 err; vec15 = 15; vec16 = 16; vec17 = 17 err; vec18 = 18; vec19 = 19;
    vec20 = 20; vec21 = 21 err; vec22 = 22; vec23 = 23; vec24 = 24; vec25 = 25; vec26 = 26;
    vec27 = 27; vec28 = 28; vec29 = 29 err; vec30 = 30 err; vec31 = 31;
    vec_timer = 0x20; vec_token = 0x40; vec_broadcast = 0x41;
    vec_net0 = 0x50; vec_net1 = 0x51; vec_net_done = 0x52;
    vec_int_user = 0x80; vec_int_kernel = 0x81; vec_spurious = 0xFF;
}

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);

static IDT: Global<Idt> = Global::new(Idt([[0; 2]; 256]));

/// A 64-bit interrupt gate (type 0xE: IF cleared on entry) to `handler` in the kernel's code
/// segment (SDM Vol. 3A Figure 6-8).
fn gate(handler: u64, dpl: u64, ist: u64) -> [u64; 2] {
    let low = (handler & 0xFFFF)
        | (KERNEL_CS as u64) << 16
        | ist << 32
        | (0x8E | dpl << 5) << 40
        | (handler >> 16 & 0xFFFF) << 48;
    [low, handler >> 32]
}

/// Fills the IDT (core 0, once).
pub fn init() {
    for &(vector, stub) in STUBS {
        let dpl = match vector {
            BP | INT_USER => 3,
            _ => 0,
        };
        let ist = if vector == DF { 1 } else { 0 };
        // SAFETY: core 0 fills the table before any core loads it.
        unsafe { (*IDT.get()).0[vector as usize] = gate(stub as *const () as u64, dpl, ist) };
    }
}

/// Sets or clears the present bit of `vector`'s gate (for the kernel's deliberate failures).
pub fn set_present(vector: u8, present: bool) {
    // SAFETY: one bit of a gate the kernel owns; the CPU reads the gate when it next delivers.
    unsafe {
        let g = &raw mut (*IDT.get()).0[vector as usize][0];
        let bit = 1u64 << 47;
        g.write_volatile(if present {
            g.read_volatile() | bit
        } else {
            g.read_volatile() & !bit
        });
    }
}

/// Loads the IDT (every core).
pub fn load() {
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&(256u16 * 16 - 1).to_le_bytes());
    idtr[2..].copy_from_slice(&IDT.addr().to_le_bytes());
    // SAFETY: every gate the table holds leads to a stub above.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) idtr.as_ptr(), options(nostack)) };
}

/// The IDT's address (what `sidt` should read back).
pub fn base() -> u64 {
    IDT.addr()
}

/// Set by the kernel before it lets ring 3 overflow the kernel stack on purpose.
pub static EXPECT_DOUBLE_FAULT: AtomicBool = AtomicBool::new(false);

/// Called by `isr_common` with the interrupted state.
extern "C" fn trap(f: &mut TrapFrame) {
    let cr2 = cr2();
    let vector = f.vector as u8;
    let from_user = f.cs & 3 == 3;
    match vector {
        PF if from_user
            && cr2 & !0xFFF == paging::USER_LAZY
            && f.error & 1 == 0
            && paging::map_lazy() =>
        {
            log::record(log::id::LAZY, f, cr2);
            return;
        }
        DB if debug::trap(f) => return,
        BP if from_user => {
            log::record(log::id::BREAKPOINT, f, cr2);
            return;
        }
        INT_USER if from_user => {
            log::record(log::id::INT_USER, f, cr2);
            f.rax = f.rax.wrapping_mul(6);
            return;
        }
        DF => double_fault(f, cr2),
        apic::TIMER_VECTOR => {
            let n = apic::tick(from_user, baremetal::rdtsc());
            paging::set_user_data(paging::TICKS_WORD, n);
            apic::eoi();
            return;
        }
        apic::TOKEN_VECTOR => return smp::token(),
        apic::BROADCAST_VECTOR => return smp::broadcast(),
        v if (net::VECTOR..net::VECTOR + net::QUEUES as u8).contains(&v) => {
            return net::interrupt((v - net::VECTOR) as usize);
        }
        // Only wakes core 0 from `hlt`.
        net::DONE_VECTOR => return apic::eoi(),
        // Never raised by the model; no EOI for a spurious interrupt (SDM §11.9).
        apic::SPURIOUS_VECTOR => return,
        _ => {}
    }
    if let Some(fix) = user::find_fixup(f.rip) {
        log::record(fix.id, f, cr2);
        f.rip = fix.resume;
        return;
    }
    unexpected(f, cr2, "unexpected");
    baremetal::exit(EXIT_UNEXPECTED);
}

/// #DF: expected once, when ring 3 raises an interrupt while TSS.RSP0 points at the guard
/// page (the kernel stack "overflowed"); the handler runs on IST1. The interrupted program
/// cannot be resumed (the SDM leaves the saved state undefined), so the kernel ends it.
fn double_fault(f: &mut TrapFrame, cr2: u64) -> ! {
    let core = percpu::core();
    if EXPECT_DOUBLE_FAULT.swap(false, Ordering::AcqRel) {
        log::record(log::id::DOUBLE_FAULT, f, cr2);
        gdt::set_rsp0(core, gdt::kernel_stack(core).1);
        resume_kernel(STATUS_DOUBLE_FAULT);
    }
    unexpected(f, cr2, "double fault");
    baremetal::exit(EXIT_DOUBLE_FAULT)
}

/// Reports an exception the kernel has no use for, straight to the console (no lock: the
/// fault may have hit while it was held).
fn unexpected(f: &TrapFrame, cr2: u64, what: &str) {
    let _ = writeln!(
        Console,
        "kernel: {what}: vector {} error {:#x} at rip {:#x} cs {:#x} rsp {:#x} cr2 {cr2:#x}",
        f.vector, f.error, f.rip, f.cs, f.rsp
    );
}

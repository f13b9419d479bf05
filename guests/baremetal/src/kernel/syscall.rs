//! System calls (SDM Vol. 3A §5.8.8): `syscall` enters at LSTAR with CS/SS from STAR, IF
//! and friends masked by FMASK; the entry switches GS and stacks, saves the user's registers
//! and calls [`dispatch`]; `sysret` goes back. Also the two halves of running a ring-3
//! program: [`enter_user`] (IRETQ to ring 3, keeping the kernel's context) and
//! [`resume_kernel`] (abandon the ring-3 program, return from `enter_user`).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::arch::{
    EFER_NXE, EFER_SCE, MSR_EFER, MSR_FMASK, MSR_LSTAR, MSR_STAR, rdmsr, segments, wrmsr,
};
use super::gdt::{self, KERNEL_CS, USER_CS, USER_DS, USER32_CS};
use super::idt::EXPECT_DOUBLE_FAULT;
use super::{paging, percpu};

pub const SYS_WRITE: u64 = 1;
pub const SYS_GETPID: u64 = 39;
pub const SYS_EXIT: u64 = 60;
/// Stores a value the ring-3 program observed, for the kernel's checks: `rdi` = key.
pub const SYS_REPORT: u64 = 0x100;
/// Points TSS.RSP0 at the guard page, so the next interrupt from ring 3 double-faults.
pub const SYS_ARM_DOUBLE_FAULT: u64 = 0x101;

pub const ENOSYS: u64 = 38u64.wrapping_neg();
pub const EFAULT: u64 = 14u64.wrapping_neg();

/// The pid `getpid` answers.
pub const PID: u64 = 1;

/// Keys of [`SYS_REPORT`].
pub mod key {
    pub const CS: usize = 0;
    pub const SS: usize = 1;
    pub const WRITE: usize = 2;
    pub const PID: usize = 3;
    pub const CLOBBERED: usize = 4;
    pub const GS: usize = 5;
    pub const LAZY: usize = 6;
    pub const RO: usize = 7;
    pub const INT_USER: usize = 8;
    pub const RFLAGS: usize = 9;
    pub const COUNT: usize = 10;
}

/// Values reported by ring 3, by key (`u64::MAX` = never reported).
pub static REPORTS: [AtomicU64; key::COUNT] = [const { AtomicU64::new(u64::MAX) }; key::COUNT];
/// What the kernel saw inside its first system call: CS, SS and `gs:[0]`.
pub static SEEN_CS: AtomicU64 = AtomicU64::new(0);
pub static SEEN_SS: AtomicU64 = AtomicU64::new(0);
pub static SEEN_GS: AtomicU64 = AtomicU64::new(0);
pub static SEEN_RFLAGS: AtomicU64 = AtomicU64::new(0);
static SEEN: AtomicBool = AtomicBool::new(false);
/// Bytes the write system call put on the console.
pub static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Sets up `syscall`/`sysret` on this core: EFER.SCE (and NXE, which the tables use), STAR
/// with the kernel's and the user's selectors, LSTAR, and FMASK clearing IF, TF, DF, AC.
pub fn init() {
    // SAFETY: the GDT has the layout STAR describes (gdt.rs), and `entry` is ready to run.
    unsafe {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE | EFER_NXE);
        wrmsr(
            MSR_STAR,
            (USER32_CS as u64) << 48 | (KERNEL_CS as u64) << 32,
        );
        wrmsr(MSR_LSTAR, entry as *const () as u64);
        wrmsr(MSR_FMASK, 1 << 9 | 1 << 8 | 1 << 10 | 1 << 18);
    }
    debug_assert_eq!(USER32_CS + 8, USER_DS);
    debug_assert_eq!(USER32_CS + 16, USER_CS);
}

/// The registers of the ring-3 program during a system call (lowest address first).
#[repr(C)]
pub struct SyscallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rax: u64,
    /// RFLAGS and RIP as `syscall` saved them.
    pub r11: u64,
    pub rcx: u64,
    pub user_rsp: u64,
}

/// LSTAR: `swapgs`, the kernel stack from the per-core area, every register saved (XMM too:
/// the dispatcher is compiled Rust), [`dispatch`], and back with `sysretq`.
#[unsafe(naked)]
extern "C" fn entry() {
    naked_asm!(
        "swapgs",
        "mov gs:[{user_rsp}], rsp",
        "mov rsp, gs:[{kernel_rsp}]",
        "push qword ptr gs:[{user_rsp}]",
        "push rcx", "push r11", "push rax", "push rdi", "push rsi", "push rdx", "push r10",
        "push r8", "push r9", "push rbx", "push rbp", "push r12", "push r13", "push r14",
        "push r15",
        "lea rdi, [rsp]",
        "sub rsp, 256",
        "movaps [rsp], xmm0", "movaps [rsp + 16], xmm1", "movaps [rsp + 32], xmm2",
        "movaps [rsp + 48], xmm3", "movaps [rsp + 64], xmm4", "movaps [rsp + 80], xmm5",
        "movaps [rsp + 96], xmm6", "movaps [rsp + 112], xmm7", "movaps [rsp + 128], xmm8",
        "movaps [rsp + 144], xmm9", "movaps [rsp + 160], xmm10", "movaps [rsp + 176], xmm11",
        "movaps [rsp + 192], xmm12", "movaps [rsp + 208], xmm13", "movaps [rsp + 224], xmm14",
        "movaps [rsp + 240], xmm15",
        "call {dispatch}",
        "movaps xmm0, [rsp]", "movaps xmm1, [rsp + 16]", "movaps xmm2, [rsp + 32]",
        "movaps xmm3, [rsp + 48]", "movaps xmm4, [rsp + 64]", "movaps xmm5, [rsp + 80]",
        "movaps xmm6, [rsp + 96]", "movaps xmm7, [rsp + 112]", "movaps xmm8, [rsp + 128]",
        "movaps xmm9, [rsp + 144]", "movaps xmm10, [rsp + 160]", "movaps xmm11, [rsp + 176]",
        "movaps xmm12, [rsp + 192]", "movaps xmm13, [rsp + 208]", "movaps xmm14, [rsp + 224]",
        "movaps xmm15, [rsp + 240]",
        "add rsp, 256",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx", "pop r9", "pop r8",
        "pop r10", "pop rdx", "pop rsi", "pop rdi", "pop rax", "pop r11", "pop rcx",
        "mov rsp, [rsp]",
        "swapgs",
        "sysretq",
        user_rsp = const percpu::USER_RSP,
        kernel_rsp = const percpu::KERNEL_RSP,
        dispatch = sym dispatch,
    );
}

fn rflags() -> u64 {
    let f: u64;
    // SAFETY: `pushfq; pop` only moves RFLAGS into a register.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) f) };
    f
}

/// Whether `[ptr, ptr + len)` lies in memory ring 3 may read: its code pages or its region.
fn user_readable(ptr: u64, len: u64) -> bool {
    let Some(end) = ptr.checked_add(len) else {
        return false;
    };
    let (text, text_end) = paging::user_text();
    (ptr >= text && end <= text_end) || (ptr >= paging::USER_BASE && end <= paging::USER_STACK_TOP)
}

extern "C" fn dispatch(f: &mut SyscallFrame) {
    if !SEEN.swap(true, Ordering::Relaxed) {
        let [cs, ss, ..] = segments();
        SEEN_CS.store(cs as u64, Ordering::Relaxed);
        SEEN_SS.store(ss as u64, Ordering::Relaxed);
        SEEN_GS.store(percpu::gs_self(), Ordering::Relaxed);
        SEEN_RFLAGS.store(rflags(), Ordering::Relaxed);
    }
    f.rax = match f.rax {
        SYS_WRITE => {
            let (ptr, len) = (f.rdi, f.rsi);
            if len > 4096 || !user_readable(ptr, len) {
                EFAULT
            } else {
                // SAFETY: checked to lie in pages mapped for ring 3, which ring 0 may read.
                let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) };
                baremetal::print!("{}", core::str::from_utf8(bytes).unwrap_or("(not UTF-8)\n"));
                WRITTEN.fetch_add(len, Ordering::Relaxed);
                len
            }
        }
        SYS_GETPID => PID,
        SYS_REPORT => match REPORTS.get(f.rdi as usize) {
            Some(slot) => {
                slot.store(f.rsi, Ordering::Relaxed);
                0
            }
            None => ENOSYS,
        },
        SYS_ARM_DOUBLE_FAULT => {
            let core = percpu::core();
            EXPECT_DOUBLE_FAULT.store(true, Ordering::Release);
            // The guard page's top: the first push of the next ring-3 interrupt faults.
            gdt::set_rsp0(core, gdt::guard_pages(core)[0] + 4096);
            0
        }
        SYS_EXIT => resume_kernel(f.rdi),
        _ => ENOSYS,
    };
}

/// Runs `rip` in ring 3 on the stack `rsp`, with interrupts enabled there, until it calls
/// `exit` (or a handler ends it); returns the status it ended with. The kernel's callee-saved
/// registers and stack pointer wait in the per-core area.
#[unsafe(naked)]
pub extern "C" fn enter_user(rip: u64, rsp: u64) -> u64 {
    naked_asm!(
        "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
        "mov gs:[{context}], rsp",
        "push {user_ds}",
        "push rsi",
        "push 0x202",
        "push {user_cs}",
        "push rdi",
        "swapgs",
        // Ring 3 starts with clean registers: nothing of the kernel's leaks.
        "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx", "xor esi, esi",
        "xor edi, edi", "xor ebp, ebp", "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d",
        "xor r11d, r11d", "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d",
        "xor r15d, r15d",
        "iretq",
        context = const percpu::KERNEL_CONTEXT,
        user_ds = const USER_DS,
        user_cs = const USER_CS,
    );
}

/// Returns from [`enter_user`] with `status`, abandoning the ring-3 program and whatever
/// kernel stack this runs on (a system call's or a handler's). Ring 0, kernel GS.
#[unsafe(naked)]
pub extern "C" fn resume_kernel(status: u64) -> ! {
    naked_asm!(
        "mov rax, rdi",
        "mov rsp, gs:[{context}]",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
        "ret",
        context = const percpu::KERNEL_CONTEXT,
    );
}

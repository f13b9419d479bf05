//! Per-core kernel data, reached through GS in ring 0: `syscall` arrives with the user's
//! stack, so its entry needs somewhere to find the kernel stack before it has one; `swapgs`
//! exchanges the user's GS base with this area's (SDM Vol. 2B SWAPGS).

use core::arch::asm;

use super::arch::{Global, MSR_GS_BASE, MSR_KERNEL_GS_BASE, wrmsr};
use super::gdt::{self, MAX_CORES};
use super::paging::USER_DATA;

/// Field offsets, for the assembly entry paths.
pub const KERNEL_RSP: usize = 8;
pub const USER_RSP: usize = 16;
pub const KERNEL_CONTEXT: usize = 24;
pub const CORE: usize = 32;

#[repr(C)]
pub struct PerCpu {
    /// This area's own address (so `gs:[0]` tells which area GS points at).
    pub this: u64,
    /// Top of the kernel stack `syscall` switches to.
    pub kernel_rsp: u64,
    /// The user's stack pointer during a system call.
    pub user_rsp: u64,
    /// The kernel's stack pointer saved by `enter_user`, for `resume_kernel`.
    pub kernel_context: u64,
    pub core: u64,
}

static PERCPU: Global<[PerCpu; MAX_CORES]> = Global::new(
    [const {
        PerCpu {
            this: 0,
            kernel_rsp: 0,
            user_rsp: 0,
            kernel_context: 0,
            core: 0,
        }
    }; MAX_CORES],
);

/// The address of core `core`'s area.
pub fn area(core: usize) -> u64 {
    // SAFETY: only the address is taken.
    unsafe { &raw mut (*PERCPU.get())[core] as u64 }
}

/// Fills core `core`'s area and points GS at it; the user's GS base (the user data page) waits
/// in KERNEL_GS_BASE for the first `swapgs` towards ring 3.
pub fn init(core: usize) {
    let p = area(core) as *mut PerCpu;
    // SAFETY: each core initialises its own slot before using it.
    unsafe {
        p.write(PerCpu {
            this: p as u64,
            kernel_rsp: gdt::kernel_stack(core).1,
            user_rsp: 0,
            kernel_context: 0,
            core: core as u64,
        });
        wrmsr(MSR_GS_BASE, p as u64);
        wrmsr(MSR_KERNEL_GS_BASE, USER_DATA);
    }
}

/// The running core's index (ring 0, kernel GS).
pub fn core() -> usize {
    let c: u64;
    // SAFETY: in ring 0 GS points at this core's area.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) c, off = const CORE, options(nostack, readonly)) };
    c as usize
}

/// `gs:[0]` as the kernel sees it.
pub fn gs_self() -> u64 {
    let v: u64;
    // SAFETY: a read through GS of the current area.
    unsafe { asm!("mov {}, gs:[0]", out(reg) v, options(nostack, readonly)) };
    v
}

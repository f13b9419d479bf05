//! Small wrappers around privileged instructions, and `Global`, a static the kernel mutates
//! through raw pointers (descriptor tables, page tables, stacks: memory the CPU reads too).

use core::arch::asm;
use core::cell::UnsafeCell;

/// A `static` whose contents the kernel changes in place. Every access is `unsafe` and goes
/// through [`Global::get`]; the kernel's own rules (one core sets a structure up before anyone
/// else uses it, or each core touches only its own slot) keep the accesses apart.
#[repr(transparent)]
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's documentation: accesses are raw-pointer ones that the kernel
// orders itself, as the CPU's own accesses to these tables are.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    pub const fn get(&self) -> *mut T {
        self.0.get()
    }

    /// The address of the contents: its physical address too, since the kernel's image is
    /// identity-mapped.
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }
}

/// A 4 KiB page of memory, page-aligned (page tables, stacks, frames).
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Page(pub [u64; 512]);

impl Page {
    pub const ZERO: Page = Page([0; 512]);
}

pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

pub const EFER_SCE: u64 = 1;
pub const EFER_NXE: u64 = 1 << 11;

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an MSR the CPU implements has no memory effects (ring 0).
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// Writing an MSR changes how the CPU behaves (system calls, GS base, paging features): the
/// caller makes sure the new value is one the kernel is ready for.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack));
    }
}

pub fn cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// # Safety
/// `pml4` must be the physical address of page tables that map everything the kernel uses
/// (its code, data and stacks) where it expects them.
pub unsafe fn set_cr3(pml4: u64) {
    // SAFETY: the caller's contract. Not `nomem`: the walk reads the tables just written.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack)) };
}

/// Drops the TLB entry of the page holding `va`.
pub fn invlpg(va: u64) {
    // SAFETY: `invlpg` only drops a cached translation. Not `nomem`: it orders the page-table
    // writes before it.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// The selectors in CS, SS, DS and ES.
pub fn segments() -> [u16; 4] {
    let (cs, ss, ds, es): (u16, u16, u16, u16);
    // SAFETY: reading segment registers has no side effects.
    unsafe {
        asm!("mov {0:x}, cs", "mov {1:x}, ss", "mov {2:x}, ds", "mov {3:x}, es",
             out(reg) cs, out(reg) ss, out(reg) ds, out(reg) es, options(nomem, nostack));
    }
    [cs, ss, ds, es]
}

/// The task register (STR).
pub fn str_() -> u16 {
    let tr: u16;
    // SAFETY: STR has no side effects.
    unsafe { asm!("str {0:x}", out(reg) tr, options(nomem, nostack)) };
    tr
}

/// The limit and base in IDTR (SIDT).
pub fn sidt() -> (u16, u64) {
    let mut buf = [0u8; 10];
    // SAFETY: SIDT writes 10 bytes into `buf`.
    unsafe { asm!("sidt [{}]", in(reg) buf.as_mut_ptr(), options(nostack)) };
    (
        u16::from_le_bytes([buf[0], buf[1]]),
        u64::from_le_bytes(buf[2..10].try_into().expect("8 bytes")),
    )
}

/// Waits for an interrupt with interrupts enabled only while halted: `sti; hlt; cli`. The
/// `sti` shadow covers the `hlt`, so no interrupt slips in between; the handler runs at the
/// `hlt`, inside this asm block, so compiled code around it is never interrupted (the images
/// keep the red zone below `rsp`).
pub fn wait_for_interrupt() {
    // SAFETY: the IDT handles every interrupt the kernel enables; see above for the red zone.
    unsafe { asm!("sti", "hlt", "cli") };
}

/// Polls `done` for up to `cycles` TSC ticks, opening an interrupt window (`sti; pause; cli`)
/// between polls; returns whether `done` became true.
pub fn wait_until(cycles: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = baremetal::rdtsc();
    loop {
        if done() {
            return true;
        }
        if baremetal::rdtsc() - start > cycles {
            return done();
        }
        // SAFETY: as in `wait_for_interrupt`: an interrupt is taken at the `pause`/`cli`
        // boundary, inside this asm block.
        unsafe { asm!("sti", "pause", "cli") };
    }
}

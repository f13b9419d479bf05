//! The kernel's GDT and TSSs (SDM Vol. 3A §3.4.5, §7.2.3): a Linux-like layout — kernel code
//! and data, user code and data with DPL 3 in the order SYSCALL/SYSRET need — and one 64-bit
//! TSS per core with RSP0 (the stack for ring 3 → ring 0) and IST1 (the #DF stack). Every
//! core loads the same table and its own TSS descriptor.

use core::arch::asm;
use core::ptr::{addr_of_mut, write_unaligned};

use super::arch::{Global, Page};

/// Cores the kernel's per-core tables have room for (preset `8s` has 32).
pub const MAX_CORES: usize = 32;

pub const KERNEL_CS: u16 = 0x10;
pub const KERNEL_DS: u16 = 0x18;
/// Compatibility-mode user code: unused, but SYSRET's layout puts it first (STAR[63:48]).
pub const USER32_CS: u16 = 0x20 | 3;
pub const USER_DS: u16 = 0x28 | 3;
pub const USER_CS: u16 = 0x30 | 3;
/// Core `n`'s TSS descriptor (16 bytes each).
pub const fn tss_selector(core: usize) -> u16 {
    0x40 + 16 * core as u16
}

const ENTRIES: usize = 8 + 2 * MAX_CORES;

/// Code/data descriptors: base 0, limit 0xFFFFF pages, present; `L` for 64-bit code.
const fn segment(dpl: u64, code: bool) -> u64 {
    let access = if code { 0x9A } else { 0x92 } | dpl << 5;
    let flags = if code { 0xA } else { 0xC }; // G + L, or G + D/B
    0xFFFF | access << 40 | 0xF << 48 | flags << 52
}

#[repr(C, align(16))]
struct Gdt([u64; ENTRIES]);

static GDT: Global<Gdt> = Global::new(Gdt({
    let mut g = [0u64; ENTRIES];
    g[1] = 0x00CF_9A00_0000_FFFF; // 32-bit kernel code, unused (Linux's slot 1)
    g[2] = segment(0, true);
    g[3] = segment(0, false);
    g[4] = 0x00CF_FA00_0000_FFFF; // 32-bit user code, unused
    g[5] = segment(3, false);
    g[6] = segment(3, true);
    g
}));

/// The 64-bit TSS (SDM Vol. 3A Figure 8-11). `packed(4)`: the 64-bit fields sit at offset 4.
#[repr(C, packed(4))]
pub struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

const TSS_SIZE: usize = size_of::<Tss>();
const _: () = assert!(TSS_SIZE == 104);

static TSS: Global<[Tss; MAX_CORES]> = Global::new(
    [const {
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            // Past the limit: no I/O permission bitmap, so ring 3 has no ports.
            iomap_base: TSS_SIZE as u16,
        }
    }; MAX_CORES],
);

/// Pages of a core's kernel stack (ring 0 entries from ring 3: interrupts and syscalls).
pub const KSTACK_PAGES: usize = 4;
/// Pages of a core's #DF stack (IST1).
pub const IST_PAGES: usize = 2;

/// A core's stacks, each above a guard page that the page tables leave unmapped, so running
/// off the bottom faults instead of overwriting what lies below.
#[repr(C, align(4096))]
pub struct Stacks {
    pub guard: Page,
    pub kernel: [Page; KSTACK_PAGES],
    pub ist_guard: Page,
    pub ist: [Page; IST_PAGES],
}

pub static STACKS: Global<[Stacks; MAX_CORES]> = Global::new(
    [const {
        Stacks {
            guard: Page::ZERO,
            kernel: [Page::ZERO; KSTACK_PAGES],
            ist_guard: Page::ZERO,
            ist: [Page::ZERO; IST_PAGES],
        }
    }; MAX_CORES],
);

/// `[bottom, top)` of core `core`'s kernel stack.
pub fn kernel_stack(core: usize) -> (u64, u64) {
    // SAFETY: only the address is taken.
    let bottom = unsafe { addr_of_mut!((*STACKS.get())[core].kernel) } as u64;
    (bottom, bottom + (KSTACK_PAGES * 4096) as u64)
}

/// `[bottom, top)` of core `core`'s #DF stack.
pub fn ist_stack(core: usize) -> (u64, u64) {
    // SAFETY: only the address is taken.
    let bottom = unsafe { addr_of_mut!((*STACKS.get())[core].ist) } as u64;
    (bottom, bottom + (IST_PAGES * 4096) as u64)
}

/// The guard pages under core `core`'s kernel and #DF stacks.
pub fn guard_pages(core: usize) -> [u64; 2] {
    // SAFETY: only addresses are taken.
    unsafe {
        [
            addr_of_mut!((*STACKS.get())[core].guard) as u64,
            addr_of_mut!((*STACKS.get())[core].ist_guard) as u64,
        ]
    }
}

/// Sets core `core`'s TSS.RSP0: where the CPU puts the frame of an interrupt from ring 3.
pub fn set_rsp0(core: usize, rsp0: u64) {
    // SAFETY: each core writes only its own TSS; the CPU reads it at the next ring change.
    unsafe { write_unaligned(addr_of_mut!((*TSS.get())[core].rsp[0]), rsp0) };
}

/// Fills core `core`'s TSS and its descriptor, then loads the GDT, reloads every segment
/// register (CS through IRETQ, the 64-bit stand-in for a far jump) and loads the task
/// register. The GDT entries of other cores are untouched.
pub fn init(core: usize) {
    assert!(
        core < MAX_CORES,
        "core {core}: the kernel has room for {MAX_CORES} cores"
    );
    let tss = {
        set_rsp0(core, kernel_stack(core).1);
        // SAFETY: as in `set_rsp0`.
        unsafe {
            write_unaligned(addr_of_mut!((*TSS.get())[core].ist[0]), ist_stack(core).1);
            addr_of_mut!((*TSS.get())[core]) as u64
        }
    };
    // Available 64-bit TSS (type 9), present, limit 103 (SDM Vol. 3A Figure 8-4).
    let low =
        (TSS_SIZE as u64 - 1) | (tss & 0xFF_FFFF) << 16 | 0x89 << 40 | (tss >> 24 & 0xFF) << 56;
    let at = tss_selector(core) as usize / 8;
    // SAFETY: this core's own two descriptor slots; no one uses them before the `ltr` below.
    unsafe {
        (*GDT.get()).0[at] = low;
        (*GDT.get()).0[at + 1] = tss >> 32;
    }
    let mut gdtr = [0u8; 10];
    gdtr[..2].copy_from_slice(&((ENTRIES * 8 - 1) as u16).to_le_bytes());
    gdtr[2..].copy_from_slice(&GDT.addr().to_le_bytes());
    // SAFETY: the new GDT has the same flat segments as the loader's, at new selectors, so
    // code and data stay where they are; IRETQ to the next instruction reloads CS (there is
    // no far jump to a 64-bit target with an immediate), then the data segments follow. FS
    // and GS get the null selector: 64-bit code takes their bases from MSRs.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "mov {tmp}, rsp",
            "push {ds}",
            "push {tmp}",
            "pushfq",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "iretq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ds, {tmp:x}",
            "mov es, {tmp:x}",
            "mov ss, {tmp:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            "ltr {sel:x}",
            gdtr = in(reg) gdtr.as_ptr(),
            sel = in(reg) tss_selector(core),
            tmp = out(reg) _,
            ds = const KERNEL_DS,
            cs = const KERNEL_CS,
        );
    }
}

/// The type field of core `core`'s TSS descriptor (9 available, 0xB busy).
pub fn tss_type(core: usize) -> u8 {
    let at = tss_selector(core) as usize / 8;
    // SAFETY: a plain read of a descriptor (the CPU wrote the busy bit during `ltr`).
    let d = unsafe { core::ptr::read_volatile(&raw const (*GDT.get()).0[at]) };
    (d >> 40) as u8 & 0xF
}

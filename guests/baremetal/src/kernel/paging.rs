//! The kernel's own 4-level page tables (SDM Vol. 3A §4.5), built in its image and loaded
//! into CR3, replacing the loader's identity map:
//!
//! - an identity map of every range in BootInfo's memory map, supervisor-only, with 2 MiB
//!   pages; the 2 MiB regions holding the image use 4 KiB pages instead, so that the ring-3
//!   program's code pages can be user-accessible and read-only, and the guard pages under the
//!   kernel stacks can be left unmapped;
//! - a user region at [`USER_BASE`] with 4 KiB pages: data, a read-only page, an NX page, a
//!   page left non-present for the #PF handler to map on demand, and a user stack;
//! - a 1 GiB page aliasing physical 0..1 GiB at [`ALIAS_1G`];
//! - the devices' MMIO windows (`abi::mmio`), identity-mapped with 2 MiB pages, uncached.

use super::arch::{Global, Page, cr3, invlpg, set_cr3};
use super::gdt::{self, MAX_CORES};
use abi::boot::MEM_MMIO;
use abi::mmio::MMIO_BASE;
use baremetal::Boot;

pub const P: u64 = 1;
pub const RW: u64 = 1 << 1;
pub const US: u64 = 1 << 2;
pub const A: u64 = 1 << 5;
pub const D: u64 = 1 << 6;
pub const PS: u64 = 1 << 7;
/// Write-through and cache-disable: how MMIO is mapped (the machine ignores them).
pub const PWT: u64 = 1 << 3;
pub const PCD: u64 = 1 << 4;
pub const NX: u64 = 1 << 63;

const KIB4: u64 = 4096;
const MIB2: u64 = 2 << 20;
const GIB1: u64 = 1 << 30;

/// The user region: PML4 slot 1, 512 GiB up.
pub const USER_BASE: u64 = 0x80_0000_0000;
/// Read-write data; the user's GS base points here.
pub const USER_DATA: u64 = USER_BASE;
/// Read-only for ring 3 (and, with CR0.WP, for ring 0).
pub const USER_RO: u64 = USER_BASE + 0x1000;
/// Writable but not executable; holds a `ret` the user program tries to run.
pub const USER_NX: u64 = USER_BASE + 0x2000;
/// Not present until the #PF handler maps it on first touch.
pub const USER_LAZY: u64 = USER_BASE + 0x3000;
/// Supervisor-only page the kernel remaps to test `invlpg` and CR3 reloads.
pub const REMAP: u64 = USER_BASE + 0x4000;
/// Supervisor page whose entry sets a reserved bit (51): any access is a #PF with RSVD.
pub const RESERVED: u64 = USER_BASE + 0x5000;
/// The reserved bit [`RESERVED`]'s entry sets (above MAXPHYADDR = 48).
pub const RSVD_BIT: u64 = 1 << 51;
/// The user stack: two pages above an unmapped guard page.
pub const USER_STACK_TOP: u64 = USER_BASE + 0xA000;
/// Where the 1 GiB page maps physical address 0: PML4 slot 2.
pub const ALIAS_1G: u64 = 0x100_0000_0000;

/// What the read-only page holds, and what the #PF handler fills a lazy page with.
pub const RO_VALUE: u64 = 0x0123_4567_89AB_CDEF;
/// What the user's GS base points at.
pub const USER_GS_VALUE: u64 = 0x5553_4552_2047_5321; // "!SG RESU"
/// The two frames the kernel maps at [`REMAP`] hold these.
pub const REMAP_A: u64 = 0xAAAA;
pub const REMAP_B: u64 = 0xBBBB;

/// Physical space the identity map covers at most.
const MAX_GIB: usize = 16;
/// 2 MiB regions around the image mapped with 4 KiB pages.
const IMAGE_PTS: usize = 4;

struct Tables {
    pml4: Page,
    pdpt_identity: Page,
    pd_identity: [Page; MAX_GIB],
    pt_low: Page,
    pt_image: [Page; IMAGE_PTS],
    pdpt_user: Page,
    pd_user: Page,
    pt_user: Page,
    pdpt_alias: Page,
    pdpt_mmio: Page,
    pd_mmio: Page,
}

static TABLES: Global<Tables> = Global::new(Tables {
    pml4: Page::ZERO,
    pdpt_identity: Page::ZERO,
    pd_identity: [Page::ZERO; MAX_GIB],
    pt_low: Page::ZERO,
    pt_image: [Page::ZERO; IMAGE_PTS],
    pdpt_user: Page::ZERO,
    pd_user: Page::ZERO,
    pt_user: Page::ZERO,
    pdpt_alias: Page::ZERO,
    pdpt_mmio: Page::ZERO,
    pd_mmio: Page::ZERO,
});

/// Frames behind the user region.
struct Frames {
    data: Page,
    ro: Page,
    nx: Page,
    lazy: Page,
    remap: [Page; 2],
    stack: [Page; 2],
}

static FRAMES: Global<Frames> = Global::new(Frames {
    data: Page::ZERO,
    ro: Page::ZERO,
    nx: Page::ZERO,
    lazy: Page::ZERO,
    remap: [Page::ZERO; 2],
    stack: [Page::ZERO; 2],
});

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static kernel_user_start: u8;
    static kernel_user_end: u8;
}

/// `[start, end)` of the ring-3 program's code pages.
pub fn user_text() -> (u64, u64) {
    (
        &raw const kernel_user_start as u64,
        &raw const kernel_user_end as u64,
    )
}

fn image() -> (u64, u64) {
    (
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    )
}

fn tables() -> *mut Tables {
    TABLES.get()
}

/// The physical address of the PML4 (what CR3 holds).
pub fn pml4() -> u64 {
    // SAFETY: only the address is taken.
    unsafe { &raw mut (*tables()).pml4 as u64 }
}

/// The user-region page-table entry of `va`.
fn user_pte(va: u64) -> *mut u64 {
    debug_assert!((USER_BASE..USER_BASE + MIB2).contains(&va));
    let i = ((va - USER_BASE) / KIB4) as usize;
    // SAFETY: `i` < 512 for the user region's first 2 MiB, checked above.
    unsafe { &raw mut (*tables()).pt_user.0[i] }
}

/// Reads the user-region PTE of `va` (the CPU sets its A and D bits).
pub fn user_pte_value(va: u64) -> u64 {
    // SAFETY: a plain read of a PTE the kernel owns.
    unsafe { user_pte(va).read_volatile() }
}

/// Writes the user-region PTE of `va` and drops its TLB entry.
fn set_user_pte(va: u64, entry: u64) {
    // SAFETY: the kernel's own table; `invlpg` afterwards makes the CPU see the change.
    unsafe { user_pte(va).write_volatile(entry) };
    invlpg(va);
}

/// The address of a frame in [`FRAMES`], e.g. `frame!(remap[1])`.
macro_rules! frame {
    ($($field:tt)*) => {
        // SAFETY: only the address of a field of the static is taken.
        unsafe { &raw mut (*FRAMES.get()).$($field)* as u64 }
    };
}

/// Builds the tables for `boot`'s memory map and loads them into CR3 (core 0, once); other
/// cores call [`load`].
pub fn init(boot: &Boot) {
    let t = tables();
    let is_ram = |r: &&abi::MemRange| r.kind != MEM_MMIO;
    let top = boot
        .ranges()
        .iter()
        .filter(is_ram)
        .map(|r| r.base + r.len)
        .max()
        .unwrap_or(0);
    let gibs = top.div_ceil(GIB1) as usize;
    assert!(
        gibs <= MAX_GIB,
        "{top:#x} bytes of physical space: the kernel maps {MAX_GIB} GiB"
    );
    let mapped = |a: u64, len: u64| {
        boot.ranges()
            .iter()
            .filter(is_ram)
            .any(|r| a < r.base + r.len && r.base < a + len)
    };
    let (img_start, img_end) = image();
    let (user_start, user_end) = user_text();
    let first_img_chunk = img_start / MIB2;
    let img_chunks = img_end.div_ceil(MIB2) - first_img_chunk;
    assert!(
        img_chunks as usize <= IMAGE_PTS,
        "the image spans too many 2 MiB regions"
    );
    let guards: [[u64; 2]; MAX_CORES] = core::array::from_fn(gdt::guard_pages);
    let is_guard = |a: u64| guards.iter().any(|g| g.contains(&a));

    let user_pages = [
        (USER_DATA, frame!(data) | P | RW | US | NX),
        (USER_RO, frame!(ro) | P | US | NX),
        (USER_NX, frame!(nx) | P | RW | US | NX),
        (REMAP, frame!(remap[0]) | P | RW | NX),
        (RESERVED, frame!(remap[1]) | P | RW | NX | RSVD_BIT),
        (
            USER_STACK_TOP - 2 * KIB4,
            frame!(stack[0]) | P | RW | US | NX,
        ),
        (USER_STACK_TOP - KIB4, frame!(stack[1]) | P | RW | US | NX),
    ];

    // SAFETY: core 0 builds the tables before any core loads them; `t` points at them.
    unsafe {
        let e = |p: *const Page, bits: u64| p as u64 | bits;
        // Upper levels allow everything; leaves decide (US and RW are ANDed down a walk).
        (*t).pml4.0[0] = e(&raw const (*t).pdpt_identity, P | RW | US);
        for g in 0..gibs {
            (*t).pdpt_identity.0[g] = e(&raw const (*t).pd_identity[g], P | RW | US);
            for k in 0..512 {
                let a = (g as u64) << 30 | (k as u64) << 21;
                let chunk = a / MIB2;
                let entry = if chunk == 0 {
                    // RAM starts at 1 MiB: 4 KiB pages.
                    for (i, pte) in (*t).pt_low.0.iter_mut().enumerate() {
                        let pa = (i as u64) * KIB4;
                        *pte = if mapped(pa, KIB4) { pa | P | RW } else { 0 };
                    }
                    e(&raw const (*t).pt_low, P | RW)
                } else if (first_img_chunk..first_img_chunk + img_chunks).contains(&chunk) {
                    let pt = &raw mut (*t).pt_image[(chunk - first_img_chunk) as usize];
                    let mut any_user = false;
                    for i in 0..512 {
                        let pa = a + i as u64 * KIB4;
                        let user = (user_start..user_end).contains(&pa);
                        any_user |= user;
                        (*pt).0[i] = if !mapped(pa, KIB4) || is_guard(pa) {
                            0
                        } else if user {
                            pa | P | US // ring-3 code: readable, executable, not writable
                        } else {
                            pa | P | RW
                        };
                    }
                    e(pt, P | RW | if any_user { US } else { 0 })
                } else if mapped(a, MIB2) {
                    a | P | RW | PS
                } else {
                    0
                };
                (*t).pd_identity[g].0[k] = entry;
            }
        }

        // The user region.
        (*t).pml4.0[1] = e(&raw const (*t).pdpt_user, P | RW | US);
        (*t).pdpt_user.0[0] = e(&raw const (*t).pd_user, P | RW | US);
        (*t).pd_user.0[0] = e(&raw const (*t).pt_user, P | RW | US);
        let f = FRAMES.get();
        (*f).ro.0[0] = RO_VALUE;
        (*f).data.0[0] = USER_GS_VALUE;
        (*f).remap[0].0[0] = REMAP_A;
        (*f).remap[1].0[0] = REMAP_B;
        (*f).nx.0[0] = 0xC3; // ret
        for (va, entry) in user_pages {
            user_pte(va).write(entry);
        }

        // One 1 GiB page, supervisor-only, not executable.
        (*t).pml4.0[2] = e(&raw const (*t).pdpt_alias, P | RW);
        (*t).pdpt_alias.0[0] = P | RW | PS | NX;

        // MMIO: the whole area sits in the first GiB above MMIO_BASE (16 windows of 1 MiB).
        let pml4_slot = (MMIO_BASE >> 39) as usize & 511;
        (*t).pml4.0[pml4_slot] = e(&raw const (*t).pdpt_mmio, P | RW);
        (*t).pdpt_mmio.0[(MMIO_BASE >> 30) as usize & 511] = e(&raw const (*t).pd_mmio, P | RW);
        for r in boot.ranges().iter().filter(|r| r.kind == MEM_MMIO) {
            let in_area = r.base >= MMIO_BASE && r.base + r.len <= MMIO_BASE + GIB1;
            assert!(
                in_area,
                "MMIO range {:#x}+{:#x} outside the MMIO area",
                r.base, r.len
            );
            let mut a = r.base & !(MIB2 - 1);
            while a < r.base + r.len {
                let i = ((a - MMIO_BASE) / MIB2) as usize;
                (*t).pd_mmio.0[i] = a | P | RW | PS | PWT | PCD | NX;
                a += MIB2;
            }
        }
    }
    load();
}

/// Loads the kernel's tables into CR3 (every core).
pub fn load() {
    // SAFETY: the tables map all RAM where the loader's did, so code, data and stacks stay put.
    unsafe { set_cr3(pml4()) };
}

/// The #PF handler's fix for [`USER_LAZY`]: maps a fresh frame holding [`RO_VALUE`] there.
/// Returns false if the page is already mapped (the fault was something else).
pub fn map_lazy() -> bool {
    if user_pte_value(USER_LAZY) & P != 0 {
        return false;
    }
    let lazy = frame!(lazy);
    // SAFETY: the frame is the kernel's and not mapped anywhere else in the user region.
    unsafe { (lazy as *mut u64).write_volatile(RO_VALUE) };
    set_user_pte(USER_LAZY, lazy | P | RW | US | NX);
    true
}

/// The word of the user data page where the timer handler counts ticks for ring 3.
pub const TICKS_WORD: usize = 32;

/// Writes word `index` of the user data page (through the kernel's identity map).
pub fn set_user_data(index: usize, value: u64) {
    let data = frame!(data) as *mut u64;
    // SAFETY: inside the kernel's frame; ring 3 only reads this word.
    unsafe { data.add(index).write_volatile(value) };
}

/// The first word of the lazily mapped frame, as the kernel sees it through the identity map.
pub fn lazy_word(index: usize) -> u64 {
    let lazy = frame!(lazy) as *const u64;
    // SAFETY: inside the kernel's frame.
    unsafe { lazy.add(index).read_volatile() }
}

/// Reads the first word at `va` (kernel mappings only).
pub fn read(va: u64) -> u64 {
    // SAFETY: callers pass addresses the kernel's tables map for ring 0.
    unsafe { (va as *const u64).read_volatile() }
}

/// Maps frame `which` (0 or 1) at [`REMAP`], with `invlpg` if `flush` (else the caller
/// reloads CR3).
pub fn remap(which: usize, flush: bool) {
    let pa = frame!(remap[which]);
    // SAFETY: the kernel's own table.
    unsafe { user_pte(REMAP).write_volatile(pa | P | RW | NX) };
    if flush {
        invlpg(REMAP);
    }
}

/// Reloads CR3 with its own value: every non-global TLB entry goes.
pub fn reload_cr3() {
    // SAFETY: the same tables.
    unsafe { set_cr3(cr3()) };
}

/// Clears the A and D bits of the read-only page's entry (a ring-0 probe may have walked it).
pub fn clear_accessed_dirty() {
    let pte = user_pte_value(USER_RO);
    set_user_pte(USER_RO, pte & !(A | D));
}

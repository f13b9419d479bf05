//! The other cores: started by INIT and start-up IPIs (`abi::apic`, "Start-up"), each sets up
//! its own GDT/TSS, page tables, IDT and APIC, then waits for interrupts; a token passed from
//! core to core by IPI, and a broadcast IPI, show interrupts crossing cores and sockets.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use super::apic::{self, APIC_IDS};
use super::arch::{cr3, sidt, str_, wait_for_interrupt};
use super::gdt::{self, MAX_CORES};
use super::{idt, paging, percpu, syscall};

/// Cores that finished their set-up.
pub static ONLINE: AtomicU32 = AtomicU32::new(0);
/// Per core: 1 if what it checked of its own set-up was right, 2 if not.
pub static AP_OK: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];
/// Per core: how many times the token and the broadcast reached it.
pub static TOKEN_SEEN: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];
pub static BROADCAST_SEEN: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];
/// Set before the last broadcast: the other cores stop once they have taken it.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// How many cores the token goes round.
pub static NCORES: AtomicUsize = AtomicUsize::new(1);

/// Writes the start-up code at [`apic::startup_address`]: a core starts there in its boot
/// state (64-bit, the loader's page tables and GDT, `rdi` = BootInfo, `rsi` = core index,
/// a stack), so `movabs rax, ap_entry; jmp rax` is all it takes.
pub fn write_trampoline() {
    let at = apic::startup_address() as *mut u8;
    let target = ap_entry as *const () as u64;
    let mut code = [0u8; 12];
    code[..2].copy_from_slice(&[0x48, 0xB8]);
    code[2..10].copy_from_slice(&target.to_le_bytes());
    code[10..].copy_from_slice(&[0xFF, 0xE0]);
    for (i, b) in code.into_iter().enumerate() {
        // SAFETY: the start-up page is usable RAM (checked by the caller against BootInfo),
        // identity-mapped by the kernel's tables, and used for nothing else.
        unsafe { at.add(i).write_volatile(b) };
    }
}

/// Where a started core arrives, with the boot state's `rdi` and `rsi`.
extern "C" fn ap_entry(_boot_info: u64, core: u64) -> ! {
    let core = core as usize;
    gdt::init(core);
    paging::load();
    idt::load();
    syscall::init();
    percpu::init(core);
    apic::enable();
    let ok = core < MAX_CORES
        && apic::id() == APIC_IDS[core].load(Ordering::Relaxed)
        && percpu::core() == core
        && str_() == gdt::tss_selector(core)
        && cr3() == paging::pml4()
        && sidt().1 == idt::base();
    AP_OK[core].store(if ok { 1 } else { 2 }, Ordering::Relaxed);
    ONLINE.fetch_add(1, Ordering::AcqRel);
    loop {
        wait_for_interrupt();
        if SHUTDOWN.load(Ordering::Acquire) {
            baremetal::halt();
        }
    }
}

/// The ICR's low word for a fixed interrupt with `vector` to every core but the sender.
pub fn all_but_self(vector: u8) -> u64 {
    abi::apic::ICR_FIXED | abi::apic::ICR_ALL_BUT_SELF | vector as u64
}

/// The token's handler: count it, pass it to the next core (core 0 keeps it).
pub fn token() {
    let core = percpu::core();
    TOKEN_SEEN[core].fetch_add(1, Ordering::AcqRel);
    apic::eoi();
    if core != 0 {
        apic::send_to_core(
            (core + 1) % NCORES.load(Ordering::Relaxed),
            apic::TOKEN_VECTOR,
        );
    }
}

/// The broadcast's handler.
pub fn broadcast() {
    BROADCAST_SEEN[percpu::core()].fetch_add(1, Ordering::AcqRel);
    apic::eoi();
}

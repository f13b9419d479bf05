//! The local APIC in x2APIC mode (`abi::apic`; SDM Vol. 3A ch. 11): enabling it, the timer in
//! its three modes, IPIs, and starting the other cores with INIT and start-up IPIs.

use abi::apic::*;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::arch::{rdmsr, wrmsr};
use super::gdt::MAX_CORES;

/// The timer's vector (class 2: above the exceptions).
pub const TIMER_VECTOR: u8 = 0x20;
/// The token passed around the cores.
pub const TOKEN_VECTOR: u8 = 0x40;
/// Sent to all other cores at once.
pub const BROADCAST_VECTOR: u8 = 0x41;
/// SVR's vector. The model never raises spurious interrupts, but the gate exists.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Start-up vector: APs start at `SIPI_BASE + (1 << 12)`.
pub const SIPI_VECTOR: u8 = 1;

/// Every core's x2APIC id, by core index (filled by core 0 from BootInfo).
pub static APIC_IDS: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];

/// Software-enables this core's APIC with every priority accepted.
pub fn enable() {
    // SAFETY: x2APIC MSRs at CPL 0; the IDT has gates for every vector the kernel enables.
    unsafe {
        wrmsr(SVR, (SVR_ENABLE | SPURIOUS_VECTOR as u32) as u64);
        wrmsr(TPR, 0);
    }
}

pub fn id() -> u32 {
    rdmsr(ID) as u32
}

pub fn eoi() {
    // SAFETY: EOI of the interrupt being handled.
    unsafe { wrmsr(EOI, 0) };
}

/// Writes the ICR: `low` (vector, delivery mode, shorthand) to x2APIC id `dest`.
pub fn send(dest: u32, low: u64) {
    // SAFETY: an IPI; targets have handlers for the vectors the kernel sends.
    unsafe { wrmsr(ICR, (dest as u64) << 32 | low) };
}

/// Sends a fixed interrupt with `vector` to core `core`.
pub fn send_to_core(core: usize, vector: u8) {
    send(
        APIC_IDS[core].load(Ordering::Relaxed),
        ICR_FIXED | vector as u64 | ICR_ASSERT,
    );
}

/// Arms the timer: `mode` (one of the `TIMER_*` modes), `divide` (a `DIV_*` value) and
/// `count` (ignored in TSC-deadline mode).
pub fn timer(mode: u32, divide: u32, count: u32) {
    // SAFETY: APIC timer registers; the timer's vector has a gate.
    unsafe {
        wrmsr(DCR, divide as u64);
        wrmsr(LVT_TIMER, (mode | TIMER_VECTOR as u32) as u64);
        if mode != TIMER_TSC_DEADLINE {
            wrmsr(TIMER_INITIAL, count as u64);
        }
    }
}

/// TSC-deadline mode: fire when the TSC reaches `tsc`.
pub fn deadline(tsc: u64) {
    // SAFETY: as in `timer`.
    unsafe { wrmsr(IA32_TSC_DEADLINE, tsc) };
}

/// Masks and stops the timer.
pub fn stop_timer() {
    // SAFETY: as in `timer`.
    unsafe {
        wrmsr(LVT_TIMER, (LVT_MASKED | TIMER_VECTOR as u32) as u64);
        wrmsr(TIMER_INITIAL, 0);
    }
}

pub fn current_count() -> u32 {
    rdmsr(TIMER_CURRENT) as u32
}

/// The in-service register's 256 bits, as four words (all zero once every interrupt had its
/// EOI).
pub fn in_service() -> u64 {
    (0..8).fold(0, |acc, i| acc | rdmsr(ISR0 + i))
}

/// INIT, then two start-up IPIs (the SDM's MP initialisation sequence) to x2APIC id `dest`.
pub fn start_core(dest: u32) {
    send(dest, ICR_INIT | ICR_ASSERT);
    for _ in 0..2 {
        send(dest, ICR_STARTUP | SIPI_VECTOR as u64);
    }
}

/// Physical address where a start-up IPI with [`SIPI_VECTOR`] starts a core.
pub const fn startup_address() -> u64 {
    SIPI_BASE + ((SIPI_VECTOR as u64) << 12)
}

/// Timer ticks counted by the handler, and how many interrupted ring 3.
pub static TICKS: AtomicU64 = AtomicU64::new(0);
pub static USER_TICKS: AtomicU64 = AtomicU64::new(0);
/// TSC of the first and last tick, and the widest and narrowest gap between two ticks.
pub static FIRST_TICK: AtomicU64 = AtomicU64::new(0);
pub static LAST_TICK: AtomicU64 = AtomicU64::new(0);
pub static MIN_GAP: AtomicU64 = AtomicU64::new(u64::MAX);
pub static MAX_GAP: AtomicU64 = AtomicU64::new(0);

/// Forgets the ticks so far.
pub fn reset_ticks() {
    for a in [&TICKS, &USER_TICKS, &FIRST_TICK, &LAST_TICK, &MAX_GAP] {
        a.store(0, Ordering::Relaxed);
    }
    MIN_GAP.store(u64::MAX, Ordering::Relaxed);
}

/// The timer handler's bookkeeping; returns the tick count.
pub fn tick(from_user: bool, now: u64) -> u64 {
    let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    if from_user {
        USER_TICKS.fetch_add(1, Ordering::Relaxed);
    }
    if n == 1 {
        FIRST_TICK.store(now, Ordering::Relaxed);
    } else {
        let gap = now - LAST_TICK.load(Ordering::Relaxed);
        MIN_GAP.fetch_min(gap, Ordering::Relaxed);
        MAX_GAP.fetch_max(gap, Ordering::Relaxed);
    }
    LAST_TICK.store(now, Ordering::Relaxed);
    n
}

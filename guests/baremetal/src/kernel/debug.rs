//! Debug exceptions (#DB, SDM Vol. 3B §18.2–18.3): RFLAGS.TF single-stepping a ring-3
//! program, an instruction breakpoint (DR0) resumed with RFLAGS.RF, and a data write
//! breakpoint (DR1). The handler records each #DB — saved RIP, RFLAGS and DR6 — and does what
//! resuming needs: clears TF at the last step, sets RF after an instruction breakpoint.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::idt::TrapFrame;
use super::paging::USER_STACK_TOP;
use super::{Checks, syscall, user};

/// RFLAGS.TF and RFLAGS.RF.
const TF: u64 = 1 << 8;
const RF: u64 = 1 << 16;
/// DR6 bits: B0, B1, BS; and its value with no condition recorded.
const B0: u64 = 1 << 0;
const B1: u64 = 1 << 1;
const BS: u64 = 1 << 14;
const DR6_CLEAR: u64 = 0xFFFF_0FF0;
/// DR7: L0; L1 with R/W1 = 01 (writes) and LEN1 = 10 (8 bytes).
const DR7_L0: u64 = 1 << 0;
const DR7_L1_WRITE_8: u64 = 1 << 2 | 0b01 << 20 | 0b10 << 22;
/// #DBs recorded at most.
const MAX: usize = 8;

/// One #DB as the handler saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Hit {
    rip: u64,
    rflags: u64,
    dr6: u64,
    user: bool,
}

static HITS: [[AtomicU64; 3]; MAX] = [const { [const { AtomicU64::new(0) }; 3] }; MAX];
static USER: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static NHITS: AtomicUsize = AtomicUsize::new(0);

/// The data breakpoint watches the second word.
static WATCHED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

global_asm!(
    // The instruction breakpoint's target: a leaf returning 42.
    ".globl kernel_bp_target",
    "kernel_bp_target:",
    "    mov eax, 42",
    "    ret",
    // Stores rsi at [rdi]; the data breakpoint's trap leaves RIP at the label after it.
    ".globl kernel_watch_store",
    "kernel_watch_store:",
    "    mov qword ptr [rdi], rsi",
    ".globl kernel_watch_store_after",
    "kernel_watch_store_after:",
    "    ret",
    // Loads [rdi] (a read the write breakpoint must not report).
    ".globl kernel_watch_load",
    "kernel_watch_load:",
    "    mov rax, qword ptr [rdi]",
    "    ret",
);

unsafe extern "C" {
    fn kernel_bp_target() -> u64;
    fn kernel_watch_store(addr: u64, value: u64);
    fn kernel_watch_load(addr: u64) -> u64;
    static kernel_watch_store_after: u8;
}

fn dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 at CPL 0 (DR7.GD is never set here).
    unsafe { asm!("mov {}, dr6", out(reg) v, options(nomem, nostack)) };
    v
}

/// Writes DR0 (`which` = 0), DR1, DR6 or DR7.
fn set_dr(which: u8, v: u64) {
    // SAFETY: debug registers at CPL 0; the handler below takes every #DB they arm.
    unsafe {
        match which {
            0 => asm!("mov dr0, {}", in(reg) v, options(nomem, nostack)),
            1 => asm!("mov dr1, {}", in(reg) v, options(nomem, nostack)),
            6 => asm!("mov dr6, {}", in(reg) v, options(nomem, nostack)),
            _ => asm!("mov dr7, {}", in(reg) v, options(nomem, nostack)),
        }
    }
}

/// The #DB handler. Returns false for a #DB the kernel did not expect.
pub fn trap(f: &mut TrapFrame) -> bool {
    let n = NHITS.fetch_add(1, Relaxed);
    if n >= MAX {
        return false;
    }
    let dr6 = dr6();
    set_dr(6, DR6_CLEAR);
    for (slot, v) in HITS[n].iter().zip([f.rip, f.rflags, dr6]) {
        slot.store(v, Relaxed);
    }
    let user = f.cs & 3 == 3;
    USER[n].store(user as u64, Relaxed);
    if user && f.rip == user::step_points()[2] {
        f.rflags &= !TF;
    }
    if dr6 & B0 != 0 {
        // Resume the instruction without reporting its breakpoint again.
        f.rflags |= RF;
    }
    true
}

fn reset() -> usize {
    set_dr(6, DR6_CLEAR);
    NHITS.swap(0, Relaxed)
}

fn hits() -> ([Hit; MAX], usize) {
    let n = NHITS.load(Relaxed).min(MAX);
    let hits = core::array::from_fn(|i| Hit {
        rip: HITS[i][0].load(Relaxed),
        rflags: HITS[i][1].load(Relaxed),
        dr6: HITS[i][2].load(Relaxed),
        user: USER[i].load(Relaxed) == 1,
    });
    (hits, n)
}

pub fn check(c: &mut Checks) {
    check_single_step(c);
    check_instruction_breakpoint(c);
    check_data_breakpoint(c);
    set_dr(7, 0);
}

fn check_single_step(c: &mut Checks) {
    reset();
    let status = syscall::enter_user(user::step_entry(), USER_STACK_TOP);
    let (h, n) = hits();
    let want = user::step_points();
    let seen: [u64; 3] = core::array::from_fn(|i| h[i].rip);
    let bs = n == 3 && h[..3].iter().all(|h| h.dr6 & BS != 0 && h.user);
    check!(
        c,
        status == 0 && n == 3 && seen == want && bs && h[0].rflags & TF != 0,
        "RFLAGS.TF in ring 3: {n} #DB traps, each after one instruction (the first after the \
         one following popfq), saved rip exact, DR6.BS set"
    );
    if seen != want || !bs {
        baremetal::println!("kernel: single-step traps {:#x?}", &h[..n.min(MAX)]);
    }
}

fn check_instruction_breakpoint(c: &mut Checks) {
    let target = kernel_bp_target as *const () as u64;
    reset();
    set_dr(0, target);
    set_dr(7, DR7_L0);
    // SAFETY: a leaf function; the #DB it raises is handled and resumed with RF.
    let v = unsafe { kernel_bp_target() };
    set_dr(7, 0);
    let (h, n) = hits();
    let h = h[0];
    check!(
        c,
        v == 42 && n == 1 && h.rip == target && h.dr6 & (B0 | BS) == B0 && h.rflags & RF == 0,
        "instruction breakpoint (DR0, DR7.L0): #DB fault before the instruction, saved rip = \
         DR0, DR6.B0; resumed with RF set, the call returned {v}"
    );
    if n != 1 {
        baremetal::println!("kernel: instruction breakpoint: {n} #DBs: {h:#x?}");
    }
}

fn check_data_breakpoint(c: &mut Checks) {
    let base = WATCHED.as_ptr() as u64;
    reset();
    set_dr(1, base + 8);
    set_dr(7, DR7_L1_WRITE_8);
    // SAFETY: the stores and the load stay inside `WATCHED`; the trap is handled.
    let (read, quiet) = unsafe {
        let read = kernel_watch_load(base + 8);
        kernel_watch_store(base, 5);
        (read, NHITS.load(Relaxed))
    };
    // 8 bytes at base + 4: the last 4 overlap the watched word.
    // SAFETY: as above.
    unsafe { kernel_watch_store(base + 4, 0x1111_2222_3333_4444) };
    set_dr(7, 0);
    let (h, n) = hits();
    let h = h[0];
    let after = (&raw const kernel_watch_store_after) as u64;
    let words = [WATCHED[0].load(Relaxed), WATCHED[1].load(Relaxed)];
    check!(
        c,
        read == 0
            && quiet == 0
            && n == 1
            && h.rip == after
            && h.dr6 & (B1 | B0) == B1
            && words == [0x3333_4444_0000_0005, 0x1111_2222],
        "data write breakpoint (DR1, 8 bytes): a read of it and a write beside it pass, a write \
         overlapping it traps after the store (the saved rip follows it), DR6.B1"
    );
    if n != 1 {
        baremetal::println!("kernel: data breakpoint: {n} #DBs: {h:#x?}");
    }
}

//! A bare-metal mini kernel that exercises the privileged platform (issue 4, item 6):
//!
//! 1. its own GDT and TSS (`gdt`), 4-level page tables with 4 KiB, 2 MiB and 1 GiB pages
//!    (`paging`), IDT (`idt`) and `syscall`/`sysret` with `swapgs` (`syscall`, `percpu`);
//! 2. faults in ring 0 (`syscall` with EFER.SCE clear, CR0.WP, a reserved bit);
//! 3. a ring-3 program (`user`) that makes system calls and faults on purpose in every way
//!    the kernel then checks — a page fault fixed by mapping the page, privileged
//!    instructions, read-only, supervisor and NX pages, INT n through gates of DPL 3 and 0,
//!    #BP, #DE, #UD, misaligned `movaps`, a non-canonical address — and ends with a kernel
//!    stack overflow caught by #DF on an IST stack; then #DB (`debug`): a ring-3 program
//!    single-stepped with RFLAGS.TF, an instruction breakpoint resumed with RFLAGS.RF, and a
//!    data write breakpoint;
//! 4. the x2APIC timer in periodic mode while a ring-3 program spins, one-shot and
//!    TSC-deadline modes (`apic`);
//! 5. the other cores started by INIT and start-up IPIs, a token passed round them by IPI
//!    (across sockets on `2s`), and a broadcast IPI (`smp`);
//! 6. with `net` on the command line, the NIC: two queues steered by MAC, each with its rings
//!    on the node of the core that serves it, answering the wire's UDP load generator from
//!    per-queue interrupt handlers on a core of each socket (`net`).
//!
//! It prints `ok N what` (or `not ok N what`, with what it saw) for every point and exits 0
//! only if all passed. The command line selects a deliberate failure instead:
//!
//! | mode | what happens | how the run ends |
//! |---|---|---|
//! | (empty) | every check but the NIC's | exit 0, or 1 if a check failed |
//! | `net` | every check, then the NIC phase (attach a UDP generator to the wire) | as above |
//! | `no-idt` | ring 3 runs `hlt` with no IDT loaded | the machine's unhandled-#GP report |
//! | `no-gp-gate` | ring 3 runs `hlt`; the #GP gate is not present | #NP, then #DF: exit 8 |
//! | `triple` | as `no-gp-gate`, and the #DF gate is not present either | triple-fault report |
//!
//! Any other command line exits 2 (`net` combines with none of the failures); an exception
//! the kernel does not expect exits 3.

mod apic;
mod arch;
mod gdt;
mod idt;
mod log;
mod paging;
mod percpu;
mod smp;
mod syscall;
mod user;

use core::fmt;
use core::sync::atomic::Ordering::Relaxed;

use baremetal::{Boot, println};

use arch::{cr3, rdmsr, segments, sidt, str_};
use log::{Event, id};
use paging::{A, D, USER_LAZY, USER_NX, USER_RO, USER_STACK_TOP};
use syscall::{REPORTS, key};

/// RFLAGS.IF.
const IF: u64 = 1 << 9;

/// Exit status when a check failed.
const EXIT_FAILED: u32 = 1;
/// Exit status for an unknown mode.
const EXIT_USAGE: u32 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    All,
    NoIdt,
    NoGpGate,
    Triple,
}

/// Numbers and prints the checks, counting failures.
struct Checks {
    n: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        self.n += 1;
        let not = if ok { "" } else { "not " };
        println!("{not}ok {} {what}", self.n);
        self.failed += !ok as u32;
    }
}

macro_rules! check {
    ($c:expr, $ok:expr, $($what:tt)*) => { $c.check($ok, format_args!($($what)*)) };
}

// After `check!`, which they use.
mod debug;
mod net;

pub fn main(boot: &Boot) -> u32 {
    let (mut mode, mut net) = (Some(Mode::All), false);
    for word in boot.cmdline().split_whitespace() {
        mode = match (word, mode) {
            ("net", m) => {
                net = true;
                m
            }
            ("no-idt", Some(Mode::All)) => Some(Mode::NoIdt),
            ("no-gp-gate", Some(Mode::All)) => Some(Mode::NoGpGate),
            ("triple", Some(Mode::All)) => Some(Mode::Triple),
            _ => None,
        };
    }
    let Some(mode) = mode.filter(|&m| m == Mode::All || !net) else {
        println!(
            "kernel: bad command line {:?}; use net, or one of no-idt, no-gp-gate and triple",
            boot.cmdline()
        );
        return EXIT_USAGE;
    };
    let core = boot.core();
    println!(
        "kernel: core {core} of {}, mode {mode:?}{}",
        boot.ncores(),
        if net { ", with the NIC phase" } else { "" }
    );
    let mut c = Checks { n: 0, failed: 0 };

    set_up(&mut c, boot, mode);
    if mode != Mode::All {
        return deliberate_failure(mode);
    }
    check_ring0_faults(&mut c);

    paging::clear_accessed_dirty();
    println!("kernel: entering ring 3");
    let status = syscall::enter_user(user::main_entry(), USER_STACK_TOP);
    println!("kernel: back in ring 0, status {status:#x}");
    check_ring3(&mut c, core, status);
    debug::check(&mut c);

    for (i, info) in boot.cores().iter().enumerate().take(gdt::MAX_CORES) {
        apic::APIC_IDS[i].store(info.apic_id, Relaxed);
    }
    check_x2apic(&mut c, boot);
    check_timer(&mut c);
    let online = check_smp(&mut c, boot);
    if net {
        net::check(&mut c, boot, online);
    }
    if online > 1 {
        // Let the other cores stop: they look at SHUTDOWN after each interrupt.
        smp::SHUTDOWN.store(true, core::sync::atomic::Ordering::Release);
        apic::send(0, smp::all_but_self(apic::BROADCAST_VECTOR));
    }

    if c.failed == 0 {
        println!("kernel: all {} checks passed", c.n);
        0
    } else {
        println!("kernel: {} of {} checks failed", c.failed, c.n);
        EXIT_FAILED
    }
}

/// Core 0's set-up, checked as it goes: GDT and TSS, page tables, IDT (unless `mode` is
/// `NoIdt`), system-call MSRs and GS.
fn set_up(c: &mut Checks, boot: &Boot, mode: Mode) {
    let core = boot.core();
    gdt::init(core);
    let [cs, ss, ds, es] = segments();
    let data = gdt::KERNEL_DS;
    check!(
        c,
        [cs, ss, ds, es] == [gdt::KERNEL_CS, data, data, data],
        "GDT loaded, segments reloaded: cs {cs:#x} ss {ss:#x} ds {ds:#x} es {es:#x}"
    );
    let (tr, ty) = (str_(), gdt::tss_type(core));
    check!(
        c,
        tr == gdt::tss_selector(core) && ty == 0xB,
        "TSS loaded: str {tr:#x}, descriptor type {ty:#x} (busy)"
    );

    paging::init(boot);
    check_paging(c);

    if mode != Mode::NoIdt {
        idt::init();
        idt::load();
        let (limit, base) = sidt();
        check!(
            c,
            limit == 0xFFF && base == idt::base(),
            "IDT loaded: sidt reads limit {limit:#x}"
        );
    }
    syscall::init();
    percpu::init(core);
    let (star, lstar, fmask) = (
        rdmsr(arch::MSR_STAR),
        rdmsr(arch::MSR_LSTAR),
        rdmsr(arch::MSR_FMASK),
    );
    let sce_nxe = arch::EFER_SCE | arch::EFER_NXE;
    check!(
        c,
        rdmsr(arch::MSR_EFER) & sce_nxe == sce_nxe
            && star == 0x0023_0010_0000_0000
            && lstar != 0
            && fmask == 0x4_0700,
        "syscall MSRs: EFER.SCE and NXE set, STAR {star:#x}, FMASK {fmask:#x}"
    );
}

/// The modes that fail on purpose: ring 3 runs `hlt` (a #GP) with no IDT, no #GP gate, or
/// neither a #GP nor a #DF gate. The machine or the #DF handler ends the run; coming back
/// here is a failure.
fn deliberate_failure(mode: Mode) -> u32 {
    if mode != Mode::NoIdt {
        idt::set_present(idt::GP, false);
    }
    if mode == Mode::Triple {
        idt::set_present(idt::DF, false);
    }
    println!("kernel: ring 3 runs hlt ({mode:?})");
    let status = syscall::enter_user(user::hlt_entry(), USER_STACK_TOP);
    println!("kernel: the ring-3 program came back with status {status}, unexpectedly");
    EXIT_FAILED
}

/// Exceptions in ring 0, each resumed through the fixup table.
fn check_ring0_faults(c: &mut Checks) {
    let efer = rdmsr(arch::MSR_EFER);
    // SAFETY: SCE is off only for the probe, in ring 0 with interrupts off.
    let ud = unsafe {
        arch::wrmsr(arch::MSR_EFER, efer & !arch::EFER_SCE);
        let ud = user::probe_syscall_faults();
        arch::wrmsr(arch::MSR_EFER, efer);
        ud
    };
    let e = log::one(id::SYSCALL_DISABLED).unwrap_or_default();
    check!(
        c,
        ud && e.vector == idt::UD,
        "syscall with EFER.SCE clear: #UD"
    );

    // With CR0.WP, even the kernel may not write a read-only page.
    let wrote = user::probe_write(USER_RO, 1);
    let e = log::one(id::KERNEL_WP).unwrap_or_default();
    check!(
        c,
        !wrote && e.vector == idt::PF && e.error == 0x3 && e.cr2 == USER_RO && e.cs & 3 == 0,
        "ring-0 write to a read-only page (CR0.WP): #PF error {:#x} at {:#x}",
        e.error,
        e.cr2
    );

    let read = user::probe_read(paging::RESERVED);
    let e = log::one(id::RESERVED_BIT).unwrap_or_default();
    check!(
        c,
        !read && e.vector == idt::PF && e.error == 0x9 && e.cr2 == paging::RESERVED,
        "reserved bit 51 set in a page-table entry: #PF error {:#x} (present, reserved) at {:#x}",
        e.error,
        e.cr2
    );
}

/// A word the 1 GiB alias check reads and writes both ways.
static ALIAS_PROBE: arch::Global<u64> = arch::Global::new(0x1_6B);

fn check_paging(c: &mut Checks) {
    check!(
        c,
        cr3() == paging::pml4(),
        "CR3 holds the kernel's own PML4"
    );

    let at = ALIAS_PROBE.addr();
    let alias = paging::ALIAS_1G + at;
    // SAFETY: both addresses map the kernel's own static word.
    let (seen, back) = unsafe {
        let seen = (alias as *const u64).read_volatile();
        (alias as *mut u64).write_volatile(0x2_6B);
        (seen, ALIAS_PROBE.get().read_volatile())
    };
    check!(
        c,
        seen == 0x1_6B && back == 0x2_6B,
        "1 GiB page: {:#x} + a reads and writes what a holds",
        paging::ALIAS_1G
    );

    let first = paging::read(paging::REMAP);
    paging::remap(1, true);
    let after = paging::read(paging::REMAP);
    check!(
        c,
        first == paging::REMAP_A && after == paging::REMAP_B,
        "invlpg: {:#x} remapped to another frame reads {after:#x} (was {first:#x})",
        paging::REMAP
    );
    paging::remap(0, false);
    paging::reload_cr3();
    let again = paging::read(paging::REMAP);
    check!(
        c,
        again == paging::REMAP_A,
        "CR3 reload: {:#x} mapped back reads {again:#x}",
        paging::REMAP
    );
}

fn report(k: usize) -> u64 {
    REPORTS[k].load(core::sync::atomic::Ordering::Relaxed)
}

fn ring3_gp(c: &mut Checks, which: u64, what: &str) {
    let e = log::one(which).unwrap_or_default();
    check!(
        c,
        e.vector == idt::GP && e.error == 0 && e.cs == gdt::USER_CS as u64,
        "ring-3 {what}: #GP error {:#x}, skipped",
        e.error
    );
}

fn check_ring3(c: &mut Checks, core: usize, status: u64) {
    let (cs, ss) = (report(key::CS), report(key::SS));
    check!(
        c,
        cs == gdt::USER_CS as u64 && ss == gdt::USER_DS as u64,
        "ring 3 entered by iretq: cs {cs:#x} ss {ss:#x}"
    );
    let (kcs, kss) = (
        syscall::SEEN_CS.load(Relaxed),
        syscall::SEEN_SS.load(Relaxed),
    );
    check!(
        c,
        kcs == gdt::KERNEL_CS as u64
            && kss == gdt::KERNEL_DS as u64
            && syscall::SEEN_GS.load(Relaxed) == percpu::area(core),
        "syscall entered ring 0: cs {kcs:#x} ss {kss:#x}, swapgs gave gs:[0] = the per-CPU area"
    );
    let (kif, uif) = (
        syscall::SEEN_RFLAGS.load(Relaxed) & IF,
        report(key::RFLAGS) & IF,
    );
    check!(
        c,
        kif == 0 && uif == IF,
        "FMASK: IF {} in the syscall handler, {} again after sysret",
        kif >> 9,
        uif >> 9
    );
    let written = report(key::WRITE);
    check!(
        c,
        written == 18 && syscall::WRITTEN.load(Relaxed) == 18,
        "syscall write: {written} bytes from ring 3 printed"
    );
    let (pid, clobbered) = (report(key::PID), report(key::CLOBBERED));
    check!(
        c,
        pid == syscall::PID && clobbered == 0,
        "syscall getpid: {pid}, sysret back to ring 3 with the other registers preserved \
         (difference {clobbered:#x})"
    );
    let gs = report(key::GS);
    check!(
        c,
        gs == paging::USER_GS_VALUE,
        "swapgs: ring 3 reads gs:[0] = {gs:#x}, its own GS base"
    );

    let lazy = log::one(id::LAZY).unwrap_or_default();
    let back = report(key::LAZY);
    check!(
        c,
        lazy.vector == idt::PF
            && lazy.error == 0x6
            && lazy.cr2 == USER_LAZY + 24
            && back == user::LAZY_VALUE
            && paging::lazy_word(3) == user::LAZY_VALUE,
        "page fault fixed at {:#x} error {:#x}: page mapped, write re-executed, read back {back:#x}",
        lazy.cr2,
        lazy.error
    );
    let (bottom, top) = gdt::kernel_stack(core);
    check!(
        c,
        (bottom..top).contains(&lazy.frame)
            && lazy.cs == gdt::USER_CS as u64
            && lazy.ss == gdt::USER_DS as u64,
        "ring 3 to ring 0 on the TSS.RSP0 stack, saved cs {:#x} ss {:#x}",
        lazy.cs,
        lazy.ss
    );

    ring3_gp(c, id::HLT, "hlt");
    ring3_gp(c, id::CLI, "cli");
    ring3_gp(c, id::WRMSR, "wrmsr");
    ring3_gp(c, id::MOV_CR3, "mov cr3");
    ring3_gp(c, id::OUT, "out");
    ring3_gp(c, id::LGDT, "lgdt");

    let ro = report(key::RO);
    let e = log::one(id::RO_WRITE).unwrap_or_default();
    check!(
        c,
        ro == paging::RO_VALUE && e.vector == idt::PF && e.error == 0x7 && e.cr2 == USER_RO,
        "read-only page: ring 3 reads {ro:#x}; its write faults with error {:#x} at {:#x}",
        e.error,
        e.cr2
    );
    let e = log::one(id::KERNEL_READ).unwrap_or_default();
    check!(
        c,
        e.vector == idt::PF && e.error == 0x5,
        "supervisor page: a ring-3 read faults with error {:#x}",
        e.error
    );
    let e = log::one(id::NX).unwrap_or_default();
    check!(
        c,
        e.vector == idt::PF && e.error == 0x15 && e.cr2 == USER_NX && e.rip == USER_NX,
        "NX page: a ring-3 jump faults with error {:#x} at {:#x}",
        e.error,
        e.cr2
    );
    let v = report(key::INT_USER);
    let e = log::one(id::INT_USER).unwrap_or_default();
    check!(
        c,
        v == 42 && e.vector == idt::INT_USER && e.cs == gdt::USER_CS as u64,
        "int 0x80 (DPL 3 gate): handled in ring 0, returned {v}"
    );
    let e = log::one(id::INT_KERNEL).unwrap_or_default();
    check!(
        c,
        e.vector == idt::GP && e.error == (idt::INT_KERNEL as u64) << 3 | 2,
        "int 0x81 (DPL 0 gate): #GP error {:#x}",
        e.error
    );
    let e = log::one(id::BREAKPOINT).unwrap_or_default();
    let (text, text_end) = paging::user_text();
    // SAFETY: read only when `rip - 1` lies in the ring-3 program's code.
    let after_int3 = (text + 1..text_end).contains(&e.rip)
        && unsafe { ((e.rip - 1) as *const u8).read_volatile() } == 0xCC;
    check!(
        c,
        e.vector == idt::BP && after_int3,
        "int3: #BP is a trap, the saved rip follows the instruction"
    );
    let fault = |which| log::one(which).map(|e: Event| (e.vector, e.error));
    check!(
        c,
        fault(id::DIVIDE) == Some((idt::DE, 0)),
        "divide by zero in ring 3: #DE"
    );
    check!(
        c,
        fault(id::UD2) == Some((idt::UD, 0)),
        "ud2 in ring 3: #UD"
    );
    check!(
        c,
        fault(id::MOVAPS) == Some((idt::GP, 0)),
        "misaligned movaps in ring 3: #GP error 0x0"
    );
    check!(
        c,
        fault(id::NON_CANONICAL) == Some((idt::GP, 0)),
        "non-canonical address in ring 3: #GP error 0x0"
    );

    let (ro, lazy) = (
        paging::user_pte_value(USER_RO),
        paging::user_pte_value(USER_LAZY),
    );
    let bit = |pte: u64, b: u64| (pte & b != 0) as u8;
    check!(
        c,
        bit(ro, A) == 1 && bit(ro, D) == 0 && bit(lazy, A) == 1 && bit(lazy, D) == 1,
        "accessed/dirty bits: read page A={} D={}, written page A={} D={}",
        bit(ro, A),
        bit(ro, D),
        bit(lazy, A),
        bit(lazy, D)
    );

    let e = log::one(id::DOUBLE_FAULT).unwrap_or_default();
    let (ist_bottom, ist_top) = gdt::ist_stack(core);
    let guard = gdt::guard_pages(core)[0];
    check!(
        c,
        status == idt::STATUS_DOUBLE_FAULT
            && e.vector == idt::DF
            && e.error == 0
            && (ist_bottom..ist_top).contains(&e.frame)
            && (guard..guard + 4096).contains(&e.cr2),
        "kernel stack overflow: #DF on the IST1 stack, cr2 in the guard page, program ended"
    );
}

fn check_x2apic(c: &mut Checks, boot: &Boot) {
    let features = core::arch::x86_64::__cpuid(1).ecx;
    apic::enable();
    let base = rdmsr(abi::apic::IA32_APIC_BASE);
    let want = abi::apic::APIC_BASE_BSP | abi::apic::APIC_BASE_EN | abi::apic::APIC_BASE_EXTD;
    let id = apic::id();
    check!(
        c,
        features & (1 << 21 | 1 << 24) == 1 << 21 | 1 << 24
            && base & want == want
            && id == boot.cores()[0].apic_id,
        "x2APIC: CPUID has x2APIC and TSC-deadline, IA32_APIC_BASE {base:#x} (BSP, enabled, x2APIC), \
         id {id}"
    );
}

/// How far apart consecutive timer interrupts may be from the programmed period: the core
/// takes an interrupt at the end of the instruction block it is due in.
const TIMER_SLACK: u64 = 1000;

fn check_timer(c: &mut Checks) {
    use abi::apic::{DIV_1, DIV_16, IA32_TSC_DEADLINE, TIMER_ONE_SHOT, TIMER_PERIODIC};
    use apic::{MAX_GAP, MIN_GAP, TICKS, USER_TICKS};
    use baremetal::rdtsc;

    // Periodic, while ring 3 spins: the handler counts in ring 0 and tells ring 3 the count.
    let (divide, count) = (16, 2500);
    let period = divide * count;
    apic::reset_ticks();
    paging::set_user_data(paging::TICKS_WORD, 0);
    apic::timer(TIMER_PERIODIC, DIV_16, count as u32);
    let status = syscall::enter_user(user::spin_entry(), USER_STACK_TOP);
    apic::stop_timer();
    let (ticks, user_ticks) = (TICKS.load(Relaxed), USER_TICKS.load(Relaxed));
    let (min, max) = (MIN_GAP.load(Relaxed), MAX_GAP.load(Relaxed));
    check!(
        c,
        status == user::SPIN_TICKS
            && ticks == user::SPIN_TICKS
            && user_ticks == ticks
            && min + TIMER_SLACK >= period
            && max <= period + TIMER_SLACK
            && apic::in_service() == 0,
        "APIC timer, periodic (vector {:#x}, divide by {divide}, count {count}): {user_ticks} \
         interrupts counted in ring 0 while ring 3 spun, one every {period} cycles",
        apic::TIMER_VECTOR
    );
    if min + TIMER_SLACK < period || max > period + TIMER_SLACK {
        println!("kernel: timer gaps {min}..{max} cycles");
    }

    // One-shot: fires once, and the current count stays at 0.
    let count = 10_000;
    apic::reset_ticks();
    let t0 = rdtsc();
    apic::timer(TIMER_ONE_SHOT, DIV_1, count as u32);
    arch::wait_for_interrupt();
    let woke = rdtsc() - t0;
    let current = apic::current_count();
    arch::wait_until(3 * count, || false);
    let ticks = TICKS.load(Relaxed);
    apic::stop_timer();
    check!(
        c,
        ticks == 1 && (count..count + 5 * TIMER_SLACK).contains(&woke) && current == 0,
        "APIC timer, one-shot (count {count}, divide by 1): hlt woke once, {count} cycles \
         later; the current count reads 0 after"
    );
    if ticks != 1 || !(count..count + 5 * TIMER_SLACK).contains(&woke) {
        println!("kernel: one-shot: {ticks} ticks, woke after {woke} cycles");
    }

    // TSC deadline.
    let ahead = 20_000;
    apic::reset_ticks();
    apic::timer(abi::apic::TIMER_TSC_DEADLINE, DIV_1, 0);
    let deadline = rdtsc() + ahead;
    apic::deadline(deadline);
    arch::wait_for_interrupt();
    let woke = rdtsc();
    let after = rdmsr(IA32_TSC_DEADLINE);
    apic::stop_timer();
    let late = woke.wrapping_sub(deadline);
    check!(
        c,
        TICKS.load(Relaxed) == 1 && woke >= deadline && late < 5 * TIMER_SLACK && after == 0,
        "APIC timer, TSC-deadline ({ahead} cycles ahead): hlt woke once at the deadline; \
         IA32_TSC_DEADLINE reads 0 after"
    );
    if woke < deadline || late >= 5 * TIMER_SLACK {
        println!("kernel: TSC deadline: woke {late} cycles after the deadline");
    }
}

/// How long core 0 waits for the other cores before it calls a check failed.
const SMP_TIMEOUT: u64 = 50_000_000;

/// Starts the other cores and checks IPIs between them; returns how many cores run (1 if
/// the others did not come up).
fn check_smp(c: &mut Checks, boot: &Boot) -> usize {
    use smp::{AP_OK, BROADCAST_SEEN, ONLINE, TOKEN_SEEN};

    let n = boot.ncores().min(gdt::MAX_CORES);
    smp::NCORES.store(n, Relaxed);
    if n < 2 {
        println!("kernel: a single core: no INIT/SIPI or IPI checks");
        return 1;
    }
    let start = apic::startup_address();
    let usable = boot.ranges().iter().any(|r| {
        r.kind == abi::boot::MEM_USABLE && r.base <= start && start + 4096 <= r.base + r.len
    });
    if usable {
        smp::write_trampoline();
        for info in &boot.cores()[1..n] {
            apic::start_core(info.apic_id);
        }
    }
    let online = arch::wait_until(SMP_TIMEOUT, || ONLINE.load(Relaxed) as usize == n - 1);
    let set_up = (1..n).all(|k| AP_OK[k].load(Relaxed) == 1);
    check!(
        c,
        usable && online && set_up,
        "INIT/SIPI: cores 1-{} started at {start:#x}, each on its own GDT, TSS, page tables, \
         IDT and APIC",
        n - 1
    );
    if !online {
        return 1;
    }

    let mut sockets = [false; gdt::MAX_CORES];
    for info in &boot.cores()[..n] {
        sockets[(info.socket as usize).min(gdt::MAX_CORES - 1)] = true;
    }
    let sockets = sockets.iter().filter(|&&s| s).count();
    apic::send_to_core(1, apic::TOKEN_VECTOR);
    let back = arch::wait_until(SMP_TIMEOUT, || TOKEN_SEEN[0].load(Relaxed) >= 1);
    let once = (0..n).all(|k| TOKEN_SEEN[k].load(Relaxed) == 1);
    check!(
        c,
        back && once,
        "IPI token ring: {n} cores on {sockets} socket(s), each passed the token on once"
    );

    apic::send(0, smp::all_but_self(apic::BROADCAST_VECTOR));
    let seen = || {
        (1..n)
            .map(|k| BROADCAST_SEEN[k].load(Relaxed) as usize)
            .sum::<usize>()
    };
    let all = arch::wait_until(SMP_TIMEOUT, || seen() == n - 1);
    check!(
        c,
        all && BROADCAST_SEEN[0].load(Relaxed) == 0
            && (1..n).all(|k| BROADCAST_SEEN[k].load(Relaxed) == 1),
        "broadcast IPI to all but self: each of the {} other cores took it once",
        n - 1
    );
    n
}

//! The privileged platform (issue 4, DESIGN.md §2.2, §2.5, §3.1) through the `kernel` image of
//! `guests/baremetal`: a mini kernel that builds its own GDT/TSS, page tables and IDT, runs a
//! ring-3 program that faults on purpose in every way it then checks, takes APIC timer
//! interrupts, starts the other cores by INIT/SIPI and passes IPIs between them. It prints
//! `ok N …` per point; these tests hold every line to the text written out below, on one and
//! two sockets, with the timing model off and on, booted normally and with `--bsp-only`.
//! `negative` runs its deliberate failures; `net` its NIC phase against the wire's UDP generator.

mod negative;
mod net;

use emulator::{Outcome, RunConfig, RunEnd};

/// Runs the kernel with `cmdline` on `machine`.
pub fn run(machine: &str, timing: bool, bsp_only: bool, cmdline: &str) -> Outcome {
    let cfg = RunConfig {
        machine: machine.into(),
        timing,
        bsp_only,
        cmdline: cmdline.into(),
        // The whole run is under a million instructions; a hang must not hang the test.
        max_instructions: Some(50_000_000),
    };
    let elf = workloads::images::get("kernel").expect("the kernel image is built");
    emulator::run_image(elf, &cfg).expect("the kernel image loads")
}

pub fn console(out: &Outcome) -> String {
    String::from_utf8_lossy(&out.console).into_owned()
}

/// Every line the kernel prints for a passing run on `cores` cores in `sockets` sockets, in
/// order (its `kernel:` progress lines aside).
fn expected(cores: usize, sockets: usize) -> Vec<String> {
    let mut lines: Vec<String> = [
        "GDT loaded, segments reloaded: cs 0x10 ss 0x18 ds 0x18 es 0x18",
        "TSS loaded: str 0x40, descriptor type 0xb (busy)",
        "CR3 holds the kernel's own PML4",
        "1 GiB page: 0x10000000000 + a reads and writes what a holds",
        "invlpg: 0x8000004000 remapped to another frame reads 0xbbbb (was 0xaaaa)",
        "CR3 reload: 0x8000004000 mapped back reads 0xaaaa",
        "IDT loaded: sidt reads limit 0xfff",
        "syscall MSRs: EFER.SCE and NXE set, STAR 0x23001000000000, FMASK 0x40700",
        "syscall with EFER.SCE clear: #UD",
        "ring-0 write to a read-only page (CR0.WP): #PF error 0x3 at 0x8000001000",
        "reserved bit 51 set in a page-table entry: #PF error 0x9 (present, reserved) at \
         0x8000005000",
        "ring 3 entered by iretq: cs 0x33 ss 0x2b",
        "syscall entered ring 0: cs 0x10 ss 0x18, swapgs gave gs:[0] = the per-CPU area",
        "FMASK: IF 0 in the syscall handler, 1 again after sysret",
        "syscall write: 18 bytes from ring 3 printed",
        "syscall getpid: 1, sysret back to ring 3 with the other registers preserved \
         (difference 0x0)",
        "swapgs: ring 3 reads gs:[0] = 0x5553455220475321, its own GS base",
        "page fault fixed at 0x8000003018 error 0x6: page mapped, write re-executed, read back \
         0x123456789abcdef0",
        "ring 3 to ring 0 on the TSS.RSP0 stack, saved cs 0x33 ss 0x2b",
        "ring-3 hlt: #GP error 0x0, skipped",
        "ring-3 cli: #GP error 0x0, skipped",
        "ring-3 wrmsr: #GP error 0x0, skipped",
        "ring-3 mov cr3: #GP error 0x0, skipped",
        "ring-3 out: #GP error 0x0, skipped",
        "ring-3 lgdt: #GP error 0x0, skipped",
        "read-only page: ring 3 reads 0x123456789abcdef; its write faults with error 0x7 at \
         0x8000001000",
        "supervisor page: a ring-3 read faults with error 0x5",
        "NX page: a ring-3 jump faults with error 0x15 at 0x8000002000",
        "int 0x80 (DPL 3 gate): handled in ring 0, returned 42",
        "int 0x81 (DPL 0 gate): #GP error 0x40a",
        "int3: #BP is a trap, the saved rip follows the instruction",
        "divide by zero in ring 3: #DE",
        "ud2 in ring 3: #UD",
        "misaligned movaps in ring 3: #GP error 0x0",
        "non-canonical address in ring 3: #GP error 0x0",
        "accessed/dirty bits: read page A=1 D=0, written page A=1 D=1",
        "kernel stack overflow: #DF on the IST1 stack, cr2 in the guard page, program ended",
        "RFLAGS.TF in ring 3: 3 #DB traps, each after one instruction (the first after the one \
         following popfq), saved rip exact, DR6.BS set",
        "instruction breakpoint (DR0, DR7.L0): #DB fault before the instruction, saved rip = DR0, \
         DR6.B0; resumed with RF set, the call returned 42",
        "data write breakpoint (DR1, 8 bytes): a read of it and a write beside it pass, a write \
         overlapping it traps after the store (the saved rip follows it), DR6.B1",
        "x2APIC: CPUID has x2APIC and TSC-deadline, IA32_APIC_BASE 0xfee00d00 (BSP, enabled, \
         x2APIC), id 0",
        "APIC timer, periodic (vector 0x20, divide by 16, count 2500): 10 interrupts counted in \
         ring 0 while ring 3 spun, one every 40000 cycles",
        "APIC timer, one-shot (count 10000, divide by 1): hlt woke once, 10000 cycles later; the \
         current count reads 0 after",
        "APIC timer, TSC-deadline (20000 cycles ahead): hlt woke once at the deadline; \
         IA32_TSC_DEADLINE reads 0 after",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lines.push(format!(
        "INIT/SIPI: cores 1-{} started at 0x101000, each on its own GDT, TSS, page tables, IDT \
         and APIC",
        cores - 1
    ));
    lines.push(format!(
        "IPI token ring: {cores} cores on {sockets} socket(s), each passed the token on once"
    ));
    lines.push(format!(
        "broadcast IPI to all but self: each of the {} other cores took it once",
        cores - 1
    ));
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("ok {} {l}", i + 1))
        .collect()
}

/// Runs the kernel and holds its console to [`expected`], line for line, and its exit to 0.
#[track_caller]
fn assert_all_points(machine: &str, timing: bool, bsp_only: bool, cores: usize, sockets: usize) {
    let out = run(machine, timing, bsp_only, "");
    let text = console(&out);
    let what = format!("{machine}, timing {timing}, bsp-only {bsp_only}");
    let points: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .collect();
    let want = expected(cores, sockets);
    for (i, line) in want.iter().enumerate() {
        assert_eq!(
            points.get(i).copied(),
            Some(line.as_str()),
            "{what}: point {} differs; console:\n{text}",
            i + 1
        );
    }
    assert_eq!(points.len(), want.len(), "{what}: extra points:\n{text}");
    // The ring-3 program's write system call, and the summary.
    assert!(
        text.lines().any(|l| l == "hello from ring 3"),
        "{what}: no ring-3 output:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("kernel: all {} checks passed", want.len())),
        "{what}:\n{text}"
    );
    assert_eq!(
        out.end,
        RunEnd::Exit(0),
        "{what}: ended with {:?}; console:\n{text}",
        out.end
    );
}

#[test]
fn every_point_on_1s_functional() {
    assert_all_points("1s", false, false, 4, 1);
}

#[test]
fn every_point_on_1s_with_timing() {
    assert_all_points("1s", true, false, 4, 1);
}

#[test]
fn every_point_on_2s_functional() {
    assert_all_points("2s", false, false, 8, 2);
}

#[test]
fn every_point_on_2s_with_timing() {
    assert_all_points("2s", true, false, 8, 2);
}

/// `--bsp-only`: the other cores wait for INIT/SIPI from the start (they never ran the image).
#[test]
fn every_point_on_2s_bsp_only() {
    assert_all_points("2s", true, true, 8, 2);
    assert_all_points("2s", false, true, 8, 2);
}

#[test]
fn every_point_on_1s_bsp_only() {
    assert_all_points("1s", false, true, 4, 1);
}

/// The same image, machine and options twice: the same console, instructions, cycles and
/// architectural state (registers of every core, all of RAM).
#[test]
fn two_runs_are_identical() {
    for (machine, timing) in [("2s", true), ("1s", false)] {
        let a = run(machine, timing, true, "");
        let b = run(machine, timing, true, "");
        assert_eq!(a.end, RunEnd::Exit(0), "{}", console(&a));
        assert_eq!(a.console, b.console, "{machine}: console");
        assert_eq!(a.end, b.end, "{machine}: end");
        assert_eq!(a.instructions, b.instructions, "{machine}: instructions");
        assert_eq!(a.cycles, b.cycles, "{machine}: cycles");
        assert_eq!(a.state_hash, b.state_hash, "{machine}: state hash");
    }
}

/// The functional mode and the timing model differ in time, not in what the kernel sees.
#[test]
fn timing_changes_time_not_results() {
    let f = run("2s", false, true, "");
    let t = run("2s", true, true, "");
    assert_eq!(f.console, t.console);
    assert_ne!(f.cycles, t.cycles, "the timing model charges for memory");
}

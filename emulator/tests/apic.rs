//! The local APIC in x2APIC mode (DESIGN.md §2.5, `abi::apic`): timer modes in simulated time,
//! IPIs across sockets, INIT/start-up, priority, register access rules and determinism — each
//! shown by a small program assembled here with iced's `CodeAssembler` and run as an image.

use abi::apic::*;
use emulator::{Machine, MachineDesc, RunEnd};
use iced_x86::BlockEncoderOptions;
use iced_x86::code_asm::*;

mod common;

const CODE: u64 = 0x20_0000;
/// 256 interrupt gates, then the IDTR pseudo-descriptor.
const IDT: u64 = 0x28_0000;
/// Counters and logs the programs write and the tests read (zeroed RAM).
const DATA: u64 = 0x29_0000;
/// Exit status of the handler every vector without its own gets.
const UNEXPECTED: u32 = 0xEE;

type Asm = CodeAssembler;

/// A program: main code at `CODE`, handlers for some vectors, and code placed elsewhere.
struct Prog {
    a: Asm,
    handlers: Vec<(u8, CodeLabel)>,
    extra: Vec<(u64, Asm)>,
}

impl Prog {
    /// Starts with the prologue every core runs: load the IDT, software-enable the APIC
    /// (spurious vector 0xFF), `rbx` = DATA.
    fn new() -> Self {
        let mut a = CodeAssembler::new(64).unwrap();
        a.mov(rax, IDT + 4096).unwrap();
        a.lidt(ptr(rax)).unwrap();
        wrmsr(&mut a, SVR, (SVR_ENABLE | 0xFF) as u64);
        a.mov(rbx, DATA).unwrap();
        Prog {
            a,
            handlers: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Starts a handler for `vector` at the current position.
    fn handler(&mut self, vector: u8) {
        let mut l = self.a.create_label();
        self.a.set_label(&mut l).unwrap();
        self.handlers.push((vector, l));
    }

    fn image(mut self) -> Vec<u8> {
        let mut unexpected = self.a.create_label();
        self.a.set_label(&mut unexpected).unwrap();
        exit(&mut self.a, UNEXPECTED);
        let r = self
            .a
            .assemble_options(CODE, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
            .unwrap();
        let default = r.label_ip(&unexpected).unwrap();
        let mut idt = vec![0u8; 4096 + 16];
        for v in 0..256usize {
            let at = match self.handlers.iter().find(|(h, _)| *h as usize == v) {
                Some((_, l)) => r.label_ip(l).unwrap(),
                None => default,
            };
            // 64-bit interrupt gate, present, DPL 0, selector 0x08 (SDM Vol. 3A Figure 6-8).
            let gate = &mut idt[v * 16..v * 16 + 16];
            gate[0..2].copy_from_slice(&(at as u16).to_le_bytes());
            gate[2..4].copy_from_slice(&0x08u16.to_le_bytes());
            gate[5] = 0x8E;
            gate[6..8].copy_from_slice(&((at >> 16) as u16).to_le_bytes());
            gate[8..12].copy_from_slice(&((at >> 32) as u32).to_le_bytes());
        }
        idt[4096..4098].copy_from_slice(&4095u16.to_le_bytes());
        idt[4098..4106].copy_from_slice(&IDT.to_le_bytes());
        let mut segs = vec![
            (CODE, r.inner.code_buffer),
            (IDT, idt),
            (DATA, vec![0u8; 0x4000]),
        ];
        for (at, mut a) in self.extra {
            segs.push((at, a.assemble(at).unwrap()));
        }
        common::elf_segments(&segs, CODE, 0)
    }
}

/// `wrmsr` of a constant (clobbers rax, rcx, rdx).
fn wrmsr(a: &mut Asm, msr: u32, v: u64) {
    a.mov(ecx, msr).unwrap();
    a.mov(eax, v as u32).unwrap();
    a.mov(edx, (v >> 32) as u32).unwrap();
    a.wrmsr().unwrap();
}

/// `rdmsr` into rax (all 64 bits; clobbers rcx, rdx).
fn rdmsr(a: &mut Asm, msr: u32) {
    a.mov(ecx, msr).unwrap();
    a.rdmsr().unwrap();
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
}

/// rax = the TSC (clobbers rdx).
fn rdtsc(a: &mut Asm) {
    a.rdtsc().unwrap();
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
}

fn exit(a: &mut Asm, code: u32) {
    a.mov(eax, code).unwrap();
    a.out(0xF4u32, eax).unwrap();
}

/// Ends the run with the 32-bit value at `[rbx + off]` as the exit status.
fn exit_with(a: &mut Asm, off: i32) {
    a.mov(eax, dword_ptr(rbx + off)).unwrap();
    a.out(0xF4u32, eax).unwrap();
}

fn stop(a: &mut Asm) {
    a.cli().unwrap();
    a.hlt().unwrap();
}

/// Waits with interrupts on until the qword at `[rbx + off]` reaches `n`: the `cli`/test/
/// `sti; hlt` pattern, race-free thanks to the STI shadow.
fn wait_for(a: &mut Asm, off: i32, n: i32) {
    let mut top = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut top).unwrap();
    a.cli().unwrap();
    a.cmp(qword_ptr(rbx + off), n).unwrap();
    a.jae(done).unwrap();
    a.sti().unwrap();
    a.hlt().unwrap();
    a.jmp(top).unwrap();
    a.set_label(&mut done).unwrap();
    a.sti().unwrap();
}

/// Spins `n` iterations (about 2n cycles).
fn spin(a: &mut Asm, n: u32) {
    let mut l = a.create_label();
    a.mov(ecx, n).unwrap();
    a.set_label(&mut l).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(l).unwrap();
}

/// A handler body that counts at `[rbx]`, logs the TSC at `[rbx + 8 + 8 * count]`, and EOIs.
fn counting_handler(p: &mut Prog, vector: u8) {
    p.handler(vector);
    let a = &mut p.a;
    a.push(rax).unwrap();
    a.push(rcx).unwrap();
    a.push(rdx).unwrap();
    rdtsc(a);
    a.mov(rcx, qword_ptr(rbx)).unwrap();
    a.mov(qword_ptr(rbx + rcx * 8 + 8), rax).unwrap();
    a.inc(qword_ptr(rbx)).unwrap();
    wrmsr(a, EOI, 0);
    a.pop(rdx).unwrap();
    a.pop(rcx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();
}

fn machine(preset: &str, image: &[u8], bsp_only: bool) -> Machine {
    let desc = MachineDesc::load(preset).unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(image, bsp_only, "").unwrap();
    m
}

fn run(m: &mut Machine) -> RunEnd {
    m.run_for(u64::MAX, Some(50_000_000)).expect("the run ends")
}

fn q(m: &Machine, off: u64) -> u64 {
    let mut b = [0u8; 8];
    m.sys.ram.read(DATA + off, &mut b).expect("DATA is RAM");
    u64::from_le_bytes(b)
}

#[test]
fn periodic_timer_interrupts_a_halted_core_at_exact_deadlines() {
    const PERIOD: u64 = 10_000;
    let mut p = Prog::new();
    let a = &mut p.a;
    wrmsr(a, DCR, DIV_1 as u64);
    wrmsr(a, LVT_TIMER, (TIMER_PERIODIC | 0x40) as u64);
    rdtsc(a);
    a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
    wrmsr(a, TIMER_INITIAL, PERIOD);
    wait_for(a, 0, 10);
    wrmsr(a, LVT_TIMER, LVT_MASKED as u64);
    exit_with(a, 0);
    counting_handler(&mut p, 0x40);
    let mut m = machine("1s", &p.image(), true);
    assert_eq!(run(&mut m), RunEnd::Exit(10));
    let ticks: Vec<u64> = (0..10).map(|i| q(&m, 8 + 8 * i)).collect();
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], PERIOD, "ticks {ticks:?}");
    }
    let first = ticks[0] - q(&m, 0x100);
    assert!(
        (PERIOD..PERIOD + 200).contains(&first),
        "first tick {first} cycles after arming"
    );
    // The core slept through the periods: few instructions, the clock jumped.
    let c = &m.cores[0];
    assert!(m.instructions < 600, "{} instructions", m.instructions);
    assert!(
        c.halted_cycles > 9 * PERIOD,
        "halted {} of {}",
        c.halted_cycles,
        c.cycles
    );
}

#[test]
fn one_shot_timer_fires_once_at_initial_count_times_divisor() {
    for (dcr, div) in [(DIV_1, 1), (DIV_2, 2), (DIV_16, 16), (DIV_128, 128)] {
        let mut p = Prog::new();
        let a = &mut p.a;
        wrmsr(a, DCR, dcr as u64);
        wrmsr(a, LVT_TIMER, 0x40);
        rdtsc(a);
        a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
        wrmsr(a, TIMER_INITIAL, 1000);
        rdmsr(a, TIMER_CURRENT);
        a.mov(qword_ptr(rbx + 0x108), rax).unwrap();
        wait_for(a, 0, 1);
        // Long enough for a second period, were it periodic.
        spin(a, 150_000);
        rdmsr(a, TIMER_CURRENT);
        a.mov(qword_ptr(rbx + 0x110), rax).unwrap();
        exit_with(a, 0);
        counting_handler(&mut p, 0x40);
        let mut m = machine("1s", &p.image(), true);
        assert_eq!(
            run(&mut m),
            RunEnd::Exit(1),
            "divide by {div}: one interrupt"
        );
        let armed = q(&m, 0x100);
        let fired = q(&m, 8) - armed;
        assert!(
            fired >= 1000 * div && fired < 1000 * div + 200,
            "divide by {div}: fired after {fired} cycles"
        );
        let cur = q(&m, 0x108);
        assert!(
            cur <= 1000 && cur >= 1000 - 150 / div,
            "divide by {div}: current count {cur} right after arming"
        );
        assert_eq!(q(&m, 0x110), 0, "a one-shot timer stays at 0");
    }
}

#[test]
fn tsc_deadline_timer() {
    let mut p = Prog::new();
    let a = &mut p.a;
    wrmsr(a, LVT_TIMER, (TIMER_TSC_DEADLINE | 0x40) as u64);
    // The initial count is ignored in this mode.
    wrmsr(a, TIMER_INITIAL, 5);
    rdmsr(a, TIMER_INITIAL);
    a.mov(qword_ptr(rbx + 0x120), rax).unwrap();
    rdtsc(a);
    a.add(rax, 50_000).unwrap();
    a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
    a.mov(rdx, rax).unwrap();
    a.shr(rdx, 32).unwrap();
    a.mov(ecx, IA32_TSC_DEADLINE).unwrap();
    a.wrmsr().unwrap();
    rdmsr(a, IA32_TSC_DEADLINE);
    a.mov(qword_ptr(rbx + 0x108), rax).unwrap();
    wait_for(a, 0, 1);
    rdmsr(a, IA32_TSC_DEADLINE);
    a.mov(qword_ptr(rbx + 0x110), rax).unwrap();
    // A deadline already past fires at once, right after the WRMSR.
    rdtsc(a);
    a.sub(rax, 10).unwrap();
    a.mov(rdx, rax).unwrap();
    a.shr(rdx, 32).unwrap();
    a.mov(ecx, IA32_TSC_DEADLINE).unwrap();
    a.wrmsr().unwrap();
    a.mov(rax, qword_ptr(rbx)).unwrap();
    a.mov(qword_ptr(rbx + 0x118), rax).unwrap();
    // Armed then disarmed: nothing.
    rdtsc(a);
    a.add(rax, 1000).unwrap();
    a.mov(rdx, rax).unwrap();
    a.shr(rdx, 32).unwrap();
    a.mov(ecx, IA32_TSC_DEADLINE).unwrap();
    a.wrmsr().unwrap();
    wrmsr(a, IA32_TSC_DEADLINE, 0);
    spin(a, 5000);
    exit_with(a, 0);
    counting_handler(&mut p, 0x40);
    let mut m = machine("1s", &p.image(), true);
    assert_eq!(run(&mut m), RunEnd::Exit(2));
    let deadline = q(&m, 0x100);
    assert_eq!(q(&m, 0x108), deadline, "IA32_TSC_DEADLINE reads back");
    let at = q(&m, 8);
    assert!(
        at >= deadline && at < deadline + 100,
        "fired at {at}, deadline {deadline}"
    );
    assert_eq!(q(&m, 0x110), 0, "reads 0 once fired");
    assert_eq!(
        q(&m, 0x118),
        2,
        "a past deadline fires right after the WRMSR"
    );
    assert_eq!(
        q(&m, 0x120),
        0,
        "initial count ignored in TSC-deadline mode"
    );
}

#[test]
fn masked_timer_counts_without_interrupting_and_cannot_wake_a_halted_core() {
    let mut p = Prog::new();
    let a = &mut p.a;
    wrmsr(a, DCR, DIV_1 as u64);
    wrmsr(a, LVT_TIMER, (TIMER_PERIODIC | LVT_MASKED | 0x40) as u64);
    wrmsr(a, TIMER_INITIAL, 1000);
    a.sti().unwrap();
    spin(a, 20_000);
    rdmsr(a, TIMER_CURRENT);
    a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
    // Halted with interrupts on and nothing that can wake it: the run ends.
    a.hlt().unwrap();
    exit(a, 0x55);
    counting_handler(&mut p, 0x40);
    let mut m = machine("1s", &p.image(), true);
    assert_eq!(run(&mut m), RunEnd::AllHalted);
    assert_eq!(q(&m, 0), 0, "no interrupt");
    let cur = q(&m, 0x100);
    assert!(
        (1..=1000).contains(&cur),
        "periodic count goes on while masked: {cur}"
    );

    // Software-disabled APIC: LVT entries stay masked whatever is written.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rbx, DATA).unwrap();
    wrmsr(&mut a, LVT_TIMER, (TIMER_PERIODIC | 0x40) as u64);
    rdmsr(&mut a, LVT_TIMER);
    a.mov(qword_ptr(rbx), rax).unwrap();
    wrmsr(&mut a, TIMER_INITIAL, 100);
    a.sti().unwrap();
    spin(&mut a, 1000);
    stop(&mut a);
    let p = Prog {
        a,
        handlers: Vec::new(),
        extra: Vec::new(),
    };
    let mut m = machine("1s", &p.image(), true);
    assert_eq!(
        run(&mut m),
        RunEnd::AllHalted,
        "no IDT needed: nothing is delivered"
    );
    assert_eq!(q(&m, 0) as u32, TIMER_PERIODIC | LVT_MASKED | 0x40);
}

/// Cores 0 (socket 0) and 4 (socket 1) of `2s` play ping-pong with fixed IPIs.
#[test]
fn ipis_between_sockets_with_eoi() {
    const ROUNDS: i32 = 20;
    let mut p = Prog::new();
    let a = &mut p.a;
    let mut bsp = a.create_label();
    let mut responder = a.create_label();
    a.cmp(rsi, 0).unwrap();
    a.je(bsp).unwrap();
    a.cmp(rsi, 4).unwrap();
    a.je(responder).unwrap();
    stop(a);

    a.set_label(&mut responder).unwrap();
    a.mov(qword_ptr(rbx + 0x200), 1).unwrap();
    wait_for(a, 0x10, ROUNDS);
    stop(a);

    a.set_label(&mut bsp).unwrap();
    a.nop().unwrap();
    let mut ready = a.create_label();
    a.set_label(&mut ready).unwrap();
    a.pause().unwrap();
    a.cmp(qword_ptr(rbx + 0x200), 1).unwrap();
    a.jne(ready).unwrap();
    // r12 = round; send a ping, log when, wait for the pong.
    a.xor(r12d, r12d).unwrap();
    let mut round = a.create_label();
    a.set_label(&mut round).unwrap();
    rdtsc(a);
    a.mov(qword_ptr(rbx + r12 * 8 + 0x400), rax).unwrap();
    wrmsr(a, ICR, (4u64 << 32) | 0x50);
    a.inc(r12).unwrap();
    a.mov(rax, r12).unwrap();
    // wait_for with a register bound: cli; cmp; sti; hlt.
    let mut wait = a.create_label();
    let mut got = a.create_label();
    a.set_label(&mut wait).unwrap();
    a.cli().unwrap();
    a.cmp(qword_ptr(rbx + 0x18), r12).unwrap();
    a.jae(got).unwrap();
    a.sti().unwrap();
    a.hlt().unwrap();
    a.jmp(wait).unwrap();
    a.set_label(&mut got).unwrap();
    a.cmp(r12, ROUNDS).unwrap();
    a.jb(round).unwrap();
    // Every interrupt was EOI'd: nothing in service.
    rdmsr(a, ISR0 + 2);
    a.mov(qword_ptr(rbx + 0x308), rax).unwrap();
    exit_with(a, 0x18);

    // Ping (on core 4): count, log the time, note ISR, EOI, answer core 0.
    p.handler(0x50);
    let a = &mut p.a;
    rdtsc(a);
    a.mov(rcx, qword_ptr(rbx + 0x10)).unwrap();
    a.mov(qword_ptr(rbx + rcx * 8 + 0x800), rax).unwrap();
    a.inc(qword_ptr(rbx + 0x10)).unwrap();
    rdmsr(a, ISR0 + 2);
    a.mov(qword_ptr(rbx + 0x300), rax).unwrap();
    wrmsr(a, EOI, 0);
    wrmsr(a, ICR, 0x51);
    a.iretq().unwrap();
    // Pong (on core 0).
    p.handler(0x51);
    let a = &mut p.a;
    a.inc(qword_ptr(rbx + 0x18)).unwrap();
    wrmsr(a, EOI, 0);
    a.iretq().unwrap();

    let mut m = machine("2s", &p.image(), false);
    assert_eq!(m.cores[4].socket, 1);
    assert_eq!(m.cores[4].apic_id, 4);
    assert_eq!(run(&mut m), RunEnd::Exit(ROUNDS as u32));
    assert_eq!(q(&m, 0x10), ROUNDS as u64, "pings received");
    assert_eq!(
        q(&m, 0x300),
        1 << (0x50 - 64),
        "vector 0x50 in service in its handler"
    );
    assert_eq!(q(&m, 0x308), 0, "nothing in service after the EOIs");
    for i in 0..ROUNDS as u64 {
        let (sent, got) = (q(&m, 0x400 + 8 * i), q(&m, 0x800 + 8 * i));
        assert!(
            got >= sent && got < sent + 400,
            "round {i}: sent at {sent}, taken at {got}"
        );
    }
    assert_eq!(m.cores[0].apic.isr, [0; 4]);
    assert_eq!(m.cores[4].apic.irr, [0; 4]);
}

/// `--bsp-only`: core 0 starts the others with INIT and start-up IPIs (the standard INIT,
/// SIPI, SIPI sequence starts each once), then restarts them at another page.
#[test]
fn init_and_startup_ipis_start_the_other_cores() {
    const V1: u8 = 0x30;
    const V2: u8 = 0x31;
    let mut p = Prog::new();
    let a = &mut p.a;
    rdtsc(a);
    a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
    wrmsr(a, ICR, ICR_ALL_BUT_SELF | ICR_INIT | ICR_ASSERT);
    wrmsr(a, ICR, ICR_ALL_BUT_SELF | ICR_STARTUP | V1 as u64);
    wrmsr(a, ICR, ICR_ALL_BUT_SELF | ICR_STARTUP | V1 as u64);
    let mut wait = a.create_label();
    a.set_label(&mut wait).unwrap();
    a.pause().unwrap();
    a.cmp(qword_ptr(rbx), 7).unwrap();
    a.jb(wait).unwrap();
    // Started cores stopped (`cli; hlt`); INIT resets them, start-up sends them to V2's page.
    spin(a, 20_000);
    wrmsr(a, ICR, ICR_ALL_BUT_SELF | ICR_INIT | ICR_ASSERT);
    wrmsr(a, ICR, ICR_ALL_BUT_SELF | ICR_STARTUP | V2 as u64);
    let mut wait2 = a.create_label();
    a.set_label(&mut wait2).unwrap();
    a.pause().unwrap();
    a.cmp(qword_ptr(rbx + 8), 7).unwrap();
    a.jb(wait2).unwrap();
    spin(a, 20_000);
    a.mov(rax, qword_ptr(rbx)).unwrap();
    a.add(rax, qword_ptr(rbx + 8)).unwrap();
    a.out(0xF4u32, eax).unwrap();

    // Where V1 starts a core: record what it got, count, stop.
    let mut ap = CodeAssembler::new(64).unwrap();
    let mut start = ap.create_label();
    ap.set_label(&mut start).unwrap();
    ap.mov(rbx, DATA).unwrap();
    ap.lea(rax, ptr(start)).unwrap();
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x200), rax).unwrap();
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x300), rsp).unwrap();
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x400), rdi).unwrap();
    rdtsc(&mut ap);
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x500), rax).unwrap();
    ap.pushfq().unwrap();
    ap.pop(rax).unwrap();
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x600), rax).unwrap();
    ap.mov(rax, cr3).unwrap();
    ap.mov(qword_ptr(rbx + rsi * 8 + 0x700), rax).unwrap();
    ap.lock().inc(qword_ptr(rbx)).unwrap();
    stop(&mut ap);
    p.extra.push((SIPI_BASE + ((V1 as u64) << 12), ap));
    // V2's page: the boot stack again, counted apart.
    let mut ap2 = CodeAssembler::new(64).unwrap();
    ap2.mov(rbx, DATA).unwrap();
    ap2.mov(qword_ptr(rbx + rsi * 8 + 0x900), rsp).unwrap();
    ap2.lock().inc(qword_ptr(rbx + 8)).unwrap();
    stop(&mut ap2);
    p.extra.push((SIPI_BASE + ((V2 as u64) << 12), ap2));

    let mut m = machine("2s", &p.image(), true);
    let boot: Vec<(u64, u64)> = m.cores.iter().map(|c| (c.gpr[4], c.gpr[7])).collect();
    for c in &m.cores[1..] {
        assert!(c.apic.wait_for_sipi, "core {} waits for start-up", c.index);
    }
    assert_eq!(run(&mut m), RunEnd::Exit(14));
    let sent = q(&m, 0x100);
    for i in 1..8u64 {
        assert_eq!(
            q(&m, 0x200 + 8 * i),
            0x13_0000,
            "core {i} started at SIPI_BASE + (0x30 << 12)"
        );
        assert_eq!(
            q(&m, 0x300 + 8 * i),
            boot[i as usize].0,
            "core {i}: rsp = its boot stack top - 8"
        );
        assert_eq!(q(&m, 0x400 + 8 * i), boot[0].1, "core {i}: rdi = BootInfo");
        assert!(
            q(&m, 0x500 + 8 * i) > sent,
            "core {i} starts after it was sent the IPI"
        );
        assert_eq!(
            q(&m, 0x600 + 8 * i) & (1 << 9),
            0,
            "core {i}: interrupts off"
        );
        assert_eq!(
            q(&m, 0x700 + 8 * i),
            m.cores[0].cr3,
            "core {i}: boot page tables"
        );
        assert_eq!(
            q(&m, 0x900 + 8 * i),
            boot[i as usize].0,
            "core {i}: restarted on its boot stack"
        );
    }
    // The loop in wait2 proves each core ran V1's page exactly once: the count is 7 + 7.
}

/// TPR blocks lower classes, the highest IRR vector goes first, a handler nests only a higher
/// class, and EOI lets the next one in.
#[test]
fn priority_tpr_ordering_and_nesting() {
    let mut p = Prog::new();
    let a = &mut p.a;
    a.sti().unwrap();
    wrmsr(a, TPR, 0x50);
    wrmsr(a, SELF_IPI, 0x45); // class 4 <= 5: held
    wrmsr(a, SELF_IPI, 0x65); // class 6: taken at once
    rdmsr(a, PPR);
    a.mov(qword_ptr(rbx + 0x100), rax).unwrap();
    rdmsr(a, IRR0 + 2);
    a.mov(qword_ptr(rbx + 0x108), rax).unwrap();
    wrmsr(a, TPR, 0); // now 0x45
    a.cli().unwrap();
    wrmsr(a, SELF_IPI, 0x41);
    wrmsr(a, SELF_IPI, 0x92);
    wrmsr(a, SELF_IPI, 0x73);
    a.sti().unwrap();
    a.nop().unwrap(); // the STI shadow
    a.nop().unwrap(); // 0x92, 0x73, 0x41
    wrmsr(a, SELF_IPI, 0x80);
    a.nop().unwrap();
    exit_with(a, 0);

    /// Logs the vector at [rbx + 8 + 8n] and the PPR at [rbx + 0x200 + 8n] (clobbers rax, rcx, rdx).
    fn log(a: &mut Asm, v: i32) {
        rdmsr(a, PPR);
        a.mov(rcx, qword_ptr(rbx)).unwrap();
        a.mov(qword_ptr(rbx + rcx * 8 + 0x200), rax).unwrap();
        a.mov(qword_ptr(rbx + rcx * 8 + 8), v).unwrap();
        a.inc(qword_ptr(rbx)).unwrap();
    }
    for v in [0x41, 0x45, 0x65, 0x73, 0x81, 0x90, 0x92] {
        p.handler(v);
        let a = &mut p.a;
        a.push(rax).unwrap();
        a.push(rcx).unwrap();
        a.push(rdx).unwrap();
        log(a, v as i32);
        wrmsr(a, EOI, 0);
        a.pop(rdx).unwrap();
        a.pop(rcx).unwrap();
        a.pop(rax).unwrap();
        a.iretq().unwrap();
    }
    // 0x80 lets interrupts in, raises 0x81 (its own class: waits for the EOI) and 0x90
    // (higher: nests at once).
    p.handler(0x80);
    let a = &mut p.a;
    a.push(rax).unwrap();
    a.push(rcx).unwrap();
    a.push(rdx).unwrap();
    log(a, 0x80);
    a.sti().unwrap();
    wrmsr(a, SELF_IPI, 0x81);
    wrmsr(a, SELF_IPI, 0x90);
    a.nop().unwrap();
    log(a, 0x1);
    a.cli().unwrap();
    wrmsr(a, EOI, 0);
    a.pop(rdx).unwrap();
    a.pop(rcx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();

    let mut m = machine("1s", &p.image(), true);
    let order = [0x65, 0x45, 0x92, 0x73, 0x41, 0x80, 0x90, 0x1, 0x81];
    assert_eq!(run(&mut m), RunEnd::Exit(order.len() as u32));
    let log: Vec<u64> = (0..order.len() as u64).map(|i| q(&m, 8 + 8 * i)).collect();
    assert_eq!(log, order);
    let ppr: Vec<u64> = (0..order.len() as u64)
        .map(|i| q(&m, 0x200 + 8 * i))
        .collect();
    assert_eq!(
        ppr,
        [0x60, 0x40, 0x90, 0x70, 0x40, 0x80, 0x90, 0x80, 0x80],
        "PPR in each handler"
    );
    assert_eq!(q(&m, 0x100), 0x50, "PPR = TPR with nothing in service");
    assert_eq!(q(&m, 0x108), 1 << (0x45 - 64), "0x45 held in IRR");
}

/// Reserved and read-only/write-only registers raise #GP(0) (x2APIC rules), the read-only
/// ones read right, illegal vectors land in ESR.
#[test]
fn register_access_and_errors() {
    let mut p = Prog::new();
    let a = &mut p.a;
    let mut tester = a.create_label();
    a.cmp(rsi, 5).unwrap();
    a.je(tester).unwrap();
    rdmsr(a, IA32_APIC_BASE);
    a.mov(qword_ptr(rbx + rsi * 8 + 0x100), rax).unwrap();
    a.cmp(rsi, 0).unwrap();
    let mut not_bsp = a.create_label();
    a.jne(not_bsp).unwrap();
    wait_for(a, 0x80, 1);
    exit_with(a, 0x10);
    a.set_label(&mut not_bsp).unwrap();
    stop(a);

    a.set_label(&mut tester).unwrap();
    for msr in [0x809, EOI, SELF_IPI, 0x831, 0x8FF, 0xBFF] {
        a.mov(ecx, msr).unwrap();
        a.rdmsr().unwrap();
    }
    for (msr, v) in [
        (ID, 5u64),
        (EOI, 1),
        (TPR, 0x100),
        (SVR, 1 << 32),
        (ICR, 1 << 12),
        (IA32_APIC_BASE, APIC_BASE_DEFAULT_PAGE),
        (PPR, 0),
    ] {
        wrmsr(a, msr, v);
    }
    rdmsr(a, ID);
    a.mov(qword_ptr(rbx + 0x20), rax).unwrap();
    rdmsr(a, VERSION);
    a.mov(qword_ptr(rbx + 0x28), rax).unwrap();
    rdmsr(a, LDR);
    a.mov(qword_ptr(rbx + 0x30), rax).unwrap();
    wrmsr(a, SELF_IPI, 5);
    wrmsr(a, ICR, ICR_SELF | 3);
    wrmsr(a, ESR, 0);
    rdmsr(a, ESR);
    a.mov(qword_ptr(rbx + 0x38), rax).unwrap();
    // Tell core 0 (logical destination: cluster 0, member bit 0) we are done.
    wrmsr(a, ICR, (1u64 << 32) | ICR_LOGICAL | 0x60);
    stop(a);

    // #GP: skip the 2-byte RDMSR/WRMSR, count.
    p.handler(13);
    let a = &mut p.a;
    a.add(rsp, 8).unwrap();
    a.add(qword_ptr(rsp), 2).unwrap();
    a.inc(qword_ptr(rbx + 0x10)).unwrap();
    a.iretq().unwrap();
    p.handler(0x60);
    let a = &mut p.a;
    a.inc(qword_ptr(rbx + 0x80)).unwrap();
    wrmsr(a, EOI, 0);
    a.iretq().unwrap();

    let mut m = machine("2s", &p.image(), false);
    assert_eq!(
        run(&mut m),
        RunEnd::Exit(13),
        "6 bad reads and 7 bad writes raise #GP"
    );
    assert_eq!(q(&m, 0x20), 5, "x2APIC id of core 5 (socket 1, core 1)");
    assert_eq!(q(&m, 0x28), VERSION_VALUE as u64);
    assert_eq!(q(&m, 0x30), 1 << 5, "LDR: cluster 0, bit 5");
    assert_eq!(q(&m, 0x38) as u32, ESR_SEND_ILLEGAL | ESR_RECV_ILLEGAL);
    let base = APIC_BASE_DEFAULT_PAGE | APIC_BASE_EN | APIC_BASE_EXTD;
    assert_eq!(
        q(&m, 0x100),
        base | APIC_BASE_BSP,
        "core 0 is the BSP, in x2APIC mode"
    );
    assert_eq!(q(&m, 0x108), base);
}

/// Every core of `2s` runs a periodic timer of its own period and sends an IPI round a ring
/// at each tick; with the timing model on, two runs end in the same state.
#[test]
fn timers_and_ipis_are_deterministic() {
    let mut p = Prog::new();
    let a = &mut p.a;
    // r12 = this core's counters at DATA + 0x1000 + 64 * index; r13 = next core's x2APIC id.
    a.mov(r12, rsi).unwrap();
    a.shl(r12, 6).unwrap();
    a.lea(r12, qword_ptr(r12 + rbx + 0x1000)).unwrap();
    a.lea(eax, dword_ptr(rsi + 1)).unwrap();
    a.xor(edx, edx).unwrap();
    a.div(dword_ptr(rdi + 0x18)).unwrap();
    a.mov(rax, qword_ptr(rdi + 0x20)).unwrap();
    a.shl(rdx, 4).unwrap();
    a.mov(r13d, dword_ptr(rax + rdx)).unwrap();
    wrmsr(a, DCR, DIV_1 as u64);
    wrmsr(a, LVT_TIMER, (TIMER_PERIODIC | 0x40) as u64);
    a.imul_3(eax, esi, 700).unwrap();
    a.add(eax, 3000).unwrap();
    a.xor(edx, edx).unwrap();
    a.mov(ecx, TIMER_INITIAL).unwrap();
    a.wrmsr().unwrap();
    let mut top = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut top).unwrap();
    a.cli().unwrap();
    a.cmp(qword_ptr(r12), 50).unwrap();
    a.jae(done).unwrap();
    a.sti().unwrap();
    a.hlt().unwrap();
    a.jmp(top).unwrap();
    a.set_label(&mut done).unwrap();
    wrmsr(a, LVT_TIMER, LVT_MASKED as u64);
    a.lock().inc(qword_ptr(rbx)).unwrap();
    let mut others = a.create_label();
    a.cmp(rsi, 0).unwrap();
    a.jne(others).unwrap();
    let mut wait = a.create_label();
    a.set_label(&mut wait).unwrap();
    a.pause().unwrap();
    a.cmp(qword_ptr(rbx), 8).unwrap();
    a.jb(wait).unwrap();
    exit(a, 0);
    a.set_label(&mut others).unwrap();
    stop(a);
    p.handler(0x40);
    let a = &mut p.a;
    a.push(rax).unwrap();
    a.push(rcx).unwrap();
    a.push(rdx).unwrap();
    a.inc(qword_ptr(r12)).unwrap();
    a.mov(edx, r13d).unwrap();
    a.mov(eax, 0x50).unwrap();
    a.mov(ecx, ICR).unwrap();
    a.wrmsr().unwrap();
    wrmsr(a, EOI, 0);
    a.pop(rdx).unwrap();
    a.pop(rcx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();
    p.handler(0x50);
    let a = &mut p.a;
    a.inc(qword_ptr(r12 + 8)).unwrap();
    a.push(rax).unwrap();
    a.push(rcx).unwrap();
    a.push(rdx).unwrap();
    wrmsr(a, EOI, 0);
    a.pop(rdx).unwrap();
    a.pop(rcx).unwrap();
    a.pop(rax).unwrap();
    a.iretq().unwrap();
    let image = p.image();

    let once = || {
        let mut m = machine("2s", &image, false);
        m.enable_timing();
        let end = run(&mut m);
        let counters: Vec<(u64, u64)> = (0..8)
            .map(|i| (q(&m, 0x1000 + 64 * i), q(&m, 0x1008 + 64 * i)))
            .collect();
        (end, m.state_hash(), m.cycles(), m.instructions, counters)
    };
    let a = once();
    assert_eq!(a.0, RunEnd::Exit(0));
    for (i, &(ticks, ipis)) in a.4.iter().enumerate() {
        assert_eq!(ticks, 50, "core {i} ticks");
        assert!(ipis > 0, "core {i} received IPIs");
    }
    assert_eq!(
        a,
        once(),
        "two runs, same end, hash, cycles, instructions, counters"
    );
}

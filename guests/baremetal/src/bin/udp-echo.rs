//! A UDP echo responder driving the NIC (`abi::nic`, `abi::udp_rr`): one core — the first
//! core of the last socket, or `core=N` on the command line — sets up queue 0 with its rings
//! and buffers on its own node, answers every request from the wire's load generator with
//! the same payload (addresses and ports swapped), and when the generator says bye, waits for
//! its last answers to leave, prints its counts and exits 0. The other cores stop at once.
//!
//! By default the core polls the receive ring. With `irq` on the command line it sleeps
//! instead: the queue's interrupt goes to its local APIC (vector [`VECTOR`]), and when the
//! ring is empty the core halts with interrupts enabled (`sti; hlt`) until a frame arrives;
//! the handler only acknowledges the interrupt (EOI), the main loop does the work (clearing
//! the queue's cause in `ICR` before looking at the ring, as `abi::nic` says).
//!
//! Exit status 2: no NIC in BootInfo; 3: no usable RAM on the responder's node.
#![no_std]
#![no_main]

use abi::nic::{self as reg};
use abi::udp_rr;
use baremetal::nic::{self, EchoQueue, Nic};
use baremetal::{Boot, exit, halt, println};

baremetal::entry!(smp main);

/// Descriptors per ring.
const RING: u64 = 256;
/// The receive interrupt's vector in `irq` mode.
const VECTOR: u8 = 0x40;

// The interrupt handler: EOI to the x2APIC, nothing else (the main loop does the work).
core::arch::global_asm!(
    ".global udp_echo_isr",
    "udp_echo_isr:",
    "push rax",
    "push rcx",
    "push rdx",
    "mov ecx, {eoi}",
    "xor eax, eax",
    "xor edx, edx",
    "wrmsr",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "iretq",
    eoi = const abi::apic::EOI,
);

unsafe extern "C" {
    fn udp_echo_isr();
}

/// 256 interrupt gates.
#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut IDT: Idt = Idt([0; 512]);

/// Installs an IDT whose only gate is [`VECTOR`] → `udp_echo_isr`, and enables the local APIC.
fn setup_interrupts() {
    let isr = udp_echo_isr as *const () as u64;
    // A 64-bit interrupt gate (SDM Vol. 3A Figure 6-8): code selector 0x08, present, DPL 0.
    let low = (isr & 0xFFFF) | 0x08 << 16 | 0x8E << 40 | ((isr >> 16) & 0xFFFF) << 48;
    let limit_base: [u16; 5];
    // SAFETY: only the responder core touches IDT, once, before enabling interrupts.
    unsafe {
        let idt = &raw mut IDT;
        (*idt).0[2 * VECTOR as usize] = low;
        (*idt).0[2 * VECTOR as usize + 1] = isr >> 32;
        let base = idt as u64;
        limit_base = [
            4095,
            base as u16,
            (base >> 16) as u16,
            (base >> 32) as u16,
            (base >> 48) as u16,
        ];
        core::arch::asm!("lidt [{}]", in(reg) limit_base.as_ptr(), options(nostack));
        let svr = abi::apic::SVR_ENABLE as u64 | 0xFF;
        core::arch::asm!("wrmsr", in("ecx") abi::apic::SVR, in("eax") svr as u32,
                         in("edx") 0u32, options(nostack));
    }
}

/// Sleeps until an interrupt unless `ready()` (checked with interrupts off, so that an
/// interrupt between the check and `hlt` still wakes the core: `sti` holds delivery until
/// after the next instruction). Interrupts are off again on return.
fn sleep_unless(ready: impl Fn() -> bool) -> bool {
    // SAFETY: `cli` only masks interrupts.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    if ready() {
        return false;
    }
    // SAFETY: the handler only sends an EOI; interrupts are taken between `hlt` and `cli`
    // only, on this stack, which this block does not claim as `nostack` (no red zone in use).
    unsafe { core::arch::asm!("sti", "hlt", "cli") };
    true
}

fn responder(boot: &Boot) -> usize {
    if let Some(n) = boot
        .cmdline()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("core="))
        .and_then(|n| n.parse().ok())
        .filter(|&n: &usize| n < boot.ncores())
    {
        return n;
    }
    let cores = boot.cores();
    let last = cores.iter().map(|c| c.socket).max().unwrap_or(0);
    cores.iter().position(|c| c.socket == last).unwrap_or(0)
}

fn main(boot: &Boot) -> u32 {
    let me = boot.core();
    if me != responder(boot) {
        halt();
    }
    let Some(nic) = Nic::find(boot) else {
        println!("udp-echo: no NIC");
        exit(2);
    };
    let node = boot.cores()[me].node;
    // Rings and buffers at the top of the largest usable range of this core's node.
    let size = nic::footprint(RING);
    let Some(range) = boot
        .ranges()
        .iter()
        .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node == node && r.len >= size + 4096)
        .max_by_key(|r| r.len)
    else {
        println!("udp-echo: no memory on node {node}");
        exit(3);
    };
    let base = (range.base + range.len - size) & !0xFFF;

    nic.write(reg::CTRL, reg::CTRL_RESET);
    let mut queue = EchoQueue::new(nic, 0, RING, base);
    let irq = boot.cmdline().split_whitespace().any(|w| w == "irq");
    if irq {
        setup_interrupts();
        queue.route_interrupt(VECTOR, boot.cores()[me].apic_id);
        nic.write(reg::IMS, reg::cause_rx(0));
    }
    nic.write(reg::CTRL, reg::CTRL_ENABLE);
    let mac = nic.mac();
    println!(
        "udp-echo: core {me} (node {node}) answers on port {} for {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; NIC on node {}, rings on node {node}",
        udp_rr::ECHO_PORT,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
        nic.node
    );

    let (mut answered, mut ignored) = (0u64, 0u64);
    let (mut bye, mut sleeps) = (false, 0u64);
    while !bye {
        if irq {
            // Clear the cause before looking: a frame from now on raises it again.
            nic.write(reg::ICR, reg::cause_rx(0));
        }
        // Poll the next receive descriptor, or sleep until the NIC interrupts.
        if !queue.ready() {
            if irq {
                sleeps += sleep_unless(|| queue.ready()) as u64;
            } else {
                core::hint::spin_loop();
            }
            continue;
        }
        let s = queue.serve();
        answered += s.answered;
        ignored += s.ignored;
        bye = s.bye;
    }
    queue.drain();
    println!(
        "udp-echo: answered {answered}, ignored {ignored}, slept {sleeps} times; NIC rx {} tx {} dropped {}",
        nic.read(reg::RX_PACKETS),
        nic.read(reg::TX_PACKETS),
        nic.dropped()
    );
    exit(0)
}

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

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, compiler_fence};

use abi::nic::{self as reg};
use abi::udp_rr::{self, frame::*};
use baremetal::{Boot, exit, halt, println};

baremetal::entry!(smp main);

/// Descriptors per ring.
const RING: u64 = 256;
/// Bytes per buffer (a 1514-byte frame fits).
const BUF: u64 = 2048;
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
    let isr = udp_echo_isr as usize as u64;
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

/// The NIC's registers at `base`.
struct Nic {
    base: u64,
}

impl Nic {
    fn read(&self, off: u64) -> u64 {
        // SAFETY: `base` is the NIC's MMIO window, identity-mapped by the loader; the
        // register file accepts 8-byte loads at 8-byte-aligned offsets.
        unsafe { read_volatile((self.base + off) as *const u64) }
    }
    fn write(&self, off: u64, v: u64) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + off) as *mut u64, v) }
    }
}

/// A descriptor of a ring in RAM.
fn desc(ring: u64, i: u64) -> *mut reg::Desc {
    (ring + (i % RING) * reg::DESC_SIZE) as *mut reg::Desc
}

fn status(ring: u64, i: u64) -> u16 {
    // SAFETY: `desc` points into a ring this program owns; the NIC writes it by DMA, hence
    // the volatile read.
    unsafe { read_volatile(&raw const (*desc(ring, i)).status) }
}

fn set_desc(ring: u64, i: u64, addr: u64, len: u16) {
    let d = reg::Desc {
        addr,
        len,
        flags: 0,
        status: 0,
        reserved: 0,
    };
    // SAFETY: as for `status`.
    unsafe { write_volatile(desc(ring, i), d) }
}

fn find_nic(boot: &Boot) -> Option<(Nic, u32)> {
    boot.ranges()
        .iter()
        .filter(|r| r.kind == abi::boot::MEM_MMIO)
        .map(|r| (Nic { base: r.base }, r.node))
        .find(|(n, _)| n.read(reg::ID) == reg::NIC_ID)
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
    let Some((nic, nic_node)) = find_nic(boot) else {
        println!("udp-echo: no NIC");
        exit(2);
    };
    let node = boot.cores()[me].node;
    // Rings and buffers at the top of the largest usable range of this core's node.
    let size = 2 * RING * reg::DESC_SIZE + 2 * RING * BUF;
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
    let (rx_ring, tx_ring) = (base, base + RING * reg::DESC_SIZE);
    let rx_bufs = base + 2 * RING * reg::DESC_SIZE;
    let tx_bufs = rx_bufs + RING * BUF;

    nic.write(reg::CTRL, reg::CTRL_RESET);
    let q = reg::queue(0);
    for i in 0..RING {
        set_desc(rx_ring, i, rx_bufs + i * BUF, BUF as u16);
        set_desc(tx_ring, i, 0, 0);
    }
    nic.write(q + reg::RX_BASE, rx_ring);
    nic.write(q + reg::RX_SIZE, RING);
    nic.write(q + reg::RX_TAIL, RING - 1);
    nic.write(q + reg::TX_BASE, tx_ring);
    nic.write(q + reg::TX_SIZE, RING);
    let irq = boot.cmdline().split_whitespace().any(|w| w == "irq");
    if irq {
        setup_interrupts();
        let apic_id = boot.cores()[me].apic_id as u64;
        nic.write(q + reg::IRQ, VECTOR as u64 | apic_id << reg::IRQ_DEST_SHIFT);
        nic.write(reg::IMS, reg::cause_rx(0));
    }
    nic.write(reg::CTRL, reg::CTRL_ENABLE);
    let mac = reg::mac_from_bits(nic.read(reg::MAC));
    println!(
        "udp-echo: core {me} (node {node}) answers on port {} for {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; NIC on node {nic_node}, rings on node {node}",
        udp_rr::ECHO_PORT,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );

    let (mut rx_next, mut tx_sent, mut tx_done) = (0u64, 0u64, 0u64);
    let (mut answered, mut ignored) = (0u64, 0u64);
    let (mut bye, mut sleeps) = (false, 0u64);
    while !bye {
        if irq {
            // Clear the cause before looking: a frame from now on raises it again.
            nic.write(reg::ICR, reg::cause_rx(0));
        }
        // Poll the next receive descriptor, or sleep until the NIC interrupts.
        if status(rx_ring, rx_next) & reg::DD == 0 {
            if irq {
                sleeps += sleep_unless(|| status(rx_ring, rx_next) & reg::DD != 0) as u64;
            } else {
                core::hint::spin_loop();
            }
            continue;
        }
        // A batch: every frame that is ready.
        while status(rx_ring, rx_next) & reg::DD != 0 {
            compiler_fence(Ordering::Acquire);
            // SAFETY: the descriptor is done, so the NIC has written `len` bytes into this
            // buffer, which the program owns until it gives the descriptor back.
            let d = unsafe { read_volatile(desc(rx_ring, rx_next)) };
            let frame =
                // SAFETY: as above; `len` <= BUF.
                unsafe { core::slice::from_raw_parts(d.addr as *const u8, d.len as usize) };
            match classify(frame) {
                Some(udp_rr::KIND_REQUEST) => {
                    // Room for one more frame in flight (at most RING - 1).
                    while tx_sent - tx_done >= RING - 1 {
                        if status(tx_ring, tx_done) & reg::DD != 0 {
                            tx_done += 1;
                        }
                    }
                    let buf = tx_bufs + (tx_sent % RING) * BUF;
                    // SAFETY: the transmit buffer of a descriptor the NIC is done with.
                    let out =
                        unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, frame.len()) };
                    out.copy_from_slice(frame);
                    swap(out, ETH_DST, ETH_SRC, 6);
                    swap(out, IP_SRC, IP_DST, 4);
                    swap(out, UDP_SRC, UDP_DST, 2);
                    set_desc(tx_ring, tx_sent, buf, frame.len() as u16);
                    tx_sent += 1;
                    answered += 1;
                }
                Some(udp_rr::KIND_BYE) => bye = true,
                _ => ignored += 1,
            }
            set_desc(rx_ring, rx_next, d.addr, BUF as u16);
            rx_next += 1;
        }
        compiler_fence(Ordering::Release);
        // One doorbell per batch, and the batch's receive descriptors back to the NIC.
        nic.write(q + reg::TX_TAIL, tx_sent % RING);
        nic.write(q + reg::RX_TAIL, (rx_next - 1) % RING);
    }
    while tx_done < tx_sent {
        if status(tx_ring, tx_done) & reg::DD != 0 {
            tx_done += 1;
        }
    }
    println!(
        "udp-echo: answered {answered}, ignored {ignored}, slept {sleeps} times; NIC rx {} tx {} dropped {}",
        nic.read(reg::RX_PACKETS),
        nic.read(reg::TX_PACKETS),
        nic.read(reg::RX_NO_DESC) + nic.read(reg::RX_NO_MATCH)
    );
    exit(0)
}

/// The `udp_rr` kind of a frame to the echo port, if it is one.
fn classify(f: &[u8]) -> Option<u32> {
    if f.len() < PAYLOAD + udp_rr::HEADER_SIZE
        || u16::from_be_bytes([f[ETH_TYPE], f[ETH_TYPE + 1]]) != ETHERTYPE_IPV4
        || f[IP] != 0x45
        || f[IP_PROTO] != PROTO_UDP
        || u16::from_be_bytes([f[UDP_DST], f[UDP_DST + 1]]) != udp_rr::ECHO_PORT
    {
        return None;
    }
    let p = &f[PAYLOAD..];
    let magic = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    (magic == udp_rr::MAGIC).then(|| u32::from_le_bytes([p[4], p[5], p[6], p[7]]))
}

/// Swaps `n` bytes at `a` with those at `b`.
fn swap(f: &mut [u8], a: usize, b: usize, n: usize) {
    for i in 0..n {
        f.swap(a + i, b + i);
    }
}

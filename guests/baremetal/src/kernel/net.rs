//! The NIC phase (`net` on the command line): the kernel drives the NIC (`abi::nic`) to
//! answer UDP requests (`abi::udp_rr`) from the wire's load generator on two cores of two
//! sockets, from interrupt handlers.
//!
//! Core 0 resets the NIC and sets up two queues, each with its rings and buffers on the node
//! of the core that serves it: queue 0 for the NIC's own MAC, served by core 0; queue 1 for
//! [`second_mac`] (the NIC's MAC with its last byte plus one), served by the first core of
//! another socket (on one socket: the last core). Filters steer each MAC to its queue; each
//! queue interrupts its own core with its own vector ([`VECTOR`] + queue). The handler
//! clears the queue's causes in `ICR`, answers every request in the ring, and sends the EOI;
//! a bye from the generator ends a queue (its last responses drained first). Core 0 waits,
//! halted, until both queues have seen their bye or [`TIMEOUT`] cycles pass (a TSC-deadline
//! timer wakes it), then checks what each queue did.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use abi::nic as reg;
use baremetal::nic::{self, EchoQueue, Nic};
use baremetal::{Boot, println, rdtsc};

use super::arch::{Global, wait_for_interrupt};
use super::gdt::MAX_CORES;
use super::{Checks, apic, percpu};

/// Queues the kernel serves.
pub const QUEUES: usize = 2;
/// Queue `q` interrupts with `VECTOR + q`.
pub const VECTOR: u8 = 0x50;
/// Sent by a server core other than core 0 to wake core 0 when its queue is done.
pub const DONE_VECTOR: u8 = 0x52;
/// Descriptors per ring.
const RING: u64 = 128;
/// How long core 0 waits for both byes (1 s at 2.4 GHz): far beyond a test's traffic, and
/// cheap when nobody sends (every core sleeps until the deadline).
pub const TIMEOUT: u64 = 2_400_000_000;

/// Each queue's driver state, touched only by the queue's server core once set up (core 0
/// sets it up before any of its interrupts are enabled).
static QUEUE: [Global<Option<EchoQueue>>; QUEUES] = [const { Global::new(None) }; QUEUES];
/// Per queue: the core that serves it.
static SERVER: [AtomicUsize; QUEUES] = [const { AtomicUsize::new(0) }; QUEUES];
static ANSWERED: [AtomicU64; QUEUES] = [const { AtomicU64::new(0) }; QUEUES];
static IGNORED: [AtomicU64; QUEUES] = [const { AtomicU64::new(0) }; QUEUES];
static INTERRUPTS: [AtomicU64; QUEUES] = [const { AtomicU64::new(0) }; QUEUES];
/// Interrupts of the queue taken on a core other than its server.
static ELSEWHERE: [AtomicU64; QUEUES] = [const { AtomicU64::new(0) }; QUEUES];
static TX_ERRORS: [AtomicU64; QUEUES] = [const { AtomicU64::new(0) }; QUEUES];
static BYE: [AtomicBool; QUEUES] = [const { AtomicBool::new(false) }; QUEUES];

/// The NIC's MAC with its last byte plus one: the address queue 1 answers for.
pub fn second_mac(mac: [u8; 6]) -> [u8; 6] {
    let mut m = mac;
    m[5] = m[5].wrapping_add(1);
    m
}

/// Queue `q`'s interrupt handler (vector `VECTOR + q`).
pub fn interrupt(q: usize) {
    INTERRUPTS[q].fetch_add(1, Relaxed);
    if percpu::core() != SERVER[q].load(Relaxed) {
        ELSEWHERE[q].fetch_add(1, Relaxed);
        apic::eoi();
        return;
    }
    // SAFETY: only this queue's server core touches its state after set-up, and only here,
    // with interrupts off (an interrupt gate), so never re-entered.
    let Some(queue) = (unsafe { (*QUEUE[q].get()).as_mut() }) else {
        apic::eoi();
        return;
    };
    queue.acknowledge();
    let s = queue.serve();
    ANSWERED[q].fetch_add(s.answered, Relaxed);
    IGNORED[q].fetch_add(s.ignored, Relaxed);
    if s.bye && !BYE[q].load(Relaxed) {
        queue.drain();
        TX_ERRORS[q].store(queue.tx_errors, Relaxed);
        BYE[q].store(true, Release);
        if percpu::core() != 0 {
            apic::send_to_core(0, DONE_VECTOR);
        }
    }
    apic::eoi();
}

/// Top-down allocation of page-aligned RAM on one node, from its largest usable range (the
/// loader's stacks and tables are not usable ranges; the kernel uses its image and the
/// start-up page only). `taken[node]` counts the bytes already given out there.
fn take(boot: &Boot, node: u32, taken: &mut [u64; MAX_CORES], size: u64) -> Option<u64> {
    let r = boot
        .ranges()
        .iter()
        .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node == node)
        .max_by_key(|r| r.len)?;
    let used = taken.get_mut(node as usize)?;
    let top = r.base + r.len - *used;
    let at = top.checked_sub(size)? & !0xFFF;
    if at < r.base {
        return None;
    }
    *used = r.base + r.len - at;
    Some(at)
}

/// The cores that serve queues 0 and 1, among the `n` running.
fn servers(boot: &Boot, n: usize) -> [usize; QUEUES] {
    let cores = &boot.cores()[..n];
    let other = cores
        .iter()
        .position(|c| c.socket != cores[0].socket)
        .unwrap_or(n - 1);
    [0, other]
}

/// Runs the phase and checks it. `n` cores are online, waiting for interrupts.
pub fn check(c: &mut Checks, boot: &Boot, n: usize) {
    let Some(nic) = Nic::find(boot) else {
        check!(c, false, "NIC: none in BootInfo");
        return;
    };
    let nqueues = nic.read(reg::QUEUES);
    let servers = servers(boot, n);
    let mac = nic.mac();
    let macs = [mac, second_mac(mac)];
    let mut taken = [0u64; MAX_CORES];
    let mut nodes = [0u32; QUEUES];
    nic.write(reg::CTRL, reg::CTRL_RESET);
    for q in 0..QUEUES {
        let core = &boot.cores()[servers[q]];
        nodes[q] = core.node;
        let Some(mem) = take(boot, core.node, &mut taken, nic::footprint(RING)) else {
            check!(
                c,
                false,
                "NIC: no room for queue {q}'s rings on node {}",
                core.node
            );
            return;
        };
        let queue = EchoQueue::new(nic, q as u64, RING, mem);
        queue.route_interrupt(VECTOR + q as u8, core.apic_id);
        SERVER[q].store(servers[q], Relaxed);
        // SAFETY: the queue's interrupts are not enabled yet; its server reads this after
        // the NIC's interrupt, which the `IMS` write below orders after this store.
        unsafe { *QUEUE[q].get() = Some(queue) };
        nic.steer(q as u64, macs[q], q as u64);
    }
    nic.write(reg::IMS, reg::cause_rx(0) | reg::cause_rx(1));
    nic.write(reg::CTRL, reg::CTRL_ENABLE);
    let sockets = servers.map(|k| boot.cores()[k].socket);
    let m = |m: [u8; 6]| MacFmt(m);
    check!(
        c,
        nqueues >= QUEUES as u64 && nic.read(reg::STATUS) & reg::STATUS_ENABLED != 0,
        "NIC on node {}: {nqueues} queues; queue 0 ({}) -> core {} on socket {}, queue 1 ({}) \
         -> core {} on socket {}, rings on nodes {} and {}",
        nic.node,
        m(macs[0]),
        servers[0],
        sockets[0],
        m(macs[1]),
        servers[1],
        sockets[1],
        nodes[0],
        nodes[1]
    );
    println!("kernel: NIC ready, waiting for the generator's requests");

    // Sleep until both byes, or the deadline (the timer's own handler only counts ticks).
    let deadline = rdtsc() + TIMEOUT;
    apic::timer(abi::apic::TIMER_TSC_DEADLINE, abi::apic::DIV_1, 0);
    apic::deadline(deadline);
    let done = || BYE.iter().all(|b| b.load(Acquire));
    while !done() && rdtsc() < deadline {
        wait_for_interrupt();
    }
    apic::stop_timer();
    nic.write(reg::IMC, reg::cause_rx(0) | reg::cause_rx(1));

    let mut total = [0u64; 2];
    for q in 0..QUEUES {
        let (a, i) = (ANSWERED[q].load(Relaxed), IGNORED[q].load(Relaxed));
        let (irqs, elsewhere) = (INTERRUPTS[q].load(Relaxed), ELSEWHERE[q].load(Relaxed));
        let errors = TX_ERRORS[q].load(Relaxed);
        total[0] += a;
        total[1] += a + i + BYE[q].load(Relaxed) as u64;
        check!(
            c,
            BYE[q].load(Relaxed) && a > 0 && irqs > 0 && elsewhere == 0 && errors == 0,
            "queue {q}: core {} on socket {} answered {a} requests from its interrupt handler \
             ({irqs} interrupts, {elsewhere} on other cores), ignored {i}, then the bye",
            servers[q],
            sockets[q]
        );
    }
    let (rx, tx, dropped) = (
        nic.read(reg::RX_PACKETS),
        nic.read(reg::TX_PACKETS),
        nic.dropped(),
    );
    check!(
        c,
        rx == total[1] && tx == total[0] && dropped == 0,
        "NIC counters: received {rx} frames (requests, others and byes), sent {tx} responses, \
         dropped {dropped}"
    );
    if boot.nnodes() > 1 {
        check!(
            c,
            sockets[0] != sockets[1] && nodes[0] != nodes[1],
            "two sockets served the wire: sockets {} and {}",
            sockets[0],
            sockets[1]
        );
    }
}

/// Prints a MAC address as `aa:bb:cc:dd:ee:ff`.
struct MacFmt([u8; 6]);

impl core::fmt::Display for MacFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

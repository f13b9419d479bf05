//! Per-domain memory traffic through the annotation port (`abi::annotate`), for machines of two
//! sockets or more (preset `2s`): a toy of the Closer question, where the pVM's work for a
//! guest should run. The guest's memory is on node 1; the guest runs next to it, and the pVM
//! does the same work on guest memory twice — once from socket 0 (remote, where a pVM pinned
//! to the first socket would do it) and once from socket 1 (local, as Closer would place it):
//!
//! | core | announces | memory |
//! |---|---|---|
//! | first of socket 0 | domain 1 `pvm`, vCPU 0 | node 1 (remote) |
//! | first of socket 1 | domain 2 `guest`, vCPU 0 | node 1 (local) |
//! | second of socket 1 | domain 1 `pvm`, vCPU 1 | node 1 (local) |
//! | any other | nothing | idle: stops at once |
//!
//! Each working core announces its domain, then owns a 24 MiB buffer at the top of node 1's
//! usable RAM (larger than a 22 MiB LLC, so dirty lines go back to memory) and touches one
//! 8-byte word per cache line in three passes — write, read-modify-write, read. It checks its
//! sum against one computed in registers only and stops (`hlt`); a wrong sum prints a message
//! and exits with status 1. Core 0 names the domains and prints the plan first; what any core
//! does before its announcement is charged to no domain (`(none)` in the report).
//!
//! Nothing waits for another core and only core 0 prints, so the console and every core's
//! instruction count are the same with the timing model on or off.
#![no_std]
#![no_main]

use core::arch::asm;

use baremetal::{Boot, exit, halt, println};

baremetal::entry!(smp main);

const BUFFER: u64 = 24 << 20;
const LINE: u64 = 64;
const LINES: u64 = BUFFER / LINE;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
/// The node holding the guest's memory.
const GUEST_NODE: usize = 1;

const PVM: u32 = 1;
const GUEST: u32 = 2;

/// `(domain, vCPU)` core `i` runs, if any: by socket and rank in the socket.
fn assignment(boot: &Boot, i: usize) -> Option<(u32, u32)> {
    let cores = boot.cores();
    let socket = cores[i].socket;
    let rank = cores[..i].iter().filter(|c| c.socket == socket).count();
    match (socket, rank) {
        (0, 0) => Some((PVM, 0)),
        (1, 0) => Some((GUEST, 0)),
        (1, 1) => Some((PVM, 1)),
        _ => None,
    }
}

/// Where core `i`'s buffer starts: one buffer per working core below the top of node 1's
/// largest usable range, in core order.
fn buffer(boot: &Boot, i: usize) -> Option<u64> {
    let slot = (0..i).filter(|&j| assignment(boot, j).is_some()).count() as u64;
    let range = boot
        .ranges()
        .iter()
        .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node as usize == GUEST_NODE)
        .max_by_key(|r| r.len)?;
    let top = (range.base + range.len) & !((2 << 20) - 1);
    let base = top.checked_sub((slot + 1) * BUFFER)?;
    (base >= range.base).then_some(base)
}

/// Names domain `id` (annotation port command `NAME_DOMAIN`).
fn name_domain(id: u32, name: &str) {
    // SAFETY: port I/O; the machine reads `name.len()` bytes at `name.as_ptr()`, which are
    // valid for reads, and writes nothing.
    unsafe {
        asm!("out {port}, eax", port = const abi::ports::ANNOTATE,
             in("eax") abi::annotate::NAME_DOMAIN, in("rdi") id as u64,
             in("rsi") name.as_ptr(), in("rdx") name.len(),
             options(readonly, nostack, preserves_flags));
    }
}

/// Announces that this core now runs `domain`, vCPU `vcpu` (command `RUN`).
fn run_domain(domain: u32, vcpu: u32) {
    // SAFETY: port I/O with no memory effects.
    unsafe {
        asm!("out {port}, eax", port = const abi::ports::ANNOTATE,
             in("eax") abi::annotate::RUN, in("rdi") domain as u64, in("rsi") vcpu as u64,
             options(nomem, nostack, preserves_flags));
    }
}

fn seed(i: usize) -> u64 {
    (i as u64 + 1).wrapping_mul(GOLDEN) ^ 0xd0d0
}

fn main(boot: &Boot) -> u32 {
    let me = boot.core();
    if boot.nnodes() <= GUEST_NODE {
        if me == 0 {
            println!("domains: needs a machine with at least 2 sockets");
            exit(1);
        }
        halt();
    }
    if me == 0 {
        name_domain(PVM, "pvm");
        name_domain(GUEST, "guest");
        println!(
            "domains: the guest's memory is on node {GUEST_NODE}; each working core touches every line of a 24 MiB buffer there 3 times"
        );
        for (i, c) in boot.cores().iter().enumerate() {
            if let Some((d, v)) = assignment(boot, i) {
                let name = if d == PVM { "pvm" } else { "guest" };
                println!("core {i} (socket {}): {name} vCPU {v}", c.socket);
            }
        }
    }
    let Some((domain, vcpu)) = assignment(boot, me) else {
        halt();
    };
    let Some(base) = buffer(boot, me) else {
        println!("domains: core {me}: node {GUEST_NODE} has no room for a 24 MiB buffer");
        exit(1);
    };
    run_domain(domain, vcpu);
    let word = |j: u64| (base + j * LINE) as *mut u64;
    // SAFETY: `word(j)` for j < LINES lies in this core's buffer, inside usable RAM of node 1
    // (`buffer`), used by no other core.
    let read = |j: u64| unsafe { word(j).read_volatile() };
    // SAFETY: as for `read`.
    let write = |j: u64, v: u64| unsafe { word(j).write_volatile(v) };
    let s = seed(me);
    for j in 0..LINES {
        write(j, s ^ j.wrapping_mul(GOLDEN));
    }
    for j in 0..LINES {
        write(j, read(j).wrapping_mul(3).wrapping_add(1));
    }
    let mut sum = 0u64;
    for j in 0..LINES {
        sum = sum.rotate_left(7) ^ read(j);
    }
    let mut expected = 0u64;
    for j in 0..LINES {
        let v = core::hint::black_box(s ^ j.wrapping_mul(GOLDEN));
        expected = expected.rotate_left(7) ^ v.wrapping_mul(3).wrapping_add(1);
    }
    if sum != expected {
        println!("domains: core {me}: sum {sum:016x}, expected {expected:016x}");
        exit(1);
    }
    halt()
}

//! A fixed NUMA workload for preset `2s` (DESIGN.md §9: golden scenario reports): some cores
//! work on their own node's memory, some on the other node's, the rest stay idle.
//!
//! | socket | rank in socket | memory |
//! |---|---|---|
//! | 0 | 0, 1 | node 0 (local) |
//! | 0 | 2, 3 | node 1 (remote) |
//! | 1 | 0 | node 1 (local) |
//! | 1 | 1 | node 0 (remote) |
//! | any other | | idle: stops at once |
//!
//! (On a one-node machine every core with work uses node 0.) Each working core owns an 8 MiB
//! buffer at the top of its node's usable RAM and touches one 8-byte word per cache line in
//! three passes — write, read-modify-write, read — so that each pass moves every line through
//! the memory system (four such buffers overflow a 22 MiB LLC, so dirty lines are written back
//! too). It then checks its sum against one computed in registers only, stores it in
//! `RESULTS`, and stops (`hlt`); a wrong sum prints a message and exits with status 1.
//!
//! The run ends when every core has stopped. Nothing in it waits for another core and only core
//! 0 prints (its plan before working, its own sum after), so the console, every core's
//! instruction count and the final memory are the same with the timing model on or off and
//! whatever the interleaving; only cycle counts differ.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use baremetal::{Boot, exit, halt, println};

baremetal::entry!(smp main);

const BUFFER: u64 = 8 << 20;
const LINE: u64 = 64;
const LINES: u64 = BUFFER / LINE;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const MAX_CORES: usize = 512;

/// Each working core's checked sum.
static RESULTS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// The node core `i` works on, if any.
fn assignment(boot: &Boot, i: usize) -> Option<usize> {
    let cores = boot.cores();
    let socket = cores[i].socket as usize;
    let rank = cores[..i]
        .iter()
        .filter(|c| c.socket as usize == socket)
        .count();
    let nodes = boot.nnodes();
    let other = 1 % nodes;
    match (socket, rank) {
        (0, 0 | 1) => Some(0),
        (0, 2 | 3) => Some(other),
        (1, 0) => Some(other),
        (1, 1) => Some(0),
        _ => None,
    }
}

/// Where core `i`'s buffer starts: below the top of its node's largest usable range, one
/// buffer per working core of that node, in core order.
fn buffer(boot: &Boot, i: usize, node: usize) -> Option<u64> {
    let slot = (0..i)
        .filter(|&j| assignment(boot, j) == Some(node))
        .count() as u64;
    let range = boot
        .ranges()
        .iter()
        .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node as usize == node)
        .max_by_key(|r| r.len)?;
    let top = (range.base + range.len) & !((2 << 20) - 1);
    let base = top.checked_sub((slot + 1) * BUFFER)?;
    (base >= range.base).then_some(base)
}

fn seed(i: usize) -> u64 {
    (i as u64 + 1).wrapping_mul(GOLDEN) ^ 0x5eed
}

fn main(boot: &Boot) -> u32 {
    let me = boot.core();
    if me == 0 {
        println!(
            "numa: {} cores, {} nodes; each working core touches every line of an 8 MiB buffer 3 times",
            boot.ncores(),
            boot.nnodes()
        );
        for (i, c) in boot.cores().iter().enumerate() {
            match assignment(boot, i) {
                Some(n) => {
                    let place = if n == c.node as usize {
                        "local"
                    } else {
                        "remote"
                    };
                    println!("core {i} (socket {}): node {n} ({place})", c.socket);
                }
                None => println!("core {i} (socket {}): idle", c.socket),
            }
        }
    }
    let Some(node) = assignment(boot, me) else {
        halt();
    };
    let Some(base) = buffer(boot, me, node) else {
        println!("numa: core {me}: node {node} has no room for an 8 MiB buffer");
        exit(1);
    };
    let word = |j: u64| (base + j * LINE) as *mut u64;
    // SAFETY: `word(j)` for j < LINES lies in this core's buffer, inside usable RAM of `node`
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
        println!("numa: core {me}: sum {sum:016x}, expected {expected:016x}");
        exit(1);
    }
    RESULTS[me].store(sum, Ordering::Relaxed);
    if me == 0 {
        println!("core 0: sum {sum:016x} ok");
    }
    halt()
}

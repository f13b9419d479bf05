//! The NUMA lesson (`pvmlab tui --lesson numa`): memory-streaming phases that make local,
//! remote, saturated and interleaved traffic visible, one after the other.
//!
//! Each phase starts with a console line `@phase <n> <title>`; the TUI turns it into narration
//! (the text lives host-side, in `tui/src/tui/lesson.rs`). Every other line is an ordinary
//! result the viewer can read in the event log. Phases last a fixed stretch of simulated time
//! (`phase_us=N` on the command line, default 2000 µs) measured with `rdtsc`, so the screen shows
//! how many bytes each placement moves in the same time.
//!
//! Every phase reads buffers no earlier phase touched, once through (never a second pass the
//! caches could serve), so what the program measures is memory bandwidth. Designed for the
//! `2s` preset; it runs on any preset (on one node the remote phase is skipped).
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use baremetal::sync::Barrier;
use baremetal::{Boot, println, rdtsc};

baremetal::entry!(smp main);

const PAGE: usize = 4096;
const LINE: usize = 64;
const MIB: usize = 1 << 20;
/// What one core streams alone: larger than the LLC, so every pass misses.
const SOLO: usize = 32 * MIB;
const MAX_CORES: usize = 64;
const MAX_NODES: usize = 8;
/// Interleaving granularity: 16 pages, so that each core still streams through runs of
/// consecutive lines (as its prefetcher expects) while its traffic alternates between nodes.
const CHUNK: usize = 16 * PAGE;

/// Where a phase's pages live.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// All pages on this node.
    Node(usize),
    /// Chunk `c` ([`CHUNK`] bytes) of core slot `s` on node `(c + s) % nnodes`.
    Interleaved,
}

/// Which cores stream in a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Core0,
    Socket0,
    Everyone,
}

struct Phase {
    title: &'static str,
    who: Who,
    placement: Placement,
}

const PHASES: [Phase; 5] = [
    Phase {
        title: "Local access",
        who: Who::Core0,
        placement: Placement::Node(0),
    },
    Phase {
        title: "Remote access",
        who: Who::Core0,
        placement: Placement::Node(1),
    },
    Phase {
        title: "One socket saturates its controller",
        who: Who::Socket0,
        placement: Placement::Node(0),
    },
    Phase {
        title: "Every core on one node: a hot spot",
        who: Who::Everyone,
        placement: Placement::Node(0),
    },
    Phase {
        title: "Interleaved placement",
        who: Who::Everyone,
        placement: Placement::Interleaved,
    },
];

/// Shared between cores: the plan core 0 sets up, and what each core measured.
struct Shared {
    /// Base address of each phase's buffer on each node: no phase reads memory an earlier
    /// phase touched, so every phase starts with cold caches.
    bufs: [[AtomicU64; MAX_NODES]; PHASES.len()],
    /// `rdtsc` value at which the current phase stops.
    deadline: AtomicU64,
    /// Bytes each core read in the current phase, and when it started and stopped (`rdtsc`):
    /// the phase's bandwidth is all bytes over the whole window, first start to last stop.
    bytes: [AtomicU64; MAX_CORES],
    starts: [AtomicU64; MAX_CORES],
    ends: [AtomicU64; MAX_CORES],
    /// Sink for the loaded values, so the loads cannot be optimised away.
    sink: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NODES_ZERO: [AtomicU64; MAX_NODES] = [ZERO; MAX_NODES];

static SHARED: Shared = Shared {
    bufs: [NODES_ZERO; PHASES.len()],
    deadline: ZERO,
    bytes: [ZERO; MAX_CORES],
    starts: [ZERO; MAX_CORES],
    ends: [ZERO; MAX_CORES],
    sink: ZERO,
};

static BARRIER: Barrier = Barrier::new();

fn main(boot: &Boot) -> u32 {
    let me = boot.core();
    let ncores = boot.ncores().min(MAX_CORES);
    let nnodes = boot.nnodes().clamp(1, MAX_NODES);
    if me >= ncores {
        return 0;
    }
    let parties = ncores as u32;
    // Every phase's buffers must fit on node 0 (160 MiB for 2s).
    let per_core = match ncores {
        0..=8 => 8 * MIB,
        9..=16 => 4 * MIB,
        _ => 2 * MIB,
    };
    let phase_us = phase_us(boot.cmdline());
    let tsc_per_us = boot.info().tsc_hz / 1_000_000;

    if me == 0 {
        println!("numa-lesson: {ncores} cores, {nnodes} nodes, {phase_us} us per phase");
        if !plan(boot, ncores, nnodes, per_core) {
            println!("numa-lesson: not enough memory for the buffers");
            return 1;
        }
    }
    BARRIER.wait(parties);

    let mut results = [(0u64, 0u64); PHASES.len()];
    for (i, phase) in PHASES.iter().enumerate() {
        let skip = matches!(phase.placement, Placement::Node(n) if n >= nnodes);
        if me == 0 {
            println!("@phase {} {}", i + 1, phase.title);
            if skip {
                println!("phase {} skipped: this machine has only one node", i + 1);
            }
            SHARED
                .deadline
                .store(rdtsc() + phase_us * tsc_per_us, Ordering::Release);
            for k in 0..ncores {
                SHARED.bytes[k].store(0, Ordering::Relaxed);
                SHARED.starts[k].store(u64::MAX, Ordering::Relaxed);
                SHARED.ends[k].store(0, Ordering::Relaxed);
            }
        }
        BARRIER.wait(parties);
        // Participants in core order: slot = rank among the cores that stream.
        let runs = |k: usize| match phase.who {
            Who::Core0 => k == 0,
            Who::Socket0 => boot.cores()[k].socket == 0,
            Who::Everyone => true,
        };
        if runs(me) && !skip {
            let slot = (0..me).filter(|&k| runs(k)).count();
            let pages = if phase.who == Who::Core0 {
                SOLO
            } else {
                per_core
            } / PAGE;
            let deadline = SHARED.deadline.load(Ordering::Acquire);
            let start = rdtsc();
            let bytes = stream(i, nnodes, slot, pages, deadline);
            SHARED.bytes[me].store(bytes, Ordering::Relaxed);
            SHARED.starts[me].store(start, Ordering::Relaxed);
            SHARED.ends[me].store(rdtsc(), Ordering::Relaxed);
        }
        BARRIER.wait(parties);
        if me == 0 && !skip {
            let bytes: u64 = (0..ncores)
                .map(|k| SHARED.bytes[k].load(Ordering::Relaxed))
                .sum();
            let load = |a: &[AtomicU64; MAX_CORES], k: usize| a[k].load(Ordering::Relaxed);
            let first = (0..ncores)
                .map(|k| load(&SHARED.starts, k))
                .min()
                .unwrap_or(0);
            let last = (0..ncores)
                .map(|k| load(&SHARED.ends, k))
                .max()
                .unwrap_or(0);
            let cycles = last.saturating_sub(first).max(1);
            let streams = (0..ncores).filter(|&k| runs(k)).count();
            results[i] = (bytes, cycles);
            let gbs = gb_per_s(bytes, cycles, boot.info().tsc_hz);
            let where_ = match phase.placement {
                Placement::Node(n) => alloc::format!("node {n}"),
                Placement::Interleaved => alloc::format!("{nnodes} nodes, interleaved"),
            };
            let cores = if streams == 1 { "core" } else { "cores" };
            println!(
                "phase {}: {gbs:.1} GB/s ({streams} {cores} read {:.1} MiB from {where_} in {} us)",
                i + 1,
                bytes as f64 / MIB as f64,
                cycles / tsc_per_us.max(1)
            );
        }
    }

    if me == 0 {
        println!("@phase {} Summary", PHASES.len() + 1);
        for (i, phase) in PHASES.iter().enumerate() {
            let (bytes, cycles) = results[i];
            if bytes == 0 {
                continue;
            }
            println!(
                "{}. {}: {:.1} GB/s",
                i + 1,
                phase.title,
                gb_per_s(bytes, cycles, boot.info().tsc_hz)
            );
        }
        println!(
            "numa-lesson: done (checksum {:#x})",
            SHARED.sink.load(Ordering::Relaxed)
        );
    }
    0
}

/// `phase_us=N` from the command line, else 2000.
fn phase_us(cmdline: &str) -> u64 {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("phase_us="))
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(2000)
}

fn gb_per_s(bytes: u64, cycles: u64, tsc_hz: u64) -> f64 {
    bytes as f64 * tsc_hz as f64 / cycles.max(1) as f64 / 1e9
}

/// Places every phase's buffers: on node 0 from the heap (which lives on node 0), on the
/// other nodes one after the other in the largest usable RAM range of the node.
fn plan(boot: &Boot, ncores: usize, nnodes: usize, per_core: usize) -> bool {
    let socket0 = boot.cores()[..ncores]
        .iter()
        .filter(|c| c.socket == 0)
        .count();
    let mut next = [0u64; MAX_NODES];
    let mut end = [0u64; MAX_NODES];
    for node in 1..nnodes {
        let range = boot
            .ranges()
            .iter()
            .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node as usize == node)
            .max_by_key(|r| r.len);
        let Some(r) = range else { return false };
        next[node] = r.base.next_multiple_of(PAGE as u64);
        end[node] = r.base + r.len;
    }
    for (i, phase) in PHASES.iter().enumerate() {
        let bytes = match phase.who {
            Who::Core0 => SOLO,
            Who::Socket0 => socket0 * per_core,
            Who::Everyone => ncores * per_core,
        };
        let (nodes, share) = match phase.placement {
            Placement::Node(n) if n < nnodes => (n..n + 1, bytes),
            Placement::Node(_) => continue,
            Placement::Interleaved => (0..nnodes, bytes.div_ceil(CHUNK).div_ceil(nnodes) * CHUNK),
        };
        for node in nodes {
            let base = if node == 0 {
                let layout = core::alloc::Layout::from_size_align(share, PAGE).expect("valid");
                // SAFETY: `layout` has a non-zero size; the memory is only read, through raw
                // pointers, and never freed.
                unsafe { alloc::alloc::alloc(layout) as u64 }
            } else {
                let base = next[node];
                next[node] += share as u64;
                if next[node] > end[node] { 0 } else { base }
            };
            if base == 0 {
                return false;
            }
            SHARED.bufs[i][node].store(base, Ordering::Relaxed);
        }
    }
    true
}

/// Reads one 8-byte word per cache line, page after page of this slot's share, until
/// `rdtsc` passes `deadline` or the share is done. Returns the bytes (whole lines) read.
fn stream(phase_index: usize, nnodes: usize, slot: usize, pages: usize, deadline: u64) -> u64 {
    let phase = &PHASES[phase_index];
    let mut bytes = 0u64;
    let mut sum = 0u64;
    let mut p = 0;
    loop {
        let g = slot * pages + p;
        let (node, page_index) = match phase.placement {
            Placement::Node(n) => (n, g),
            Placement::Interleaved => {
                let per_chunk = CHUNK / PAGE;
                let (chunk, within) = (g / per_chunk, g % per_chunk);
                // Slots start on different nodes, so the cores do not all hit the same
                // node at the same moment. (A slot's share is a multiple of `nnodes` chunks,
                // so every chunk still gets its own place.)
                ((chunk + slot) % nnodes, chunk / nnodes * per_chunk + within)
            }
        };
        let page =
            SHARED.bufs[phase_index][node].load(Ordering::Relaxed) as usize + page_index * PAGE;
        for line in (0..PAGE).step_by(LINE) {
            // SAFETY: `plan` reserved every page of every slot's share on each node (identity-
            // mapped RAM that nothing else uses); an aligned u64 read of it is valid.
            sum =
                sum.wrapping_add(unsafe { core::ptr::read_volatile((page + line) as *const u64) });
        }
        bytes += PAGE as u64;
        p += 1;
        // One pass only: a second one could hit lines the caches still hold.
        if p == pages || rdtsc() >= deadline {
            break;
        }
    }
    SHARED.sink.fetch_add(sum, Ordering::Relaxed);
    bytes
}

//! A memory latency checker in the manner of Intel's MLC: for every (socket S, node N) pair,
//! the *idle latency* of a dependent pointer chase run by one core of S through memory of N,
//! and the *read bandwidth* of the cores of S streaming from N. `pvmlab mlc` runs it with the
//! timing model on and prints both as node × node matrices.
//!
//! Method:
//! - Latency: node N's chain is a random cyclic walk over the cache lines of a 64 MiB buffer
//!   (a full-period LCG over the line indices, bit-mixed so that successive lines are neither
//!   sequential nor a constant stride apart): every visited line holds the address of the
//!   next. A core of node N writes the chain, then reads a flush buffer twice the size of the
//!   presets' LLC so that none of it stays in its caches. Each socket chases its own stretch
//!   of the walk, so every measured load touches a line that no cache holds: `warm` loads,
//!   then `lat` loads timed with `rdtsc`. One test runs at a time (the machine is otherwise
//!   idle); latency = ticks / loads.
//! - Bandwidth: the streaming cores of S start together (released by the same store), each
//!   reads its own slice of a buffer on N that nothing has touched before with 16-byte SSE
//!   loads, and records `rdtsc` at start and end; bandwidth = all bytes / (last end − first
//!   start).
//! - Every core starts at the entry; a core waits for its next test with `pause` and stops
//!   (`hlt`) once it has none left. Tests run socket by socket from the last socket down, so
//!   that few cores are left waiting; core 0 prints the results at the end.
//!
//! Command line (`key=value` words, all optional):
//! - `lat=K`: timed loads per latency test (default 50000; 0 skips the latency tests);
//! - `warm=W`: untimed loads before them (default 2000);
//! - `bw=KIB`: KiB each core reads per bandwidth test (default 1024; 0 skips bandwidth);
//! - `cores=C`: how many cores of the socket stream (default: all of them);
//! - `pairs=S:N,S:N,...`: only these (socket, node) pairs; `*` matches any (default `*:*`);
//! - `flush=MIB`: size of the flush read after writing a chain (default 48).
//!
//! Output, one line each (`pvmlab mlc` parses it):
//!
//! ```text
//! mlc sockets 2 nodes 2 tsc_hz 2400000000 lat_loads 50000 warmup 2000 bw_bytes_per_core 1048576 bw_cores 4
//! latency_ns 0 1 134.70 ticks 16164000 loads 50000
//! bandwidth_gbs 0 1 6.20 ticks 1623742 bytes 4194304
//! mlc done
//! ```
//!
//! On a bad command line or a machine it cannot lay out, it prints `mlc: error: ...` and
//! exits with status 2.
#![no_std]
#![no_main]

use core::arch::asm;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::CoreInfo;
use baremetal::{Boot, halt, println, rdtsc};

baremetal::entry!(smp main);

/// Sockets and nodes this image handles.
const MAX_NODES: usize = 16;
const MAX_CORES: usize = 512;
/// Setup, then a bandwidth and a latency test per pair.
const MAX_STEPS: usize = 1 + 2 * MAX_NODES * MAX_NODES;
const LINE: u64 = 64;
const MIB: u64 = 1 << 20;
/// Chains span at least 2^20 lines (64 MiB), far more than an LLC.
const MIN_CHAIN_BITS: u32 = 20;
/// Chase loops are unrolled this many times.
const UNROLL: u64 = 8;
/// Exit status for a bad command line or machine.
const EXIT_USAGE: u32 = 2;

/// A value on a cache line of its own, so that waiting cores polling one counter are not
/// disturbed by stores to its neighbours.
#[repr(align(64))]
struct Padded<T>(T);

/// The test now running; cores wait for their next one to come up.
static STEP: Padded<AtomicU32> = Padded(AtomicU32::new(0));
/// Participants of the current step that have finished it.
static ARRIVED: Padded<AtomicU32> = Padded(AtomicU32::new(0));
/// Ticks measured by each step.
static RESULT: [AtomicU64; MAX_STEPS] = [const { AtomicU64::new(0) }; MAX_STEPS];
/// Start and end `rdtsc` of each core's last bandwidth slice.
static TIMES: [Padded<[AtomicU64; 2]>; MAX_CORES] =
    [const { Padded([AtomicU64::new(0), AtomicU64::new(0)]) }; MAX_CORES];
/// First line of each socket's stretch of each node's chain: `[node * MAX_NODES + socket]`.
static SEGMENT: [AtomicU64; MAX_NODES * MAX_NODES] =
    [const { AtomicU64::new(0) }; MAX_NODES * MAX_NODES];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Setup,
    Bandwidth,
    Latency,
}

#[derive(Clone, Copy)]
struct Step {
    kind: Kind,
    socket: usize,
    node: usize,
}

struct Config {
    lat: u64,
    warm: u64,
    bw_bytes: u64,
    cores: usize,
    flush_bytes: u64,
    /// Bit N of `pairs[S]`: the pair (S, N) is tested.
    pairs: [u16; MAX_NODES],
}

fn parse_num(key: &str, value: &str) -> Result<u64, &'static str> {
    value.parse::<u64>().map_err(|_| match key {
        "lat" => "lat= wants a number of loads",
        "warm" => "warm= wants a number of loads",
        "bw" => "bw= wants KiB per core",
        "cores" => "cores= wants a number of cores",
        _ => "flush= wants MiB",
    })
}

fn parse_side(s: &str) -> Result<Option<usize>, &'static str> {
    if s == "*" {
        return Ok(None);
    }
    match s.parse::<usize>() {
        Ok(v) if v < MAX_NODES => Ok(Some(v)),
        _ => Err("pairs= wants S:N items (numbers below 16, or *) separated by commas"),
    }
}

impl Config {
    fn parse(cmdline: &str) -> Result<Config, &'static str> {
        let mut c = Config {
            lat: 50_000,
            warm: 2_000,
            bw_bytes: 1024 << 10,
            cores: usize::MAX,
            flush_bytes: 48 * MIB,
            pairs: [u16::MAX; MAX_NODES],
        };
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(
                    "the command line takes key=value words: lat warm bw cores pairs flush",
                );
            };
            match key {
                "lat" => c.lat = parse_num(key, value)?.next_multiple_of(UNROLL),
                "warm" => c.warm = parse_num(key, value)?.next_multiple_of(UNROLL),
                "bw" => c.bw_bytes = (parse_num(key, value)? << 10) & !4095,
                "cores" => c.cores = parse_num(key, value)?.max(1) as usize,
                "flush" => c.flush_bytes = parse_num(key, value)? * MIB,
                "pairs" => {
                    c.pairs = [0; MAX_NODES];
                    for item in value.split(',') {
                        let Some((s, n)) = item.split_once(':') else {
                            return Err("pairs= wants S:N items separated by commas");
                        };
                        let (s, n) = (parse_side(s)?, parse_side(n)?);
                        for (i, row) in c.pairs.iter_mut().enumerate() {
                            if s.is_none_or(|s| s == i) {
                                *row |= n.map_or(u16::MAX, |n| 1 << n);
                            }
                        }
                    }
                }
                _ => return Err("unknown key; known: lat warm bw cores pairs flush"),
            }
        }
        if c.lat > 1 << 24 || c.warm > 1 << 24 || c.flush_bytes > 1 << 40 || c.bw_bytes > 1 << 40 {
            return Err("lat, warm, bw or flush is too large");
        }
        Ok(c)
    }
}

/// Everything every core derives, identically, from the BootInfo and the command line.
struct Plan {
    cfg: Config,
    cores: &'static [CoreInfo],
    sockets: usize,
    nodes: usize,
    tsc_hz: u64,
    /// Line-index bits of the chains.
    chain_bits: u32,
    /// Per node: top of its largest usable range (2 MiB-aligned) and that range's base.
    top: [u64; MAX_NODES],
    steps: [Step; MAX_STEPS],
    nsteps: usize,
}

impl Plan {
    fn new(boot: &Boot) -> Result<Plan, &'static str> {
        let cfg = Config::parse(boot.cmdline())?;
        let cores = boot.cores();
        let nodes = boot.nnodes();
        let sockets = cores
            .iter()
            .map(|c| c.socket as usize + 1)
            .max()
            .unwrap_or(0);
        if cores.len() > MAX_CORES || nodes > MAX_NODES || sockets > MAX_NODES || nodes == 0 {
            return Err("mlc handles at most 16 sockets, 16 nodes and 512 cores");
        }
        let mut plan = Plan {
            cfg,
            cores,
            sockets,
            nodes,
            tsc_hz: boot.info().tsc_hz,
            chain_bits: MIN_CHAIN_BITS,
            top: [0; MAX_NODES],
            steps: [Step {
                kind: Kind::Setup,
                socket: 0,
                node: 0,
            }; MAX_STEPS],
            nsteps: 0,
        };
        let mut pairs = [0u16; MAX_NODES];
        for (s, row) in pairs.iter_mut().enumerate().take(sockets) {
            *row = plan.cfg.pairs[s] & ((1u32 << nodes) - 1) as u16;
        }
        plan.cfg.pairs = pairs;
        // Lines every node's chain needs: one stretch per socket, plus the line the last
        // stretch ends on.
        let walked = (sockets as u64) * (plan.cfg.warm + plan.cfg.lat) + 1;
        while (1u64 << plan.chain_bits) < walked {
            plan.chain_bits += 1;
        }
        // Memory: per node, below the top of its largest usable range: chain, flush buffer,
        // then one bandwidth area per socket.
        let need = plan.bw_area(sockets);
        for n in 0..nodes {
            let range = boot
                .ranges()
                .iter()
                .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node as usize == n)
                .max_by_key(|r| r.len)
                .ok_or("a node has no usable RAM")?;
            let top = (range.base + range.len) & !(2 * MIB - 1);
            if top < range.base + need {
                return Err(
                    "a node has too little usable RAM for these sizes (lower lat, bw or flush)",
                );
            }
            plan.top[n] = top;
        }
        if plan.cfg.lat == 0 && plan.cfg.bw_bytes == 0 {
            return Err("nothing to measure: lat=0 and bw below 4 KiB");
        }
        if plan.cfg.pairs.iter().all(|&row| row == 0) {
            return Err("pairs= names no (socket, node) pair of this machine");
        }
        let latency = plan.cfg.lat > 0;
        let bandwidth = plan.cfg.bw_bytes > 0;
        if latency && plan.cfg.pairs.iter().any(|&row| row != 0) {
            plan.push(Kind::Setup, 0, 0);
        }
        for (kind, on) in [(Kind::Bandwidth, bandwidth), (Kind::Latency, latency)] {
            for s in (0..sockets).rev() {
                for n in 0..nodes {
                    if on && plan.cfg.pairs[s] & (1 << n) != 0 {
                        plan.push(kind, s, n);
                    }
                }
            }
        }
        Ok(plan)
    }

    fn push(&mut self, kind: Kind, socket: usize, node: usize) {
        self.steps[self.nsteps] = Step { kind, socket, node };
        self.nsteps += 1;
    }

    fn chain_bytes(&self) -> u64 {
        if self.cfg.lat > 0 {
            (1 << self.chain_bits) * LINE
        } else {
            0
        }
    }

    fn flush_bytes(&self) -> u64 {
        if self.cfg.lat > 0 {
            self.cfg.flush_bytes
        } else {
            0
        }
    }

    /// Offset below a node's top where its bandwidth areas end.
    fn top_offset(&self) -> u64 {
        self.chain_bytes() + self.flush_bytes()
    }

    /// Offset below a node's top where socket `s`'s bandwidth area begins (lowest address).
    fn bw_area(&self, s: usize) -> u64 {
        self.top_offset() + s as u64 * self.bw_cores_max() as u64 * self.cfg.bw_bytes
    }

    fn bw_cores_max(&self) -> usize {
        (0..self.sockets)
            .map(|s| self.bw_cores(s))
            .max()
            .unwrap_or(0)
    }

    /// How many cores of socket `s` stream in its bandwidth tests.
    fn bw_cores(&self, s: usize) -> usize {
        self.socket_cores(s).count().min(self.cfg.cores)
    }

    fn socket_cores(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.cores.len()).filter(move |&i| self.cores[i].socket as usize == s)
    }

    /// The core that writes node `n`'s chain: its first core, or core 0 if it has none.
    fn home_core(&self, n: usize) -> usize {
        (0..self.cores.len())
            .find(|&i| self.cores[i].node as usize == n)
            .unwrap_or(0)
    }

    /// Nodes whose chain is needed: some latency pair targets them.
    fn chain_needed(&self, n: usize) -> bool {
        self.cfg.lat > 0 && self.cfg.pairs.iter().any(|&row| row & (1 << n) != 0)
    }

    fn chain_base(&self, n: usize) -> u64 {
        self.top[n] - self.chain_bytes()
    }

    fn flush_base(&self, n: usize) -> u64 {
        self.chain_base(n) - self.flush_bytes()
    }

    /// This core's slot among the streaming cores of its socket, if it streams.
    fn bw_slot(&self, core: usize, s: usize) -> Option<usize> {
        self.socket_cores(s)
            .take(self.bw_cores(s))
            .position(|i| i == core)
    }

    /// Cores taking part in step `k`; whether `core` is one of them.
    fn parties(&self, k: usize, core: usize) -> (u32, bool) {
        let st = self.steps[k];
        match st.kind {
            Kind::Setup => {
                let mut writers = 0u32;
                let mut mine = false;
                for c in 0..self.cores.len() {
                    if (0..self.nodes).any(|n| self.chain_needed(n) && self.home_core(n) == c) {
                        writers += 1;
                        mine |= c == core;
                    }
                }
                (writers, mine)
            }
            Kind::Bandwidth => (
                self.bw_cores(st.socket) as u32,
                self.bw_slot(core, st.socket).is_some(),
            ),
            Kind::Latency => (1, self.socket_cores(st.socket).next() == Some(core)),
        }
    }
}

fn main(boot: &Boot) -> u32 {
    let core = boot.core();
    let plan = match Plan::new(boot) {
        Ok(p) => p,
        Err(e) => {
            if core == 0 {
                println!("mlc: error: {e}");
                return EXIT_USAGE;
            }
            halt();
        }
    };
    let last = (0..plan.nsteps).rev().find(|&k| plan.parties(k, core).1);
    for (k, result) in RESULT.iter().enumerate().take(plan.nsteps) {
        let (parties, mine) = plan.parties(k, core);
        if !mine {
            continue;
        }
        wait_for(k as u32);
        let st = plan.steps[k];
        match st.kind {
            Kind::Setup => setup(&plan, core),
            Kind::Latency => {
                let start = SEGMENT[st.node * MAX_NODES + st.socket].load(Ordering::Relaxed);
                // SAFETY: the chain at `start` was written in the setup step: every line of
                // this socket's stretch holds the address of the next, inside node RAM.
                let p = unsafe { chase(start, plan.cfg.warm) };
                let t0 = rdtsc();
                // SAFETY: as above; the stretch is `warm + lat` lines long.
                let p = unsafe { chase(p, plan.cfg.lat) };
                let t1 = rdtsc();
                core::hint::black_box(p);
                result.store(t1 - t0, Ordering::Relaxed);
            }
            Kind::Bandwidth => {
                let slot = plan.bw_slot(core, st.socket).unwrap_or(0);
                let base = plan.top[st.node] - plan.bw_area(st.socket + 1)
                    + slot as u64 * plan.cfg.bw_bytes;
                let t0 = rdtsc();
                // SAFETY: [base, base + bw_bytes) is this core's slice of node RAM (checked
                // in `Plan::new`), 4 KiB-aligned; it is only read.
                unsafe { stream(base, base + plan.cfg.bw_bytes) };
                let t1 = rdtsc();
                TIMES[core].0[0].store(t0, Ordering::Relaxed);
                TIMES[core].0[1].store(t1, Ordering::Relaxed);
            }
        }
        arrive(k as u32, parties, || {
            if st.kind == Kind::Bandwidth {
                let slots = plan.socket_cores(st.socket).take(plan.bw_cores(st.socket));
                let (mut first, mut end) = (u64::MAX, 0);
                for c in slots {
                    first = first.min(TIMES[c].0[0].load(Ordering::Relaxed));
                    end = end.max(TIMES[c].0[1].load(Ordering::Relaxed));
                }
                result.store(end - first, Ordering::Relaxed);
            }
        });
        if Some(k) == last && core != 0 {
            halt();
        }
    }
    if core != 0 {
        halt();
    }
    wait_for(plan.nsteps as u32);
    report(&plan);
    0
}

/// Waits, with `pause`, until step `k` is the current one.
fn wait_for(k: u32) {
    while STEP.0.load(Ordering::Acquire) < k {
        for _ in 0..16 {
            spin_loop();
        }
    }
}

/// Marks this core done with step `k`; the last of its `parties` runs `last` and starts the
/// next step.
fn arrive(k: u32, parties: u32, last: impl FnOnce()) {
    if ARRIVED.0.fetch_add(1, Ordering::AcqRel) + 1 == parties {
        ARRIVED.0.store(0, Ordering::Relaxed);
        last();
        STEP.0.store(k + 1, Ordering::Release);
    }
}

/// Line `j` of a chain walk: the LCG state `x` (full period modulo 2^bits: `c` odd,
/// `a` ≡ 1 mod 4) with its high half folded into the low bits, a bijection on `bits`-bit values.
fn mix(x: u64, bits: u32) -> u64 {
    x ^ (x >> (bits / 2))
}

const LCG_A: u64 = 0x5851_f42d_4c95_7f2d;
const LCG_C: u64 = 0x1405_7b7e_f767_814f;

/// Writes the chains of the nodes this core is home to, then reads its flush buffer.
fn setup(plan: &Plan, core: usize) {
    let bits = plan.chain_bits;
    let mask = (1u64 << bits) - 1;
    let stretch = plan.cfg.warm + plan.cfg.lat;
    for n in (0..plan.nodes).filter(|&n| plan.chain_needed(n) && plan.home_core(n) == core) {
        let base = plan.chain_base(n);
        let mut x = 0x2545_f491 & mask;
        let mut cur = base + mix(x, bits) * LINE;
        for j in 0..plan.sockets as u64 * stretch {
            if j % stretch == 0 {
                SEGMENT[n * MAX_NODES + (j / stretch) as usize].store(cur, Ordering::Relaxed);
            }
            x = x.wrapping_mul(LCG_A).wrapping_add(LCG_C) & mask;
            let next = base + mix(x, bits) * LINE;
            // SAFETY: `cur` is a line of node `n`'s chain buffer, inside its usable RAM
            // (`Plan::new`), used by nothing else.
            unsafe { (cur as *mut u64).write_volatile(next) };
            cur = next;
        }
    }
    let base = plan.flush_base(plan.cores[core].node as usize);
    // SAFETY: the flush buffer lies in this core's node's usable RAM and is only read.
    unsafe { touch_lines(base, base + plan.flush_bytes()) };
}

/// Follows `n` links of a pointer chain from `p` (`n` a multiple of [`UNROLL`]); returns where
/// it ended.
///
/// # Safety
/// Every line reached holds the address of the next, readable, for `n` steps.
unsafe fn chase(mut p: u64, mut n: u64) -> u64 {
    if n == 0 {
        return p;
    }
    // SAFETY: the caller's contract; the loop only loads.
    unsafe {
        asm!(
            "2:",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "mov {p}, [{p}]",
            "sub {n}, 8",
            "jnz 2b",
            p = inout(reg) p,
            n = inout(reg) n,
            options(nostack, readonly),
        );
    }
    let _ = n;
    p
}

/// Reads `[from, to)` with 16-byte SSE loads, 128 bytes per iteration.
///
/// # Safety
/// The range is readable, 16-byte aligned, and a non-zero multiple of 128 bytes long.
unsafe fn stream(from: u64, to: u64) {
    // SAFETY: the caller's contract; the loop only loads into scratch registers.
    unsafe {
        asm!(
            "2:",
            "movdqa xmm0, [{p}]",
            "movdqa xmm1, [{p} + 16]",
            "movdqa xmm2, [{p} + 32]",
            "movdqa xmm3, [{p} + 48]",
            "movdqa xmm4, [{p} + 64]",
            "movdqa xmm5, [{p} + 80]",
            "movdqa xmm6, [{p} + 96]",
            "movdqa xmm7, [{p} + 112]",
            "add {p}, 128",
            "cmp {p}, {end}",
            "jb 2b",
            p = inout(reg) from => _,
            end = in(reg) to,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            options(nostack, readonly),
        );
    }
}

/// Loads one word of every line in `[from, to)`, 8 lines per iteration.
///
/// # Safety
/// The range is readable and a multiple of 512 bytes long (possibly empty).
unsafe fn touch_lines(from: u64, to: u64) {
    if from >= to {
        return;
    }
    // SAFETY: the caller's contract; the loop only loads.
    unsafe {
        asm!(
            "2:",
            "mov {x}, [{p}]",
            "mov {x}, [{p} + 64]",
            "mov {x}, [{p} + 128]",
            "mov {x}, [{p} + 192]",
            "mov {x}, [{p} + 256]",
            "mov {x}, [{p} + 320]",
            "mov {x}, [{p} + 384]",
            "mov {x}, [{p} + 448]",
            "add {p}, 512",
            "cmp {p}, {end}",
            "jb 2b",
            p = inout(reg) from => _,
            end = in(reg) to,
            x = out(reg) _,
            options(nostack, readonly),
        );
    }
}

/// `num / den` with two decimals, as `(whole, hundredths)`, rounded to nearest.
fn fixed2(num: u128, den: u128) -> (u128, u128) {
    let v = (num * 100 + den / 2) / den.max(1);
    (v / 100, v % 100)
}

fn report(plan: &Plan) {
    println!(
        "mlc sockets {} nodes {} tsc_hz {} lat_loads {} warmup {} bw_bytes_per_core {} bw_cores {}",
        plan.sockets,
        plan.nodes,
        plan.tsc_hz,
        plan.cfg.lat,
        plan.cfg.warm,
        plan.cfg.bw_bytes,
        plan.bw_cores_max()
    );
    let hz = u128::from(plan.tsc_hz.max(1));
    for kind in [Kind::Latency, Kind::Bandwidth] {
        for s in 0..plan.sockets {
            for n in 0..plan.nodes {
                let Some(k) = (0..plan.nsteps).find(|&k| {
                    let st = plan.steps[k];
                    st.kind == kind && st.socket == s && st.node == n
                }) else {
                    continue;
                };
                let ticks = RESULT[k].load(Ordering::Relaxed);
                if kind == Kind::Latency {
                    let lat = plan.cfg.lat;
                    let (w, f) = fixed2(u128::from(ticks) * 1_000_000_000, hz * u128::from(lat));
                    println!("latency_ns {s} {n} {w}.{f:02} ticks {ticks} loads {lat}");
                } else {
                    let bytes = plan.cfg.bw_bytes * plan.bw_cores(s) as u64;
                    let (w, f) = fixed2(u128::from(bytes) * hz, u128::from(ticks) * 1_000_000_000);
                    println!("bandwidth_gbs {s} {n} {w}.{f:02} ticks {ticks} bytes {bytes}");
                }
            }
        }
    }
    println!("mlc done");
}

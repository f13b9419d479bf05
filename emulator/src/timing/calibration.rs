//! Calibration of the presets (issue 3 item 3), driving [`TimingModel::access`] with synthetic
//! programs the way the emulator does: the runnable core with the smallest clock runs next
//! (ties: lowest index) for up to a quantum of cycles; each access costs the instruction's
//! base cost (1 cycle) plus the stall the model returns, plus the loop's other instructions.
//! The programs mirror `guests/baremetal/src/bin/mlc.rs`: an 8-way unrolled dependent pointer
//! chase over a random cyclic walk of a 64 MiB buffer (latency), and 16-byte SSE loads, 128
//! bytes per iteration, each core over its own 2 MiB slice (bandwidth).
//!
//! `cargo test -p pvmlab-emulator --lib timing::calibration -- --nocapture` prints the
//! latency and bandwidth matrices of every preset.

use super::*;
use crate::desc::MachineDesc;

/// Scheduling quanta (cycles) the figures must hold for: the emulator's is 4000.
const QUANTA: [u64; 3] = [2000, 4000, 10_000];

trait Prog {
    /// Runs one access at `now`; returns the cycles it took.
    fn step(&mut self, m: &mut TimingModel, core: u32, now: u64) -> u64;
    fn done(&self) -> bool;
}

/// Runs the programs (core, program) under the emulator's schedule until all are done.
/// Returns each core's final clock.
fn run(m: &mut TimingModel, progs: &mut [(u32, &mut dyn Prog)], quantum: u64) -> Vec<u64> {
    let mut clocks = vec![0u64; progs.len()];
    loop {
        let mut best: Option<usize> = None;
        for (i, (_, p)) in progs.iter().enumerate() {
            if !p.done() && best.is_none_or(|b| clocks[i] < clocks[b]) {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            return clocks;
        };
        let (core, p) = &mut progs[i];
        let end = clocks[i] + quantum;
        while clocks[i] < end && !p.done() {
            clocks[i] += p.step(m, *core, clocks[i]);
        }
    }
}

/// A xorshift64 generator: deterministic test input.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A dependent pointer chase over a random cyclic permutation (Sattolo's algorithm) of
/// `lines` lines from `base`, 8 loads per loop iteration plus `sub` and `jnz`.
struct Chase {
    next: Vec<u32>,
    base: u64,
    pos: u32,
    steps: u64,
    limit: u64,
}

impl Chase {
    fn new(base: u64, lines: u32, seed: u64, limit: u64) -> Self {
        let mut perm: Vec<u32> = (0..lines).collect();
        let mut rng = Rng(seed);
        for i in (1..lines as usize).rev() {
            let j = (rng.next() % i as u64) as usize;
            perm.swap(i, j);
        }
        // perm is a single cycle (Sattolo); follow it as "next of perm[i] is perm[i+1]".
        let mut next = vec![0u32; lines as usize];
        for i in 0..lines as usize {
            next[perm[i] as usize] = perm[(i + 1) % lines as usize];
        }
        Chase {
            next,
            base,
            pos: perm[0],
            steps: 0,
            limit,
        }
    }
}

impl Prog for Chase {
    fn step(&mut self, m: &mut TimingModel, core: u32, now: u64) -> u64 {
        let stall = m.access(core, now, self.base + self.pos as u64 * 64, false);
        self.pos = self.next[self.pos as usize];
        self.steps += 1;
        1 + stall + if self.steps.is_multiple_of(8) { 2 } else { 0 }
    }
    fn done(&self) -> bool {
        self.steps >= self.limit
    }
}

/// Sequential 16-byte loads over `[from, to)`, 8 per 128-byte iteration plus `add`, `cmp`,
/// `jb`.
struct Stream {
    pa: u64,
    to: u64,
    loads: u64,
}

impl Prog for Stream {
    fn step(&mut self, m: &mut TimingModel, core: u32, now: u64) -> u64 {
        let stall = m.access(core, now, self.pa, false);
        self.pa += 16;
        self.loads += 1;
        1 + stall + if self.loads.is_multiple_of(8) { 3 } else { 0 }
    }
    fn done(&self) -> bool {
        self.pa >= self.to
    }
}

struct Setup {
    desc: MachineDesc,
    ram: Vec<RamRange>,
    sockets: Vec<u32>,
}

impl Setup {
    fn new(preset: &str) -> Self {
        let desc = MachineDesc::load(preset).unwrap();
        Setup {
            ram: desc.ram_layout(),
            sockets: desc.core_sockets(),
            desc,
        }
    }
    fn model(&self) -> TimingModel {
        TimingModel::new(&self.desc, &self.ram, &self.sockets)
    }
    fn ns(&self, cycles: f64) -> f64 {
        cycles * 1000.0 / self.desc.frequency_mhz as f64
    }
    fn first_core(&self, socket: u32) -> u32 {
        self.sockets.iter().position(|&s| s == socket).unwrap() as u32
    }
    fn cores_of(&self, socket: u32) -> Vec<u32> {
        (0..self.sockets.len() as u32)
            .filter(|&c| self.sockets[c as usize] == socket)
            .collect()
    }
    /// Bytes of node `n`'s RAM from `off` (past the loader's first megabytes).
    fn at(&self, n: u32, off: u64) -> u64 {
        let r = self.ram.iter().find(|r| r.node == n).unwrap();
        assert!(off < r.len);
        r.base + off
    }

    /// Idle latency (ns) of a pointer chase by the first core of `socket` through node `node`:
    /// 2000 warm-up loads, then 20000 timed ones, on an otherwise idle machine.
    fn latency(&self, socket: u32, node: u32) -> f64 {
        let mut m = self.model();
        let core = self.first_core(socket);
        let mut chase = Chase::new(
            self.at(node, 32 << 20),
            1 << 20,
            0x9e37_79b9 + node as u64,
            2000,
        );
        let t0 = run(&mut m, &mut [(core, &mut chase)], 4000)[0];
        chase.limit += 20_000;
        let mut clock = t0;
        while !chase.done() {
            clock += chase.step(&mut m, core, clock);
        }
        self.ns((clock - t0) as f64 / 20_000.0)
    }

    /// Read bandwidth (GB/s) of `ncores` cores of `socket` each streaming `bytes` from its own
    /// slice of node `node`, started together: all bytes / time to the last one's end. Also
    /// returns the node's mean queueing delay per request (ns).
    fn bandwidth(&self, socket: u32, node: u32, ncores: usize, bytes: u64, q: u64) -> (f64, f64) {
        let mut m = self.model();
        let cores = self.cores_of(socket);
        let mut streams: Vec<Stream> = (0..ncores as u64)
            .map(|k| {
                let from = self.at(node, (64 << 20) + k * (bytes + (1 << 20)));
                Stream {
                    pa: from,
                    to: from + bytes,
                    loads: 0,
                }
            })
            .collect();
        let mut progs: Vec<(u32, &mut dyn Prog)> = cores
            .iter()
            .zip(streams.iter_mut())
            .map(|(&c, s)| (c, s as &mut dyn Prog))
            .collect();
        let clocks = run(&mut m, &mut progs, q);
        let end = *clocks.iter().max().unwrap();
        let gbs = (bytes * ncores as u64) as f64 / self.ns(end as f64);
        let st = &m.stats().nodes[node as usize];
        (
            gbs,
            self.ns(st.queue_cycles as f64 / st.requests.max(1) as f64),
        )
    }
}

fn within(x: f64, target: f64, tol: f64) -> bool {
    (x - target).abs() <= target * tol
}

/// The latency matrix (ns) from every socket to every node (8s: from socket 0 only).
fn latency_matrix(s: &Setup, rows: &[u32]) -> Vec<Vec<f64>> {
    let n = s.desc.nnodes();
    rows.iter()
        .map(|&src| (0..n).map(|dst| s.latency(src, dst)).collect())
        .collect()
}

fn print_matrix(title: &str, rows: &[u32], m: &[Vec<f64>]) {
    println!("{title}");
    for (r, row) in rows.iter().zip(m) {
        let cells: Vec<String> = row.iter().map(|x| format!("{x:7.1}")).collect();
        println!("  socket {r}: {}", cells.join(" "));
    }
}

#[test]
fn one_socket_idle_latency_is_80ns() {
    let s = Setup::new("1s");
    let m = latency_matrix(&s, &[0]);
    print_matrix("1s idle latency (ns)", &[0], &m);
    assert!(within(m[0][0], 80.0, 0.10), "{m:?}");
}

#[test]
fn two_socket_latency_matrix() {
    let s = Setup::new("2s");
    let m = latency_matrix(&s, &[0, 1]);
    print_matrix("2s idle latency (ns)", &[0, 1], &m);
    for (i, row) in m.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let target = if i == j { 85.0 } else { 135.0 };
            assert!(within(x, target, 0.10), "{i}->{j}: {x}");
            if i == j {
                assert!((80.0..=90.0).contains(&x), "local {x}");
            } else {
                assert!((130.0..=140.0).contains(&x), "remote {x}");
            }
        }
    }
}

#[test]
fn four_socket_latency_matrix() {
    let s = Setup::new("4s");
    let rows = [0, 1, 2, 3];
    let m = latency_matrix(&s, &rows);
    print_matrix("4s idle latency (ns)", &rows, &m);
    for (i, row) in m.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let target = if i == j { 135.0 } else { 197.5 };
            assert!(within(x, target, 0.10), "{i}->{j}: {x}");
        }
    }
}

#[test]
fn eight_socket_two_hops_are_slower_than_one() {
    let s = Setup::new("8s");
    let m = latency_matrix(&s, &[0]);
    print_matrix("8s idle latency from socket 0 (ns)", &[0], &m);
    let hops = s.desc.hops();
    let by_hops = |h: u32| -> Vec<f64> {
        (0..8)
            .filter(|&j| hops[0][j] == h)
            .map(|j| m[0][j])
            .collect()
    };
    let (local, one, two) = (by_hops(0), by_hops(1), by_hops(2));
    assert_eq!((local.len(), one.len(), two.len()), (1, 3, 4));
    assert!(within(local[0], 135.0, 0.10), "{local:?}");
    assert!(one.iter().all(|&x| within(x, 197.5, 0.10)), "{one:?}");
    // Each hop adds one link crossing each way: two hops ≈ 260 ns, clearly above one hop.
    assert!(two.iter().all(|&x| within(x, 260.0, 0.10)), "{two:?}");
    let min_two = two.iter().cloned().fold(f64::MAX, f64::min);
    let max_one = one.iter().cloned().fold(0.0, f64::max);
    assert!(
        min_two > max_one + 50.0,
        "one hop {one:?}, two hops {two:?}"
    );
}

/// MLC-style bandwidth: all cores of a socket, 2 MiB each.
const BW_BYTES: u64 = 2 << 20;

#[test]
fn two_socket_bandwidth_local_saturates_and_remote_is_half() {
    let s = Setup::new("2s");
    let configured = s.desc.sockets[0].memory.bandwidth_gbs;
    for q in QUANTA {
        let mut mat = vec![vec![0.0; 2]; 2];
        for (i, row) in mat.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = s.bandwidth(i as u32, j as u32, 4, BW_BYTES, q).0;
            }
        }
        print_matrix(
            &format!("2s read bandwidth (GB/s), quantum {q}"),
            &[0, 1],
            &mat,
        );
        for i in 0..2 {
            let (local, remote) = (mat[i][i], mat[i][1 - i]);
            assert!(within(local, configured, 0.10), "q {q}: local {local}");
            assert!(
                within(remote / local, 0.5, 0.10),
                "q {q}: {remote} / {local}"
            );
        }
    }
}

#[test]
fn controller_saturates_as_cores_are_added() {
    let s = Setup::new("2s");
    let configured = s.desc.sockets[0].memory.bandwidth_gbs;
    for q in QUANTA {
        let runs: Vec<(f64, f64)> = (1..=4).map(|k| s.bandwidth(0, 0, k, 4 << 20, q)).collect();
        println!("2s node 0, quantum {q}: (GB/s, mean queueing ns) for 1..4 cores: {runs:.2?}");
        // Throughput rises, then flattens at the configured bandwidth…
        assert!(runs[0].0 < 0.95 * configured, "{runs:?}");
        for r in &runs[1..] {
            assert!(r.0 <= 1.02 * configured, "{runs:?}");
        }
        assert!(within(runs[3].0, configured, 0.10), "{runs:?}");
        assert!(runs[3].0 <= 1.05 * runs[2].0, "{runs:?}");
        // …while the queueing delay keeps growing.
        assert!(
            runs.windows(2).all(|w| w[1].1 > w[0].1),
            "queueing must grow with load: {runs:?}"
        );
    }
}

#[test]
fn every_preset_bandwidth_matrix() {
    for preset in ["1s", "4s", "8s"] {
        let s = Setup::new(preset);
        let n = s.desc.nnodes();
        let rows: Vec<u32> = if n > 2 { vec![0] } else { (0..n).collect() };
        let mat: Vec<Vec<f64>> = rows
            .iter()
            .map(|&i| {
                (0..n)
                    .map(|j| s.bandwidth(i, j, 4, BW_BYTES, 4000).0)
                    .collect()
            })
            .collect();
        print_matrix(&format!("{preset} read bandwidth (GB/s)"), &rows, &mat);
        for (r, row) in rows.iter().zip(&mat) {
            for (j, &x) in row.iter().enumerate() {
                if j as u32 == *r {
                    let configured = s.desc.sockets[j].memory.bandwidth_gbs;
                    assert!(within(x, configured, 0.10), "{preset} {r}->{j}: {x}");
                } else {
                    // Remote reads flatten at the bandwidth of the links on their way.
                    let link = s.desc.links[0].bandwidth_gbs;
                    assert!(within(x, link, 0.10), "{preset} {r}->{j}: {x}");
                }
            }
        }
    }
}

//! Behaviour of the timing model, access by access.

use super::*;
use crate::desc::{CacheDesc, MachineDesc};

struct M {
    desc: MachineDesc,
    ram: Vec<RamRange>,
    t: TimingModel,
}

impl M {
    fn preset(name: &str) -> Self {
        Self::from(MachineDesc::load(name).unwrap())
    }

    /// The 2s preset with tiny caches (L1 1 KiB 2-way, L2 4 KiB 4-way, LLC 16 KiB 4-way), so
    /// that evictions are easy to provoke.
    fn small() -> Self {
        Self::tiny("2s")
    }

    /// Preset `name` with the caches of [`M::small`].
    fn tiny(name: &str) -> Self {
        let mut d = MachineDesc::load(name).unwrap();
        for s in &mut d.sockets {
            s.l1d = CacheDesc {
                size_kib: 1,
                ways: 2,
                latency: 4,
            };
            s.l2 = CacheDesc {
                size_kib: 4,
                ways: 4,
                latency: 14,
            };
            s.llc = CacheDesc {
                size_kib: 16,
                ways: 4,
                latency: 50,
            };
        }
        Self::from(d)
    }

    fn from(desc: MachineDesc) -> Self {
        let ram = desc.ram_layout();
        let t = TimingModel::new(&desc, &ram, &desc.core_sockets());
        M { desc, ram, t }
    }

    /// Line `i` of node `n` (from 16 MiB into its RAM).
    fn pa(&self, n: u32, i: u64) -> u64 {
        self.ram[n as usize].base + (16 << 20) + i * 64
    }

    fn cycles(&self, ns: f64) -> u64 {
        (ns * self.desc.frequency_mhz as f64 / 1000.0).round() as u64
    }

    fn mem_lat(&self, n: usize) -> u64 {
        self.cycles(self.desc.sockets[n].memory.latency_ns)
    }

    fn link_lat(&self) -> u64 {
        self.cycles(self.desc.links[0].latency_ns)
    }
}

// 2s: L1 4, L2 14, LLC 50 cycles; cores 0-3 on socket 0, 4-7 on socket 1.
const L1: u64 = 4;
const L2: u64 = 14;
const LLC: u64 = 50;

#[test]
fn hits_at_each_level_cost_their_latency() {
    let mut m = M::preset("2s");
    let a = m.pa(0, 0);
    let mem = m.mem_lat(0);
    assert_eq!(m.t.access(0, 0, a, false), LLC + mem - L1);
    assert_eq!(m.t.access(0, 1000, a, false), 0);
    assert_eq!(m.t.access(0, 1001, a + 8, false), 0);
    // Push `a` out of L1 (64 sets × 8 ways): 8 more lines of its set; they stay in L2.
    for k in 1..=8 {
        m.t.access(0, 2000 + k * 1000, a + k * 64 * 64, false);
    }
    assert_eq!(m.t.access(0, 20_000, a, false), L2 - L1);
    // Another core of the socket finds it in the LLC.
    assert_eq!(m.t.access(1, 20_000, a, false), LLC - L1);
    let st = m.t.stats();
    assert_eq!(st.cores[0].l1_hits, 2);
    assert_eq!(st.cores[0].l2_hits, 1);
    assert_eq!(st.cores[0].llc_misses, 9);
    assert_eq!(st.cores[1].llc_hits, 1);
    assert_eq!(st.cores[0].stall_cycles, 9 * (LLC + mem - L1) + L2 - L1);
    assert_eq!(st.nodes[0].read_lines, 9);
    assert_eq!(st.nodes[0].read_bytes_from, vec![9 * 64, 0]);
}

#[test]
fn remote_miss_crosses_the_link_both_ways() {
    let mut m = M::preset("2s");
    let (mem, link) = (m.mem_lat(1), m.link_lat());
    let b = m.pa(1, 0);
    assert_eq!(m.t.access(0, 0, b, false), LLC + link + mem + link - L1);
    let st = m.t.stats();
    assert_eq!(st.cores[0].remote_accesses, 1);
    assert_eq!(st.nodes[1].read_bytes_from, vec![64, 0]);
    assert_eq!(st.nodes[0].read_bytes, 0);
    // Request one way (control), data the other.
    assert_eq!(
        st.links[0],
        LinkStats {
            from: 0,
            to: 1,
            bytes: CONTROL_BYTES,
            busy_cycles: st.links[0].busy_cycles,
        }
    );
    assert_eq!(st.links[1].bytes, LINE_BYTES);
}

#[test]
fn accesses_outside_ram_are_free_and_uncounted() {
    let mut m = M::preset("2s");
    assert_eq!(m.t.access(0, 0, 0x1000, false), 0);
    assert_eq!(m.t.access(0, 0, u64::MAX - 63, true), 0);
    assert_eq!(m.t.stats().cores[0], CoreMemStats::default());
    assert!(m.t.stats().core_dram.iter().all(|&b| b == 0));
    assert_eq!(m.t.dma(0, 0, 0x1000, 4096, true), 0);
}

#[test]
fn a_write_to_a_line_shared_with_another_socket_invalidates_it() {
    let mut m = M::preset("2s");
    let link = m.link_lat();
    let x = m.pa(0, 7);
    m.t.access(0, 0, x, false);
    m.t.access(4, 0, x, false);
    // Core 0 holds x shared: its store is posted (no stall) but takes the invalidation round
    // trip (home is socket 0: snoop to socket 1, its LLC, acknowledgement back).
    let now = 10_000;
    assert_eq!(m.t.access(0, now, x, true), 0);
    assert_eq!(m.t.fence(0, now), LLC + link + LLC + link);
    assert_eq!(m.t.stats().cores[0].invalidations_sent, 1);
    // Socket 1 lost its copy: its next read finds the line dirty in socket 0 and gets it
    // cache-to-cache (request to the home, which is the owner; data back), while socket 0
    // writes it back.
    let before = m.t.stats().nodes[0].write_bytes;
    assert_eq!(
        m.t.access(4, 20_000, x, false),
        LLC + link + LLC + link - L1
    );
    let st = m.t.stats();
    assert_eq!(st.nodes[0].write_bytes, before + 64);
    assert_eq!(st.nodes[0].write_bytes_from, vec![64, 0]);
    // Both now share it clean: a second write by core 0 invalidates socket 1 again.
    m.t.access(0, 30_000, x, true);
    assert_eq!(m.t.stats().cores[0].invalidations_sent, 2);
}

#[test]
fn a_write_miss_on_a_line_dirty_elsewhere_takes_it_with_its_data() {
    let mut m = M::preset("2s");
    let link = m.link_lat();
    let y = m.pa(1, 3);
    m.t.access(4, 0, y, true); // socket 1 owns y dirty (home: node 1)
    // Core 0's locked RMW: request to the home (socket 1, also the owner), data back.
    assert_eq!(m.t.access_locked(0, 10_000, y), LLC + link + LLC + link);
    let st = m.t.stats();
    assert_eq!(st.cores[0].invalidations_sent, 1);
    assert_eq!(
        st.nodes[1].write_bytes, 0,
        "ownership moved with the dirty data"
    );
    // Socket 1's next read comes back to socket 0 for it.
    assert!(m.t.access(4, 20_000, y, false) > LLC + 2 * link);
}

#[test]
fn cores_of_a_socket_stay_coherent() {
    let mut m = M::preset("2s");
    let z = m.pa(0, 11);
    m.t.access(0, 0, z, true); // core 0: modified
    // Core 1 reads it from the LLC, core 0 is downgraded to shared…
    assert_eq!(m.t.access(1, 1000, z, false), LLC - L1);
    // …so core 0's next store must invalidate core 1 (posted).
    assert_eq!(m.t.access(0, 2000, z, true), 0);
    assert_eq!(m.t.stats().cores[0].invalidations_sent, 1);
    assert_eq!(m.t.fence(0, 2000), LLC);
    // Core 1 misses again and finds it in the LLC.
    assert_eq!(m.t.access(1, 3000, z, false), LLC - L1);
    // No memory traffic beyond the first fill.
    assert_eq!(m.t.stats().nodes[0].requests, 1);
}

#[test]
fn dirty_evictions_are_written_back() {
    let mut m = M::small();
    // 1000 lines written, 256 fit in the LLC: at least 744 go back to memory.
    for i in 0..1000 {
        m.t.access(0, i * 10, m.pa(0, i * 3), true);
    }
    let st = m.t.stats();
    assert!(st.nodes[0].write_lines >= 744, "{:?}", st.nodes[0]);
    assert_eq!(st.nodes[0].write_bytes_from[0], st.nodes[0].write_bytes);
    // Clean evictions are not.
    let mut m = M::small();
    for i in 0..1000 {
        m.t.access(0, i * 10, m.pa(0, i * 3), false);
    }
    assert_eq!(m.t.stats().nodes[0].write_lines, 0);
}

#[test]
fn remote_writebacks_cross_the_link() {
    let mut m = M::small();
    for i in 0..1000 {
        m.t.access(0, i * 10, m.pa(1, i * 3), true);
    }
    let st = m.t.stats();
    assert!(st.nodes[1].write_bytes_from[0] >= 744 * 64);
    // Data of the RFOs came 1→0, the writebacks went 0→1.
    assert!(st.links[0].bytes >= 744 * 64);
}

#[test]
fn dma_is_coherent_and_counted_at_the_home_node() {
    let mut m = M::preset("2s");
    let p = m.pa(1, 100);
    m.t.access(0, 0, p, false);
    assert_eq!(m.t.access(0, 1000, p, false), 0);
    // A NIC on socket 0 writes two lines on node 1: the cached copy goes away.
    let lat = m.t.dma(0, 2000, p, 128, true);
    assert!(lat >= m.link_lat() + m.mem_lat(1), "{lat}");
    assert!(
        m.t.access(0, 5000, p, false) > LLC,
        "the copy must be invalidated"
    );
    let st = m.t.stats();
    assert_eq!(st.nodes[1].dma_write_bytes, 128);
    assert_eq!(st.nodes[1].write_bytes, 128);
    assert_eq!(st.nodes[1].write_bytes_from, vec![0, 0]);
    // A DMA read of a line dirty in a cache is served from there, not from memory.
    let q = m.pa(0, 200);
    m.t.access(5, 10_000, q, true);
    m.t.dma(0, 20_000, q, 64, false);
    assert_eq!(m.t.stats().nodes[0].dma_read_bytes, 0);
    m.t.dma(0, 20_000, m.pa(0, 300), 64, false);
    assert_eq!(m.t.stats().nodes[0].dma_read_bytes, 64);
    // A partial-line write of a dirty line pulls it back first.
    let before = m.t.stats().nodes[0].write_bytes;
    m.t.dma(0, 30_000, q + 8, 8, true);
    assert_eq!(m.t.stats().nodes[0].write_bytes, before + 128);
}

#[test]
fn stores_are_posted_until_miss_entries_run_out() {
    let mut m = M::preset("2s");
    let n = m.desc.sockets[0].mlp.outstanding_misses as u64;
    // Lines 64 apart: nothing for the prefetcher to follow.
    for i in 0..n {
        assert_eq!(m.t.access(0, i, m.pa(0, i * 64), true), 0);
    }
    let first_done = LLC + m.mem_lat(0);
    // The next store waits for the first fill to complete.
    assert_eq!(m.t.access(0, n, m.pa(0, n * 64), true), first_done - n);
    // Stores to lines already owned never wait.
    assert_eq!(m.t.access(0, n + 1, m.pa(0, 0) + 8, true), 0);
    let st = m.t.stats();
    assert_eq!(st.cores[0].stall_cycles, first_done - n);
    assert_eq!(st.nodes[0].read_lines, n + 1, "write-allocate: RFO reads");
}

#[test]
fn streams_are_prefetched_and_random_walks_are_not() {
    let mut m = M::preset("2s");
    let mut now = 0;
    let lines = 4096;
    for i in 0..lines {
        for w in 0..8 {
            now += 1 + m.t.access(0, now, m.pa(0, i) + w * 8, false);
        }
    }
    let st = m.t.stats().cores[0].clone();
    assert!(st.prefetches > lines - 50, "{st:?}");
    assert!(st.l2_hits > lines - 50, "{st:?}");
    let per_line = now as f64 / lines as f64;
    let lat = (LLC + m.mem_lat(0)) as f64;
    assert!(
        per_line < lat / 3.0,
        "streaming: {per_line} cycles per line"
    );

    let mut m = M::preset("2s");
    let mut x = 0x1234_5678u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.t.access(0, 0, m.pa(0, x % (1 << 20)), false);
    }
    assert_eq!(m.t.stats().cores[0].prefetches, 0);
}

#[test]
fn descending_streams_are_prefetched_too() {
    let mut m = M::preset("2s");
    let mut now = 0;
    for i in (0..2048).rev() {
        now += 1 + m.t.access(0, now, m.pa(0, i), false);
    }
    assert!(m.t.stats().cores[0].prefetches > 2000);
}

#[test]
fn a_core_behind_in_time_is_not_queued_behind_the_future() {
    let mut m = M::preset("2s");
    // Cores 1-3 run far ahead, saturating node 0 in [1M, 1.1M) cycles (quanta of 4000).
    let mut clocks = [1_000_000u64; 3];
    let mut next = [0u64; 3];
    while let Some(k) = (0..3)
        .filter(|&k| clocks[k] < 1_100_000)
        .min_by_key(|&k| clocks[k])
    {
        let end = clocks[k] + 4000;
        while clocks[k] < end {
            let pa = m.pa(0, k as u64 * 1_000_000 + next[k]);
            clocks[k] += 1 + m.t.access(k as u32 + 1, clocks[k], pa, false);
            next[k] += 1;
        }
    }
    assert!(m.t.stats().nodes[0].queue_cycles > 0);
    // Core 0, behind at cycle 1000, sees an idle controller.
    let idle = LLC + m.mem_lat(0) - L1;
    assert_eq!(m.t.access(0, 1000, m.pa(0, 3 << 20), false), idle);
    // At the time of the backlog, it queues.
    assert!(m.t.access(0, 1_050_000, m.pa(0, (3 << 20) + 999), false) > idle);
}

#[test]
fn queue_depth_reflects_load() {
    let mut m = M::preset("2s");
    assert_eq!(m.t.queue_depth(0, 500), 0);
    for c in 0..4 {
        let mut now = 0;
        let mut i = 0;
        while now < 100_000 {
            now += 1 + m.t.access(c, now, m.pa(0, c as u64 * 100_000 + i), false);
            i += 1;
        }
    }
    assert!(
        m.t.queue_depth(0, 50_000) > 16,
        "{}",
        m.t.queue_depth(0, 50_000)
    );
    assert_eq!(m.t.queue_depth(1, 50_000), 0);
    let st = m.t.stats();
    // The controller was busy nearly all the time.
    assert!(st.nodes[0].busy_cycles > 90_000, "{:?}", st.nodes[0]);
}

#[test]
fn routes_are_shortest_and_charge_every_hop() {
    let d = MachineDesc::load("8s").unwrap();
    let n = d.sockets.len();
    let m = M::from(d.clone());
    let hops = d.hops();
    for (a, row) in hops.iter().enumerate() {
        for (b, &h) in row.iter().enumerate() {
            assert_eq!(m.t.routes[a * n + b].len() as u32, h, "{a}->{b}");
        }
    }
    // 0 → 5 is two hops; the lowest-numbered neighbour wins the tie (via 1).
    assert_eq!(m.t.routes[5], vec![1, 5]);
    let mut m = M::from(d);
    let lat = m.t.access(0, 0, m.pa(5, 0), false);
    assert_eq!(lat, LLC + 4 * m.link_lat() + m.mem_lat(5) - L1);
    let st = m.t.stats();
    let bytes = |f: u32, t: u32| {
        st.links
            .iter()
            .find(|l| l.from == f && l.to == t)
            .unwrap()
            .bytes
    };
    assert_eq!(
        (bytes(0, 1), bytes(1, 5), bytes(5, 1), bytes(1, 0)),
        (8, 8, 64, 64)
    );
    assert_eq!(st.links.iter().map(|l| l.bytes).sum::<u64>(), 144);
}

#[test]
fn parallel_links_share_traffic_by_line() {
    let mut d = MachineDesc::load("2s").unwrap();
    let l = d.links[0].clone();
    d.links.push(l);
    let mut m = M::from(d);
    for i in 0..100 {
        m.t.access(0, i * 1000, m.pa(1, i), false);
    }
    let st = m.t.stats();
    // Directions: 0: 0→1 of link 0, 1: 1→0 of link 0, 2: 0→1 of link 1, 3: 1→0 of link 1.
    assert_eq!(st.links[1].bytes, st.links[3].bytes);
    assert!(st.links[1].bytes > 0);
}

/// The coherence invariants: L1 ⊆ L2 ⊆ LLC with the core-valid bit set; a writable core copy
/// is the only one in its socket and its socket's copy is exclusive; an exclusive socket copy
/// is the only one anywhere; lines held by several sockets are clean.
fn check_invariants(t: &TimingModel) {
    for (ci, c) in t.cores.iter().enumerate() {
        let s = &t.sockets[c.socket as usize];
        for (line, f, _) in c.l1.lines() {
            let i2 =
                c.l2.find(line)
                    .unwrap_or_else(|| panic!("core {ci}: L1 {line:#x} not in L2"));
            assert_eq!(
                f & W,
                c.l2.flags(i2) & W,
                "core {ci} {line:#x}: L1/L2 permission"
            );
        }
        for (line, f, _) in c.l2.lines() {
            let li = s
                .llc
                .find(line)
                .unwrap_or_else(|| panic!("core {ci}: L2 {line:#x} not in LLC"));
            let cv = s.llc.aux(li);
            assert!(cv & c.bit != 0, "core {ci} {line:#x}: core-valid bit");
            if f & W != 0 {
                assert_eq!(cv, c.bit, "core {ci} {line:#x}: writable but not alone");
                assert!(
                    s.llc.flags(li) & W != 0,
                    "core {ci} {line:#x}: socket not exclusive"
                );
            }
        }
    }
    let mut holders = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    let n = t.sockets.len();
    let mut presence = vec![0u8; t.presence.len()];
    for (si, s) in t.sockets.iter().enumerate() {
        for (line, f, _) in s.llc.lines() {
            holders.entry(line).or_default().push(f);
            presence[(line / LINES_PER_PAGE) as usize * n + si] += 1;
        }
    }
    assert!(
        presence == t.presence,
        "presence filter out of step with the LLCs"
    );
    for (line, fs) in holders {
        if fs.len() > 1 {
            assert!(
                fs.iter().all(|f| f & (W | D) == 0),
                "{line:#x}: shared but {fs:?}"
            );
        }
    }
}

/// Runs a fixed mixed workload on cores 0, 1 and 5 from step `from` to `to`; returns the stalls.
fn mixed(m: &mut M, from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut x = 0xdead_beefu64;
    for k in 0..to {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if k < from {
            continue;
        }
        let core = [0u32, 1, 5][(x % 3) as usize];
        let node = ((x >> 8) % 2) as u32;
        let pa = m.pa(node, (x >> 16) % 2048) + (x >> 40) % 64;
        let now = k * 7;
        out.push(match (x >> 50) % 8 {
            0 => m.t.dma(1, now, pa, 256, true),
            1 | 2 => m.t.access(core, now, pa, true),
            _ => m.t.access(core, now, pa, false),
        });
    }
    out
}

#[test]
fn same_inputs_same_outputs_and_checkpoints_resume_exactly() {
    let mut a = M::small();
    let mut b = M::small();
    assert_eq!(mixed(&mut a, 0, 20_000), mixed(&mut b, 0, 20_000));
    assert_eq!(a.t.stats(), b.t.stats());
    check_invariants(&a.t);

    // Through serde (RON, as checkpoints will be) at the midpoint.
    let mut whole = M::small();
    let first = mixed(&mut whole, 0, 10_000);
    let text = ron::to_string(&whole.t).unwrap();
    let mut restored = M::small();
    restored.t = ron::from_str(&text).unwrap();
    let mut clone = M::small();
    clone.t = whole.t.clone();
    let rest = mixed(&mut whole, 10_000, 20_000);
    assert_eq!(mixed(&mut restored, 10_000, 20_000), rest);
    assert_eq!(mixed(&mut clone, 10_000, 20_000), rest);
    assert_eq!(restored.t.stats(), whole.t.stats());
    assert!(!first.is_empty());
}

#[test]
fn coherence_invariants_hold_under_sharing() {
    for mut m in [M::small(), M::preset("2s")] {
        for step in 0..10 {
            mixed(&mut m, step * 3000, (step + 1) * 3000);
            check_invariants(&m.t);
            check_attribution(&m.t.stats());
        }
    }
}

/// The traffic-attribution rule (module documentation): at every node, the bytes the cores
/// caused plus the bytes DMA caused are the controller's bytes, exactly; likewise on the links.
fn check_attribution(st: &TimingStats) {
    assert_eq!(st.core_dram.len(), st.cores.len() * st.nodes.len() * 2);
    for (n, node) in st.nodes.iter().enumerate() {
        let sum = |w| -> u64 {
            (0..st.cores.len())
                .map(|c| st.core_dram_bytes(c, n, w))
                .sum()
        };
        let (reads, writes) = (sum(false), sum(true));
        assert_eq!(
            reads + node.dma_read_bytes,
            node.read_bytes,
            "node {n}: reads"
        );
        assert_eq!(
            writes + node.dma_write_bytes + node.dma_writeback_bytes,
            node.write_bytes,
            "node {n}: writes"
        );
    }
    let links: u64 = st.links.iter().map(|l| l.bytes).sum();
    let cores: u64 = st.core_link.iter().sum();
    assert_eq!(cores + st.dma_link_bytes, links, "link bytes");
}

/// Loads and stores without DMA on `cores`, spread over every node's RAM (2048 lines each),
/// one step every 7 cycles.
fn cores_only(m: &mut M, cores: &[u32], steps: u64) {
    let nodes = m.desc.sockets.len() as u64;
    let mut x = 0x5eed_1234_u64;
    for k in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let core = cores[(x % cores.len() as u64) as usize];
        let pa = m.pa(((x >> 8) % nodes) as u32, (x >> 16) % 2048) + (x >> 40) % 64;
        m.t.access(core, k * 7, pa, (x >> 50).is_multiple_of(3));
    }
}

#[test]
fn core_traffic_adds_up_to_each_node_without_dma() {
    // Tiny caches: most fills evict, a third of the accesses are stores, so dirty lines are
    // written back by other cores' fills, snooped across sockets, invalidated.
    for (preset, cores) in [
        ("2s", &[0u32, 1, 4, 5][..]),
        ("8s", &[0, 1, 12, 20, 29][..]),
    ] {
        let mut m = M::tiny(preset);
        cores_only(&mut m, cores, 30_000);
        let st = m.t.stats();
        check_attribution(&st);
        check_invariants(&m.t);
        assert_eq!(st.dma_link_bytes, 0);
        for (n, node) in st.nodes.iter().enumerate() {
            assert_eq!(
                (
                    node.dma_read_bytes,
                    node.dma_write_bytes,
                    node.dma_writeback_bytes
                ),
                (0, 0, 0)
            );
            assert!(
                node.read_bytes > 0 && node.write_bytes > 0,
                "{preset} node {n}: {node:?}"
            );
        }
        for &c in cores {
            assert!(
                (0..st.nodes.len()).all(|n| st.core_dram_bytes(c as usize, n, false) > 0)
                    && st.core_link[c as usize] > 0,
                "{preset} core {c}: {:?}",
                m.t.core_dram(c)
            );
        }
        // Cores that did nothing were charged nothing.
        for c in (0..st.cores.len() as u32).filter(|c| !cores.contains(c)) {
            assert!(m.t.core_dram(c).iter().all(|&b| b == 0), "core {c}");
            assert_eq!(st.core_link[c as usize], 0, "core {c}");
        }
    }
}

#[test]
fn with_dma_node_traffic_is_core_traffic_plus_dma_traffic() {
    let mut m = M::small();
    // DMA writes from socket 1 among the cores' accesses, then DMA reads from socket 0 of
    // lines some of which are cached dirty.
    mixed(&mut m, 0, 20_000);
    for k in 0..400 {
        let pa = m.pa((k % 2) as u32, k * 5) + k % 64;
        m.t.dma(0, 200_000 + k * 10, pa, 200, false);
    }
    let st = m.t.stats();
    check_attribution(&st);
    // The workload exercised every DMA term: reads, writes, dirty lines pulled back by
    // partial writes, messages on the link.
    let sum = |f: fn(&NodeStats) -> u64| st.nodes.iter().map(f).sum::<u64>();
    assert!(sum(|n| n.dma_read_bytes) > 0);
    assert!(sum(|n| n.dma_write_bytes) > 0);
    assert!(sum(|n| n.dma_writeback_bytes) > 0, "{:?}", st.nodes);
    assert!(st.dma_link_bytes > 0);
}

#[test]
fn write_backs_are_charged_to_the_core_whose_access_caused_them() {
    let mut m = M::small();
    // Core 0 dirties 64 lines of node 0, one per LLC set (nothing is evicted yet), 65 lines
    // apart (too far apart for the prefetcher to follow). Per core: [node 0 read, node 0
    // written, node 1 read, node 1 written].
    for i in 0..64 {
        m.t.access(0, i * 100, m.pa(0, i * 65), true);
    }
    assert_eq!(m.t.core_dram(0), [64 * 64, 0, 0, 0], "RFO reads");
    // Core 1 (same socket) reads 1024 other lines of node 0 (16 per set of a 4-way LLC):
    // its fills push all of core 0's dirty lines out, so it is charged with writing them back.
    for i in 0..1024 {
        m.t.access(1, 10_000 + i * 100, m.pa(0, 8192 + i * 65), false);
    }
    assert_eq!(m.t.core_dram(0), [64 * 64, 0, 0, 0]);
    assert_eq!(m.t.core_dram(1), [1024 * 64, 64 * 64, 0, 0]);
    let st = m.t.stats();
    assert_eq!(st.nodes[0].write_bytes, 64 * 64);
    // The write-back happened at socket 0's controller on socket 0's behalf.
    assert_eq!(st.nodes[0].write_bytes_from, vec![64 * 64, 0]);
    check_attribution(&st);

    // A read from another socket of a line held dirty: the reader is charged with the owner's
    // write-back to the home and with the request and the data on the link (the home is the
    // owner, so no snoop crosses it).
    let mut m = M::preset("2s");
    let x = m.pa(0, 5);
    m.t.access(0, 0, x, true);
    let before = m.t.stats();
    m.t.access(4, 10_000, x, false);
    let st = m.t.stats();
    assert_eq!(
        m.t.core_dram(4),
        [0, 64, 0, 0],
        "cache to cache, and a write-back"
    );
    assert_eq!(st.core_link[4], CONTROL_BYTES + LINE_BYTES);
    assert_eq!(st.cores[0], before.cores[0], "the owner is charged nothing");
    assert_eq!(st.core_link[0], 0);
    assert_eq!(m.t.core_dram(0), [64, 0, 0, 0]);
    check_attribution(&st);

    // A partial DMA write of a dirty line pulls it back: the device's doing, no core's.
    m.t.access(5, 30_000, m.pa(1, 9), true);
    let before = m.t.stats();
    m.t.dma(0, 40_000, m.pa(1, 9) + 8, 8, true);
    let st = m.t.stats();
    assert_eq!(st.nodes[1].dma_writeback_bytes, 64);
    assert_eq!(
        (&st.cores, &st.core_dram, &st.core_link),
        (&before.cores, &before.core_dram, &before.core_link)
    );
    check_attribution(&st);
}

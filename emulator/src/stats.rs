//! Run statistics (DESIGN.md §2.6), one source of numbers for `pvmlab exec --stats`,
//! `--stats-json` and the TUI: cumulative counters from the cores and the timing model, turned
//! into a [`Report`], and per-epoch deltas kept in a bounded ring of [`Sample`]s.

use crate::timing::TimingStats;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Simulated time between two samples, in nanoseconds.
pub const EPOCH_NS: u64 = 10_000;
/// Samples kept; older ones are dropped.
pub const RING_CAPACITY: usize = 4096;

/// The run summary. Everything but `host_seconds` and `mips` is deterministic.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub machine: String,
    /// Whether the cache/memory model ran (`--timing on`), or fixed latencies.
    pub timing: bool,
    pub instructions: u64,
    /// Simulated cycles: the furthest core clock.
    pub cycles: u64,
    pub simulated_ns: u64,
    pub host_seconds: f64,
    pub mips: f64,
    pub nodes: Vec<NodeReport>,
    pub links: Vec<LinkReport>,
    pub cores: Vec<CoreReport>,
    /// Work charged to the domains announced on the annotation port (empty if none was).
    pub domains: Vec<DomainReport>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DomainReport {
    pub domain: u32,
    pub name: String,
    pub cycles: u64,
    pub instructions: u64,
    pub llc_misses: u64,
    pub remote_accesses: u64,
    /// Remote share of the domain's LLC misses.
    pub remote_ratio: f64,
    /// Bytes (whole lines) the domain's accesses read and wrote at each node's memory
    /// controller (index = node), write-backs of the dirty lines they evicted included (the
    /// timing module's "Traffic attribution" rule). Over all domains these add up to each
    /// node's `read_bytes` less its DMA reads, and `write_bytes` less its DMA writes and DMA
    /// write-backs. Empty in functional mode.
    pub dram_read_bytes: Vec<u64>,
    pub dram_write_bytes: Vec<u64>,
    /// Of those, the bytes at nodes other than that of the core that moved them.
    pub remote_dram_bytes: u64,
    /// Bytes of the domain's messages on interconnect links, counted on every link crossed.
    pub link_bytes: u64,
}

impl DomainReport {
    pub fn new(domain: u32, name: String, c: &crate::domains::DomainCounters) -> Self {
        DomainReport {
            domain,
            name,
            cycles: c.cycles,
            instructions: c.instructions,
            llc_misses: c.llc_misses,
            remote_accesses: c.remote_accesses,
            remote_ratio: ratio(c.remote_accesses, c.llc_misses),
            dram_read_bytes: c.dram_read_bytes.clone(),
            dram_write_bytes: c.dram_write_bytes.clone(),
            remote_dram_bytes: c.remote_dram_bytes,
            link_bytes: c.link_bytes,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeReport {
    pub node: u32,
    /// DRAM bytes read and written at this node's controller, all origins.
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_lines: u64,
    pub write_lines: u64,
    /// Of those, the bytes requested by cores on other sockets.
    pub remote_read_bytes: u64,
    pub remote_write_bytes: u64,
    /// Bytes moved by devices (DMA), both directions.
    pub dma_bytes: u64,
    /// Dirty lines a partial-line DMA write pulled back from a socket's caches (also in
    /// `write_bytes_from`; charged to no core or domain).
    pub dma_writeback_bytes: u64,
    /// Core traffic by requesting socket (index = socket).
    pub read_bytes_from: Vec<u64>,
    pub write_bytes_from: Vec<u64>,
    pub requests: u64,
    /// Mean queueing delay of a request at the controller.
    pub mean_queue_ns: f64,
    /// Fraction of simulated time the controller was busy.
    pub utilization: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LinkReport {
    pub from: u32,
    pub to: u32,
    pub bytes: u64,
    pub utilization: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CoreReport {
    pub core: u32,
    pub socket: u32,
    pub instructions: u64,
    pub busy_cycles: u64,
    pub halted_cycles: u64,
    pub l1_hit_rate: f64,
    pub l2_hit_rate: f64,
    pub llc_hit_rate: f64,
    pub remote_accesses: u64,
    pub stall_cycles: u64,
    /// #UDs for instructions (or modes) pvmlab does not implement that the image's own #UD
    /// handler received (an IDT was loaded): silicon lacking them raises #UD too, but a
    /// non-zero count usually means the image ran something pvmlab cannot (`Core::
    /// unimplemented_first` names them).
    pub unimplemented_ud: u64,
}

/// What changed during one epoch of simulated time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub epoch: u64,
    /// Simulated time at the end of the epoch.
    pub end_ns: u64,
    pub instructions: u64,
    pub nodes: Vec<NodeSample>,
    /// Bytes per directed link, in the order of `Report::links`.
    pub link_bytes: Vec<u64>,
    /// Instructions per core.
    pub core_instructions: Vec<u64>,
    /// Whether each core was running (not halted) at the end of the epoch.
    pub core_busy: Vec<bool>,
    /// The domain each core had announced at the end of the epoch (annotation port): its
    /// name, or its number if unnamed; `None` before any announcement.
    pub core_domains: Vec<Option<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeSample {
    pub local_read_bytes: u64,
    pub remote_read_bytes: u64,
    pub local_write_bytes: u64,
    pub remote_write_bytes: u64,
    pub dma_bytes: u64,
    pub queue_depth: u32,
}

/// The last `RING_CAPACITY` epochs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatsRing {
    pub samples: VecDeque<Sample>,
    /// Cumulative counters at the end of the last sample.
    last: Option<(u64, Vec<u64>, TimingStats)>,
    pub next_epoch: u64,
}

impl StatsRing {
    /// Checks a restored ring against the machine's counters: the baseline of the next sample
    /// (`last`) may not be ahead of them, nor shaped differently (every sample subtracts it).
    pub fn check_restored(
        &self,
        instructions: u64,
        core_instr: &[u64],
        t: &TimingStats,
    ) -> Result<(), String> {
        let Some((i, c, pt)) = &self.last else {
            return Ok(());
        };
        let vec_le =
            |a: &[u64], b: &[u64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x <= y);
        let nodes_ok = pt.nodes.len() == t.nodes.len()
            && pt.nodes.iter().zip(&t.nodes).all(|(p, n)| {
                vec_le(&p.read_bytes_from, &n.read_bytes_from)
                    && vec_le(&p.write_bytes_from, &n.write_bytes_from)
                    && p.dma_read_bytes + p.dma_write_bytes <= n.dma_read_bytes + n.dma_write_bytes
            });
        let links_ok = pt.links.len() == t.links.len()
            && pt
                .links
                .iter()
                .zip(&t.links)
                .all(|(p, l)| p.bytes <= l.bytes);
        if *i <= instructions && vec_le(c, core_instr) && nodes_ok && links_ok {
            Ok(())
        } else {
            Err("the statistics ring's last sample is ahead of the machine's counters".into())
        }
    }

    /// Records the epoch ending at `end_ns` from cumulative counters.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        end_ns: u64,
        instructions: u64,
        core_instr: Vec<u64>,
        core_busy: Vec<bool>,
        core_domains: Vec<Option<String>>,
        t: &TimingStats,
        depths: Vec<u32>,
    ) {
        let (pi, pc, pt) = match &self.last {
            Some((i, c, t)) => (*i, c.clone(), t.clone()),
            None => (0, vec![0; core_instr.len()], TimingStats::default()),
        };
        let nodes = t
            .nodes
            .iter()
            .enumerate()
            .map(|(n, ns)| {
                let prev = pt.nodes.get(n);
                let d = |f: fn(&crate::timing::NodeStats) -> u64| f(ns) - prev.map_or(0, f);
                let from = |v: &Vec<u64>, p: Option<&Vec<u64>>, local: bool| -> u64 {
                    v.iter()
                        .enumerate()
                        .filter(|(s, _)| (*s == n) == local)
                        .map(|(s, b)| b - p.and_then(|p| p.get(s)).copied().unwrap_or(0))
                        .sum()
                };
                NodeSample {
                    local_read_bytes: from(
                        &ns.read_bytes_from,
                        prev.map(|p| &p.read_bytes_from),
                        true,
                    ),
                    remote_read_bytes: from(
                        &ns.read_bytes_from,
                        prev.map(|p| &p.read_bytes_from),
                        false,
                    ),
                    local_write_bytes: from(
                        &ns.write_bytes_from,
                        prev.map(|p| &p.write_bytes_from),
                        true,
                    ),
                    remote_write_bytes: from(
                        &ns.write_bytes_from,
                        prev.map(|p| &p.write_bytes_from),
                        false,
                    ),
                    dma_bytes: d(|x| x.dma_read_bytes + x.dma_write_bytes),
                    queue_depth: depths.get(n).copied().unwrap_or(0),
                }
            })
            .collect();
        let link_bytes = t
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| l.bytes - pt.links.get(i).map_or(0, |p| p.bytes))
            .collect();
        let sample = Sample {
            epoch: self.next_epoch,
            end_ns,
            instructions: instructions - pi,
            nodes,
            link_bytes,
            core_instructions: core_instr.iter().zip(&pc).map(|(a, b)| a - b).collect(),
            core_busy,
            core_domains,
        };
        if self.samples.len() == RING_CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.last = Some((instructions, core_instr, t.clone()));
        self.next_epoch += 1;
    }
}

/// Builds a node's report from the model's counters; `sockets` is the number of sockets.
pub fn node_report(
    n: &crate::timing::NodeStats,
    elapsed_cycles: u64,
    ns_per_cycle: f64,
) -> NodeReport {
    let node = n.node as usize;
    let remote = |v: &Vec<u64>| {
        v.iter()
            .enumerate()
            .filter(|(s, _)| *s != node)
            .map(|(_, b)| b)
            .sum()
    };
    NodeReport {
        node: n.node,
        read_bytes: n.read_bytes,
        write_bytes: n.write_bytes,
        read_lines: n.read_lines,
        write_lines: n.write_lines,
        remote_read_bytes: remote(&n.read_bytes_from),
        remote_write_bytes: remote(&n.write_bytes_from),
        dma_bytes: n.dma_read_bytes + n.dma_write_bytes,
        dma_writeback_bytes: n.dma_writeback_bytes,
        read_bytes_from: n.read_bytes_from.clone(),
        write_bytes_from: n.write_bytes_from.clone(),
        requests: n.requests,
        mean_queue_ns: if n.requests == 0 {
            0.0
        } else {
            n.queue_cycles as f64 / n.requests as f64 * ns_per_cycle
        },
        utilization: ratio(n.busy_cycles, elapsed_cycles),
    }
}

pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Report {
    /// A readable table (what `pvmlab exec --stats` prints).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let mode = if self.timing { "timing" } else { "functional" };
        let _ = writeln!(
            s,
            "machine {} ({mode}), {} instructions, {} cycles = {:.3} ms simulated",
            self.machine,
            self.instructions,
            self.cycles,
            self.simulated_ns as f64 / 1e6
        );
        let _ = writeln!(s, "host {:.3} s, {:.1} MIPS", self.host_seconds, self.mips);
        if self.timing {
            let _ = writeln!(
                s,
                "node      read B     write B  remote rd B  remote wr B      DMA B   requests  queue ns  util"
            );
            for n in &self.nodes {
                let _ = writeln!(
                    s,
                    "{:>4} {:>11} {:>11} {:>12} {:>12} {:>10} {:>10} {:>9.1} {:>5.1}%",
                    n.node,
                    n.read_bytes,
                    n.write_bytes,
                    n.remote_read_bytes,
                    n.remote_write_bytes,
                    n.dma_bytes,
                    n.requests,
                    n.mean_queue_ns,
                    n.utilization * 100.0
                );
            }
            if !self.links.is_empty() {
                let _ = writeln!(s, "link          bytes   util");
                for l in &self.links {
                    let _ = writeln!(
                        s,
                        "{:>2} -> {:<2} {:>10} {:>5.1}%",
                        l.from,
                        l.to,
                        l.bytes,
                        l.utilization * 100.0
                    );
                }
            }
        }
        if !self.domains.is_empty() {
            let _ = writeln!(
                s,
                "domain  name                    cycles  instructions  LLC misses  remote      DRAM B    remote B      link B"
            );
            // Work before any announcement: no number of its own.
            let id = |d: &DomainReport| {
                if d.domain == abi::annotate::NO_DOMAIN {
                    "-".to_string()
                } else {
                    d.domain.to_string()
                }
            };
            for d in &self.domains {
                let dram: u64 = d.dram_read_bytes.iter().chain(&d.dram_write_bytes).sum();
                let _ = writeln!(
                    s,
                    "{:>6}  {:<16} {:>13} {:>13} {:>11} {:>6.1}% {:>11} {:>11} {:>11}",
                    id(d),
                    d.name,
                    d.cycles,
                    d.instructions,
                    d.llc_misses,
                    d.remote_ratio * 100.0,
                    dram,
                    d.remote_dram_bytes,
                    d.link_bytes
                );
            }
            if self.timing {
                let _ = writeln!(s, "domain  node      read B     write B");
                for d in &self.domains {
                    for (n, node) in self.nodes.iter().enumerate() {
                        let at = |v: &Vec<u64>| v.get(n).copied().unwrap_or(0);
                        let _ = writeln!(
                            s,
                            "{:>6} {:>5} {:>11} {:>11}",
                            id(d),
                            node.node,
                            at(&d.dram_read_bytes),
                            at(&d.dram_write_bytes)
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "core socket  instructions   busy cyc  halted cyc   L1 hit   L2 hit  LLC hit  remote acc   stall cyc  unimpl #UD"
        );
        for c in &self.cores {
            let _ = writeln!(
                s,
                "{:>4} {:>6} {:>13} {:>10} {:>11} {:>7.1}% {:>7.1}% {:>7.1}% {:>11} {:>11} {:>11}",
                c.core,
                c.socket,
                c.instructions,
                c.busy_cycles,
                c.halted_cycles,
                c.l1_hit_rate * 100.0,
                c.l2_hit_rate * 100.0,
                c.llc_hit_rate * 100.0,
                c.remote_accesses,
                c.stall_cycles,
                c.unimplemented_ud
            );
        }
        s
    }
}

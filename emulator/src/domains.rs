//! Attribution of the machine's work to the domains software announces on the annotation port
//! (`abi::annotate`, DESIGN.md §2.5–2.6). The machine knows nothing of hypervisors: it keeps,
//! per core, which domain was announced last and charges that domain with what the core did
//! since — cycles, instructions, and its memory behaviour from the timing model, down to the
//! bytes of traffic at each node's memory controller and on the links.

use crate::timing::TimingModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What is charged to a domain. Memory figures are zero in functional mode.
///
/// The byte counters are the timing model's per-core traffic (`CoreMemStats`), so they follow
/// its attribution rule (timing module, "Traffic attribution"): a domain is charged with the
/// lines its cores' accesses read and write at each node's controller — write-backs of the
/// dirty lines those accesses evicted included, whoever dirtied them — and with their messages
/// on the links. Summed over all domains (with [`abi::annotate::NO_DOMAIN`] for work done
/// before any announcement), they equal the cores' totals byte for byte; DMA is nobody's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainCounters {
    pub cycles: u64,
    pub instructions: u64,
    /// Accesses that missed the LLC (went to memory or another socket's cache).
    pub llc_misses: u64,
    /// Of those, accesses served by another socket's memory or cache.
    pub remote_accesses: u64,
    pub stall_cycles: u64,
    /// Bytes read and written at each node's memory controller (index = node; empty when
    /// nothing was charged).
    pub dram_read_bytes: Vec<u64>,
    pub dram_write_bytes: Vec<u64>,
    /// Of those, the bytes (read and written) at nodes other than the node of the core that
    /// caused them.
    pub remote_dram_bytes: u64,
    /// Bytes on interconnect links, counted on every link crossed.
    pub link_bytes: u64,
}

impl DomainCounters {
    /// The cumulative counters of core `core` on node `node` that has run `cycles` busy
    /// cycles and retired `instructions`, with its memory counters from `timing` (none in
    /// functional mode).
    pub fn of_core(
        cycles: u64,
        instructions: u64,
        core: u32,
        node: u32,
        timing: Option<&TimingModel>,
    ) -> Self {
        let Some(t) = timing else {
            return DomainCounters {
                cycles,
                instructions,
                ..Default::default()
            };
        };
        let m = t.core_stats(core);
        let dram = t.core_dram(core);
        let reads: Vec<u64> = dram.iter().step_by(2).copied().collect();
        let writes: Vec<u64> = dram.iter().skip(1).step_by(2).copied().collect();
        let remote = reads
            .iter()
            .zip(&writes)
            .enumerate()
            .filter(|&(n, _)| n != node as usize)
            .map(|(_, (r, w))| r + w)
            .sum();
        DomainCounters {
            cycles,
            instructions,
            llc_misses: m.llc_misses,
            remote_accesses: m.remote_accesses,
            stall_cycles: m.stall_cycles,
            dram_read_bytes: reads,
            dram_write_bytes: writes,
            remote_dram_bytes: remote,
            link_bytes: t.core_link(core),
        }
    }

    /// DRAM bytes read and written, all nodes.
    pub fn dram_bytes(&self) -> u64 {
        self.dram_read_bytes.iter().sum::<u64>() + self.dram_write_bytes.iter().sum::<u64>()
    }

    fn add(&mut self, o: &Self) {
        self.cycles += o.cycles;
        self.instructions += o.instructions;
        self.llc_misses += o.llc_misses;
        self.remote_accesses += o.remote_accesses;
        self.stall_cycles += o.stall_cycles;
        add_nodes(&mut self.dram_read_bytes, &o.dram_read_bytes);
        add_nodes(&mut self.dram_write_bytes, &o.dram_write_bytes);
        self.remote_dram_bytes += o.remote_dram_bytes;
        self.link_bytes += o.link_bytes;
    }

    /// Whether every counter of `self` is at most the same counter of `now` (counters only
    /// grow: a saved baseline ahead of the counters it is subtracted from is forged).
    pub fn not_ahead_of(&self, now: &Self) -> bool {
        let nodes =
            |a: &[u64], b: &[u64]| a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x <= y);
        self.cycles <= now.cycles
            && self.instructions <= now.instructions
            && self.llc_misses <= now.llc_misses
            && self.remote_accesses <= now.remote_accesses
            && self.stall_cycles <= now.stall_cycles
            && nodes(&self.dram_read_bytes, &now.dram_read_bytes)
            && nodes(&self.dram_write_bytes, &now.dram_write_bytes)
            && self.remote_dram_bytes <= now.remote_dram_bytes
            && self.link_bytes <= now.link_bytes
    }

    fn minus(&self, o: &Self) -> Self {
        DomainCounters {
            cycles: self.cycles - o.cycles,
            instructions: self.instructions - o.instructions,
            llc_misses: self.llc_misses - o.llc_misses,
            remote_accesses: self.remote_accesses - o.remote_accesses,
            stall_cycles: self.stall_cycles - o.stall_cycles,
            dram_read_bytes: minus_nodes(&self.dram_read_bytes, &o.dram_read_bytes),
            dram_write_bytes: minus_nodes(&self.dram_write_bytes, &o.dram_write_bytes),
            remote_dram_bytes: self.remote_dram_bytes - o.remote_dram_bytes,
            link_bytes: self.link_bytes - o.link_bytes,
        }
    }
}

/// `a += b` per node; a missing entry counts as zero (counters taken before any traffic, or
/// in functional mode, have none).
fn add_nodes(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// `a - b` per node, a missing entry of `b` counting as zero.
fn minus_nodes(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter()
        .enumerate()
        .map(|(i, x)| x - b.get(i).copied().unwrap_or(0))
        .collect()
}

/// One core's current announcement and its counters when it was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub domain: u32,
    pub vcpu: u32,
    since: DomainCounters,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domains {
    pub names: BTreeMap<u32, String>,
    /// Charged so far, excluding each core's work since its last announcement.
    totals: BTreeMap<u32, DomainCounters>,
    pub running: Vec<Running>,
    /// Commands with bad arguments or unknown numbers, ignored.
    pub ignored: u64,
}

impl Domains {
    pub fn new(ncores: usize) -> Self {
        let none = Running {
            domain: abi::annotate::NO_DOMAIN,
            vcpu: 0,
            since: DomainCounters::default(),
        };
        Domains {
            running: vec![none; ncores],
            ..Default::default()
        }
    }

    /// Core `core` now runs `domain`/`vcpu`; `now` are its cumulative counters.
    pub fn switch(&mut self, core: usize, domain: u32, vcpu: u32, now: DomainCounters) {
        let r = &mut self.running[core];
        let delta = now.minus(&r.since);
        self.totals.entry(r.domain).or_default().add(&delta);
        *r = Running {
            domain,
            vcpu,
            since: now,
        };
    }

    /// Checks a restored state against the cores' counters `now(core)`: no core's baseline
    /// may be ahead of its counters (the subtraction at the next switch would underflow).
    pub fn check_restored(&self, now: impl Fn(usize) -> DomainCounters) -> Result<(), String> {
        match (0..self.running.len()).find(|&i| !self.running[i].since.not_ahead_of(&now(i))) {
            Some(i) => Err(format!(
                "core {i}'s domain baseline is ahead of its counters"
            )),
            None => Ok(()),
        }
    }

    /// Totals per domain, with each core's work since its last announcement charged to its
    /// current domain; `now(core)` gives a core's cumulative counters.
    pub fn totals(&self, now: impl Fn(usize) -> DomainCounters) -> BTreeMap<u32, DomainCounters> {
        let mut t = self.totals.clone();
        for (i, r) in self.running.iter().enumerate() {
            t.entry(r.domain).or_default().add(&now(i).minus(&r.since));
        }
        t
    }
}

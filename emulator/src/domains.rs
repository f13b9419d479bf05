//! Attribution of the machine's work to the domains software announces on the annotation port
//! (`abi::annotate`, DESIGN.md §2.5–2.6). The machine knows nothing of hypervisors: it keeps,
//! per core, which domain was announced last and charges that domain with what the core did
//! since — cycles, instructions, and its memory behaviour from the timing model.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What is charged to a domain. Memory figures are zero in functional mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainCounters {
    pub cycles: u64,
    pub instructions: u64,
    /// Accesses that missed the LLC (went to memory or another socket's cache).
    pub llc_misses: u64,
    /// Of those, accesses served by another socket's memory or cache.
    pub remote_accesses: u64,
    pub stall_cycles: u64,
}

impl DomainCounters {
    fn add(&mut self, o: &Self) {
        self.cycles += o.cycles;
        self.instructions += o.instructions;
        self.llc_misses += o.llc_misses;
        self.remote_accesses += o.remote_accesses;
        self.stall_cycles += o.stall_cycles;
    }

    fn minus(&self, o: &Self) -> Self {
        DomainCounters {
            cycles: self.cycles - o.cycles,
            instructions: self.instructions - o.instructions,
            llc_misses: self.llc_misses - o.llc_misses,
            remote_accesses: self.remote_accesses - o.remote_accesses,
            stall_cycles: self.stall_cycles - o.stall_cycles,
        }
    }
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

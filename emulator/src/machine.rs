//! The machine: cores, RAM and devices assembled from a description, and the deterministic
//! schedule that runs them (DESIGN.md §2.4): the runnable core with the smallest local cycle
//! count runs next for at most a quantum; ties go to the lowest core index.

use crate::apic;
use crate::cpu::{self, Core, CpuidInfo, RunState, Stop, Sys, decode::CodeCache};
use crate::desc::MachineDesc;
use crate::devices::Ports;
use crate::loader::{self, BootLayout};
use crate::memory::Ram;
use crate::mmio::Bus;
use crate::stats::{self, CoreReport, EPOCH_NS, LinkReport, Report, StatsRing, ratio};
use crate::timing::TimingModel;
use crate::wire::Endpoint;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};

/// Instructions a core runs before the schedule looks again…
pub const QUANTUM: u64 = 1000;
/// …or simulated cycles, whichever comes first: it bounds how far one core's clock runs ahead
/// of the others (what the timing model's skew tolerance must absorb).
pub const QUANTUM_CYCLES: u64 = 4000;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunEnd {
    /// `out 0xF4, eax`.
    Exit(u32),
    /// Every core stopped (`hlt` with interrupts off), or waits for an interrupt nothing
    /// can send.
    AllHalted,
    /// The run reached `--max-instructions`.
    InstructionLimit,
    /// An exception with no handler; `report` says what, where, with registers.
    Fault {
        vector: u8,
        rip: u64,
        report: String,
    },
}

/// Process exit statuses of `pvmlab exec` for runs that did not end through the exit port.
pub mod status {
    /// Bad input: unreadable or malformed image, machine file, options.
    pub const BAD_INPUT: i32 = 1;
    /// The run passed `--max-instructions`.
    pub const INSTRUCTION_LIMIT: i32 = 124;
    /// An exception (other than #UD) that the image did not handle.
    pub const UNHANDLED_EXCEPTION: i32 = 125;
    /// #UD: an invalid encoding or `ud2`.
    pub const INVALID_OPCODE: i32 = 126;
    /// #UD: a valid instruction that pvmlab does not implement.
    pub const UNSUPPORTED_INSTRUCTION: i32 = 127;
}

impl RunEnd {
    /// The process exit status `pvmlab exec` uses for this end.
    pub fn exit_status(&self) -> i32 {
        match self {
            RunEnd::Exit(v) => (v & 0xFF) as i32,
            RunEnd::AllHalted => 0,
            RunEnd::InstructionLimit => status::INSTRUCTION_LIMIT,
            RunEnd::Fault {
                vector: cpu::UD,
                report,
                ..
            } if report.contains("not implemented") => status::UNSUPPORTED_INSTRUCTION,
            RunEnd::Fault {
                vector: cpu::UD, ..
            } => status::INVALID_OPCODE,
            RunEnd::Fault { .. } => status::UNHANDLED_EXCEPTION,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error(transparent)]
    Load(#[from] loader::LoadError),
}

pub struct Machine {
    pub desc: MachineDesc,
    pub cores: Vec<Core>,
    pub sys: Sys,
    pub cache: CodeCache,
    pub layout: Option<BootLayout>,
    /// Instructions retired by all cores.
    pub instructions: u64,
    /// Per-epoch statistics (DESIGN.md §2.6).
    pub samples: StatsRing,
    pub(crate) end: Option<RunEnd>,
}

impl Machine {
    pub fn new(desc: &MachineDesc) -> Result<Self, MachineError> {
        let ram = Ram::new(&desc.ram_layout())?;
        let per_socket = desc.sockets.iter().map(|s| s.cores).max().unwrap_or(1);
        let core_bits = 32 - (per_socket - 1).leading_zeros();
        let mut cores = Vec::new();
        for (socket, s) in desc.sockets.iter().enumerate() {
            for k in 0..s.cores {
                let apic_id = ((socket as u32) << core_bits) | k;
                cores.push(Core::new(
                    cores.len() as u32,
                    apic_id,
                    socket as u32,
                    socket as u32,
                ));
            }
        }
        let cpuid = CpuidInfo {
            ncores: cores.len() as u32,
            cores_per_socket: per_socket,
            tsc_hz: desc.frequency_mhz as u64 * 1_000_000,
        };
        let mut m = Machine {
            desc: desc.clone(),
            cores,
            sys: Sys::new(ram, Ports::default(), cpuid),
            cache: CodeCache::new(),
            layout: None,
            instructions: 0,
            samples: StatsRing::default(),
            end: None,
        };
        m.sys.bus = Bus::new(desc);
        Ok(m)
    }

    /// Attaches a host-side endpoint (a load generator) to the wire of NIC `nic` (the
    /// `nic`-th NIC of the description) and starts it at the current simulated time; returns
    /// its index on that wire. Panics if there is no such NIC.
    pub fn attach_endpoint(&mut self, nic: usize, ep: Box<dyn Endpoint>) -> usize {
        assert!(
            nic < self.sys.bus.nics.len(),
            "the machine has no NIC {nic}"
        );
        let now = self.now();
        self.sys.bus.attach_endpoint(nic, ep, now)
    }

    /// Runs the device events due at or before `until`, then delivers the interrupts they
    /// raised.
    fn run_devices(&mut self, until: u64) {
        Bus::run_events(&mut self.sys, until);
        // DMA into pages holding decoded code drops those blocks.
        for page in std::mem::take(&mut self.sys.written_code) {
            self.cache.invalidate_page(&mut self.sys, page);
        }
        self.deliver_irqs();
    }

    /// Posts the devices' interrupt messages to the local APICs they name (in the order they
    /// were raised); a message to an x2APIC id no core has is lost.
    fn deliver_irqs(&mut self) {
        for m in std::mem::take(&mut self.sys.bus.irqs) {
            if let Some(c) = self.cores.iter_mut().find(|c| c.apic_id == m.dest) {
                c.apic.post(m.time, m.vector, c.cycles);
            }
        }
    }

    /// Switches on the cache/memory/interconnect model (DESIGN.md §2.3); without it the
    /// machine runs at fixed latencies (functional mode), with identical architectural results.
    pub fn enable_timing(&mut self) {
        let sockets = self.desc.core_sockets();
        let ram = self.sys.ram.ranges().to_vec();
        self.sys.timing = Some(Box::new(TimingModel::new(&self.desc, &ram, &sockets)));
    }

    pub fn timing_enabled(&self) -> bool {
        self.sys.timing.is_some()
    }

    fn ns_per_cycle(&self) -> f64 {
        1000.0 / self.desc.frequency_mhz as f64
    }

    fn cycles_per_epoch(&self) -> u64 {
        (EPOCH_NS * self.desc.frequency_mhz as u64 / 1000).max(1)
    }

    /// Samples every epoch that simulated time has passed: time is the slowest running core's
    /// clock (all others are at most a quantum ahead), or the furthest clock once all stopped.
    fn sample_epochs(&mut self, finished: bool) {
        let running = self
            .cores
            .iter()
            .filter(|c| c.state == RunState::Running)
            .map(|c| c.cycles)
            .min();
        let now = match running {
            Some(t) if !finished => t,
            _ => self.cycles(),
        };
        let per = self.cycles_per_epoch();
        while (self.samples.next_epoch + 1) * per <= now
            || (finished && self.samples.next_epoch * per < now)
        {
            let end = ((self.samples.next_epoch + 1) * per).min(now);
            let t = self
                .sys
                .timing
                .as_ref()
                .map(|t| t.stats())
                .unwrap_or_default();
            let depths = match &self.sys.timing {
                Some(tm) => (0..self.desc.nnodes())
                    .map(|n| tm.queue_depth(n, end))
                    .collect(),
                None => vec![0; self.desc.nnodes() as usize],
            };
            let instr: Vec<u64> = self.cores.iter().map(|c| c.instret).collect();
            let busy = self
                .cores
                .iter()
                .map(|c| c.state == RunState::Running)
                .collect();
            let end_ns = (end as f64 * self.ns_per_cycle()) as u64;
            let domains = self
                .sys
                .domains
                .running
                .iter()
                .map(|r| {
                    (r.domain != abi::annotate::NO_DOMAIN).then(|| {
                        self.sys
                            .domains
                            .names
                            .get(&r.domain)
                            .cloned()
                            .unwrap_or_else(|| r.domain.to_string())
                    })
                })
                .collect();
            self.samples
                .push(end_ns, self.instructions, instr, busy, domains, &t, depths);
            if finished && end == now {
                break;
            }
        }
    }

    /// The run summary so far; `host_seconds` is the host time it took (for MIPS only).
    pub fn report(&self, host_seconds: f64) -> Report {
        let cycles = self.cycles();
        let t = self
            .sys
            .timing
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default();
        let npc = self.ns_per_cycle();
        let cores = self
            .cores
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let m = t.cores.get(i).cloned().unwrap_or_default();
                CoreReport {
                    core: c.index,
                    socket: c.socket,
                    instructions: c.instret,
                    busy_cycles: c.cycles - c.halted_cycles,
                    halted_cycles: cycles - c.cycles + c.halted_cycles,
                    l1_hit_rate: ratio(m.l1_hits, m.l1_hits + m.l1_misses),
                    l2_hit_rate: ratio(m.l2_hits, m.l2_hits + m.l2_misses),
                    llc_hit_rate: ratio(m.llc_hits, m.llc_hits + m.llc_misses),
                    remote_accesses: m.remote_accesses,
                    stall_cycles: m.stall_cycles,
                    unimplemented_ud: c.unimplemented_ud,
                }
            })
            .collect();
        Report {
            machine: self.desc.name.clone(),
            timing: self.timing_enabled(),
            instructions: self.instructions,
            cycles,
            simulated_ns: (cycles as f64 * npc) as u64,
            host_seconds,
            mips: self.instructions as f64 / host_seconds.max(1e-9) / 1e6,
            nodes: t
                .nodes
                .iter()
                .map(|n| stats::node_report(n, cycles, npc))
                .collect(),
            links: t
                .links
                .iter()
                .map(|l| LinkReport {
                    from: l.from,
                    to: l.to,
                    bytes: l.bytes,
                    utilization: ratio(l.busy_cycles, cycles),
                })
                .collect(),
            cores,
            domains: self.domain_reports(),
        }
    }

    /// Work charged to announced domains (DESIGN.md §2.5); empty if nothing was announced.
    fn domain_reports(&self) -> Vec<stats::DomainReport> {
        let d = &self.sys.domains;
        let totals = d.totals(|i| self.cores[i].domain_counters(&self.sys));
        if d.names.is_empty() && totals.keys().all(|&k| k == abi::annotate::NO_DOMAIN) {
            return Vec::new();
        }
        totals
            .into_iter()
            .map(|(id, c)| {
                let name = match d.names.get(&id) {
                    Some(n) => n.clone(),
                    None if id == abi::annotate::NO_DOMAIN => "(none)".into(),
                    None => String::new(),
                };
                stats::DomainReport::new(id, name, &c)
            })
            .collect()
    }

    /// Loads a bare-metal image (DESIGN.md §3.1).
    pub fn load_elf(
        &mut self,
        image: &[u8],
        bsp_only: bool,
        cmdline: &str,
    ) -> Result<(), MachineError> {
        let layout = loader::load(
            image,
            &self.desc,
            &mut self.sys.ram,
            &mut self.cores,
            bsp_only,
            cmdline,
        )?;
        self.layout = Some(layout);
        Ok(())
    }

    /// How the run ended, once it has.
    pub fn end(&self) -> Option<&RunEnd> {
        self.end.as_ref()
    }

    /// Simulated time so far: the furthest core clock.
    pub fn cycles(&self) -> u64 {
        self.cores.iter().map(|c| c.cycles).max().unwrap_or(0)
    }

    /// Runs until the run ends or at least `budget` more instructions have retired (all
    /// cores together; the quantum under way is finished, so that how a run is cut into calls
    /// never changes the schedule); `limit` is the run's exact total instruction limit.
    /// Returns the end, if reached.
    pub fn run_for(&mut self, budget: u64, limit: Option<u64>) -> Option<RunEnd> {
        let stop_at = self.instructions.saturating_add(budget);
        while self.instructions < stop_at {
            if let Some(end) = self.step(limit) {
                return Some(end);
            }
        }
        self.end.clone()
    }

    /// Runs until at least one more epoch sample is in [`samples`](Self::samples), or the run
    /// ends (front ends that follow a run epoch by epoch: `pvmlab tui`); the same schedule as
    /// [`run_for`](Self::run_for).
    pub fn run_epoch(&mut self, limit: Option<u64>) -> Option<RunEnd> {
        let epoch = self.samples.next_epoch;
        while self.samples.next_epoch == epoch {
            if let Some(end) = self.step(limit) {
                return Some(end);
            }
        }
        self.end.clone()
    }

    /// Simulated time as the schedule sees it: the time of the next thing it does — the
    /// slowest running core's clock, a halted core's wake-up, a device event (as in
    /// `next_core`) — or the furthest clock once nothing is left to do.
    pub fn now(&self) -> u64 {
        let cores = self.cores.iter().filter_map(|c| match c.state {
            RunState::Running => Some(c.cycles),
            RunState::Waiting => c.apic.wake_time().map(|t| t.max(c.cycles)),
            RunState::Stopped => None,
        });
        cores
            .chain(self.sys.bus.next_event_time())
            .min()
            .unwrap_or_else(|| self.cycles())
    }

    /// Runs until simulated time ([`now`](Self::now)) reaches `cycle` — every core that runs
    /// or will wake, and every device event, is at or past it — or the run ends. It stops
    /// between two quanta, so the schedule is that of an uninterrupted run: checkpoints are
    /// taken there. Returns the end, if reached.
    pub fn run_until_cycle(&mut self, cycle: u64, limit: Option<u64>) -> Option<RunEnd> {
        while self.end.is_none() && self.now() < cycle {
            if let Some(end) = self.step(limit) {
                return Some(end);
            }
        }
        self.end.clone()
    }

    /// One quantum of the schedule: the running core with the smallest clock runs for up to
    /// `QUANTUM` instructions or `QUANTUM_CYCLES` cycles (fewer only to stop exactly at
    /// `limit`).
    fn step(&mut self, limit: Option<u64>) -> Option<RunEnd> {
        if self.end.is_some() {
            return self.end.clone();
        }
        if let Some(l) = limit
            && self.instructions >= l
        {
            return self.finish(RunEnd::InstructionLimit);
        }
        let Some(i) = self.next_core() else {
            return self.finish(RunEnd::AllHalted);
        };
        let quantum = limit.map_or(QUANTUM, |l| QUANTUM.min(l - self.instructions));
        // A core stops at the next device event, so that the event runs on time.
        let next_event = self.sys.bus.next_event_time().unwrap_or(u64::MAX);
        let core = &mut self.cores[i];
        let before = core.instret;
        let cycle_limit = (core.cycles + QUANTUM_CYCLES).min(next_event);
        let stop = cpu::run_until(core, &mut self.sys, &mut self.cache, quantum, cycle_limit);
        self.instructions += core.instret - before;
        if !self.sys.apic_outbox.is_empty() {
            self.route_ipis();
        }
        if !self.sys.bus.irqs.is_empty() {
            self.deliver_irqs();
        }
        if self.samples.next_epoch * self.cycles_per_epoch() <= self.cores[i].cycles {
            self.sample_epochs(false);
        }
        match stop {
            None | Some(Stop::Halt) => None,
            Some(Stop::Exit(v)) => self.finish(RunEnd::Exit(v)),
            Some(Stop::Fault(f)) => {
                let report = self.fault_report(i, f, "unhandled");
                let rip = self.cores[i].rip;
                self.finish(RunEnd::Fault {
                    vector: f.vector,
                    rip,
                    report,
                })
            }
            Some(Stop::Shutdown(f)) => {
                let report = self.fault_report(i, f, "triple fault: could not deliver");
                let rip = self.cores[i].rip;
                self.finish(RunEnd::Fault {
                    vector: f.vector,
                    rip,
                    report,
                })
            }
        }
    }

    fn finish(&mut self, end: RunEnd) -> Option<RunEnd> {
        self.sample_epochs(true);
        self.end = Some(end.clone());
        Some(end)
    }

    /// The core that runs next: the smallest clock among running cores and halted cores with
    /// an interrupt coming (at the time it comes: a halted core's clock jumps there). None
    /// when no core runs and nothing can wake one.
    fn next_core(&mut self) -> Option<usize> {
        loop {
            let mut best: Option<(u64, usize)> = None;
            for (i, c) in self.cores.iter().enumerate() {
                let at = match c.state {
                    RunState::Running => c.cycles,
                    RunState::Waiting => match c.apic.wake_time() {
                        Some(t) => t.max(c.cycles),
                        None => continue,
                    },
                    RunState::Stopped => continue,
                };
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, i));
                }
            }
            let Some((at, i)) = best else {
                // No core runs or can be woken yet: time jumps to the next device event,
                // whose interrupt may wake a halted core (only a waiting one can take it).
                let waiting = self.cores.iter().any(|c| c.state == RunState::Waiting);
                let t = self.sys.bus.next_event_time().filter(|_| waiting)?;
                self.run_devices(t);
                continue;
            };
            // Device events due by then run first, one time at a time: an interrupt one of
            // them raises may wake a halted core before `at` (running them all up to a far
            // timer deadline would let the wire run ahead of every core).
            if let Some(t) = self.sys.bus.next_event_time().filter(|&t| t <= at) {
                self.run_devices(t);
                continue;
            }
            // A woken core whose interrupt turns out blocked stays halted: look again.
            if self.cores[i].state == RunState::Running || apic::wake(&mut self.cores[i], at) {
                return Some(i);
            }
        }
    }

    /// Routes the IPIs the last quantum sent, in the order they were sent.
    fn route_ipis(&mut self) {
        for ipi in std::mem::take(&mut self.sys.apic_outbox) {
            self.cores[ipi.from as usize].apic.yield_to_machine = false;
            apic::route(&mut self.cores, &ipi);
        }
    }

    /// Disassembles the instruction at `rip` of core `i`, if its bytes are readable.
    pub fn disassemble_at(&mut self, i: usize, rip: u64) -> String {
        let mut bytes = [0u8; 15];
        let n = self.cores[i]
            .fetch(&mut self.sys, rip, &mut bytes)
            .unwrap_or(0);
        if n == 0 {
            return "(no readable bytes)".into();
        }
        let mut d = Decoder::with_ip(64, &bytes[..n], rip, DecoderOptions::NONE);
        let ins: Instruction = d.decode();
        let hex: Vec<String> = bytes[..ins.len().max(1).min(n)]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut text = String::new();
        if ins.is_invalid() {
            text.push_str("(invalid encoding)");
        } else {
            NasmFormatter::new().format(&ins, &mut text);
        }
        format!("{text}   [{}]", hex.join(" "))
    }

    fn fault_report(&mut self, i: usize, f: cpu::Fault, what: &str) -> String {
        let rip = self.cores[i].rip;
        let dis = self.disassemble_at(i, rip);
        let c = &self.cores[i];
        let what = if f.unimplemented {
            match f.missing.describe() {
                Some(missing) => format!("not implemented by pvmlab: {missing}, at `{dis}`"),
                None => format!("instruction not implemented by pvmlab: {dis}"),
            }
        } else {
            let code = f
                .error_code
                .map(|e| format!(" error code {e:#x}"))
                .unwrap_or_default();
            format!("{what} {}{code} at `{dis}`", f.name())
        };
        let mut r = format!("core {i}: {what}\n  rip {rip:#018x}");
        if f.vector == cpu::PAGE_FAULT {
            r += &format!("  cr2 {:#018x}", c.cr2);
        }
        r += &format!("  rflags {:#010x}  instructions {}\n", c.rflags, c.instret);
        const NAMES: [&str; 16] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15",
        ];
        for (k, name) in NAMES.iter().enumerate() {
            r += &format!("  {name:>3} {:#018x}", c.gpr[k]);
            if k % 4 == 3 {
                r.push('\n');
            }
        }
        r
    }

    /// A hash of the whole architectural state: every core's registers and counters, every
    /// non-zero page of RAM, and the devices with their wires and pending events (their
    /// postcard encoding, a specified format) (xxh3-64, a specified algorithm).
    pub fn state_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for c in &self.cores {
            for g in c.gpr {
                h.update(&g.to_le_bytes());
            }
            for x in c.xmm {
                h.update(&x.to_le_bytes());
            }
            for v in [
                c.rip,
                c.rflags,
                c.mxcsr as u64,
                c.fs_base,
                c.gs_base,
                c.kernel_gs_base,
                c.cycles,
                c.instret,
            ] {
                h.update(&v.to_le_bytes());
            }
            h.update(&[c.state as u8]);
            c.apic.hash_into(&mut h);
        }
        self.sys.ram.for_each_nonzero_page(|addr, page| {
            h.update(&addr.to_le_bytes());
            h.update(page);
        });
        h.update(&postcard::to_allocvec(&self.sys.bus).expect("device state serialises"));
        h.digest()
    }
}

//! The cycle-level memory timing model (DESIGN.md §2.3): private L1d and L2 per core, a shared
//! LLC per socket, a directory across sockets, memory controllers and interconnect links as
//! bandwidth servers with queues, and the memory-level parallelism that makes bandwidth honest
//! for an in-order interpreter (posted stores, a stride prefetcher, bounded outstanding
//! misses). Its only inputs are the machine description and the stream of accesses; every
//! latency and bandwidth figure a program measures emerges from these parts.
//!
//! # Contract with the core
//! [`TimingModel::access`] returns the cycles a load or store stalls *beyond an L1 hit*: an L1
//! hit returns 0 (the instruction's base cost stands for it), a hit at L2 or LLC returns that
//! level's load-to-use latency minus the L1 latency, a miss returns the time until its data
//! arrives minus the L1 latency. A dependent chain of loads therefore measures
//! `base cost + stall ≈ load-to-use latency`; with a base cost of 1 cycle it reads
//! `l1d.latency − 1` cycles (≈ 1 ns) short of the full latency. Stores are posted: they return
//! only the time they wait for a free miss entry.
//!
//! Time is the calling core's own clock in core cycles; cores may call out of global time
//! order (one quantum at a time) and the shared servers tolerate it (see [`calendar`]).
//!
//! # Caches and coherence
//! - Set-associative, true LRU, 64-byte lines, sizes, ways and load-to-use latencies from the
//!   description. Write-back, write-allocate.
//! - **Inclusion**: L2 includes L1d, the LLC includes every L2 of its socket (as Intel's LLCs did
//!   up to Broadwell-EP; Skylake-SP's is non-inclusive with a snoop filter, which plays the
//!   same role for coherence). Evicting a line from the LLC back-invalidates it in the cores
//!   that hold it (core-valid bits per LLC line, as Intel's inclusive LLCs keep), so a socket
//!   holds a line exactly when its LLC does.
//! - **Inside a socket** (MESI on the core-valid bits): a core gets a line exclusive (E) when no
//!   other core or socket has it, and may then write silently; a write to a shared line asks
//!   the LLC, which invalidates the other cores' copies. A read of a line another core holds
//!   E/M downgrades that copy (its dirty data goes to the LLC). Intra-socket snoops cost no more
//!   than the LLC latency.
//! - **Across sockets**: a full-map directory (Censier & Feautrier, IEEE ToC 1978) at each line's
//!   home node. Its contents are exactly "which LLCs hold the line, and whether one holds it
//!   exclusive or dirty", so the model reads them from the LLC tags instead of keeping a copy
//!   (a duplicate-tag directory); its *timing* is that of a home-based protocol:
//!   - a read miss sends a request to the home; if another socket holds the line exclusive,
//!     the home forwards a snoop there; a dirty owner sends the data straight to the requester
//!     (cache-to-cache, three hops) and writes it back to the home (traffic, off the critical
//!     path), keeping a shared clean copy; otherwise the home's memory supplies the data.
//!   - a write (read-for-ownership, or an upgrade of a shared copy) makes the home invalidate
//!     every other socket's copies — their LLC and, by inclusion, their cores' L1/L2 — and
//!     waits for the acknowledgements: the invalidation round trip; a dirty owner supplies the
//!     data with its acknowledgement.
//!
//!   Lines shared by several sockets are always clean (MESI, no O state).
//! - Messages: requests, snoops and acknowledgements are 8-byte control messages, data 64 bytes;
//!   every message is charged to every link on its route. Dirty LLC evictions are written back
//!   to the line's home (link and controller traffic).
//! - DMA (`dma`): a device on a socket reads or writes whole lines at their home. A DMA write
//!   invalidates every cached copy (a partial-line write first pulls a dirty copy back to
//!   memory); a DMA read takes dirty data from the cache holding it, else from memory.
//!   DMA data is not placed in any cache (no DDIO).
//!
//! # Traffic attribution
//! Every line a controller reads or writes and every message on a link is charged to exactly
//! one *cause*: a core, or DMA. A core is charged with the whole transactions its accesses
//! start — demand misses, read-for-ownership and upgrades, its prefetches — including every
//! message of them (requests, snoops, acknowledgements, data) and the write-backs they force:
//! - the dirty LLC victim its fill pushes out, whoever dirtied that line (the core that needed
//!   the room caused the write-back);
//! - the write-back to memory when its read finds the line dirty in another socket.
//!
//! A DMA transaction is charged to DMA, including the dirty copy a partial-line DMA write
//! pulls back from a socket's caches ([`NodeStats::dma_writeback_bytes`]). So, for each node,
//! `read_bytes = Σ cores' reads at the node + dma_read_bytes` and
//! `write_bytes = Σ cores' writes at the node + dma_write_bytes + dma_writeback_bytes`
//! ([`TimingStats::core_dram`]), and the bytes of all links add up to
//! `Σ core_link + dma_link_bytes` — exactly. The counters grow on the memory-controller and
//! link paths only, never on a cache hit.
//!
//! # Memory controllers and links
//! Each node's controller has `channels` channels, lines interleaved across them, each a
//! [`calendar::Calendar`] bandwidth server of `bandwidth_gbs / channels`; a request pays its
//! queueing delay plus the controller's unloaded `latency_ns`. Each direction of each link is a
//! calendar of the link's bandwidth plus its one-way latency per hop. Messages follow a
//! shortest path (breadth-first search over the links, neighbours in ascending socket order,
//! the first path found wins — deterministic); parallel links between two sockets share the
//! traffic by line address.
//!
//! # Memory-level parallelism ([`mlp`])
//! Per core, `outstanding_misses` entries bound everything in flight beyond L1: demand misses
//! wait for a free one, posted stores stall only when none is free, prefetches are dropped when
//! none is free. A stride prefetcher trained on L1 misses fills L2 (and the LLC) ahead of
//! sequential or strided streams; a load that finds its line still in flight waits for it.
//!
//! # Speed
//! `access` is called for every load and store. An access to the most recently used line of
//! its L1 set (that is, every repeated access to a line, and most stack and loop traffic) is
//! one compare and a counter. Other L1 hits move the line to the front of its set. Only L1
//! misses reach the rest of the model; there, a per-page presence count per socket spares the
//! directory look-ups in other sockets' LLCs for data no other socket holds.
//!
//! # Approximations, documented
//! - A posted store's line is written into L1 at once, so a load of that same line before the
//!   ownership request completes sees an L1 hit (real cores would forward or wait).
//! - Coherence actions take effect in the order the cores call, which under quantum scheduling
//!   is not exactly simulated-time order (the functional memory behaves the same way).
//! - No DRAM page (row-buffer) effects, no refresh, no bank conflicts; no TLB (page walks are
//!   the caller's accesses); no instruction cache.

mod cache;
pub mod calendar;
pub mod mlp;

#[cfg(test)]
mod calibration;
#[cfg(test)]
mod tests;

use crate::desc::MachineDesc;
use crate::memory::RamRange;
use cache::{Cache, D, Victim, W};
use calendar::{Calendar, Occupancy, UNIT, work_units};
use mlp::{Mshrs, Prefetcher};
use serde::{Deserialize, Serialize};

/// Bytes in a cache line and in a data message.
pub const LINE_BYTES: u64 = 64;
/// Bytes of a control message (request, snoop, acknowledgement) on a link.
pub const CONTROL_BYTES: u64 = 8;
/// Lines in a 4 KiB page (the granule of the presence filter).
const LINES_PER_PAGE: u64 = 64;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    pub nodes: Vec<NodeStats>,
    pub links: Vec<LinkStats>,
    pub cores: Vec<CoreMemStats>,
    /// Bytes (whole lines) each core caused at each node's memory controller, by the
    /// "Traffic attribution" rule: `[(core * nodes + node) * 2]` read,
    /// `[(core * nodes + node) * 2 + 1]` written (see [`TimingStats::core_dram_bytes`]).
    pub core_dram: Vec<u64>,
    /// Bytes of each core's transactions' messages on links (index = core), counted on every
    /// link they cross.
    pub core_link: Vec<u64>,
    /// Bytes of DMA transactions' messages on links, counted the same way.
    pub dma_link_bytes: u64,
}

impl TimingStats {
    /// Bytes core `core` caused at node `node`'s controller, read or written.
    pub fn core_dram_bytes(&self, core: usize, node: usize, write: bool) -> u64 {
        let i = (core * self.nodes.len() + node) * 2 + write as usize;
        self.core_dram.get(i).copied().unwrap_or(0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub node: u32,
    /// DRAM traffic at this node's controller, all origins incl. DMA (whole lines).
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_lines: u64,
    pub write_lines: u64,
    /// Per requesting socket (index = socket), core traffic only (demand misses, prefetches,
    /// writebacks of that socket's caches).
    pub read_bytes_from: Vec<u64>,
    pub write_bytes_from: Vec<u64>,
    pub dma_read_bytes: u64,
    pub dma_write_bytes: u64,
    /// Dirty lines a partial-line DMA write pulled back from a socket's caches: counted in
    /// `write_bytes_from` of that socket, but caused by the device, so charged to no core.
    pub dma_writeback_bytes: u64,
    /// Requests served by the controller (reads and writes).
    pub requests: u64,
    /// Total queueing delay (cycles) over all requests.
    pub queue_cycles: u64,
    /// Controller busy time: bytes served / the controller's full bandwidth, in cycles
    /// (utilisation = busy_cycles / elapsed cycles).
    pub busy_cycles: u64,
}

/// One per direction of each link: desc link `i` gives entries `2i` (a→b) and `2i + 1` (b→a).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStats {
    pub from: u32,
    pub to: u32,
    /// Bytes of all messages (data and control) sent this way.
    pub bytes: u64,
    /// Time this direction spent transferring them, in cycles.
    pub busy_cycles: u64,
}

/// Per core. L2 and LLC counts include the core's prefetches; `l2_hits` includes loads that
/// found their line still in flight. `llc_misses` are the requests that left the socket;
/// `remote_accesses` those of them whose home is another node. `invalidations_sent` counts the
/// copies invalidated on this core's behalf (other cores of its socket, other sockets).
/// The bytes of traffic a core causes are in [`TimingStats::core_dram`] and
/// [`TimingStats::core_link`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoreMemStats {
    pub l1_hits: u64,
    pub l1_misses: u64,
    pub l2_hits: u64,
    pub l2_misses: u64,
    pub llc_hits: u64,
    pub llc_misses: u64,
    pub remote_accesses: u64,
    pub invalidations_sent: u64,
    pub stall_cycles: u64,
    pub prefetches: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CoreState {
    socket: u32,
    /// This core's bit in its socket's LLC core-valid masks.
    bit: u64,
    l1: Cache,
    l2: Cache,
    l1_lat: u64,
    l2_lat: u64,
    mshrs: Mshrs,
    pf: Prefetcher,
    stats: CoreMemStats,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SocketState {
    /// Inclusive; `aux` holds each line's core-valid bits (bit `local index % 64`).
    llc: Cache,
    llc_lat: u64,
    /// Global indices of this socket's cores, by local index.
    cores: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeState {
    lat: u64,
    channels: Vec<Calendar>,
    /// Service time of one line on one channel, in work units.
    line_work: u64,
    occupancy: Occupancy,
    /// Work served, in units of one channel.
    work: u64,
    stats: NodeStats,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LinkState {
    lat: u64,
    cal: Calendar,
    data_work: u64,
    control_work: u64,
    work: u64,
    stats: LinkStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Txn {
    Read,
    Rfo,
    Upgrade,
    DmaRead,
    DmaWrite { full: bool },
}

struct TxnOut {
    /// When the requester has what it asked for (data, ownership, or the write done).
    done: u64,
    /// The data came dirty from another socket with ownership.
    dirty: bool,
    /// Other sockets keep copies.
    shared: bool,
}

/// Whose caches or requests a controller access serves (`NodeStats::*_from`, DMA).
#[derive(Clone, Copy)]
enum Origin {
    Socket(usize),
    Dma,
}

/// Who is charged with a controller access or a link message (see "Traffic attribution").
#[derive(Clone, Copy)]
enum Cause {
    Core(usize),
    Dma,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimingModel {
    cores: Vec<CoreState>,
    sockets: Vec<SocketState>,
    nodes: Vec<NodeState>,
    links: Vec<LinkState>,
    /// `[from * n + to]`: the sockets a message visits after `from`, ending with `to`.
    routes: Vec<Vec<u32>>,
    /// `[a * n + b]`: directed links from socket `a` to neighbour `b`.
    hops: Vec<Vec<u32>>,
    /// RAM as `(first line, end line, node)`, sorted.
    ram: Vec<(u64, u64, u32)>,
    /// `[page * n + socket]`: lines of that 4 KiB page in the socket's LLC. A filter in front
    /// of the directory look-ups: a miss only probes the sockets that hold part of its page,
    /// which for private data is none.
    presence: Vec<u8>,
    /// See [`TimingStats::core_dram`] and [`TimingStats::core_link`]. Kept apart from the
    /// cores' other counters so that [`CoreState`], which every access indexes, stays as it
    /// was (its size shapes the code of the hot path).
    core_dram: Vec<u64>,
    core_link: Vec<u64>,
    /// See [`TimingStats::dma_link_bytes`].
    dma_link_bytes: u64,
}

impl TimingModel {
    /// `core_sockets[i]` = socket of core i. `ram` = node RAM ranges, node n = socket n.
    pub fn new(desc: &MachineDesc, ram: &[RamRange], core_sockets: &[u32]) -> Self {
        let n = desc.sockets.len();
        let mhz = desc.frequency_mhz;
        let cycles = |ns: f64| (ns * mhz as f64 / 1000.0).round() as u64;

        let mut sockets: Vec<SocketState> = desc
            .sockets
            .iter()
            .map(|s| SocketState {
                llc: Cache::new(s.llc.size_kib, s.llc.ways, true),
                llc_lat: s.llc.latency as u64,
                cores: Vec::new(),
            })
            .collect();
        let cores = core_sockets
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let sd = &desc.sockets[s as usize];
                let local = sockets[s as usize].cores.len();
                sockets[s as usize].cores.push(i as u32);
                CoreState {
                    socket: s,
                    bit: 1 << (local % 64),
                    l1: Cache::new(sd.l1d.size_kib, sd.l1d.ways, false),
                    l2: Cache::new(sd.l2.size_kib, sd.l2.ways, false),
                    l1_lat: sd.l1d.latency as u64,
                    l2_lat: sd.l2.latency as u64,
                    mshrs: Mshrs::new(sd.mlp.outstanding_misses),
                    pf: Prefetcher::new(sd.mlp.prefetch_streams, sd.mlp.prefetch_distance),
                    stats: CoreMemStats::default(),
                }
            })
            .collect();
        let nodes = desc
            .sockets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ch = s.memory.channels.max(1);
                NodeState {
                    lat: cycles(s.memory.latency_ns),
                    channels: vec![Calendar::default(); ch as usize],
                    line_work: work_units(LINE_BYTES, s.memory.bandwidth_gbs / ch as f64, mhz),
                    occupancy: Occupancy::default(),
                    work: 0,
                    stats: NodeStats {
                        node: i as u32,
                        read_bytes_from: vec![0; n],
                        write_bytes_from: vec![0; n],
                        ..NodeStats::default()
                    },
                }
            })
            .collect();
        let mut links = Vec::new();
        let mut hops = vec![Vec::new(); n * n];
        for l in &desc.links {
            for (from, to) in [(l.a, l.b), (l.b, l.a)] {
                hops[from as usize * n + to as usize].push(links.len() as u32);
                links.push(LinkState {
                    lat: cycles(l.latency_ns),
                    cal: Calendar::default(),
                    data_work: work_units(LINE_BYTES, l.bandwidth_gbs, mhz),
                    control_work: work_units(CONTROL_BYTES, l.bandwidth_gbs, mhz),
                    work: 0,
                    stats: LinkStats {
                        from,
                        to,
                        ..LinkStats::default()
                    },
                });
            }
        }
        let routes = routes(n, &hops);
        let mut ram: Vec<(u64, u64, u32)> = ram
            .iter()
            .map(|r| {
                assert!(
                    (r.node as usize) < n,
                    "RAM range at {:#x} names node {} of {n}",
                    r.base,
                    r.node
                );
                (r.base / LINE_BYTES, r.end() / LINE_BYTES, r.node)
            })
            .collect();
        ram.sort_unstable();
        let pages = ram
            .iter()
            .map(|r| r.1.div_ceil(LINES_PER_PAGE))
            .max()
            .unwrap_or(0);
        TimingModel {
            cores,
            sockets,
            nodes,
            links,
            routes,
            hops,
            ram,
            presence: vec![0; pages as usize * n],
            core_dram: vec![0; core_sockets.len() * n * 2],
            core_link: vec![0; core_sockets.len()],
            dma_link_bytes: 0,
        }
    }

    /// A data access by core `core` at its local time `now` (core cycles) to the cache line
    /// holding physical address `pa`. Returns the cycles the core stalls beyond an L1 hit
    /// (see the module documentation). Addresses outside RAM are not cached and cost 0 here.
    #[inline]
    pub fn access(&mut self, core: u32, now: u64, pa: u64, write: bool) -> u64 {
        let line = pa / LINE_BYTES;
        let c = &mut self.cores[core as usize];
        // Fast path: the line is the most recently used of its L1 set (no LRU change) and,
        // for a store, already modified.
        if let Some(f) = c.l1.mru_flags(line)
            && (!write || f & D != 0)
        {
            c.stats.l1_hits += 1;
            return 0;
        }
        self.access_slow(core as usize, now, line, write)
    }

    /// A locked read-modify-write (`lock`-prefixed instructions, `xchg` with memory): waits
    /// for the core's posted stores (locked instructions order like a fence), then for
    /// ownership of the line with its data. Returns the stall beyond an L1 hit.
    pub fn access_locked(&mut self, core: u32, now: u64, pa: u64) -> u64 {
        let ci = core as usize;
        let t = self.cores[ci].mshrs.stores_drained(now);
        let line = pa / LINE_BYTES;
        let posted = self.access(core, t, pa, true);
        let t = t + posted;
        let c = &mut self.cores[ci];
        let end = c.mshrs.in_flight(line, t).map_or(t, |r| r.max(t));
        let extra = end - t;
        c.stats.stall_cycles += extra;
        end - now
    }

    /// A fence (`mfence`, `sfence`): the cycles until the core's posted stores complete.
    pub fn fence(&mut self, core: u32, now: u64) -> u64 {
        let c = &mut self.cores[core as usize];
        let wait = c.mshrs.stores_drained(now) - now;
        c.stats.stall_cycles += wait;
        wait
    }

    #[inline(never)]
    fn access_slow(&mut self, ci: usize, now: u64, line: u64, write: bool) -> u64 {
        let stall = self.access_inner(ci, now, line, write);
        self.cores[ci].stats.stall_cycles += stall;
        stall
    }

    fn access_inner(&mut self, ci: usize, now: u64, line: u64, write: bool) -> u64 {
        let c = &mut self.cores[ci];
        if let Some(i) = c.l1.touch(line) {
            c.stats.l1_hits += 1;
            let f = c.l1.flags(i);
            if !write {
                return 0;
            }
            if f & W != 0 {
                c.l1.set_flags(i, f | D);
                return 0;
            }
            return match self.home_of(line) {
                Some(home) => self.upgrade(ci, now, line, home),
                None => 0,
            };
        }
        let Some(home) = self.home_of(line) else {
            return 0;
        };
        let c = &mut self.cores[ci];
        c.stats.l1_misses += 1;
        let stall = if let Some(i2) = c.l2.touch(line) {
            c.stats.l2_hits += 1;
            let f2 = c.l2.flags(i2);
            if !write {
                let lat = match c.mshrs.in_flight(line, now) {
                    Some(ready) => (ready - now).max(c.l2_lat),
                    None => c.l2_lat,
                };
                let stall = lat.saturating_sub(c.l1_lat);
                self.fill_l1(ci, line, f2 & W);
                stall
            } else if f2 & W != 0 {
                c.l2.set_flags(i2, f2 | D);
                self.fill_l1(ci, line, W | D);
                0
            } else {
                self.upgrade(ci, now, line, home)
            }
        } else {
            c.stats.l2_misses += 1;
            let (m, t) = c.mshrs.acquire(now);
            let done = self.fill(ci, t, line, home, write, false);
            let c = &mut self.cores[ci];
            c.mshrs.set(m, line, done, write);
            if write {
                t - now
            } else {
                done.saturating_sub(now + c.l1_lat)
            }
        };
        self.prefetch(ci, now, line);
        stall
    }

    /// Core `ci` writes `line`, which it holds shared: it asks its LLC for ownership (posted).
    fn upgrade(&mut self, ci: usize, now: u64, line: u64, home: usize) -> u64 {
        let s = self.cores[ci].socket as usize;
        let (m, t) = self.cores[ci].mshrs.acquire(now);
        let t0 = t + self.sockets[s].llc_lat;
        let Some(li) = self.sockets[s].llc.touch(line) else {
            // Inclusion makes this unreachable; recover as a fresh write miss.
            debug_assert!(
                false,
                "line {line:#x} in a core's caches but not in its LLC"
            );
            self.drop_private(ci, line);
            let done = self.fill(ci, t, line, home, true, false);
            self.cores[ci].mshrs.set(m, line, done, true);
            return t - now;
        };
        let others = self.sockets[s].llc.aux(li) & !self.cores[ci].bit;
        let flags = self.sockets[s].llc.flags(li);
        let dirty = self.invalidate_cores(s, line, others, ci);
        let done = if flags & W == 0 {
            self.transaction(s, line, home, Txn::Upgrade, t0, Some(ci))
                .done
        } else {
            t0
        };
        if let Some(li) = self.sockets[s].llc.find(line) {
            let llc = &mut self.sockets[s].llc;
            llc.set_flags(li, flags | W | if dirty { D } else { 0 });
            llc.set_aux(li, self.cores[ci].bit);
        }
        let c = &mut self.cores[ci];
        if let Some(i) = c.l2.find(line) {
            c.l2.set_flags(i, W | D);
        }
        match c.l1.find(line) {
            Some(i) => c.l1.set_flags(i, W | D),
            None => self.fill_l1(ci, line, W | D),
        }
        self.cores[ci].mshrs.set(m, line, done, true);
        t - now
    }

    /// Brings `line` (not in core `ci`'s L2) into the core's L2 and LLC — and L1 unless it is
    /// a prefetch — for a read or a write, the request leaving L2 at `t`. Returns when the data
    /// (and, for a write, ownership) is there.
    fn fill(&mut self, ci: usize, t: u64, line: u64, home: usize, write: bool, pf: bool) -> u64 {
        let s = self.cores[ci].socket as usize;
        let bit = self.cores[ci].bit;
        let llc_lat = self.sockets[s].llc_lat;
        let t0 = t + llc_lat;
        let (done, core_flags) = if let Some(li) = self.sockets[s].llc.touch(line) {
            self.cores[ci].stats.llc_hits += 1;
            let flags = self.sockets[s].llc.flags(li);
            let cv = self.sockets[s].llc.aux(li);
            let others = cv & !bit;
            if write {
                let dirty = self.invalidate_cores(s, line, others, ci);
                let done = if flags & W == 0 {
                    self.transaction(s, line, home, Txn::Upgrade, t0, Some(ci))
                        .done
                } else {
                    t0
                };
                if let Some(li) = self.sockets[s].llc.find(line) {
                    let llc = &mut self.sockets[s].llc;
                    llc.set_flags(li, flags | W | if dirty { D } else { 0 });
                    llc.set_aux(li, bit);
                }
                (done, W | D)
            } else {
                let exclusive = flags & W != 0 && others == 0;
                let dirty = others != 0 && self.downgrade_cores(s, line, others);
                let llc = &mut self.sockets[s].llc;
                llc.set_flags(li, flags | if dirty { D } else { 0 });
                llc.set_aux(li, cv | bit);
                (t0, if exclusive { W } else { 0 })
            }
        } else {
            let c = &mut self.cores[ci].stats;
            c.llc_misses += 1;
            if home != s {
                c.remote_accesses += 1;
            }
            let kind = if write { Txn::Rfo } else { Txn::Read };
            let out = self.transaction(s, line, home, kind, t0, Some(ci));
            let llc_flags = if out.shared { 0 } else { W } | if out.dirty { D } else { 0 };
            self.present(s, line, true);
            if let Some(v) = self.sockets[s].llc.insert(line, llc_flags, bit) {
                self.present(s, v.line, false);
                self.evict_llc(s, v, out.done, ci);
            }
            let core_flags = if write {
                W | D
            } else if out.shared {
                0
            } else {
                W
            };
            (out.done, core_flags)
        };
        if let Some(v) = self.cores[ci].l2.insert(line, core_flags, 0) {
            self.evict_l2(ci, v);
        }
        if !pf {
            self.fill_l1(ci, line, core_flags);
        }
        done
    }

    /// Puts `line` (present in L2, absent from L1) into core `ci`'s L1.
    fn fill_l1(&mut self, ci: usize, line: u64, flags: u64) {
        let c = &mut self.cores[ci];
        if let Some(v) = c.l1.insert(line, flags, 0)
            && v.flags & D != 0
            && let Some(i) = c.l2.find(v.line)
        {
            let f = c.l2.flags(i);
            c.l2.set_flags(i, f | D);
        }
    }

    /// Core `ci`'s L2 pushed out `v`: drop it from L1 (inclusion) and tell the LLC.
    fn evict_l2(&mut self, ci: usize, v: Victim) {
        let c = &mut self.cores[ci];
        let mut dirty = v.flags & D != 0;
        if let Some(i) = c.l1.find(v.line) {
            dirty |= c.l1.flags(i) & D != 0;
            c.l1.remove(i);
        }
        let (s, bit) = (c.socket as usize, c.bit);
        let shared_bits = self.sockets[s].cores.len() > 64;
        let llc = &mut self.sockets[s].llc;
        if let Some(li) = llc.find(v.line) {
            if dirty {
                let f = llc.flags(li);
                llc.set_flags(li, f | D);
            }
            // With more than 64 cores a bit stands for several; keep it (harmless probes).
            if !shared_bits {
                let a = llc.aux(li);
                llc.set_aux(li, a & !bit);
            }
        }
    }

    /// Socket `s`'s LLC pushed out `v` at time `t` to make room for core `ci`'s fill:
    /// back-invalidate its cores, write it back (charged to `ci`).
    fn evict_llc(&mut self, s: usize, v: Victim, t: u64, ci: usize) {
        let dirty = self.drop_cores(s, v.line, v.aux, usize::MAX) || v.flags & D != 0;
        if dirty && let Some(home) = self.home_of(v.line) {
            let cause = Cause::Core(ci);
            let t = self.send(s, home, LINE_BYTES, t, v.line, cause);
            self.dram(home, t, true, v.line, Origin::Socket(s), cause);
        }
    }

    /// Removes `line` from core `ci`'s L1 and L2.
    fn drop_private(&mut self, ci: usize, line: u64) -> bool {
        let c = &mut self.cores[ci];
        let mut dirty = false;
        if let Some(i) = c.l1.find(line) {
            dirty |= c.l1.flags(i) & D != 0;
            c.l1.remove(i);
        }
        if let Some(i) = c.l2.find(line) {
            dirty |= c.l2.flags(i) & D != 0;
            c.l2.remove(i);
        }
        dirty
    }

    /// Removes `line` from the private caches of socket `s`'s cores in `mask`, except core
    /// `skip`; returns whether any copy was dirty.
    fn drop_cores(&mut self, s: usize, line: u64, mask: u64, skip: usize) -> bool {
        let mut dirty = false;
        if mask == 0 {
            return false;
        }
        for local in 0..self.sockets[s].cores.len() {
            let k = self.sockets[s].cores[local] as usize;
            if mask >> (local % 64) & 1 != 0 && k != skip {
                dirty |= self.drop_private(k, line);
            }
        }
        dirty
    }

    /// Invalidates the copies of the cores in `mask` for a write by core `ci` of the same
    /// socket; returns whether one was dirty.
    fn invalidate_cores(&mut self, s: usize, line: u64, mask: u64, ci: usize) -> bool {
        if mask == 0 {
            return false;
        }
        let n = (0..self.sockets[s].cores.len())
            .filter(|&l| mask >> (l % 64) & 1 != 0 && self.sockets[s].cores[l] as usize != ci)
            .count() as u64;
        self.cores[ci].stats.invalidations_sent += n;
        self.drop_cores(s, line, mask, ci)
    }

    /// Takes write permission away from the cores in `mask` (to shared); returns whether one
    /// held the line dirty (its data now belongs to the LLC).
    fn downgrade_cores(&mut self, s: usize, line: u64, mask: u64) -> bool {
        let mut dirty = false;
        for local in 0..self.sockets[s].cores.len() {
            if mask >> (local % 64) & 1 == 0 {
                continue;
            }
            let c = &mut self.cores[self.sockets[s].cores[local] as usize];
            for cache in [&mut c.l1, &mut c.l2] {
                if let Some(i) = cache.find(line) {
                    let f = cache.flags(i);
                    dirty |= f & D != 0;
                    cache.set_flags(i, f & !(W | D));
                }
            }
        }
        dirty
    }

    /// Whether a core of socket `s` in `mask` holds `line` modified.
    fn cores_dirty(&self, s: usize, line: u64, mask: u64) -> bool {
        (0..self.sockets[s].cores.len()).any(|local| {
            mask >> (local % 64) & 1 != 0 && {
                let c = &self.cores[self.sockets[s].cores[local] as usize];
                [&c.l1, &c.l2]
                    .iter()
                    .any(|cache| cache.find(line).is_some_and(|i| cache.flags(i) & D != 0))
            }
        })
    }

    /// The home-based coherence transaction of socket `req` for `line` (home `home`), its
    /// request leaving the socket at `t0`. Updates the other sockets' copies and charges every
    /// message and memory access.
    fn transaction(
        &mut self,
        req: usize,
        line: u64,
        home: usize,
        kind: Txn,
        t0: u64,
        core: Option<usize>,
    ) -> TxnOut {
        let dma = matches!(kind, Txn::DmaRead | Txn::DmaWrite { .. });
        debug_assert_eq!(
            dma,
            core.is_none(),
            "DMA transactions and only they have no core"
        );
        let cause = core.map_or(Cause::Dma, Cause::Core);
        let request_bytes = if matches!(kind, Txn::DmaWrite { .. }) {
            LINE_BYTES
        } else {
            CONTROL_BYTES
        };
        let t_home = self.send(req, home, request_bytes, t0, line, cause);
        let mut done = t_home;
        let (mut from_cache, mut dirty, mut shared) = (false, false, false);
        let n = self.sockets.len();
        let page = (line / LINES_PER_PAGE) as usize * n;
        for o in 0..n {
            if (o == req && !dma) || self.presence[page + o] == 0 {
                continue;
            }
            let Some(li) = self.sockets[o].llc.find(line) else {
                continue;
            };
            let flags = self.sockets[o].llc.flags(li);
            let cv = self.sockets[o].llc.aux(li);
            let o_dirty = flags & D != 0 || self.cores_dirty(o, line, cv);
            let o_lat = self.sockets[o].llc_lat;
            match kind {
                Txn::Read => {
                    shared = true;
                    if flags & W != 0 {
                        // Exclusive elsewhere: the home snoops the holder, which keeps a
                        // shared clean copy.
                        let t_s = self.send(home, o, CONTROL_BYTES, t_home, line, cause) + o_lat;
                        if o_dirty {
                            done = done.max(self.send(o, req, LINE_BYTES, t_s, line, cause));
                            from_cache = true;
                            let t_wb = self.send(o, home, LINE_BYTES, t_s, line, cause);
                            self.dram(home, t_wb, true, line, Origin::Socket(o), cause);
                        } else {
                            done = done.max(self.send(o, req, CONTROL_BYTES, t_s, line, cause));
                        }
                        self.downgrade_cores(o, line, cv);
                        if let Some(li) = self.sockets[o].llc.find(line) {
                            self.sockets[o].llc.set_flags(li, flags & !(W | D));
                        }
                    }
                }
                Txn::Rfo | Txn::Upgrade => {
                    let t_s = self.send(home, o, CONTROL_BYTES, t_home, line, cause) + o_lat;
                    if o_dirty && kind == Txn::Rfo {
                        done = done.max(self.send(o, req, LINE_BYTES, t_s, line, cause));
                        from_cache = true;
                        dirty = true;
                    } else {
                        done = done.max(self.send(o, req, CONTROL_BYTES, t_s, line, cause));
                    }
                    self.invalidate_socket(o, line);
                    if let Some(c) = core {
                        self.cores[c].stats.invalidations_sent += 1;
                    }
                }
                Txn::DmaRead => {
                    if o_dirty {
                        let t_s = self.send(home, o, CONTROL_BYTES, t_home, line, cause) + o_lat;
                        done = done.max(self.send(o, req, LINE_BYTES, t_s, line, cause));
                        from_cache = true;
                    }
                }
                Txn::DmaWrite { full } => {
                    let t_s = self.send(home, o, CONTROL_BYTES, t_home, line, cause) + o_lat;
                    if o_dirty && !full {
                        let t_wb = self.send(o, home, LINE_BYTES, t_s, line, cause);
                        done =
                            done.max(self.dram(home, t_wb, true, line, Origin::Socket(o), cause));
                    } else {
                        done = done.max(self.send(o, home, CONTROL_BYTES, t_s, line, cause));
                    }
                    self.invalidate_socket(o, line);
                }
            }
        }
        let origin = if dma {
            Origin::Dma
        } else {
            Origin::Socket(req)
        };
        match kind {
            Txn::Read | Txn::Rfo | Txn::DmaRead if !from_cache => {
                let t_mem = self.dram(home, t_home, false, line, origin, cause);
                done = done.max(self.send(home, req, LINE_BYTES, t_mem, line, cause));
            }
            Txn::Upgrade => {
                done = done.max(self.send(home, req, CONTROL_BYTES, t_home, line, cause));
            }
            Txn::DmaWrite { .. } => {
                done = done.max(self.dram(home, t_home, true, line, origin, cause));
            }
            _ => {}
        }
        TxnOut {
            done,
            dirty,
            shared,
        }
    }

    /// Counts `line` in or out of socket `s`'s LLC for the presence filter.
    #[inline]
    fn present(&mut self, s: usize, line: u64, added: bool) {
        let i = (line / LINES_PER_PAGE) as usize * self.sockets.len() + s;
        if added {
            self.presence[i] += 1;
        } else {
            self.presence[i] -= 1;
        }
    }

    /// Removes every copy of `line` from socket `o` (LLC and, by inclusion, its cores).
    fn invalidate_socket(&mut self, o: usize, line: u64) {
        if let Some(li) = self.sockets[o].llc.find(line) {
            let cv = self.sockets[o].llc.aux(li);
            self.drop_cores(o, line, cv, usize::MAX);
            self.sockets[o].llc.remove(li);
            self.present(o, line, false);
        }
    }

    /// Sends a message of `bytes` from socket `from` to socket `to`, leaving at `t`, over
    /// every link of the route, charged to `cause`; returns its arrival time.
    fn send(&mut self, from: usize, to: usize, bytes: u64, t: u64, line: u64, cause: Cause) -> u64 {
        if from == to {
            return t;
        }
        let n = self.sockets.len();
        let charged = bytes * self.routes[from * n + to].len() as u64;
        match cause {
            Cause::Core(c) => self.core_link[c] += charged,
            Cause::Dma => self.dma_link_bytes += charged,
        }
        let mut t = t;
        let mut at = from;
        for &next in &self.routes[from * n + to] {
            let ids = &self.hops[at * n + next as usize];
            let l = &mut self.links[ids[(line % ids.len() as u64) as usize] as usize];
            let work = if bytes == LINE_BYTES {
                l.data_work
            } else {
                l.control_work
            };
            t += l.cal.serve(t, work) + l.lat;
            l.work += work;
            l.stats.bytes += bytes;
            at = next as usize;
        }
        t
    }

    /// A line read or written at node `node`'s controller, arriving at `t`; returns when the
    /// controller is done with it (data out, or written). `origin` says whose request or
    /// caches it serves, `cause` who is charged with it.
    fn dram(
        &mut self,
        node: usize,
        t: u64,
        write: bool,
        line: u64,
        origin: Origin,
        cause: Cause,
    ) -> u64 {
        let nodes = self.nodes.len();
        let nd = &mut self.nodes[node];
        let ch = (line % nd.channels.len() as u64) as usize;
        let q = nd.channels[ch].serve(t, nd.line_work);
        let done = t + q + nd.lat;
        nd.occupancy.add(t, done);
        nd.work += nd.line_work;
        let st = &mut nd.stats;
        st.requests += 1;
        st.queue_cycles += q;
        if write {
            st.write_bytes += LINE_BYTES;
            st.write_lines += 1;
        } else {
            st.read_bytes += LINE_BYTES;
            st.read_lines += 1;
        }
        match (origin, write) {
            (Origin::Socket(s), false) => st.read_bytes_from[s] += LINE_BYTES,
            (Origin::Socket(s), true) => st.write_bytes_from[s] += LINE_BYTES,
            (Origin::Dma, false) => st.dma_read_bytes += LINE_BYTES,
            (Origin::Dma, true) => st.dma_write_bytes += LINE_BYTES,
        }
        match (cause, origin) {
            (Cause::Core(c), _) => {
                let i = (c * nodes + node) * 2 + write as usize;
                self.core_dram[i] += LINE_BYTES;
            }
            (Cause::Dma, Origin::Socket(_)) => {
                debug_assert!(write, "DMA pulls only dirty lines back from sockets");
                st.dma_writeback_bytes += LINE_BYTES;
            }
            (Cause::Dma, Origin::Dma) => {}
        }
        done
    }

    /// Trains core `ci`'s prefetcher on an L1 miss of `line` at `now` and issues what it asks
    /// for while miss entries are free.
    fn prefetch(&mut self, ci: usize, now: u64, line: u64) {
        let Some(run) = self.cores[ci].pf.train(line) else {
            return;
        };
        let mut p = run.start;
        while run.contains(p) {
            let Some(home) = self.home_of(p) else {
                break;
            };
            if self.cores[ci].l2.find(p).is_none() {
                let Some(m) = self.cores[ci].mshrs.free(now) else {
                    break;
                };
                let done = self.fill(ci, now, p, home, false, true);
                let c = &mut self.cores[ci];
                c.mshrs.set(m, p, done, false);
                c.stats.prefetches += 1;
            }
            p = p.wrapping_add_signed(run.stride);
        }
        self.cores[ci].pf.issued_up_to(p);
    }

    /// The node whose RAM holds `line`.
    #[inline]
    fn home_of(&self, line: u64) -> Option<usize> {
        self.ram
            .iter()
            .find(|r| line >= r.0 && line < r.1)
            .map(|r| r.2 as usize)
    }

    /// A device's DMA on socket `socket` at time `now` to `len` bytes at `pa` (memory traffic
    /// on the node of each line; invalidates or reads cached copies). Returns its completion
    /// latency in cycles: all lines are issued at `now`, the controller and links serialise
    /// them.
    pub fn dma(&mut self, socket: u32, now: u64, pa: u64, len: u64, write: bool) -> u64 {
        if len == 0 {
            return 0;
        }
        let end = pa.saturating_add(len);
        let mut done = now;
        for line in pa / LINE_BYTES..=(end - 1) / LINE_BYTES {
            let Some(home) = self.home_of(line) else {
                continue;
            };
            let kind = if write {
                let lo = line * LINE_BYTES;
                Txn::DmaWrite {
                    full: pa <= lo && end >= lo + LINE_BYTES,
                }
            } else {
                Txn::DmaRead
            };
            let out = self.transaction(socket as usize, line, home, kind, now, None);
            done = done.max(out.done);
        }
        done - now
    }

    /// Cumulative counters so far.
    pub fn stats(&self) -> TimingStats {
        TimingStats {
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeStats {
                    busy_cycles: n.work / UNIT / n.channels.len() as u64,
                    ..n.stats.clone()
                })
                .collect(),
            links: self
                .links
                .iter()
                .map(|l| LinkStats {
                    busy_cycles: l.work / UNIT,
                    ..l.stats.clone()
                })
                .collect(),
            cores: self.cores.iter().map(|c| c.stats.clone()).collect(),
            core_dram: self.core_dram.clone(),
            core_link: self.core_link.clone(),
            dma_link_bytes: self.dma_link_bytes,
        }
    }

    /// Core `core`'s counters so far (cheap: for per-domain attribution at every switch).
    pub fn core_stats(&self, core: u32) -> CoreMemStats {
        self.cores[core as usize].stats.clone()
    }

    /// Core `core`'s bytes at each node's controller so far: `[node * 2]` read,
    /// `[node * 2 + 1]` written (its part of [`TimingStats::core_dram`]).
    pub fn core_dram(&self, core: u32) -> &[u64] {
        let per_core = self.nodes.len() * 2;
        let at = core as usize * per_core;
        self.core_dram.get(at..at + per_core).unwrap_or(&[])
    }

    /// Core `core`'s bytes on links so far ([`TimingStats::core_link`]).
    pub fn core_link(&self, core: u32) -> u64 {
        self.core_link.get(core as usize).copied().unwrap_or(0)
    }

    /// Mean occupancy of node `node`'s controller (requests waiting or in service) over the
    /// 256-cycle window holding `now`, as booked so far.
    pub fn queue_depth(&self, node: u32, now: u64) -> u32 {
        self.nodes[node as usize].occupancy.at(now)
    }
}

/// Shortest routes between all pairs of sockets: breadth-first from each source, neighbours
/// visited in ascending order, the first path found kept.
fn routes(n: usize, hops: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n * n];
    for src in 0..n {
        let mut parent = vec![usize::MAX; n];
        parent[src] = src;
        let mut queue = std::collections::VecDeque::from([src]);
        while let Some(a) = queue.pop_front() {
            for b in 0..n {
                if parent[b] == usize::MAX && !hops[a * n + b].is_empty() {
                    parent[b] = a;
                    queue.push_back(b);
                }
            }
        }
        for dst in 0..n {
            if dst == src || parent[dst] == usize::MAX {
                continue;
            }
            let mut path = vec![dst as u32];
            let mut x = dst;
            while parent[x] != src {
                x = parent[x];
                path.push(x as u32);
            }
            path.reverse();
            out[src * n + dst] = path;
        }
    }
    out
}

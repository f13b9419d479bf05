//! Checkpoint and restore of the whole machine (DESIGN.md §2.4): a run restored from a
//! checkpoint finishes exactly as the uninterrupted run does — the same console output,
//! instruction counts, cycles, statistics and state hash.
//!
//! A checkpoint is taken between two quanta of the schedule, where [`Machine::run_for`],
//! [`Machine::run_epoch`] and [`Machine::run_until_cycle`] return: stopping there never
//! changes the schedule. It holds everything a continued run depends on, including two things
//! that look like caches but are not transparent: the cores' soft TLBs (a miss walks the page
//! tables, which are timed accesses in timing mode and set accessed bits) and the set of
//! decoded code blocks (a miss decodes, which walks too, and stores to pages holding blocks end
//! a block, which is where a quantum may end). Their host-side halves — host pointers, decoded
//! instructions — are not saved but rebuilt from RAM on restore.
//!
//! Each component implements [`Persist`] (Firecracker's `snapshot::Persist`): `save` gives a
//! serde value, `restore` checks it against a component built fresh from the description and
//! rebuilds it. Guest RAM is stored apart, as page records.
//!
//! # File format, version 2
//! A 64-byte header, then three sections. Integers are little-endian.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic `PVMLABCK` |
//! | 8  | 4 | format version (2) |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | bytes of guest RAM of the machine (bounds the file: RAM + 1 GiB) |
//! | 24 | 8 | length of the description section |
//! | 32 | 8 | length of the state section |
//! | 40 | 8 | length of the memory section |
//! | 48 | 8 | xxh3-64 of the three sections, in order |
//! | 56 | 8 | xxh3-64 of header bytes 0..56 |
//!
//! 1. **Description**: the [`MachineDesc`] as RON text, read back like a machine file (and
//!    validated the same way).
//! 2. **State**: [`MachineState`] in postcard's encoding (serde, varints, no schema): the
//!    cores (architectural state, counters, run state, soft-TLB translations), `Sys` without
//!    RAM (code-page map, devices, the timing model with its caches, directory, queues,
//!    prefetchers and counters), the code cache's block list, the boot layout, the
//!    instruction count, the stats ring and how the run ended, if it has.
//! 3. **Memory**: one record per RAM page that may have been written and is not all zero,
//!    in ascending address order: the page's address (8 bytes), then its 4096 bytes.
//!
//! postcard's encoding has no field names: any change to a saved type changes the format and
//! must bump [`FORMAT_VERSION`] (the `layout_is_pinned` test notices).
//!
//! Restore never panics on any input: the header is checked first (magic, version, header
//! checksum, lengths against the file's size, the size limit), then the checksum of the
//! sections, then every part that sizes or indexes something (description, pages, core
//! count, TLB entries, code blocks, the timing model's shape). Counters are taken as saved.

use crate::cpu::decode::CodeCache;
use crate::cpu::persist::{CoreState, SysContext, SysState};
use crate::cpu::{Core, Sys};
use crate::desc::{DescError, MachineDesc};
use crate::devices::Ports;
use crate::loader::BootLayout;
use crate::machine::{Machine, MachineError, RunEnd};
use crate::memory::PAGE_SIZE;
use crate::stats::StatsRing;
use crate::timing::{TimingModel, TimingStats};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// The first 8 bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"PVMLABCK";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of the header.
pub const HEADER_LEN: usize = 64;
/// A memory record: the page's address, then the page.
const RECORD_LEN: u64 = 8 + PAGE_SIZE;
/// What the description and state sections may take together, on top of RAM.
const STATE_LIMIT: u64 = 1 << 30;
/// The most RAM a valid description has (64 sockets of 1 TiB).
const MAX_RAM: u64 = 64 << 40;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a pvmlab checkpoint")]
    NotACheckpoint,
    #[error("checkpoint format v{found}, this pvmlab reads v{supported}")]
    Version { found: u32, supported: u32 },
    #[error("truncated checkpoint: {len} bytes of {expected}")]
    Truncated { len: u64, expected: u64 },
    #[error(
        "checkpoint of {len} bytes is over the limit of {limit} bytes (its machine's RAM + 1 GiB)"
    )]
    TooLarge { len: u64, limit: u64 },
    #[error("corrupt checkpoint: {what}")]
    Corrupt { what: String },
    #[error("the checkpoint's machine description is invalid")]
    Description(#[source] DescError),
    #[error("the checkpoint holds a page at {addr:#x}, outside the machine's RAM")]
    PageOutsideRam { addr: u64 },
    #[error("the checkpoint does not fit its machine: {message}")]
    Inconsistent { message: String },
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error("cannot read the checkpoint")]
    Read(#[source] std::io::Error),
    #[error("cannot write the checkpoint")]
    Write(#[source] std::io::Error),
}

impl CheckpointError {
    pub(crate) fn inconsistent(message: String) -> Self {
        CheckpointError::Inconsistent { message }
    }

    fn corrupt(what: impl Into<String>) -> Self {
        CheckpointError::Corrupt { what: what.into() }
    }
}

/// Save and restore of one component (Firecracker's `snapshot::Persist`).
pub trait Persist: Sized {
    /// The component's state as serde sees it.
    type State: Serialize + DeserializeOwned;
    /// What `restore` needs besides the state: parts of the machine restored before, or a
    /// component built fresh from the description, whose shape the saved one must have.
    type Context<'a>;

    fn save(&self) -> Self::State;

    /// Rebuilds the component; errors, never panics, on a state that does not fit.
    fn restore(ctx: Self::Context<'_>, state: Self::State) -> Result<Self, CheckpointError>;
}

impl Persist for Ports {
    type State = Ports;
    type Context<'a> = ();

    fn save(&self) -> Ports {
        self.clone()
    }

    fn restore(_: (), state: Ports) -> Result<Ports, CheckpointError> {
        Ok(state)
    }
}

impl Persist for StatsRing {
    type State = StatsRing;
    type Context<'a> = ();

    fn save(&self) -> StatsRing {
        self.clone()
    }

    fn restore(_: (), state: StatsRing) -> Result<StatsRing, CheckpointError> {
        Ok(state)
    }
}

impl Persist for TimingModel {
    type State = TimingModel;
    /// A model built fresh for the machine's description.
    type Context<'a> = &'a TimingModel;

    fn save(&self) -> TimingModel {
        self.clone()
    }

    fn restore(fresh: &TimingModel, state: TimingModel) -> Result<TimingModel, CheckpointError> {
        if !same_shape(&state.stats(), &fresh.stats()) {
            return Err(CheckpointError::inconsistent(
                "the timing model has other cores, nodes or links than the description".into(),
            ));
        }
        Ok(state)
    }
}

fn same_shape(a: &TimingStats, b: &TimingStats) -> bool {
    a.cores.len() == b.cores.len()
        && a.core_dram.len() == b.core_dram.len()
        && a.core_link.len() == b.core_link.len()
        && a.nodes.len() == b.nodes.len()
        && a.nodes.iter().zip(&b.nodes).all(|(x, y)| {
            x.node == y.node
                && x.read_bytes_from.len() == y.read_bytes_from.len()
                && x.write_bytes_from.len() == y.write_bytes_from.len()
        })
        && a.links.len() == b.links.len()
        && a.links
            .iter()
            .zip(&b.links)
            .all(|(x, y)| x.from == y.from && x.to == y.to)
}

/// The state section: the whole machine but its description and RAM.
#[derive(Serialize, Deserialize)]
pub struct MachineState {
    cores: Vec<CoreState>,
    sys: SysState,
    cache: <CodeCache as Persist>::State,
    layout: Option<BootLayout>,
    instructions: u64,
    samples: StatsRing,
    end: Option<RunEnd>,
}

/// The fixed-size header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    ram_bytes: u64,
    desc_len: u64,
    state_len: u64,
    mem_len: u64,
    checksum: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        for (i, v) in [
            self.ram_bytes,
            self.desc_len,
            self.state_len,
            self.mem_len,
            self.checksum,
        ]
        .into_iter()
        .enumerate()
        {
            h[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = xxh3_64(&h[..56]);
        h[56..].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// The most a checkpoint of a machine with `ram_bytes` of RAM may take: every page as a
    /// record, plus 1 GiB for the rest.
    fn limit(ram_bytes: u64) -> u64 {
        ram_bytes / PAGE_SIZE * RECORD_LEN + STATE_LIMIT + HEADER_LEN as u64
    }

    /// Reads and checks the header at the start of `head`, the first bytes of a checkpoint of
    /// `len` bytes in all: everything that can be checked before the rest is read.
    fn parse(head: &[u8], len: u64) -> Result<Header, CheckpointError> {
        let truncated = |expected: usize| CheckpointError::Truncated {
            len,
            expected: expected as u64,
        };
        if head.len() < MAGIC.len() {
            return Err(if !head.is_empty() && MAGIC.starts_with(head) {
                truncated(HEADER_LEN)
            } else {
                CheckpointError::NotACheckpoint
            });
        }
        if head[..8] != MAGIC {
            return Err(CheckpointError::NotACheckpoint);
        }
        if head.len() < 12 {
            return Err(truncated(HEADER_LEN));
        }
        let version = u32_at(head, 8);
        if version != FORMAT_VERSION {
            return Err(CheckpointError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if head.len() < HEADER_LEN {
            return Err(truncated(HEADER_LEN));
        }
        if xxh3_64(&head[..56]) != u64_at(head, 56) || u32_at(head, 12) != 0 {
            return Err(CheckpointError::corrupt("header checksum mismatch"));
        }
        let h = Header {
            ram_bytes: u64_at(head, 16),
            desc_len: u64_at(head, 24),
            state_len: u64_at(head, 32),
            mem_len: u64_at(head, 40),
            checksum: u64_at(head, 48),
        };
        if h.ram_bytes > MAX_RAM {
            return Err(CheckpointError::corrupt(format!(
                "a machine of {} bytes of RAM",
                h.ram_bytes
            )));
        }
        let limit = Self::limit(h.ram_bytes);
        let total = h.total().unwrap_or(u64::MAX);
        if len > limit || total > limit {
            return Err(CheckpointError::TooLarge {
                len: len.max(total),
                limit,
            });
        }
        if h.desc_len.saturating_add(h.state_len) > STATE_LIMIT
            || !h.mem_len.is_multiple_of(RECORD_LEN)
            || h.mem_len / RECORD_LEN > h.ram_bytes / PAGE_SIZE
        {
            return Err(CheckpointError::corrupt("section lengths"));
        }
        if len < total {
            return Err(CheckpointError::Truncated {
                len,
                expected: total,
            });
        }
        if len > total {
            return Err(CheckpointError::corrupt(format!(
                "{} bytes after the end",
                len - total
            )));
        }
        Ok(h)
    }

    fn total(&self) -> Option<u64> {
        (HEADER_LEN as u64)
            .checked_add(self.desc_len)?
            .checked_add(self.state_len)?
            .checked_add(self.mem_len)
    }
}

impl Machine {
    /// A checkpoint of the whole machine, in the format of this module's documentation.
    /// Take it between quanta (where `run_for`, `run_epoch` and `run_until_cycle` return);
    /// the console bytes not yet taken from `sys.io.console` are part of it.
    pub fn checkpoint(&self) -> Vec<u8> {
        // Every field, by name: a field added to `Machine` must be added here.
        let Machine {
            desc,
            cores,
            sys,
            cache,
            layout,
            instructions,
            samples,
            end,
        } = self;
        // Neither can fail: descriptions are plain data (RON writes any f64), and postcard
        // writing to a Vec fails only for sequences of unknown length, which no state has.
        let desc_text = ron::to_string(desc).expect("a machine description serialises");
        let state = MachineState {
            cores: cores.iter().map(Persist::save).collect(),
            sys: sys.save(),
            cache: cache.save(),
            layout: layout.clone(),
            instructions: *instructions,
            samples: samples.save(),
            end: end.clone(),
        };
        let state = postcard::to_stdvec(&state).expect("the machine state serialises");
        let mut mem = Vec::new();
        sys.ram.for_each_nonzero_page(|addr, page| {
            mem.extend_from_slice(&addr.to_le_bytes());
            mem.extend_from_slice(page);
        });
        let mut sum = xxhash_rust::xxh3::Xxh3::new();
        for s in [desc_text.as_bytes(), &state, &mem] {
            sum.update(s);
        }
        let header = Header {
            ram_bytes: sys.ram.ranges().iter().map(|r| r.len).sum(),
            desc_len: desc_text.len() as u64,
            state_len: state.len() as u64,
            mem_len: mem.len() as u64,
            checksum: sum.digest(),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + desc_text.len() + state.len() + mem.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(desc_text.as_bytes());
        out.extend_from_slice(&state);
        out.extend_from_slice(&mem);
        out
    }

    /// Writes [`checkpoint`](Self::checkpoint) to `path`, through a temporary file beside it
    /// renamed at the end, so that `path` never holds half a checkpoint.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.checkpoint();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CheckpointError::Write(e)
        })
    }

    /// Reads a checkpoint file: the header first, so that a file over the size limit is
    /// refused before anything is allocated for it, then [`restore`](Self::restore).
    pub fn restore_file(path: &Path) -> Result<Machine, CheckpointError> {
        let mut f = std::fs::File::open(path).map_err(CheckpointError::Read)?;
        let len = f.metadata().map_err(CheckpointError::Read)?.len();
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        (&mut f)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(CheckpointError::Read)?;
        let h = Header::parse(&bytes, len)?;
        let total = h.total().unwrap_or(u64::MAX);
        bytes.reserve_exact((total as usize).saturating_sub(bytes.len()));
        f.take(total - HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(CheckpointError::Read)?;
        Machine::restore(&bytes)
    }

    /// The machine a checkpoint holds, ready to continue the run where it was taken. Errors
    /// (never panics) on anything that is not a checkpoint this build wrote or could have.
    pub fn restore(bytes: &[u8]) -> Result<Machine, CheckpointError> {
        let h = Header::parse(bytes, bytes.len() as u64)?;
        let payload = &bytes[HEADER_LEN..];
        if xxh3_64(payload) != h.checksum {
            return Err(CheckpointError::corrupt("checksum mismatch"));
        }
        let (desc_bytes, rest) = payload.split_at(h.desc_len as usize);
        let (state_bytes, mem) = rest.split_at(h.state_len as usize);

        let text = std::str::from_utf8(desc_bytes)
            .map_err(|_| CheckpointError::corrupt("the description is not UTF-8"))?;
        let desc = MachineDesc::parse(text, "description section")
            .map_err(CheckpointError::Description)?;
        let ranges = desc.ram_layout();
        let ram_bytes: u64 = ranges.iter().map(|r| r.len).sum();
        if ram_bytes != h.ram_bytes {
            return Err(CheckpointError::inconsistent(format!(
                "the header says {} bytes of RAM, the description {ram_bytes}",
                h.ram_bytes
            )));
        }
        let (state, left): (MachineState, &[u8]) = postcard::take_from_bytes(state_bytes)
            .map_err(|e| CheckpointError::corrupt(format!("the state section: {e}")))?;
        if !left.is_empty() {
            return Err(CheckpointError::corrupt(format!(
                "{} bytes after the state",
                left.len()
            )));
        }
        let mut last = None;
        for rec in mem.chunks_exact(RECORD_LEN as usize) {
            let addr = u64_at(rec, 0);
            let inside = addr.is_multiple_of(PAGE_SIZE) && ranges.iter().any(|r| r.contains(addr));
            if !inside {
                return Err(CheckpointError::PageOutsideRam { addr });
            }
            if last.is_some_and(|l| l >= addr) {
                return Err(CheckpointError::corrupt("memory pages out of order"));
            }
            last = Some(addr);
        }

        let Machine {
            desc,
            cores: fresh_cores,
            mut sys,
            cache: _,
            layout: _,
            instructions: _,
            samples: _,
            end: _,
        } = Machine::new(&desc)?;
        for rec in mem.chunks_exact(RECORD_LEN as usize) {
            let addr = u64_at(rec, 0);
            sys.ram
                .write(addr, &rec[8..])
                .ok_or(CheckpointError::PageOutsideRam { addr })?;
        }
        if state.cores.len() != fresh_cores.len() {
            return Err(CheckpointError::inconsistent(format!(
                "{} cores saved, the description has {}",
                state.cores.len(),
                fresh_cores.len()
            )));
        }
        let mut cores = Vec::with_capacity(fresh_cores.len());
        for (fresh, saved) in fresh_cores.iter().zip(state.cores) {
            let c = Core::restore(&mut sys.ram, saved)?;
            if (c.index, c.apic_id, c.socket, c.node)
                != (fresh.index, fresh.apic_id, fresh.socket, fresh.node)
            {
                return Err(CheckpointError::inconsistent(format!(
                    "core {} is saved as core {} (APIC id {}, socket {}, node {})",
                    fresh.index, c.index, c.apic_id, c.socket, c.node
                )));
            }
            cores.push(c);
        }
        let cache = CodeCache::restore(&sys.ram, state.cache)?;
        let sys = Sys::restore(SysContext { sys, desc: &desc }, state.sys)?;
        let m = Machine {
            desc,
            cores,
            sys,
            cache,
            layout: state.layout,
            instructions: state.instructions,
            samples: StatsRing::restore((), state.samples)?,
            end: state.end,
        };
        // Baselines that later counters are subtracted from: a forged one ahead of them would
        // underflow (a panic in debug builds, nonsense in release).
        m.sys
            .domains
            .check_restored(|i| m.cores[i].domain_counters(&m.sys))
            .map_err(CheckpointError::inconsistent)?;
        let instr: Vec<u64> = m.cores.iter().map(|c| c.instret).collect();
        let t = m.sys.timing.as_ref().map(|t| t.stats()).unwrap_or_default();
        m.samples
            .check_restored(m.instructions, &instr, &t)
            .map_err(CheckpointError::inconsistent)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests;

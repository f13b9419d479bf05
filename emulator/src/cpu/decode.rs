//! The decoded-instruction cache: straight-line blocks decoded once with iced-x86 and run
//! many times, each instruction paired with its handler, resolved from its `Code` at decode
//! time (retrowin32's icache). A block ends at the first instruction whose flow control is
//! not `Next`, at an instruction the emulator cannot run, or after `MAX_BLOCK` instructions.
//!
//! Blocks are keyed by the physical address of their first byte and registered on every
//! physical page their bytes touch — both pages of an instruction that straddles a boundary —
//! so a store to any of those pages invalidates them.

use super::{Core, Fault, Handler, Op, Sys, ops};
use crate::memory::{PAGE_SIZE, Ram};
use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

const MAX_BLOCK: usize = 64;
const FAST_SLOTS: usize = 4096;

struct Block {
    start: u64,
    /// Physical address of `start` when decoded, and of the next page if the block spills
    /// onto it: a lookup must find the same translation.
    phys: u64,
    phys_next: Option<u64>,
    ops: Box<[Op]>,
    /// Physical pages this block's bytes lie on.
    pages: Vec<u64>,
}

/// The op of a decoded instruction (its handler resolved from its `Code`), and whether it
/// ends its block.
fn make_op(ins: Instruction) -> (Op, bool) {
    let mut supported = true;
    let exec = if ins.code() == Code::INVALID {
        ops::invalid as Handler
    } else {
        ops::resolve(&ins).unwrap_or_else(|| {
            supported = false;
            ops::unimplemented as Handler
        })
    };
    let stop = ins.code() == Code::INVALID
        || !supported
        || ins.flow_control() != FlowControl::Next
        || ops::ends_block(&ins);
    let op = Op {
        exec,
        cost: ops::base_cost(&ins),
        drain: ops::drains_stores(&ins),
        ins,
    };
    (op, stop)
}

/// Blocks of all cores (cores share physical memory, hence code).
pub struct CodeCache {
    blocks: Vec<Option<Block>>,
    free: Vec<u32>,
    /// (linear, physical) start → block. Looked up, never iterated. Both halves matter: one
    /// physical page mapped at two addresses decodes differently (RIP-relative operands and
    /// branch targets are absolute), and one address maps different code in two address
    /// spaces.
    map: HashMap<(u64, u64), u32>,
    /// Page → blocks on it, for invalidation.
    by_page: BTreeMap<u64, Vec<u32>>,
    /// Direct-mapped front of `map`: (linear, physical, block).
    fast: Box<[(u64, u64, u32)]>,
    /// Scratch for the decoder: a block's worth of bytes plus one more instruction.
    bytes: Vec<u8>,
    pub decoded_blocks: u64,
    pub invalidated_blocks: u64,
}

impl Default for CodeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CodeCache {
    pub fn new() -> Self {
        CodeCache {
            blocks: Vec::new(),
            free: Vec::new(),
            map: HashMap::new(),
            by_page: BTreeMap::new(),
            fast: vec![(u64::MAX, u64::MAX, 0); FAST_SLOTS].into_boxed_slice(),
            bytes: vec![0; MAX_BLOCK * 15 + 15],
            decoded_blocks: 0,
            invalidated_blocks: 0,
        }
    }

    #[inline(always)]
    fn slot(rip: u64) -> usize {
        ((rip ^ (rip >> 12)) as usize) % FAST_SLOTS
    }

    /// The instructions of block `id`.
    #[inline(always)]
    pub fn ops(&self, id: u32) -> &[Op] {
        match &self.blocks[id as usize] {
            Some(b) => &b.ops,
            None => &[],
        }
    }

    /// The block starting at the core's `rip`, decoding it if needed. Always inlined: the
    /// block loop calls it once per block (its debug path calls it too, which would
    /// otherwise make it an out-of-line call on the hot path).
    #[inline(always)]
    pub fn lookup_or_decode(&mut self, core: &mut Core, sys: &mut Sys) -> Result<u32, Fault> {
        let rip = core.rip;
        // Translate through the soft TLB: a fetch needs the same rights as a read except NX,
        // which the walk checks on a miss; a page filled by a read might be NX, so only trust
        // the TLB for pages a fetch has translated (the block found proves that).
        let phys = core.tlb.physical(rip);
        let s = Self::slot(rip);
        if let Some(pa) = phys {
            let (v, p, id) = self.fast[s];
            if v == rip && p == pa && self.still_mapped(core, id) {
                return Ok(id);
            }
        }
        let pa = match phys {
            Some(pa) => pa,
            None => core.fill_fetch(sys, rip)?,
        };
        let id = match self.map.get(&(rip, pa)) {
            Some(&id) if self.still_mapped(core, id) => id,
            _ => self.decode(core, sys, rip, pa)?,
        };
        self.fast[s] = (rip, pa, id);
        Ok(id)
    }

    /// A block that spills onto a second page is valid only while that page still maps to
    /// the same physical page.
    #[inline(always)]
    fn still_mapped(&self, core: &Core, id: u32) -> bool {
        match &self.blocks[id as usize] {
            Some(b) => match b.phys_next {
                None => true,
                Some(next) => core.tlb.physical((b.start | (PAGE_SIZE - 1)) + 1) == Some(next),
            },
            None => false,
        }
    }

    #[cold]
    fn decode(
        &mut self,
        core: &mut Core,
        sys: &mut Sys,
        rip: u64,
        phys: u64,
    ) -> Result<u32, Fault> {
        let n = core.fetch(sys, rip, &mut self.bytes)?;
        let mut decoder = Decoder::with_ip(64, &self.bytes[..n], rip, DecoderOptions::NONE);
        let mut ops = Vec::new();
        let mut ins = Instruction::default();
        let mut end = rip;
        while decoder.can_decode() && ops.len() < MAX_BLOCK {
            decoder.decode_out(&mut ins);
            // Bytes that ran out before the instruction did are a fetch fault on the next
            // page; otherwise an invalid encoding becomes `ops::invalid` (#UD).
            if ins.code() == Code::INVALID
                && decoder.last_error() == iced_x86::DecoderError::NoMoreBytes
            {
                if ops.is_empty() {
                    let missing = rip.wrapping_add(n as u64);
                    return Err(core
                        .fetch(sys, missing, &mut [0u8; 1])
                        .err()
                        .unwrap_or(Fault::new(super::UD)));
                }
                break;
            }
            end = ins.next_ip();
            let (op, stop) = make_op(ins);
            ops.push(op);
            if stop {
                break;
            }
        }
        if ops.is_empty() {
            // Fewer bytes than one instruction were readable and none decoded.
            return Err(Fault::new(super::UD));
        }
        let mut pages = vec![phys / PAGE_SIZE];
        let mut phys_next = None;
        let second = (rip | (PAGE_SIZE - 1)).wrapping_add(1);
        if end > second {
            // The block's bytes continue on the next page (perhaps only the tail of its last
            // instruction): it depends on that page too.
            if let Some(p) = core.code_physical(sys, second) {
                pages.push(p / PAGE_SIZE);
                phys_next = Some(p & !(PAGE_SIZE - 1));
                // Make sure the soft TLB holds the second page for `still_mapped` (the
                // translation just succeeded, so this cannot fault).
                let _ = core.fill_read(sys, second);
            }
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.blocks.push(None);
                (self.blocks.len() - 1) as u32
            }
        };
        for &p in &pages {
            self.by_page.entry(p).or_default().push(id);
            sys.set_code_page(p, true);
        }
        self.blocks[id as usize] = Some(Block {
            start: rip,
            phys,
            phys_next,
            ops: ops.into_boxed_slice(),
            pages,
        });
        if let Some(old) = self.map.insert((rip, phys), id) {
            // A stale block for the same start (its second page remapped): forget it.
            self.remove_block(old, None);
        }
        self.decoded_blocks += 1;
        Ok(id)
    }

    /// Drops every block with bytes on physical page `page`.
    pub fn invalidate_page(&mut self, sys: &mut Sys, page: u64) {
        let Some(ids) = self.by_page.remove(&page) else {
            return;
        };
        sys.set_code_page(page, false);
        for id in ids {
            if let Some(start) = self.blocks[id as usize].as_ref().map(|b| (b.start, b.phys)) {
                self.map.remove(&start);
                self.remove_block(id, Some(page));
            }
        }
    }

    /// Forgets block `id` (already out of `map`): its fast slot, its registrations on pages
    /// other than `skip`, and its storage.
    fn remove_block(&mut self, id: u32, skip: Option<u64>) {
        let Some(block) = self.blocks[id as usize].take() else {
            return;
        };
        let s = Self::slot(block.start);
        if self.fast[s].2 == id {
            self.fast[s] = (u64::MAX, u64::MAX, 0);
        }
        for p in block.pages.iter().filter(|&&p| Some(p) != skip) {
            if let Some(list) = self.by_page.get_mut(p) {
                list.retain(|&x| x != id);
            }
        }
        self.free.push(id);
        self.invalidated_blocks += 1;
    }

    /// Drops everything (e.g. after a checkpoint restore).
    pub fn clear(&mut self, sys: &mut Sys) {
        let pages: Vec<u64> = self.by_page.keys().copied().collect();
        for p in pages {
            self.invalidate_page(sys, p);
        }
    }
}

/// What a checkpoint keeps of the code cache: where each block lies and how many
/// instructions it has, not the instructions themselves, which are decoded again from memory
/// on restore (memory a block was decoded from is unchanged while the block lives: a store to
/// one of its pages invalidates it).
///
/// The set of blocks matters to a continued run, not just its speed: a miss decodes, and
/// decoding walks the page tables (timed accesses in timing mode, accessed bits), and the
/// pages holding blocks are the code pages whose stores end a block, which is where a
/// quantum may end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeCacheState {
    blocks: Vec<Option<BlockState>>,
    free: Vec<u32>,
    by_page: Vec<(u64, Vec<u32>)>,
    decoded_blocks: u64,
    invalidated_blocks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BlockState {
    start: u64,
    phys: u64,
    phys_next: Option<u64>,
    /// Instructions in the block.
    len: u32,
    pages: Vec<u64>,
}

impl CodeCache {
    pub fn state(&self) -> CodeCacheState {
        CodeCacheState {
            blocks: self
                .blocks
                .iter()
                .map(|b| {
                    b.as_ref().map(|b| BlockState {
                        start: b.start,
                        phys: b.phys,
                        phys_next: b.phys_next,
                        len: b.ops.len() as u32,
                        pages: b.pages.clone(),
                    })
                })
                .collect(),
            free: self.free.clone(),
            by_page: self
                .by_page
                .iter()
                .map(|(&p, ids)| (p, ids.clone()))
                .collect(),
            decoded_blocks: self.decoded_blocks,
            invalidated_blocks: self.invalidated_blocks,
        }
    }

    /// Rebuilds the cache `state` describes, decoding each block again from `ram` (without
    /// page walks: blocks name their physical pages). Errors say what does not fit.
    pub fn from_state(state: &CodeCacheState, ram: &Ram) -> Result<CodeCache, String> {
        let mut c = CodeCache::new();
        c.decoded_blocks = state.decoded_blocks;
        c.invalidated_blocks = state.invalidated_blocks;
        let n = state.blocks.len();
        if n > u32::MAX as usize {
            return Err(format!("{n} code blocks"));
        }
        for (id, b) in state.blocks.iter().enumerate() {
            let Some(b) = b else {
                c.blocks.push(None);
                continue;
            };
            let ops = Self::redecode(b, ram).ok_or_else(|| {
                format!("code block {id} at {:#x} does not decode as saved", b.start)
            })?;
            if c.map.insert((b.start, b.phys), id as u32).is_some() {
                return Err(format!("two code blocks start at {:#x}", b.start));
            }
            c.blocks.push(Some(Block {
                start: b.start,
                phys: b.phys,
                phys_next: b.phys_next,
                ops,
                pages: b.pages.clone(),
            }));
        }
        let live = |id: u32| c.blocks.get(id as usize).is_some_and(|b| b.is_some());
        let holes = c.blocks.iter().filter(|b| b.is_none()).count();
        let mut seen = vec![false; n];
        for &id in &state.free {
            if (id as usize) >= n || live(id) || std::mem::replace(&mut seen[id as usize], true) {
                return Err(format!("free code block {id} is not a free slot"));
            }
        }
        if state.free.len() != holes {
            return Err("the free list of code blocks misses some".into());
        }
        c.free = state.free.clone();
        for (page, ids) in &state.by_page {
            if let Some(&id) = ids.iter().find(|&&id| !live(id)) {
                return Err(format!(
                    "code page {page:#x} lists block {id}, which is not cached"
                ));
            }
            if c.by_page.insert(*page, ids.clone()).is_some() {
                return Err(format!("code page {page:#x} is listed twice"));
            }
        }
        Ok(c)
    }

    /// The instructions of a saved block, decoded from the same bytes as when it was cached:
    /// its first page from `phys` on, then the next page if it spills there.
    fn redecode(b: &BlockState, ram: &Ram) -> Option<Box<[Op]>> {
        let len = b.len as usize;
        if len == 0 || len > MAX_BLOCK || (b.phys ^ b.start) & (PAGE_SIZE - 1) != 0 {
            return None;
        }
        let off = (b.phys & (PAGE_SIZE - 1)) as usize;
        let mut bytes = vec![0u8; PAGE_SIZE as usize - off];
        ram.read(b.phys, &mut bytes)?;
        if let Some(next) = b.phys_next {
            let mut more = vec![0u8; PAGE_SIZE as usize];
            ram.read(next, &mut more)?;
            bytes.extend_from_slice(&more);
        }
        // As much as `decode` fetches.
        bytes.truncate(MAX_BLOCK * 15 + 15);
        let mut decoder = Decoder::with_ip(64, &bytes, b.start, DecoderOptions::NONE);
        let mut ops = Vec::with_capacity(len);
        let mut ins = Instruction::default();
        while ops.len() < len {
            if !decoder.can_decode() {
                return None;
            }
            decoder.decode_out(&mut ins);
            if ins.code() == Code::INVALID
                && decoder.last_error() == iced_x86::DecoderError::NoMoreBytes
            {
                return None;
            }
            let (op, stop) = make_op(ins);
            ops.push(op);
            if stop && ops.len() < len {
                return None;
            }
        }
        Some(ops.into_boxed_slice())
    }
}

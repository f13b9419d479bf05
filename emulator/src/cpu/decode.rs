//! The decoded-instruction cache: straight-line blocks decoded once with iced-x86 and run
//! many times, each instruction paired with its handler, resolved from its `Code` at decode
//! time (retrowin32's icache). A block ends at the first instruction whose flow control is
//! not `Next`, at an instruction the emulator cannot run, or after `MAX_BLOCK` instructions.
//!
//! Blocks are keyed by the physical address of their first byte and registered on every
//! physical page their bytes touch — both pages of an instruction that straddles a boundary —
//! so a store to any of those pages invalidates them.

use super::{Core, Fault, Handler, Op, Sys, ops};
use crate::memory::PAGE_SIZE;
use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};
use std::collections::{BTreeMap, HashMap};

const MAX_BLOCK: usize = 64;
const FAST_SLOTS: usize = 4096;

struct Block {
    start: u64,
    ops: Box<[Op]>,
    /// Physical pages this block's bytes lie on.
    pages: Vec<u64>,
}

/// Blocks of all cores (cores share physical memory, hence code).
pub struct CodeCache {
    blocks: Vec<Option<Block>>,
    free: Vec<u32>,
    /// Start address → block. Looked up, never iterated.
    map: HashMap<u64, u32>,
    /// Page → blocks on it, for invalidation.
    by_page: BTreeMap<u64, Vec<u32>>,
    /// Direct-mapped front of `map`.
    fast: Box<[(u64, u32)]>,
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
            fast: vec![(u64::MAX, 0); FAST_SLOTS].into_boxed_slice(),
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

    /// The block starting at the core's `rip`, decoding it if needed.
    #[inline]
    pub fn lookup_or_decode(&mut self, core: &mut Core, sys: &mut Sys) -> Result<u32, Fault> {
        let rip = core.rip;
        let s = Self::slot(rip);
        if self.fast[s].0 == rip {
            return Ok(self.fast[s].1);
        }
        let id = match self.map.get(&rip) {
            Some(&id) => id,
            None => self.decode(core, sys, rip)?,
        };
        self.fast[s] = (rip, id);
        Ok(id)
    }

    #[cold]
    fn decode(&mut self, core: &mut Core, sys: &mut Sys, rip: u64) -> Result<u32, Fault> {
        let n = core.fetch(sys, rip, &mut self.bytes)?;
        let mut decoder = Decoder::with_ip(64, &self.bytes[..n], rip, DecoderOptions::NONE);
        let mut ops = Vec::new();
        let mut ins = Instruction::default();
        let mut end = rip;
        while decoder.can_decode() && ops.len() < MAX_BLOCK {
            decoder.decode_out(&mut ins);
            let mut supported = true;
            let exec = if ins.code() == Code::INVALID {
                // Bytes that ran out before the instruction did are a fetch fault on the next
                // page; otherwise the encoding is invalid.
                if decoder.last_error() == iced_x86::DecoderError::NoMoreBytes {
                    if ops.is_empty() {
                        let missing = rip.wrapping_add(n as u64);
                        return Err(core
                            .fetch(sys, missing, &mut [0u8; 1])
                            .err()
                            .unwrap_or(Fault::new(super::UD)));
                    }
                    break;
                }
                ops::invalid as Handler
            } else {
                ops::resolve(&ins).unwrap_or_else(|| {
                    supported = false;
                    ops::unimplemented as Handler
                })
            };
            end = ins.next_ip();
            let stop = ins.code() == Code::INVALID
                || !supported
                || ins.flow_control() != FlowControl::Next
                || ops::ends_block(&ins);
            ops.push(Op { exec, ins });
            if stop {
                break;
            }
        }
        if ops.is_empty() {
            // Fewer bytes than one instruction were readable and none decoded.
            return Err(Fault::new(super::UD));
        }
        let mut pages = Vec::new();
        let mut a = rip & !(PAGE_SIZE - 1);
        while a < end {
            if let Some(p) = core.code_page(sys, a) {
                pages.push(p);
            }
            a += PAGE_SIZE;
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
            ops: ops.into_boxed_slice(),
            pages,
        });
        self.map.insert(rip, id);
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
            let Some(block) = self.blocks[id as usize].take() else {
                continue;
            };
            self.map.remove(&block.start);
            let s = Self::slot(block.start);
            if self.fast[s] == (block.start, id) {
                self.fast[s] = (u64::MAX, 0);
            }
            for p in block.pages.iter().filter(|&&p| p != page) {
                if let Some(list) = self.by_page.get_mut(p) {
                    list.retain(|&x| x != id);
                }
            }
            self.free.push(id);
            self.invalidated_blocks += 1;
        }
    }

    /// Drops everything (e.g. after a checkpoint restore).
    pub fn clear(&mut self, sys: &mut Sys) {
        let pages: Vec<u64> = self.by_page.keys().copied().collect();
        for p in pages {
            self.invalidate_page(sys, p);
        }
    }
}

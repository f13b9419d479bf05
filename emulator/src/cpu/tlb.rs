//! The per-core soft TLB: linear page → host pointer and physical page, split into read and
//! write halves so that code pages (whose stores must be seen) are left out of the write half.
//!
//! Entries are filled after a page walk has checked the access for the current privilege
//! level, so the tag carries that level: a translation checked for ring 0 is never used in
//! ring 3. Reads through a write entry are allowed (a writable page is readable).
//!
//! While alignment checking is on (CR0.AM, RFLAGS.AC, CPL 3) data lookups carry one more tag
//! bit that no entry has, so every data access misses the inline fast path and reaches the
//! core's fill path, which checks alignment and then looks the page up with the fill tag
//! (`read_slow`/`write_slow`): the entries, and so the walks and their timing, are the same
//! as without the check, and the fast path costs nothing more when it is off.

use crate::memory::{PAGE_SIZE, Ram};
use serde::{Deserialize, Serialize};

const ENTRIES: usize = 256;
/// Tag bit of entries filled at CPL 3 (linear page numbers use at most 36 bits).
const USER_TAG: u64 = 1 << 62;
/// Tag bit of data lookups while alignment checking is on: no entry carries it.
const ALIGN_TAG: u64 = 1 << 63;

#[derive(Clone, Copy)]
struct Entry {
    /// Linear page number | mode bit, or `u64::MAX` when empty.
    tag: u64,
    host: *mut u8,
    /// Physical address of the page.
    pa: u64,
}

const EMPTY: Entry = Entry {
    tag: u64::MAX,
    host: std::ptr::null_mut(),
    pa: 0,
};

#[derive(Clone)]
pub struct SoftTlb {
    read: Box<[Entry; ENTRIES]>,
    write: Box<[Entry; ENTRIES]>,
    /// The last translation a fill left out of both halves (a store to a code page, an
    /// access to a page holding a data breakpoint), for the timing model's lookup right
    /// after it (`physical_any`). Not part of the saved state: it is always set by the
    /// access that reads it.
    uncached: Entry,
    /// The tag bits of data lookups: `USER_TAG` while the core runs at CPL 3, else 0, plus
    /// `ALIGN_TAG` while alignment checking is on.
    mode: u64,
    /// The tag bits of fills, fetch lookups and `*_slow` lookups: `mode` without `ALIGN_TAG`.
    fill_mode: u64,
}

// SAFETY: the host pointers point into the machine's `Ram`, which moves with the machine;
// a core is only used together with the `Ram` that filled its TLB.
unsafe impl Send for SoftTlb {}

impl SoftTlb {
    pub fn new() -> Self {
        SoftTlb {
            read: Box::new([EMPTY; ENTRIES]),
            write: Box::new([EMPTY; ENTRIES]),
            uncached: EMPTY,
            mode: 0,
            fill_mode: 0,
        }
    }

    #[inline(always)]
    fn slot(va: u64) -> usize {
        (va / PAGE_SIZE) as usize % ENTRIES
    }

    #[inline(always)]
    fn tag(&self, va: u64) -> u64 {
        (va / PAGE_SIZE) | self.mode
    }

    /// The tag entries are filled with (and fetches look up).
    #[inline(always)]
    fn fill_tag(&self, va: u64) -> u64 {
        (va / PAGE_SIZE) | self.fill_mode
    }

    /// Selects the entries of CPL 3 (`user`) or of the supervisor, and whether data lookups
    /// miss so that the core checks alignment (`align`, only meaningful at CPL 3).
    #[inline]
    pub fn set_mode(&mut self, user: bool, align: bool) {
        self.fill_mode = if user { USER_TAG } else { 0 };
        self.mode = self.fill_mode | if align { ALIGN_TAG } else { 0 };
    }

    /// Whether alignment checking is on (every data lookup misses).
    #[inline(always)]
    pub fn align_checking(&self) -> bool {
        self.mode & ALIGN_TAG != 0
    }

    #[inline(always)]
    pub fn read(&self, va: u64) -> Option<*mut u8> {
        let e = &self.read[Self::slot(va)];
        (e.tag == self.tag(va)).then_some(e.host)
    }

    #[inline(always)]
    pub fn write(&self, va: u64) -> Option<*mut u8> {
        let e = &self.write[Self::slot(va)];
        (e.tag == self.tag(va)).then_some(e.host)
    }

    /// [`read`](Self::read) with the fill tag, for the fill path while alignment checking is
    /// on.
    pub fn read_slow(&self, va: u64) -> Option<*mut u8> {
        let e = &self.read[Self::slot(va)];
        (e.tag == self.fill_tag(va)).then_some(e.host)
    }

    /// [`write`](Self::write) with the fill tag.
    pub fn write_slow(&self, va: u64) -> Option<*mut u8> {
        let e = &self.write[Self::slot(va)];
        (e.tag == self.fill_tag(va)).then_some(e.host)
    }

    /// Physical address of `va`, if its page is in the read half.
    #[inline(always)]
    pub fn physical(&self, va: u64) -> Option<u64> {
        let e = &self.read[Self::slot(va)];
        (e.tag == self.fill_tag(va)).then_some(e.pa | (va & (PAGE_SIZE - 1)))
    }

    /// Physical address of `va` from either half (a write entry may outlive the read entry
    /// of the same page when another page evicted the latter), or from the last translation
    /// left uncached.
    #[inline(always)]
    pub fn physical_any(&self, va: u64) -> Option<u64> {
        let tag = self.fill_tag(va);
        self.physical(va).or_else(|| {
            [&self.write[Self::slot(va)], &self.uncached]
                .into_iter()
                .find(|e| e.tag == tag)
                .map(|e| e.pa | (va & (PAGE_SIZE - 1)))
        })
    }

    /// Records a translation that is not cached (see `uncached`).
    pub fn set_uncached(&mut self, va: u64, pa: u64) {
        self.uncached = Entry {
            tag: self.fill_tag(va),
            host: std::ptr::null_mut(),
            pa: pa & !(PAGE_SIZE - 1),
        };
    }

    pub fn fill_read(&mut self, va: u64, host: *mut u8, pa: u64) {
        let tag = self.fill_tag(va);
        self.read[Self::slot(va)] = Entry {
            tag,
            host,
            pa: pa & !(PAGE_SIZE - 1),
        };
    }

    pub fn fill_write(&mut self, va: u64, host: *mut u8, pa: u64) {
        self.fill_read(va, host, pa);
        let tag = self.fill_tag(va);
        self.write[Self::slot(va)] = Entry {
            tag,
            host,
            pa: pa & !(PAGE_SIZE - 1),
        };
    }

    pub fn flush_write(&mut self) {
        self.write.fill(EMPTY);
    }

    /// Drops the write entries of physical page `pa` (wherever it is mapped).
    pub fn flush_physical_write(&mut self, pa: u64) {
        let page = pa & !(PAGE_SIZE - 1);
        for e in self.write.iter_mut() {
            if e.tag != u64::MAX && e.pa == page {
                *e = EMPTY;
            }
        }
    }

    /// Drops both entries of linear page `va`, in both modes (`invlpg`).
    pub fn flush_page(&mut self, va: u64) {
        let s = Self::slot(va);
        for half in [&mut self.read, &mut self.write] {
            if half[s].tag & !USER_TAG == va / PAGE_SIZE {
                half[s] = EMPTY;
            }
        }
    }

    pub fn flush(&mut self) {
        self.read.fill(EMPTY);
        self.write.fill(EMPTY);
        self.uncached = EMPTY;
    }
}

impl Default for SoftTlb {
    fn default() -> Self {
        Self::new()
    }
}

/// The translations of a [`SoftTlb`] without their host pointers: what a checkpoint keeps.
/// Its contents decide which accesses walk the page tables, and walks are timed accesses
/// that also set accessed/dirty bits, so a restored core needs the same entries to continue
/// exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbState {
    mode: u64,
    /// `(slot, tag, physical page)` of the filled entries of each half.
    read: Vec<(u16, u64, u64)>,
    write: Vec<(u16, u64, u64)>,
}

impl SoftTlb {
    pub fn state(&self) -> TlbState {
        let filled = |half: &[Entry; ENTRIES]| {
            half.iter()
                .enumerate()
                .filter(|(_, e)| e.tag != u64::MAX)
                .map(|(i, e)| (i as u16, e.tag, e.pa))
                .collect()
        };
        TlbState {
            mode: self.mode,
            read: filled(&self.read),
            write: filled(&self.write),
        }
    }

    /// Rebuilds the entries of `state` with host pointers from `ram`; the pages of write
    /// entries are marked written, as `fill_write` did. Errors say which entry does not fit.
    pub fn from_state(state: &TlbState, ram: &mut Ram) -> Result<SoftTlb, String> {
        if ![0, USER_TAG, USER_TAG | ALIGN_TAG].contains(&state.mode) {
            return Err(format!("soft TLB mode {:#x}", state.mode));
        }
        let mut tlb = SoftTlb::new();
        tlb.mode = state.mode;
        tlb.fill_mode = state.mode & USER_TAG;
        for (half, entries, write) in [
            (&mut tlb.read, &state.read, false),
            (&mut tlb.write, &state.write, true),
        ] {
            for &(slot, tag, pa) in entries {
                // An entry sits in the slot of its page, tagged with this TLB's modes.
                let fits = (slot as usize) < ENTRIES
                    && tag & !USER_TAG < 1 << 52
                    && (tag & !USER_TAG) as usize % ENTRIES == slot as usize
                    && pa % PAGE_SIZE == 0;
                let host = if fits { ram.host_page(pa, write) } else { None };
                let Some(host) = host else {
                    return Err(format!(
                        "soft TLB entry {slot} (tag {tag:#x}) maps {pa:#x}, not a RAM page"
                    ));
                };
                half[slot as usize] = Entry { tag, host, pa };
            }
        }
        Ok(tlb)
    }
}

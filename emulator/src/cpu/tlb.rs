//! The per-core soft TLB: linear page → host pointer and physical page, split into read and
//! write halves so that code pages (whose stores must be seen) are left out of the write half.
//!
//! Entries are filled after a page walk has checked the access for the current privilege
//! level, so the tag carries that level: a translation checked for ring 0 is never used in
//! ring 3. Reads through a write entry are allowed (a writable page is readable).

use crate::memory::PAGE_SIZE;

const ENTRIES: usize = 256;
/// Tag bit of entries filled at CPL 3 (linear page numbers use at most 36 bits).
const USER_TAG: u64 = 1 << 62;

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
    /// `USER_TAG` while the core runs at CPL 3, else 0.
    mode: u64,
}

// SAFETY: the host pointers point into the machine's `Ram`, which moves with the machine;
// a core is only used together with the `Ram` that filled its TLB.
unsafe impl Send for SoftTlb {}

impl SoftTlb {
    pub fn new() -> Self {
        SoftTlb {
            read: Box::new([EMPTY; ENTRIES]),
            write: Box::new([EMPTY; ENTRIES]),
            mode: 0,
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

    /// Selects the entries of CPL 3 (`true`) or of the supervisor.
    #[inline(always)]
    pub fn set_user(&mut self, user: bool) {
        self.mode = if user { USER_TAG } else { 0 };
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

    /// Physical address of `va`, if its page is in the read half.
    #[inline(always)]
    pub fn physical(&self, va: u64) -> Option<u64> {
        let e = &self.read[Self::slot(va)];
        (e.tag == self.tag(va)).then_some(e.pa | (va & (PAGE_SIZE - 1)))
    }

    pub fn fill_read(&mut self, va: u64, host: *mut u8, pa: u64) {
        let tag = self.tag(va);
        self.read[Self::slot(va)] = Entry {
            tag,
            host,
            pa: pa & !(PAGE_SIZE - 1),
        };
    }

    pub fn fill_write(&mut self, va: u64, host: *mut u8, pa: u64) {
        self.fill_read(va, host, pa);
        let tag = self.tag(va);
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
    }
}

impl Default for SoftTlb {
    fn default() -> Self {
        Self::new()
    }
}

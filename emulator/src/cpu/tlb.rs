//! The per-core soft TLB: linear page → host pointer of the page, split into read and write
//! halves so that code pages (whose stores must be seen) are left out of the write half.

use crate::memory::PAGE_SIZE;

const ENTRIES: usize = 256;

#[derive(Clone, Copy)]
struct Entry {
    /// Linear page number, or `u64::MAX` when empty.
    tag: u64,
    host: *mut u8,
}

const EMPTY: Entry = Entry {
    tag: u64::MAX,
    host: std::ptr::null_mut(),
};

#[derive(Clone)]
pub struct SoftTlb {
    read: Box<[Entry; ENTRIES]>,
    write: Box<[Entry; ENTRIES]>,
}

// SAFETY: the host pointers point into the machine's `Ram`, which moves with the machine;
// a core is only used together with the `Ram` that filled its TLB.
unsafe impl Send for SoftTlb {}

impl SoftTlb {
    pub fn new() -> Self {
        SoftTlb {
            read: Box::new([EMPTY; ENTRIES]),
            write: Box::new([EMPTY; ENTRIES]),
        }
    }

    #[inline(always)]
    fn slot(va: u64) -> usize {
        (va / PAGE_SIZE) as usize % ENTRIES
    }

    #[inline(always)]
    pub fn read(&self, va: u64) -> Option<*mut u8> {
        let e = &self.read[Self::slot(va)];
        (e.tag == va / PAGE_SIZE).then_some(e.host)
    }

    #[inline(always)]
    pub fn write(&self, va: u64) -> Option<*mut u8> {
        let e = &self.write[Self::slot(va)];
        (e.tag == va / PAGE_SIZE).then_some(e.host)
    }

    pub fn fill_read(&mut self, va: u64, host: *mut u8) {
        self.read[Self::slot(va)] = Entry {
            tag: va / PAGE_SIZE,
            host,
        };
    }

    pub fn fill_write(&mut self, va: u64, host: *mut u8) {
        self.fill_read(va, host);
        self.write[Self::slot(va)] = Entry {
            tag: va / PAGE_SIZE,
            host,
        };
    }

    pub fn flush_write(&mut self) {
        self.write.fill(EMPTY);
    }

    pub fn flush_page_write(&mut self, va: u64) {
        let e = &mut self.write[Self::slot(va)];
        if e.tag == va / PAGE_SIZE {
            *e = EMPTY;
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

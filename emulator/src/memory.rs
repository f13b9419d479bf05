//! Guest RAM: one vm-memory region per NUMA node, anonymous and `MAP_NORESERVE`, so the host
//! only backs the pages a guest touches.
//!
//! This module is the one place that names the vm-memory backend (Firecracker's
//! `vstate/memory.rs` pattern); everything else goes through [`Ram`] or `Bytes<GuestAddress>`.

pub use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use vm_memory::GuestMemoryMmap;

/// Size of a page of the host-translation caches.
pub const PAGE_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot map {len:#x} bytes of guest RAM at {base:#x}")]
    Map {
        base: u64,
        len: u64,
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
}

/// A RAM range of one node, half-open: `[base, base + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRange {
    pub base: u64,
    pub len: u64,
    pub node: u32,
}

impl RamRange {
    pub fn end(&self) -> u64 {
        self.base + self.len
    }
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }
}

/// The machine's RAM.
pub struct Ram {
    mem: GuestMemoryMmap,
    ranges: Vec<RamRange>,
    /// Host address of each range's first byte, parallel to `ranges`.
    hosts: Vec<*mut u8>,
    /// One bit per page of each range, parallel to `ranges`: set once the page may have been
    /// written, so that hashing and checkpoints visit only what the guest touched.
    written: Vec<Vec<u64>>,
}

// SAFETY: the host pointers point into mappings owned by `mem`, which lives as long as `Ram`;
// a `Ram` is only ever used from one thread at a time (it is moved, never shared).
unsafe impl Send for Ram {}

impl Ram {
    /// Maps the given ranges (sorted, disjoint, page-aligned).
    pub fn new(ranges: &[RamRange]) -> Result<Self, MemoryError> {
        let mut sorted = ranges.to_vec();
        sorted.sort_by_key(|r| r.base);
        let list: Vec<(GuestAddress, usize)> = sorted
            .iter()
            .map(|r| (GuestAddress(r.base), r.len as usize))
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&list).map_err(|source| MemoryError::Map {
            base: sorted.first().map_or(0, |r| r.base),
            len: sorted.iter().map(|r| r.len).sum(),
            source,
        })?;
        let hosts = sorted
            .iter()
            .map(|r| {
                mem.get_host_address(GuestAddress(r.base))
                    .expect("a range just mapped has a host address")
            })
            .collect();
        let written = sorted
            .iter()
            .map(|r| vec![0u64; (r.len / PAGE_SIZE).div_ceil(64) as usize])
            .collect();
        Ok(Ram {
            mem,
            ranges: sorted,
            hosts,
            written,
        })
    }

    /// The memory as vm-memory `Bytes`, for the cold paths (loader, tables).
    pub fn bytes(&self) -> &impl Bytes<GuestAddress, E = vm_memory::GuestMemoryError> {
        &self.mem
    }

    pub fn ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    /// The node whose RAM holds `addr`.
    pub fn node_of(&self, addr: u64) -> Option<u32> {
        self.ranges
            .iter()
            .find(|r| r.contains(addr))
            .map(|r| r.node)
    }

    /// Host pointer to the start of the 4 KiB page holding `addr`, if it is RAM.
    ///
    /// This is the one accessor that hands out raw host pointers: the CPU caches them per page
    /// (its soft TLB) and reads and writes through them on its hot path. Pointers stay valid as
    /// long as this `Ram` lives and are never used past `PAGE_SIZE` bytes.
    /// `write` records that the page may now change.
    pub fn host_page(&mut self, addr: u64, write: bool) -> Option<*mut u8> {
        let page = addr & !(PAGE_SIZE - 1);
        let i = self.ranges.iter().position(|r| r.contains(page))?;
        let n = ((page - self.ranges[i].base) / PAGE_SIZE) as usize;
        if write {
            self.written[i][n / 64] |= 1 << (n % 64);
        }
        // SAFETY: `page` lies inside range i, so the offset stays inside its mapping.
        Some(unsafe { self.hosts[i].add((page - self.ranges[i].base) as usize) })
    }

    fn mark_written(&mut self, addr: u64, len: usize) {
        let mut page = addr & !(PAGE_SIZE - 1);
        while page < addr + len as u64 {
            let _ = self.host_page(page, true);
            page += PAGE_SIZE;
        }
    }

    /// Reads guest bytes (cold path); `None` if any byte is outside RAM.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        self.mem.read_slice(buf, GuestAddress(addr)).ok()
    }

    /// Writes guest bytes (cold path); `None` if any byte is outside RAM.
    pub fn write(&mut self, addr: u64, buf: &[u8]) -> Option<()> {
        self.mem.write_slice(buf, GuestAddress(addr)).ok()?;
        self.mark_written(addr, buf.len());
        Some(())
    }

    /// Calls `f` with each page of RAM that is not all zero, in address order (pages never
    /// written are zero and are skipped without being read).
    pub fn for_each_nonzero_page(&self, mut f: impl FnMut(u64, &[u8])) {
        for ((r, &host), bits) in self.ranges.iter().zip(&self.hosts).zip(&self.written) {
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let n = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    let off = n as u64 * PAGE_SIZE;
                    // SAFETY: page n of range r lies inside its mapping.
                    let page = unsafe {
                        std::slice::from_raw_parts(host.add(off as usize), PAGE_SIZE as usize)
                    };
                    if page.iter().any(|&b| b != 0) {
                        f(r.base + off, page);
                    }
                }
            }
        }
    }
}

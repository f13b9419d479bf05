//! Typed access to the BootInfo the loader passes in `rdi` (DESIGN.md §3.1).

use abi::{BootInfo, CoreInfo, MemRange, Module};

/// What a core knows at entry: the machine's BootInfo and its own index.
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    info: &'static BootInfo,
    core: usize,
}

impl Boot {
    /// # Safety
    /// `info` must point to a BootInfo whose magic and version were checked, and whose tables
    /// stay valid and unchanged for the rest of the run (the loader's promise).
    pub(crate) unsafe fn new(info: *const BootInfo, core: usize) -> Boot {
        // SAFETY: the caller's contract.
        let info = unsafe { &*info };
        Boot { info, core }
    }

    /// This core's index into [`cores`](Self::cores).
    pub fn core(&self) -> usize {
        self.core
    }

    pub fn info(&self) -> &'static BootInfo {
        self.info
    }

    pub fn ncores(&self) -> usize {
        self.info.ncores as usize
    }

    pub fn nnodes(&self) -> usize {
        self.info.nnodes as usize
    }

    pub fn cores(&self) -> &'static [CoreInfo] {
        // SAFETY: the loader places `ncores` entries at `cores` (DESIGN.md §3.1).
        unsafe { table(self.info.cores, self.info.ncores as usize) }
    }

    pub fn ranges(&self) -> &'static [MemRange] {
        // SAFETY: as for `cores`.
        unsafe { table(self.info.ranges, self.info.nranges as usize) }
    }

    pub fn modules(&self) -> &'static [Module] {
        // SAFETY: as for `cores`.
        unsafe { table(self.info.modules, self.info.nmodules as usize) }
    }

    /// `nnodes * nnodes` SLIT-style distances, row = from node, column = to node.
    pub fn distances(&self) -> &'static [u8] {
        let n = self.nnodes();
        // SAFETY: as for `cores`.
        unsafe { table(self.info.distances, n * n) }
    }

    /// The command line; empty when it is not valid UTF-8.
    pub fn cmdline(&self) -> &'static str {
        // SAFETY: as for `cores`.
        let bytes = unsafe { table::<u8>(self.info.cmdline, self.info.cmdline_len as usize) };
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// The contents of a boot module.
    pub fn module_bytes(&self, module: &Module) -> &'static [u8] {
        // SAFETY: as for `cores`.
        unsafe { table(module.base, module.len as usize) }
    }
}

/// # Safety
/// `len` initialised `T`s live at `addr` for the rest of the run.
unsafe fn table<T>(addr: u64, len: usize) -> &'static [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract; memory is identity-mapped.
    unsafe { core::slice::from_raw_parts(addr as *const T, len) }
}

//! The x86-64 cores (DESIGN.md §2.2): architectural state, memory access through a per-core
//! soft TLB, and the block interpreter.
//!
//! Instruction semantics live in `ops/`, one file per family, each citing the section of the
//! Intel SDM (Vol. 2) it follows. Guest exceptions are values ([`Fault`]) separate from the
//! emulator's own errors.

pub mod debug;
pub mod decode;
pub mod flags;
pub mod interrupt;
pub mod operand;
mod ops;
pub mod paging;
pub mod persist;
pub mod tlb;

use crate::memory::{PAGE_SIZE, Ram};
use decode::CodeCache;
use iced_x86::Instruction;
use paging::Access;
use serde::{Deserialize, Serialize};
use tlb::SoftTlb;

pub use flags::*;

/// A guest exception raised by an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error_code: Option<u32>,
    /// A valid instruction that pvmlab does not implement, or one that would enter a mode
    /// pvmlab does not model (raised as #UD); `missing` says which.
    pub unimplemented: bool,
    /// What is not implemented, when `unimplemented`.
    pub missing: Missing,
}

/// What a #UD marked `unimplemented` stands for: what the report names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The instruction itself.
    Instruction,
    /// Compatibility mode: the instruction would run code of a segment with L = 0.
    CompatibilityMode,
}

impl Missing {
    /// How reports name it, when it is not the instruction itself.
    pub fn describe(self) -> Option<&'static str> {
        match self {
            Missing::Instruction => None,
            Missing::CompatibilityMode => Some("compatibility mode (a code segment with L = 0)"),
        }
    }
}

// Exception vectors (SDM Vol. 3A §6.3.1). The three whose mnemonics clash with RFLAGS bits
// (PF, DF, AC) are spelled out.
pub const DE: u8 = 0;
pub const DB: u8 = 1;
pub const BP: u8 = 3;
pub const UD: u8 = 6;
pub const NM: u8 = 7;
pub const DOUBLE_FAULT: u8 = 8;
pub const GP: u8 = 13;
pub const PAGE_FAULT: u8 = 14;
pub const MF: u8 = 16;
pub const ALIGN_CHECK: u8 = 17;
pub const MACHINE_CHECK: u8 = 18;
pub const XM: u8 = 19;

impl Fault {
    pub const fn new(vector: u8) -> Self {
        Fault {
            vector,
            error_code: None,
            unimplemented: false,
            missing: Missing::Instruction,
        }
    }
    pub const fn with_code(vector: u8, code: u32) -> Self {
        Fault {
            vector,
            error_code: Some(code),
            unimplemented: false,
            missing: Missing::Instruction,
        }
    }
    /// The #UD of something pvmlab does not implement (status 127 without an IDT).
    pub const fn not_implemented(missing: Missing) -> Self {
        Fault {
            vector: UD,
            error_code: None,
            unimplemented: true,
            missing,
        }
    }
    /// The mnemonic of the exception, as the SDM names it.
    pub fn name(&self) -> &'static str {
        match self.vector {
            DE => "#DE divide error",
            DB => "#DB debug",
            BP => "#BP breakpoint",
            4 => "#OF overflow",
            5 => "#BR bound range",
            UD => "#UD invalid opcode",
            NM => "#NM device not available",
            DOUBLE_FAULT => "#DF double fault",
            10 => "#TS invalid TSS",
            11 => "#NP segment not present",
            12 => "#SS stack fault",
            GP => "#GP general protection",
            PAGE_FAULT => "#PF page fault",
            MF => "#MF x87 floating-point error",
            ALIGN_CHECK => "#AC alignment check",
            MACHINE_CHECK => "#MC machine check (no RAM at that physical address)",
            XM => "#XM SIMD floating-point exception",
            _ => "exception",
        }
    }
}

/// Why an instruction stopped the core's block loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An exception; the instruction did not retire and `rip` points at it. Returned by the
    /// block loop only when no IDT is installed (the run ends with a report).
    Fault(Fault),
    /// A triple fault: the exception and #DF could not be delivered (real machines reset).
    Shutdown(Fault),
    /// `hlt`: the core waits (or stops for good with interrupts off).
    Halt,
    /// `out 0xF4`: the run ends with this value.
    Exit(u32),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Stop::Fault(f)
    }
}

pub type Result<T, E = Stop> = std::result::Result<T, E>;

/// Whether a core runs, waits for an interrupt, or has stopped for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    Running,
    /// `hlt` with interrupts enabled: woken by an interrupt.
    Waiting,
    /// `hlt` with interrupts disabled, or a core never started.
    Stopped,
}

/// A descriptor-table register (GDTR/IDTR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReg {
    pub base: u64,
    pub limit: u16,
}

/// One core's architectural state.
/// Checkpoints save every field through serde (`persist`), except the soft TLB, whose host
/// pointers are rebuilt from its translations.
#[derive(Clone, Serialize, Deserialize)]
pub struct Core {
    pub index: u32,
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub fs_base: u64,
    pub gs_base: u64,
    pub kernel_gs_base: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// DR0–DR3, DR6, DR7 and the breakpoints they enable.
    pub dbg: debug::DebugRegs,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    /// Code and stack segment selectors; CS's low two bits are the CPL.
    pub cs: u16,
    pub ss: u16,
    /// Data segment selectors: loaded and stored, without effect on addressing in 64-bit
    /// mode (FS/GS bases come from the MSRs).
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    /// Task register: selector and the TSS base it loaded (RSP0–2, IST1–7).
    pub tr: u16,
    pub tss_base: u64,
    /// Interrupts are held off until the instruction after `sti` / a load of SS has run.
    pub shadow: bool,
    pub tsc_aux: u64,
    /// SYSCALL/SYSRET MSRs (STAR, LSTAR, CSTAR, FMASK).
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub fmask: u64,
    /// Local cycle count.
    pub cycles: u64,
    /// The TSC less `cycles` (wrapping): 0 until `wrmsr` of IA32_TSC moves the TSC
    /// ([`tsc`](Self::tsc)).
    pub tsc_offset: u64,
    /// Retired instructions.
    pub instret: u64,
    pub state: RunState,
    /// Cycles the clock jumped over while the core was halted or waiting to be started
    /// (included in `cycles`).
    pub halted_cycles: u64,
    /// The local APIC (x2APIC mode).
    pub apic: crate::apic::LocalApic,
    /// #UDs of things pvmlab does not implement that went to the image's #UD handler (an IDT
    /// was loaded), where silicon that lacks them would also raise #UD; and the first
    /// instance of each, in the order they came (`note_unimplemented`).
    pub unimplemented_ud: u64,
    pub unimplemented_first: Vec<UnimplementedUd>,
    /// x2APIC id, socket and node, as BootInfo reports them.
    pub apic_id: u32,
    pub socket: u32,
    pub node: u32,
    #[serde(skip)]
    pub(crate) tlb: SoftTlb,
    /// `Sys::code_epoch` when the write TLB was last checked against code pages.
    pub(crate) code_epoch: u64,
}

/// The first #UD a core delivered for one unimplemented instruction (or mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnimplementedUd {
    /// The instruction's mnemonic, or the mode ([`Missing::describe`]).
    pub what: String,
    pub rip: u64,
    /// The core's retired-instruction count then.
    pub instret: u64,
}

/// State shared by all cores: RAM, which pages hold decoded code, the port devices.
pub struct Sys {
    pub ram: Ram,
    /// Physical pages holding decoded instructions, one bit per page of the physical space.
    code_pages: Vec<u64>,
    /// Bumped whenever a page becomes a code page, so cores drop stale write translations.
    pub(crate) code_epoch: u64,
    /// Code pages written since the block loop last looked.
    pub(crate) written_code: Vec<u64>,
    /// Set by anything that must end the current block after this instruction.
    pub(crate) end_block: bool,
    pub io: crate::devices::Ports,
    pub cpuid: CpuidInfo,
    /// The cache/memory/interconnect model; `None` in functional mode (fixed latencies).
    pub timing: Option<Box<crate::timing::TimingModel>>,
    /// IPIs written by the running core, routed by the machine after its quantum.
    pub apic_outbox: Vec<crate::apic::Ipi>,
    /// What each core announced it runs (annotation port), and the work charged to domains.
    pub domains: crate::domains::Domains,
    /// Memory-mapped devices, the wires behind them and their event queue.
    pub bus: crate::mmio::Bus,
}

/// What `cpuid` reports about the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuidInfo {
    pub ncores: u32,
    /// Largest core count of any socket (leaf 0xB level 1).
    pub cores_per_socket: u32,
    pub tsc_hz: u64,
}

impl Sys {
    pub fn new(ram: Ram, io: crate::devices::Ports, cpuid: CpuidInfo) -> Self {
        let top = ram.ranges().iter().map(|r| r.end()).max().unwrap_or(0);
        let pages = top.div_ceil(PAGE_SIZE) as usize;
        let ncores = cpuid.ncores as usize;
        Sys {
            ram,
            code_pages: vec![0; pages.div_ceil(64)],
            code_epoch: 0,
            written_code: Vec::new(),
            end_block: false,
            io,
            cpuid,
            timing: None,
            apic_outbox: Vec::new(),
            domains: crate::domains::Domains::new(ncores),
            bus: crate::mmio::Bus::default(),
        }
    }

    pub(crate) fn is_code_page(&self, page: u64) -> bool {
        let n = page as usize;
        self.code_pages
            .get(n / 64)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    pub(crate) fn set_code_page(&mut self, page: u64, on: bool) {
        let n = page as usize;
        if let Some(w) = self.code_pages.get_mut(n / 64) {
            if on {
                if *w & (1 << (n % 64)) == 0 {
                    *w |= 1 << (n % 64);
                    self.code_epoch += 1;
                }
            } else {
                *w &= !(1 << (n % 64));
            }
        }
    }
}

impl Core {
    pub fn new(index: u32, apic_id: u32, socket: u32, node: u32) -> Self {
        Core {
            index,
            gpr: [0; 16],
            rip: 0,
            rflags: RFLAGS_FIXED,
            xmm: [0; 16],
            mxcsr: MXCSR_DEFAULT,
            fs_base: 0,
            gs_base: 0,
            kernel_gs_base: 0,
            cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
            cr2: 0,
            cr3: 0,
            cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
            efer: EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE,
            dbg: debug::DebugRegs::default(),
            gdtr: TableReg::default(),
            idtr: TableReg::default(),
            cs: 0x08,
            ss: 0x10,
            ds: 0x10,
            es: 0x10,
            fs: 0x10,
            gs: 0x10,
            tr: 0,
            tss_base: 0,
            shadow: false,
            tsc_aux: index as u64,
            star: 0,
            lstar: 0,
            cstar: 0,
            fmask: 0,
            cycles: 0,
            tsc_offset: 0,
            instret: 0,
            state: RunState::Stopped,
            halted_cycles: 0,
            unimplemented_ud: 0,
            unimplemented_first: Vec::new(),
            apic: crate::apic::LocalApic::new(apic_id, index == 0),
            apic_id,
            socket,
            node,
            tlb: SoftTlb::new(),
            code_epoch: 0,
        }
    }

    // ---- memory -------------------------------------------------------------------------

    /// The access rights an access of the current privilege level asks for.
    #[inline(always)]
    fn access(&self, write: bool, fetch: bool) -> Access {
        Access {
            write,
            fetch,
            user: self.cpl() == 3,
        }
    }

    /// Raises `f`, recording CR2 for page faults.
    #[inline]
    fn raise(&mut self, f: Fault, va: u64) -> Stop {
        if f.vector == PAGE_FAULT {
            self.cr2 = va;
        }
        Stop::Fault(f)
    }

    /// A soft-TLB miss for a load of `len` bytes (0: a translation, not an access): walks,
    /// then fills the TLB for RAM; a device window is never cached (`Fill::Mmio`), so every
    /// access to it comes here and reaches the device. Neither is a page holding a data
    /// breakpoint on reads, so every access to it comes here to be checked (`debug`).
    #[cold]
    fn fill_read_any(&mut self, sys: &mut Sys, va: u64, len: u64) -> Result<Fill> {
        if self.tlb.align_checking() {
            // Every data access misses while alignment checking is on: check it, then use
            // the translation the soft TLB may hold (a page with a data breakpoint is never
            // in it, and MMIO never is).
            if let Some(ac) = self.alignment_fault(va, len) {
                return Err(ac);
            }
            if let Some(h) = self.tlb.read_slow(va) {
                return Ok(Fill::Ram(h));
            }
        }
        let acc = self.access(false, false);
        let pa = self
            .translate(sys, va, acc)
            .map_err(|f| self.raise(f, va))?;
        let watched = self.dbg.watches_reads(va);
        if watched && len != 0 {
            self.dbg.data_access(va, len, false);
        }
        let Some(host) = sys.ram.host_page(pa, false) else {
            return if sys.bus.is_mmio(pa) {
                Ok(Fill::Mmio(pa))
            } else {
                Err(Stop::Fault(Fault::new(MACHINE_CHECK)))
            };
        };
        if watched {
            self.tlb.set_uncached(va, pa);
        } else {
            self.tlb.fill_read(va, host, pa);
        }
        Ok(Fill::Ram(host))
    }

    /// [`fill_read_any`](Self::fill_read_any) for callers that move RAM through host
    /// pointers (string instructions): null for a device window or a page holding a data
    /// breakpoint, which they then access element by element through `load`/`store`.
    #[cold]
    fn fill_read(&mut self, sys: &mut Sys, va: u64) -> Result<*mut u8> {
        Ok(match self.fill_read_any(sys, va, 0)? {
            Fill::Ram(h) if !self.dbg.watches_reads(va) && !self.tlb.align_checking() => h,
            _ => std::ptr::null_mut(),
        })
    }

    /// [`fill_write_any`](Self::fill_write_any) as [`fill_read`](Self::fill_read) is to
    /// [`fill_read_any`](Self::fill_read_any). Both give null while alignment checking is on,
    /// so that every element is checked.
    #[cold]
    fn fill_write(&mut self, sys: &mut Sys, va: u64) -> Result<*mut u8> {
        Ok(match self.fill_write_any(sys, va, 0)? {
            Fill::Ram(h) if !self.dbg.watches_writes(va) && !self.tlb.align_checking() => h,
            _ => std::ptr::null_mut(),
        })
    }

    /// #AC(0) for a data access of `len` bytes at `va` that is not aligned to its size, while
    /// alignment checking is on (CR0.AM = 1, RFLAGS.AC = 1, CPL 3; SDM Vol. 3A §6.15,
    /// interrupt 17, Table 6-7). Accesses of 2, 4 and 8 bytes are checked, each at its own
    /// size (as Bochs does; `sgdt`'s limit and base are two accesses); 16-byte ones are not
    /// (the SDM leaves #AC for unaligned 128-bit SSE accesses to the implementation; the
    /// aligned forms raise #GP(0) first). A non-canonical access is left to the #GP(0)/#SS(0)
    /// the translation raises, which comes first (the canonical check is part of the segment
    /// checks that precede alignment on silicon).
    #[cold]
    #[inline(never)]
    fn alignment_fault(&self, va: u64, len: u64) -> Option<Stop> {
        if !matches!(len, 2 | 4 | 8) || va & (len - 1) == 0 {
            return None;
        }
        let canonical = paging::canonical(va) && paging::canonical(va.wrapping_add(len - 1));
        canonical.then_some(Stop::Fault(Fault::with_code(ALIGN_CHECK, 0)))
    }

    /// An MMIO load of `size_of::<T>()` bytes: the core stalls for the device's round trip.
    #[cold]
    #[inline(never)]
    fn mmio_load<T: Scalar>(&mut self, sys: &mut Sys, pa: u64) -> Result<T> {
        let (v, stall) = sys
            .bus
            .read(pa, size_of::<T>() as u64, self.socket)
            .map_err(Stop::Fault)?;
        self.cycles += stall;
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&v.to_le_bytes());
        // SAFETY: T is a plain integer type of at most 16 bytes (Scalar); the bus accepted
        // at most 8.
        Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
    }

    /// An MMIO store of `size_of::<T>()` bytes: posted, the device sees it a little later.
    #[cold]
    #[inline(never)]
    fn mmio_store<T: Scalar>(&mut self, sys: &mut Sys, pa: u64, v: T) -> Result<()> {
        let mut buf = [0u8; 16];
        // SAFETY: T is a plain integer type of at most 16 bytes (Scalar).
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr() as *mut T, v) };
        let value = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        sys.bus
            .write(pa, size_of::<T>() as u64, value, self.cycles, self.socket)
            .map_err(Stop::Fault)
    }

    /// A soft-TLB miss for a store of `len` bytes (0: a translation, not an access), as
    /// [`fill_read_any`](Self::fill_read_any) is for loads; pages holding code or a data
    /// breakpoint stay out of the write half.
    #[cold]
    fn fill_write_any(&mut self, sys: &mut Sys, va: u64, len: u64) -> Result<Fill> {
        if self.tlb.align_checking() {
            // As in `fill_read_any`: a page holding code or a data breakpoint is never in the
            // write half.
            if let Some(ac) = self.alignment_fault(va, len) {
                return Err(ac);
            }
            if let Some(h) = self.tlb.write_slow(va) {
                return Ok(Fill::Ram(h));
            }
        }
        let acc = self.access(true, false);
        let pa = self
            .translate(sys, va, acc)
            .map_err(|f| self.raise(f, va))?;
        let watched = self.dbg.watches_writes(va);
        if watched && len != 0 {
            self.dbg.data_access(va, len, true);
        }
        let Some(host) = sys.ram.host_page(pa, true) else {
            return if sys.bus.is_mmio(pa) {
                Ok(Fill::Mmio(pa))
            } else {
                Err(Stop::Fault(Fault::new(MACHINE_CHECK)))
            };
        };
        if sys.is_code_page(pa / PAGE_SIZE) {
            // Self-modifying code: never cache the translation, so every store to this page
            // comes here and invalidates the blocks decoded from it.
            if !sys.written_code.contains(&(pa / PAGE_SIZE)) {
                sys.written_code.push(pa / PAGE_SIZE);
            }
            sys.end_block = true;
            self.tlb.set_uncached(va, pa);
        } else if watched {
            // Writes are checked here; reads only if a breakpoint watches them too.
            if !self.dbg.watches_reads(va) {
                self.tlb.fill_read(va, host, pa);
            }
            self.tlb.set_uncached(va, pa);
        } else {
            self.tlb.fill_write(va, host, pa);
        }
        Ok(Fill::Ram(host))
    }

    /// Charges the timing model for an access of `len` bytes at `va` (within one page, already
    /// translated), one call per cache line touched.
    #[cold]
    #[inline(never)]
    pub(crate) fn timed(&mut self, sys: &mut Sys, va: u64, len: u64, write: bool) {
        let Some(t) = sys.timing.as_deref_mut() else {
            return;
        };
        // The page was just translated, so its entry is in the soft TLB: the read half, the
        // write half for a store whose read entry another page has evicted, or the last
        // translation left uncached (a code page stored to, a page with a data breakpoint).
        let pa = self.tlb.physical_any(va).unwrap_or(va);
        let mut line = pa & !63;
        let end = pa + len;
        while line < end {
            let stall = t.access(self.index, self.cycles, line, write);
            self.cycles += stall;
            line += 64;
        }
    }

    /// Reads guest bytes at linear `va` with the current privilege's rights, without faulting
    /// or touching CR2 (for device protocols that ignore bad arguments). False if any byte is
    /// not readable.
    pub fn peek(&mut self, sys: &mut Sys, va: u64, buf: &mut [u8]) -> bool {
        let acc = self.access(false, false);
        for (i, b) in buf.iter_mut().enumerate() {
            let a = va.wrapping_add(i as u64);
            let Ok(pa) = self.translate(sys, a, acc) else {
                return false;
            };
            let mut one = [0u8; 1];
            if sys.ram.read(pa, &mut one).is_none() {
                return false;
            }
            *b = one[0];
        }
        true
    }

    /// This core's cumulative counters, as domains are charged with them.
    pub fn domain_counters(&self, sys: &Sys) -> crate::domains::DomainCounters {
        // Busy cycles: time a halted core's clock jumped over is nobody's work.
        crate::domains::DomainCounters::of_core(
            self.cycles - self.halted_cycles,
            self.instret,
            self.index,
            self.node,
            sys.timing.as_deref(),
        )
    }

    /// Checks that `len` bytes at `va` can be written, without writing (for instructions that
    /// must fault before changing any state).
    pub fn probe_write(&mut self, sys: &mut Sys, va: u64, len: u64) -> Result<()> {
        let acc = self.access(true, false);
        self.translate(sys, va, acc)
            .map_err(|f| self.raise(f, va))?;
        let last = va.wrapping_add(len - 1);
        self.translate(sys, last, acc)
            .map_err(|f| self.raise(f, last))?;
        Ok(())
    }

    /// Reads a little-endian value of `size_of::<T>()` bytes.
    #[inline(always)]
    pub fn load<T: Scalar>(&mut self, sys: &mut Sys, va: u64) -> Result<T> {
        let off = (va & (PAGE_SIZE - 1)) as usize;
        if off + size_of::<T>() <= PAGE_SIZE as usize {
            let host = match self.tlb.read(va) {
                Some(h) => h,
                None => match self.fill_read_any(sys, va, size_of::<T>() as u64)? {
                    Fill::Ram(h) => h,
                    Fill::Mmio(pa) => return self.mmio_load(sys, pa),
                },
            };
            if sys.timing.is_some() {
                self.timed(sys, va, size_of::<T>() as u64, false);
            }
            // SAFETY: `host` is the start of a mapped 4 KiB page (Ram::host_page), and
            // off + size_of::<T>() <= 4096; reads are unaligned-safe.
            return Ok(unsafe { std::ptr::read_unaligned(host.add(off) as *const T) });
        }
        self.load_split(sys, va)
    }

    #[cold]
    fn load_split<T: Scalar>(&mut self, sys: &mut Sys, va: u64) -> Result<T> {
        // An access that straddles two pages is never aligned to its size.
        if self.tlb.align_checking()
            && let Some(ac) = self.alignment_fault(va, size_of::<T>() as u64)
        {
            return Err(ac);
        }
        let mut buf = [0u8; 16];
        for (i, b) in buf[..size_of::<T>()].iter_mut().enumerate() {
            *b = self.load::<u8>(sys, va.wrapping_add(i as u64))?;
        }
        // SAFETY: T is a plain integer type of at most 16 bytes (Scalar).
        Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
    }

    /// Writes a little-endian value of `size_of::<T>()` bytes. A store that straddles two
    /// pages checks both before writing either.
    #[inline(always)]
    pub fn store<T: Scalar>(&mut self, sys: &mut Sys, va: u64, v: T) -> Result<()> {
        let off = (va & (PAGE_SIZE - 1)) as usize;
        if off + size_of::<T>() <= PAGE_SIZE as usize {
            let host = match self.tlb.write(va) {
                Some(h) => h,
                None => match self.fill_write_any(sys, va, size_of::<T>() as u64)? {
                    Fill::Ram(h) => h,
                    Fill::Mmio(pa) => return self.mmio_store(sys, pa, v),
                },
            };
            if sys.timing.is_some() {
                self.timed(sys, va, size_of::<T>() as u64, true);
            }
            // SAFETY: as in `load`, within one mapped page.
            unsafe { std::ptr::write_unaligned(host.add(off) as *mut T, v) };
            return Ok(());
        }
        self.store_split(sys, va, v)
    }

    #[cold]
    fn store_split<T: Scalar>(&mut self, sys: &mut Sys, va: u64, v: T) -> Result<()> {
        if self.tlb.align_checking()
            && let Some(ac) = self.alignment_fault(va, size_of::<T>() as u64)
        {
            return Err(ac);
        }
        self.probe_write(sys, va, size_of::<T>() as u64)?;
        let mut buf = [0u8; 16];
        // SAFETY: T is a plain integer type of at most 16 bytes (Scalar).
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr() as *mut T, v) };
        for (i, &b) in buf[..size_of::<T>()].iter().enumerate() {
            self.store::<u8>(sys, va.wrapping_add(i as u64), b)?;
        }
        Ok(())
    }

    /// Reads instruction bytes for the decoder: as many as are readable up to `buf.len()`,
    /// stopping at the first byte that is not. Errors only if the first byte faults.
    pub(crate) fn fetch(&mut self, sys: &mut Sys, va: u64, buf: &mut [u8]) -> Result<usize, Fault> {
        let acc = self.access(false, true);
        let mut n = 0;
        while n < buf.len() {
            let a = va.wrapping_add(n as u64);
            let got = self.translate(sys, a, acc).and_then(|pa| {
                let room = (PAGE_SIZE - (pa & (PAGE_SIZE - 1))) as usize;
                let take = room.min(buf.len() - n);
                sys.ram
                    .read(pa, &mut buf[n..n + take])
                    .map(|_| take)
                    .ok_or(Fault::new(MACHINE_CHECK))
            });
            match got {
                Ok(take) => n += take,
                Err(f) if n == 0 => {
                    if f.vector == PAGE_FAULT {
                        self.cr2 = a;
                    }
                    return Err(f);
                }
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Translates `va` for an instruction fetch and caches it in the read half of the soft
    /// TLB (a page that may be executed may be read: x86 has no execute-only pages), so that
    /// the code cache finds the block's physical address without a walk next time.
    #[cold]
    pub(crate) fn fill_fetch(&mut self, sys: &mut Sys, va: u64) -> Result<u64, Fault> {
        let acc = self.access(false, true);
        let pa = self.translate(sys, va, acc).inspect_err(|f| {
            if f.vector == PAGE_FAULT {
                self.cr2 = va;
            }
        })?;
        let host = sys
            .ram
            .host_page(pa, false)
            .ok_or(Fault::new(MACHINE_CHECK))?;
        // A page with a data breakpoint on reads stays out (fetches are not data reads).
        if !self.dbg.watches_reads(va) {
            self.tlb.fill_read(va, host, pa);
        }
        Ok(pa)
    }

    /// Physical address of an instruction byte (for the code cache).
    pub(crate) fn code_physical(&mut self, sys: &mut Sys, va: u64) -> Option<u64> {
        let acc = self.access(false, true);
        self.translate(sys, va, acc).ok()
    }

    // ---- stack --------------------------------------------------------------------------

    #[inline(always)]
    pub fn push64(&mut self, sys: &mut Sys, v: u64) -> Result<()> {
        let sp = self.gpr[RSP].wrapping_sub(8);
        self.store::<u64>(sys, sp, v)?;
        self.gpr[RSP] = sp;
        Ok(())
    }

    #[inline(always)]
    pub fn pop64(&mut self, sys: &mut Sys) -> Result<u64> {
        let v = self.load::<u64>(sys, self.gpr[RSP])?;
        self.gpr[RSP] = self.gpr[RSP].wrapping_add(8);
        Ok(v)
    }

    /// Current privilege level: the RPL of CS (SDM Vol. 3A §5.5).
    #[inline(always)]
    pub fn cpl(&self) -> u8 {
        (self.cs & 3) as u8
    }

    /// Loads CS and SS (privilege changes), switching the soft TLB to that level's entries.
    pub fn set_segments(&mut self, cs: u16, ss: u16) {
        self.cs = cs;
        self.ss = ss;
        self.sync_tlb_mode();
    }

    /// Points the soft TLB at the entries of the current privilege level, and turns alignment
    /// checking on or off: it is on at CPL 3 with CR0.AM = 1 and RFLAGS.AC = 1 (SDM Vol. 3A
    /// §6.15, interrupt 17), and then every data access takes the TLB's slow path, where it
    /// is checked (`alignment_fault`). Called whenever the CPL, CR0.AM or RFLAGS.AC changes.
    pub fn sync_tlb_mode(&mut self) {
        let user = self.cs & 3 == 3;
        let align = user && self.cr0 & CR0_AM != 0 && self.rflags & AC != 0;
        self.tlb.set_mode(user, align);
    }

    /// The time-stamp counter (`rdtsc`, IA32_TSC, the TSC-deadline timer): the cycle count
    /// plus the offset a write of IA32_TSC set, wrapping as a 64-bit counter.
    #[inline]
    pub fn tsc(&self) -> u64 {
        self.cycles.wrapping_add(self.tsc_offset)
    }

    /// Counts a "not implemented" #UD about to be delivered to the image's #UD handler and
    /// records the first of its kind (the mnemonic, or the mode it would enter), for the run
    /// report and `pvmlab exec`'s warning.
    #[cold]
    #[inline(never)]
    pub(crate) fn note_unimplemented(&mut self, ins: &Instruction, f: Fault) {
        self.unimplemented_ud = self.unimplemented_ud.saturating_add(1);
        let what = match f.missing.describe() {
            Some(mode) => mode.to_string(),
            None => format!("{:?}", ins.mnemonic()).to_lowercase(),
        };
        if !self.unimplemented_first.iter().any(|u| u.what == what) {
            self.unimplemented_first.push(UnimplementedUd {
                what,
                rip: ins.ip(),
                instret: self.instret,
            });
        }
    }
}

/// Register indices into `Core::gpr`.
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSP: usize = 4;
pub const RBP: usize = 5;
pub const RSI: usize = 6;
pub const RDI: usize = 7;

/// Where a soft-TLB miss found its page.
enum Fill {
    /// RAM, at this host address (now in the soft TLB).
    Ram(*mut u8),
    /// A device window, at this physical address (never cached).
    Mmio(u64),
}

/// Integer types the memory path moves: plain little-endian bytes.
pub trait Scalar: Copy + 'static {}
impl Scalar for u8 {}
impl Scalar for u16 {}
impl Scalar for u32 {}
impl Scalar for u64 {}
impl Scalar for u128 {}

/// Runs one core until its block loop stops: a fault, `hlt`, an exit, or `budget` retired
/// instructions. Returns the stop, if any.
pub fn run(core: &mut Core, sys: &mut Sys, cache: &mut CodeCache, budget: u64) -> Option<Stop> {
    run_until(core, sys, cache, budget, u64::MAX)
}

/// [`run`], and the core also stops at a block boundary once its clock reaches
/// `cycle_limit`, so that the schedule can interleave cores by simulated time.
pub fn run_until(
    core: &mut Core,
    sys: &mut Sys,
    cache: &mut CodeCache,
    budget: u64,
    cycle_limit: u64,
) -> Option<Stop> {
    if core.code_epoch != sys.code_epoch {
        core.tlb.flush_write();
        core.code_epoch = sys.code_epoch;
    }
    let mut target = core.instret + budget;
    while core.instret < target && core.cycles < cycle_limit {
        // The local APIC's timers, IPIs and interrupt delivery: one comparison per block.
        if core.cycles >= core.apic.next_event {
            match crate::apic::service(core, sys) {
                crate::apic::Serviced::Continue => {}
                crate::apic::Serviced::Shadow => target = target.min(core.instret + 1),
                crate::apic::Serviced::Yield => return None,
                crate::apic::Serviced::Stop(stop) => return Some(stop),
            }
        }
        // Single-step, a resume flag to clear, or breakpoints enabled: the debug path.
        if core.rflags & (TF | RF) != 0 || core.dbg.armed.active {
            if let Some(stop) = debug_block(core, sys, cache, target) {
                return Some(stop);
            }
            continue;
        }
        let block = match cache.lookup_or_decode(core, sys) {
            Ok(b) => b,
            Err(f) if core.idtr.limit != 0 => match core.raise_fault(sys, f) {
                Ok(()) => continue,
                Err(triple) => return Some(Stop::Shutdown(triple)),
            },
            Err(f) => return Some(Stop::Fault(f)),
        };
        // The block was just decoded, maybe registering new code pages.
        if core.code_epoch != sys.code_epoch {
            core.tlb.flush_write();
            core.code_epoch = sys.code_epoch;
        }
        let ops = cache.ops(block);
        let ops = &ops[..ops.len().min((target - core.instret) as usize)];
        for op in ops {
            core.rip = op.ins.next_ip();
            core.instret += 1;
            core.cycles += op.cost as u64;
            if let Err(stop) = (op.exec)(core, sys, &op.ins) {
                if let Err(stop) = stopped(core, sys, op, stop) {
                    flush_written_code(core, sys, cache);
                    return Some(stop);
                }
                break;
            }
            if op.drain
                && let Some(t) = sys.timing.as_deref_mut()
            {
                core.cycles += t.fence(core.index, core.cycles);
            }
            if sys.end_block {
                break;
            }
        }
        if sys.end_block {
            sys.end_block = false;
            flush_written_code(core, sys, cache);
        }
    }
    // Stores outside an instruction (an interrupt frame pushed at a block boundary) may have
    // hit a code page: leave no invalidation pending across the quantum (checkpoints are
    // taken between quanta).
    if !sys.written_code.is_empty() {
        sys.end_block = false;
        flush_written_code(core, sys, cache);
    }
    None
}

/// An instruction's handler returned `stop`. A fault means the instruction did not retire
/// (`rip` points back at it, its data-breakpoint hits are dropped); with an IDT the fault is
/// delivered and the block ends (`Ok`). Anything else ends the run loop (`Err`), after the
/// caller has flushed written code.
///
/// Two corrections are made here, off the hot path: a #GP(0) raised by a memory operand that
/// goes through SS (based on RSP or RBP, or SS-prefixed) at a non-canonical address becomes
/// #SS(0), in every instruction family (SDM Vol. 3A §6.15, interrupt 12); and a "not
/// implemented" #UD delivered to the image is counted (`note_unimplemented`).
#[cold]
#[inline(never)]
fn stopped(core: &mut Core, sys: &mut Sys, op: &Op, stop: Stop) -> Result<(), Stop> {
    if let Stop::Fault(f) = stop {
        core.rip = op.ins.ip();
        core.instret -= 1;
        core.cycles -= op.cost as u64;
        core.dbg.hits = 0;
        let stop = if f == Fault::with_code(GP, 0) {
            core.stack_operand_fault(&op.ins, stop)
        } else {
            stop
        };
        if core.idtr.limit != 0
            && let Stop::Fault(f) = stop
        {
            // The image has an IDT: the exception is its to handle.
            if f.unimplemented {
                core.note_unimplemented(&op.ins, f);
            }
            core.raise_fault(sys, f).map_err(Stop::Shutdown)?;
            sys.end_block = true;
            return Ok(());
        }
        return Err(stop);
    }
    Err(stop)
}

/// One block in the debug path (`debug` describes the model): RF cleared at the block's
/// first instruction after it suppressed that instruction's breakpoint check; instruction
/// breakpoints as faults before the fetch, blocks ended before the next one; single-step
/// (RFLAGS.TF, SDM Vol. 3B §18.3.1.4) and data/I/O breakpoints as one #DB trap after the
/// instruction. Returns what ends the run loop, if anything.
#[cold]
#[inline(never)]
fn debug_block(core: &mut Core, sys: &mut Sys, cache: &mut CodeCache, target: u64) -> Option<Stop> {
    if core.rflags & RF != 0 {
        core.rflags &= !RF;
    } else if core.dbg.has_exec() {
        let hits = core.dbg.exec_hits(core.rip);
        if hits != 0 {
            // A fault ahead of fetching the instruction; the RFLAGS image keeps RF = 0.
            core.dbg.report(hits);
            return deliver_debug(core, sys, cache);
        }
    }
    let block = match cache.lookup_or_decode(core, sys) {
        Ok(b) => b,
        Err(f) if core.idtr.limit != 0 => {
            return match core.raise_fault(sys, f) {
                Ok(()) => None,
                Err(triple) => Some(Stop::Shutdown(triple)),
            };
        }
        Err(f) => return Some(Stop::Fault(f)),
    };
    if core.code_epoch != sys.code_epoch {
        core.tlb.flush_write();
        core.code_epoch = sys.code_epoch;
    }
    let ops = cache.ops(block);
    // Single-step: one instruction, then the trap (the first trap comes after the instruction
    // following the POPF that set TF, which ends its block).
    let single_step = core.rflags & TF != 0;
    let mut room = if single_step {
        1
    } else {
        (target - core.instret) as usize
    }
    .min(ops.len());
    if core.dbg.has_exec()
        && let Some(i) = ops[1..room]
            .iter()
            .position(|op| core.dbg.exec_hits(op.ins.ip()) != 0)
    {
        room = i + 1;
    }
    for op in &ops[..room] {
        core.rip = op.ins.next_ip();
        core.instret += 1;
        core.cycles += op.cost as u64;
        if let Err(stop) = (op.exec)(core, sys, &op.ins) {
            if let Err(stop) = stopped(core, sys, op, stop) {
                flush_written_code(core, sys, cache);
                return Some(stop);
            }
            break;
        }
        if op.drain
            && let Some(t) = sys.timing.as_deref_mut()
        {
            core.cycles += t.fence(core.index, core.cycles);
        }
        let mut status = core.dbg.take_hits();
        if single_step {
            status |= debug::DR6_BS;
        }
        if status != 0 {
            // A trap: the saved RIP is the next instruction's (a REP string instruction with
            // work left saves its own, with RF set).
            core.dbg.report(status);
            if let Some(stop) = deliver_debug(core, sys, cache) {
                return Some(stop);
            }
            sys.end_block = true;
            break;
        }
        if sys.end_block {
            break;
        }
    }
    if sys.end_block {
        sys.end_block = false;
        flush_written_code(core, sys, cache);
    }
    None
}

/// Delivers the #DB whose causes DR6 now holds; without an IDT the run ends with the report.
fn deliver_debug(core: &mut Core, sys: &mut Sys, cache: &mut CodeCache) -> Option<Stop> {
    let db = Fault::new(DB);
    let stop = if core.idtr.limit == 0 {
        Stop::Fault(db)
    } else {
        match core.raise_exception(sys, db) {
            Ok(()) => return None,
            Err(triple) => Stop::Shutdown(triple),
        }
    };
    flush_written_code(core, sys, cache);
    Some(stop)
}

fn flush_written_code(core: &mut Core, sys: &mut Sys, cache: &mut CodeCache) {
    for page in std::mem::take(&mut sys.written_code) {
        cache.invalidate_page(sys, page);
        core.tlb.flush_physical_write(page * PAGE_SIZE);
    }
}

/// The instruction a handler runs for: iced's decoded form plus the resolved semantics.
#[derive(Clone)]
pub struct Op {
    pub exec: Handler,
    /// Base latency in cycles (`ops::base_cost`); memory stalls come on top in timing mode.
    pub cost: u32,
    /// A locked read-modify-write or a store fence: in timing mode the core waits until its
    /// posted stores have completed (`ops::drains_stores`).
    pub drain: bool,
    pub ins: Instruction,
}

pub type Handler = fn(&mut Core, &mut Sys, &Instruction) -> Result<()>;

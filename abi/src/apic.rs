//! The local interrupt controller of every core, in x2APIC mode (DESIGN.md §2.5; Intel SDM
//! Vol. 3A ch. 11 "Advanced Programmable Interrupt Controller (APIC)", §11.12 "Extended XAPIC
//! (x2APIC)", Table 11-6 for the register map).
//!
//! Every core boots with its APIC globally enabled **in x2APIC mode** (`IA32_APIC_BASE` EN and
//! EXTD set; there is no xAPIC MMIO page) and **software-disabled** (SVR = `0xFF`, every LVT
//! masked), as after a reset: an image sets [`SVR_ENABLE`] before it expects interrupts.
//! Registers are the MSRs `0x800 + offset`, accessed with `rdmsr`/`wrmsr` at CPL 0; a write to
//! a read-only register, a read of a write-only one, an MSR of `0x800..=0xBFF` that is not in
//! the map below, and a write that sets reserved bits (including the upper 32 bits of every
//! register but the ICR) raise #GP(0), as x2APIC mode specifies.
//!
//! # Timer
//! The timer counts down at the core clock (`BootInfo::tsc_hz`, the `rdtsc` rate) divided by
//! the divide configuration ([`DCR`], `DIV_*`). One-shot and periodic modes count from the
//! initial count; TSC-deadline mode fires when the core's TSC reaches
//! [`IA32_TSC_DEADLINE`] (a write of 0 disarms it, it reads 0 once fired). Time is simulated:
//! the interrupt is raised at the exact cycle it is due on the owning core's clock, and is
//! taken at the next instruction-block boundary; a halted core's clock jumps to the deadline.
//!
//! # Interrupts and priority
//! Fixed interrupts (timer, IPIs, self IPIs, LVT error) set a bit in the IRR. A core takes the
//! highest IRR vector when `RFLAGS.IF` = 1, it is not in an STI/MOV SS shadow, and the vector's
//! priority class (`vector >> 4`) is above the processor priority `PPR = max(TPR class,
//! highest ISR class)`; the vector then moves from IRR to ISR and is delivered through the IDT.
//! A write of 0 to [`EOI`] clears the highest ISR bit. Vectors 0–15 are illegal: sending one
//! sets ESR bit 5 ([`ESR_SEND_ILLEGAL`]), receiving one (an LVT entry, a self IPI) bit 6
//! ([`ESR_RECV_ILLEGAL`]), and nothing is delivered. A software-disabled APIC drops fixed
//! interrupts but still obeys INIT and start-up. No spurious interrupt is ever generated (the
//! model has no window in which an accepted interrupt can vanish); SVR keeps its vector.
//!
//! # IPIs
//! A write to [`ICR`] sends at once (the delivery-status bit does not exist in x2APIC mode):
//! destination x2APIC id in bits 63:32 (`0xFFFF_FFFF` = all cores), physical or logical
//! destination mode (logical: [`LDR`] cluster in bits 31:16, member bitmap in 15:0), a
//! shorthand, and a delivery mode: fixed, lowest priority (delivered like fixed to the first
//! matching core in core order), INIT (level assert; the de-assert form is ignored) or
//! start-up. SMI, NMI and ExtINT are not modelled and are ignored. An IPI is timestamped with
//! the sender's clock: a target whose clock is behind sees it when its clock reaches that time,
//! and a halted target wakes at that time.
//!
//! # Start-up (the SIPI contract)
//! After INIT a core waits for a start-up IPI (the state `--bsp-only` leaves every core but
//! core 0 in at boot). A start-up IPI with vector `V` starts it at physical (= linear)
//! address [`SIPI_BASE`]` + (V << 12)` — the start-up page counted from the bottom of RAM,
//! because the first MiB of the physical space is a hole in this machine — in the state every
//! core has at boot (DESIGN.md §3.1): 64-bit mode, CPL 0, interrupts off, paging on with the
//! boot identity map (`cr3` = the loader's tables), the boot GDT (code 0x08, data 0x10), no
//! IDT, `rdi` = BootInfo, `rsi` = core index, `rsp` = top of the core's own boot stack minus
//! 8, all other general registers and the XMM registers zero. Its clock starts at the
//! sender's time (never earlier than its own). A start-up IPI to a core that is not waiting
//! for one is ignored, so the usual INIT, SIPI, SIPI sequence starts a core exactly once.
//! INIT resets the core's registers and its APIC (x2APIC mode, id and `IA32_APIC_BASE`
//! survive), keeping only its clock and counters.

/// `IA32_APIC_BASE`: bit 8 = this core is the bootstrap processor (core 0), bit 10 = x2APIC
/// mode, bit 11 = APIC enabled, bits 51:12 = the (unused) xAPIC page. pvmlab models x2APIC
/// mode only: a write that clears EN or EXTD, or sets reserved bits, raises #GP(0).
pub const IA32_APIC_BASE: u32 = 0x1B;
pub const APIC_BASE_BSP: u64 = 1 << 8;
pub const APIC_BASE_EXTD: u64 = 1 << 10;
pub const APIC_BASE_EN: u64 = 1 << 11;
/// The xAPIC page address reported in `IA32_APIC_BASE` at reset.
pub const APIC_BASE_DEFAULT_PAGE: u64 = 0xFEE0_0000;

/// `IA32_TSC_DEADLINE`: the TSC value at which the timer fires in TSC-deadline mode.
pub const IA32_TSC_DEADLINE: u32 = 0x6E0;

/// First and last MSR of the x2APIC register space.
pub const X2APIC_FIRST: u32 = 0x800;
pub const X2APIC_LAST: u32 = 0xBFF;

/// Local APIC id (read-only): the core's x2APIC id, as `BootInfo` `CoreInfo::apic_id`.
pub const ID: u32 = 0x802;
/// Version (read-only): [`VERSION_VALUE`].
pub const VERSION: u32 = 0x803;
/// Task priority (bits 7:0).
pub const TPR: u32 = 0x808;
/// Processor priority (read-only).
pub const PPR: u32 = 0x80A;
/// End of interrupt (write-only; only the value 0).
pub const EOI: u32 = 0x80B;
/// Logical destination (read-only in x2APIC mode): `(id >> 4) << 16 | 1 << (id & 15)`.
pub const LDR: u32 = 0x80D;
/// Spurious-interrupt vector register: vector in bits 7:0, [`SVR_ENABLE`].
pub const SVR: u32 = 0x80F;
/// In-service register, 8 MSRs of 32 vectors each (read-only).
pub const ISR0: u32 = 0x810;
/// Trigger-mode register, 8 MSRs (read-only).
pub const TMR0: u32 = 0x818;
/// Interrupt request register, 8 MSRs (read-only).
pub const IRR0: u32 = 0x820;
/// Error status: write 0 to latch the errors seen since the last write, then read them.
pub const ESR: u32 = 0x828;
/// LVT entry for corrected machine-check interrupts (stored; never raised).
pub const LVT_CMCI: u32 = 0x82F;
/// Interrupt command register (64 bits: destination in 63:32).
pub const ICR: u32 = 0x830;
/// LVT entries: timer, thermal sensor, performance counters, LINT0, LINT1, error. Only the
/// timer and error entries raise interrupts; the others are stored.
pub const LVT_TIMER: u32 = 0x832;
pub const LVT_THERMAL: u32 = 0x833;
pub const LVT_PERF: u32 = 0x834;
pub const LVT_LINT0: u32 = 0x835;
pub const LVT_LINT1: u32 = 0x836;
pub const LVT_ERROR: u32 = 0x837;
/// Timer initial count (ignored in TSC-deadline mode; writing 0 stops the timer).
pub const TIMER_INITIAL: u32 = 0x838;
/// Timer current count (read-only; 0 in TSC-deadline mode).
pub const TIMER_CURRENT: u32 = 0x839;
/// Timer divide configuration: one of the `DIV_*` values.
pub const DCR: u32 = 0x83E;
/// Self IPI (write-only): a fixed interrupt with vector bits 7:0 to this core.
pub const SELF_IPI: u32 = 0x83F;

/// [`VERSION`]: version 0x15 (integrated APIC), 7 LVT entries (max LVT entry 6), no directed
/// EOI (so SVR bit 12 is reserved).
pub const VERSION_VALUE: u32 = 0x0006_0015;

/// SVR bit 8: the APIC is software-enabled.
pub const SVR_ENABLE: u32 = 1 << 8;

/// LVT bit 16: the entry is masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode, bits 18:17.
pub const TIMER_ONE_SHOT: u32 = 0 << 17;
pub const TIMER_PERIODIC: u32 = 1 << 17;
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;

/// [`DCR`] values (bits 3, 1:0) and the divisor each selects.
pub const DIV_1: u32 = 0b1011;
pub const DIV_2: u32 = 0b0000;
pub const DIV_4: u32 = 0b0001;
pub const DIV_8: u32 = 0b0010;
pub const DIV_16: u32 = 0b0011;
pub const DIV_32: u32 = 0b1000;
pub const DIV_64: u32 = 0b1001;
pub const DIV_128: u32 = 0b1010;

/// [`ESR`] bits.
pub const ESR_SEND_ILLEGAL: u32 = 1 << 5;
pub const ESR_RECV_ILLEGAL: u32 = 1 << 6;

/// [`ICR`] fields (bits 31:0; the destination is bits 63:32).
pub const ICR_VECTOR: u64 = 0xFF;
/// Delivery mode, bits 10:8.
pub const ICR_FIXED: u64 = 0 << 8;
pub const ICR_LOWEST: u64 = 1 << 8;
pub const ICR_SMI: u64 = 2 << 8;
pub const ICR_NMI: u64 = 4 << 8;
pub const ICR_INIT: u64 = 5 << 8;
pub const ICR_STARTUP: u64 = 6 << 8;
/// Bit 11: logical destination mode (0 = physical).
pub const ICR_LOGICAL: u64 = 1 << 11;
/// Bit 14: level assert (set it for INIT; INIT with it clear is the ignored de-assert).
pub const ICR_ASSERT: u64 = 1 << 14;
/// Bit 15: level-triggered.
pub const ICR_LEVEL: u64 = 1 << 15;
/// Destination shorthand, bits 19:18.
pub const ICR_DEST_FIELD: u64 = 0 << 18;
pub const ICR_SELF: u64 = 1 << 18;
pub const ICR_ALL: u64 = 2 << 18;
pub const ICR_ALL_BUT_SELF: u64 = 3 << 18;
/// The bits of the low half a write may set; others raise #GP(0).
pub const ICR_VALID: u64 = 0x000C_CFFF;
/// Destination id meaning every core.
pub const BROADCAST: u32 = 0xFFFF_FFFF;

/// A start-up IPI with vector `V` starts its target at `SIPI_BASE + (V << 12)` (see the
/// module documentation for the register state).
pub const SIPI_BASE: u64 = 0x10_0000;

//! The local interrupt controller of every core, in x2APIC mode (DESIGN.md §2.5; Intel SDM
//! Vol. 3A ch. 11, "Advanced Programmable Interrupt Controller (APIC)": §11.5.4 timer,
//! §11.6 IPIs, §11.8 interrupt handling and priority, §11.12 x2APIC and its register map).
//! What images see — MSR numbers, fields, the start-up contract — is documented in
//! `abi::apic`.
//!
//! Time is simulated. Every event (a timer deadline, an IPI's arrival) is a cycle of the
//! owning core's clock; [`LocalApic::next_event`] is the earliest of them, or 0 when the core
//! must look at once (an interrupt may be deliverable, an IPI is waiting to be routed), so the
//! block loop pays one comparison per block and calls [`service`] only when it is due. A
//! halted core (`RunState::Waiting`) is runnable from [`LocalApic::wake_time`] on: the
//! schedule jumps its clock there ([`wake`]) and never runs it in between.
//!
//! IPIs leave a core through `Sys::apic_outbox` (a core only has itself at hand while it
//! runs); the machine routes them to their targets ([`route`]) between two quanta, in the
//! order they were sent, so the result is deterministic. Each carries the sender's time: a
//! target whose clock is behind takes it when its clock gets there.
//!
//! Simplifications (see `abi::apic`): x2APIC mode only (no xAPIC MMIO page, the APIC cannot be
//! globally disabled), no NMI/SMI/ExtINT delivery, no spurious interrupts, LINT0/1, thermal,
//! performance and CMCI entries are stored but nothing drives them.

use crate::cpu::interrupt::Source;
use crate::cpu::{Core, Fault, GP, IF, RDI, RFLAGS_FIXED, RSI, RSP, RunState, Stop, Sys, TableReg};
use abi::apic::*;
use serde::{Deserialize, Serialize};

/// Indices into [`LocalApic::lvt`], in MSR order.
const L_TIMER: usize = 1;
const L_ERROR: usize = 6;

/// The LVT MSRs, index by index.
const LVT_MSRS: [u32; 7] = [
    LVT_CMCI,
    LVT_TIMER,
    LVT_THERMAL,
    LVT_PERF,
    LVT_LINT0,
    LVT_LINT1,
    LVT_ERROR,
];

/// Bits a write may set in each LVT entry (SDM Figure 11-8): vector, delivery mode, pin
/// polarity, trigger mode, mask, timer mode. Everything else is reserved (#GP) except the
/// read-only delivery-status and remote-IRR bits, which a write may carry and which are ignored.
const LVT_WRITABLE: [u32; 7] = [
    0x1_07FF, 0x7_00FF, 0x1_07FF, 0x1_07FF, 0x1_A7FF, 0x1_A7FF, 0x1_00FF,
];
const LVT_READ_ONLY: u32 = (1 << 12) | (1 << 14);
const TIMER_MODE: u32 = 3 << 17;

/// What a start-up IPI loads (DESIGN.md §3.1): the core's boot register state, recorded by
/// the loader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupState {
    /// `rdi`: the BootInfo address.
    pub boot_info: u64,
    /// `rsp`: top of the core's boot stack minus 8.
    pub rsp: u64,
    /// The boot page tables.
    pub cr3: u64,
    /// The boot GDT.
    pub gdt_base: u64,
    pub gdt_limit: u16,
}

/// A fixed interrupt on its way to a core: it becomes an IRR bit once the core's clock
/// reaches `time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub time: u64,
    pub vector: u8,
}

/// An IPI written to a core's ICR, waiting for the machine to route it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipi {
    /// Index of the sending core.
    pub from: u32,
    /// The sender's clock when it wrote the ICR.
    pub time: u64,
    /// The ICR value.
    pub icr: u64,
}

/// One core's local APIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalApic {
    /// The core's cycle at or after which the block loop must call [`service`]; 0 = at the
    /// next block boundary, `u64::MAX` = nothing scheduled.
    pub next_event: u64,
    /// x2APIC id (read-only).
    pub id: u32,
    /// `IA32_APIC_BASE`.
    pub base: u64,
    pub tpr: u8,
    pub svr: u32,
    /// 256-bit registers, vector `v` at bit `v % 64` of word `v / 64`.
    pub irr: [u64; 4],
    pub isr: [u64; 4],
    pub tmr: [u64; 4],
    /// ESR as software reads it (latched by the last write), and errors seen since.
    pub esr: u32,
    pub esr_pending: u32,
    pub icr: u64,
    /// CMCI, timer, thermal, performance, LINT0, LINT1, error.
    pub lvt: [u32; 7],
    pub initial_count: u32,
    pub dcr: u32,
    /// The counting timer: running since `timer_base` (when the count was `initial_count`),
    /// one tick every `timer_div` cycles. `timer_base` may wrap below 0 after a change of the
    /// divider mid-count (arithmetic on it is wrapping; the deadline it gives never wraps).
    pub timer_armed: bool,
    pub timer_base: u64,
    pub timer_div: u64,
    /// `IA32_TSC_DEADLINE`, a TSC value; 0 = disarmed.
    pub tsc_deadline: u64,
    /// The core cycle at which the TSC reaches `tsc_deadline` (the TSC is the cycle count plus
    /// `Core::tsc_offset`), recomputed when either is written ([`deadline_cycle`]).
    pub deadline_cycle: u64,
    /// Fixed interrupts sent at a time this core's clock has not reached yet.
    pub arrivals: Vec<Arrival>,
    /// After INIT: stopped until a start-up IPI.
    pub wait_for_sipi: bool,
    /// An IPI of this core is in `Sys::apic_outbox`: return to the machine to route it.
    pub yield_to_machine: bool,
    pub startup: StartupState,
}

/// The cycle, at or after `now`, at which a TSC that reads `now + offset` (wrapping) at `now`
/// reaches `deadline` (SDM §11.5.4.1: the timer fires once the TSC is at or past the
/// deadline): `now` if it already is, else as many cycles later as the TSC is short of it.
pub fn deadline_cycle(deadline: u64, now: u64, offset: u64) -> u64 {
    let tsc = now.wrapping_add(offset);
    if tsc >= deadline {
        now
    } else {
        now.saturating_add(deadline - tsc)
    }
}

/// The divisor a divide-configuration value selects (SDM Figure 11-10).
pub fn divisor(dcr: u32) -> u64 {
    let code = (dcr & 3) | ((dcr >> 1) & 4);
    if code == 7 { 1 } else { 2 << code }
}

fn highest(bits: &[u64; 4]) -> Option<u8> {
    (0..4)
        .rev()
        .find(|&w| bits[w] != 0)
        .map(|w| (w * 64 + 63 - bits[w].leading_zeros() as usize) as u8)
}

fn set_bit(bits: &mut [u64; 4], v: u8) {
    bits[v as usize / 64] |= 1 << (v % 64);
}

fn clear_bit(bits: &mut [u64; 4], v: u8) {
    bits[v as usize / 64] &= !(1 << (v % 64));
}

/// 32 vectors of a 256-bit register, as the MSR of index `i` (0–7) shows them.
fn word32(bits: &[u64; 4], i: u32) -> u64 {
    (bits[i as usize / 2] >> ((i % 2) * 32)) & 0xFFFF_FFFF
}

fn gp0() -> Fault {
    Fault::with_code(GP, 0)
}

/// What a register write asks of the core beyond the APIC itself.
enum Effect {
    None,
    /// Send this ICR value.
    Send(u64),
}

impl LocalApic {
    /// The state after power-up (SDM §11.4.7.1), in x2APIC mode.
    pub fn new(id: u32, bsp: bool) -> Self {
        LocalApic {
            next_event: u64::MAX,
            id,
            base: APIC_BASE_DEFAULT_PAGE
                | APIC_BASE_EN
                | APIC_BASE_EXTD
                | if bsp { APIC_BASE_BSP } else { 0 },
            tpr: 0,
            svr: 0xFF,
            irr: [0; 4],
            isr: [0; 4],
            tmr: [0; 4],
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; 7],
            initial_count: 0,
            dcr: 0,
            timer_armed: false,
            timer_base: 0,
            timer_div: 2,
            tsc_deadline: 0,
            deadline_cycle: 0,
            arrivals: Vec::new(),
            wait_for_sipi: false,
            yield_to_machine: false,
            startup: StartupState::default(),
        }
    }

    /// INIT: the power-up state, except the id, `IA32_APIC_BASE` (x2APIC mode stays) and the
    /// start-up state (SDM §11.4.7.3, §11.12.5.1).
    pub fn init_reset(&mut self) {
        let fresh = LocalApic {
            base: self.base,
            startup: self.startup,
            ..LocalApic::new(self.id, false)
        };
        *self = fresh;
    }

    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The logical destination: cluster `id >> 4`, one bit for `id & 15` (SDM §11.12.10.2).
    pub fn ldr(&self) -> u32 {
        ((self.id >> 4) << 16) | (1 << (self.id & 15))
    }

    /// Processor priority (SDM §11.8.3.1): the TPR, or the highest in-service vector's class
    /// if that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = highest(&self.isr).unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    /// The IRR vector the core would take now (interrupt flag aside): the highest one, if its
    /// priority class is above the processor priority class.
    pub fn deliverable(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The core takes `v`: it moves from IRR to ISR.
    pub fn acknowledge(&mut self, v: u8) {
        clear_bit(&mut self.irr, v);
        set_bit(&mut self.isr, v);
    }

    /// EOI: the highest in-service vector is done.
    pub fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            clear_bit(&mut self.isr, v);
            clear_bit(&mut self.tmr, v);
        }
    }

    /// A fixed interrupt with `vector` reaches this APIC (an IPI, a self IPI, an LVT entry).
    pub fn accept(&mut self, vector: u8) {
        if !self.software_enabled() {
            return;
        }
        if vector < 16 {
            self.error(ESR_RECV_ILLEGAL);
        } else {
            set_bit(&mut self.irr, vector);
        }
    }

    /// Records an error; raises the error LVT entry's interrupt unless it is masked.
    fn error(&mut self, bit: u32) {
        self.esr_pending |= bit;
        let lvt = self.lvt[L_ERROR];
        if lvt & LVT_MASKED == 0 && self.software_enabled() {
            let v = lvt as u8;
            if v < 16 {
                self.esr_pending |= ESR_RECV_ILLEGAL;
            } else {
                set_bit(&mut self.irr, v);
            }
        }
    }

    /// The local interrupt of LVT entry `i`, unless it is masked.
    fn local_interrupt(&mut self, i: usize) {
        if self.lvt[i] & LVT_MASKED == 0 {
            self.accept(self.lvt[i] as u8);
        }
    }

    fn timer_mode(&self) -> u32 {
        self.lvt[L_TIMER] & TIMER_MODE
    }

    /// When the counting timer reaches zero next, if it runs.
    pub fn timer_due(&self) -> Option<u64> {
        self.timer_armed.then(|| {
            self.timer_base
                .wrapping_add(self.initial_count as u64 * self.timer_div)
        })
    }

    /// The current-count register at cycle `now`.
    pub fn current_count(&self, now: u64) -> u32 {
        if !self.timer_armed {
            return 0;
        }
        let period = self.initial_count as u64 * self.timer_div;
        let mut elapsed = now.wrapping_sub(self.timer_base);
        if elapsed >= period {
            if self.timer_mode() != TIMER_PERIODIC {
                return 0;
            }
            elapsed %= period;
        }
        (self.initial_count as u64 - elapsed / self.timer_div) as u32
    }

    /// Brings the timers and pending arrivals up to cycle `now`: what is due sets IRR bits.
    pub fn update(&mut self, now: u64) {
        if let Some(due) = self.timer_due()
            && now >= due
        {
            self.local_interrupt(L_TIMER);
            if self.timer_mode() == TIMER_PERIODIC {
                // Reload; if several periods passed unseen (a masked timer), they fire once.
                let period = self.initial_count as u64 * self.timer_div;
                let n = (now - due) / period + 1;
                self.timer_base = self.timer_base.wrapping_add(n * period);
            } else {
                self.timer_armed = false;
            }
        }
        if self.tsc_deadline != 0 && now >= self.deadline_cycle {
            self.tsc_deadline = 0;
            self.local_interrupt(L_TIMER);
        }
        if !self.arrivals.is_empty() {
            let mut due = Vec::new();
            self.arrivals.retain(|a| {
                let now_due = a.time <= now;
                if now_due {
                    due.push(a.vector);
                }
                !now_due
            });
            for v in due {
                self.accept(v);
            }
        }
    }

    /// A fixed interrupt sent at `time` to this APIC, whose core's clock reads `now`.
    pub fn post(&mut self, time: u64, vector: u8, now: u64) {
        if time <= now {
            self.accept(vector);
            self.next_event = 0;
            return;
        }
        // Two of the same vector in flight collapse into the earlier, as they would in IRR.
        match self.arrivals.iter_mut().find(|a| a.vector == vector) {
            Some(a) => a.time = a.time.min(time),
            None => self.arrivals.push(Arrival { time, vector }),
        }
        self.next_event = self.next_event.min(time);
    }

    /// The cycle at which the block loop must look next (see [`next_event`](Self::next_event)).
    pub fn compute_next_event(&self) -> u64 {
        if self.deliverable().is_some() {
            return 0;
        }
        let mut t = self.timer_due().unwrap_or(u64::MAX);
        if self.tsc_deadline != 0 {
            t = t.min(self.deadline_cycle);
        }
        self.arrivals.iter().fold(t, |t, a| t.min(a.time))
    }

    /// For a halted core: the earliest cycle at which an interrupt it would take can be
    /// pending — now if one is, else the next timer deadline or IPI arrival whose vector beats
    /// the processor priority. `None`: nothing can wake it.
    pub fn wake_time(&self) -> Option<u64> {
        if self.deliverable().is_some() {
            return Some(0);
        }
        let class = self.ppr() >> 4;
        let beats = |v: u8| v >> 4 > class;
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |t| t.min(x)));
        let timer = self.lvt[L_TIMER];
        if timer & LVT_MASKED == 0 && beats(timer as u8) {
            if let Some(d) = self.timer_due() {
                at(d);
            }
            if self.tsc_deadline != 0 {
                at(self.deadline_cycle);
            }
        }
        if self.software_enabled() {
            for a in self.arrivals.iter().filter(|a| beats(a.vector)) {
                at(a.time);
            }
        }
        t
    }

    /// RDMSR of an x2APIC register at cycle `now` (SDM Table 11-6).
    pub fn read(&mut self, msr: u32, now: u64) -> Result<u64, Fault> {
        self.update(now);
        Ok(match msr {
            ID => self.id as u64,
            VERSION => VERSION_VALUE as u64,
            TPR => self.tpr as u64,
            PPR => self.ppr() as u64,
            LDR => self.ldr() as u64,
            SVR => self.svr as u64,
            ISR0..=0x817 => word32(&self.isr, msr - ISR0),
            TMR0..=0x81F => word32(&self.tmr, msr - TMR0),
            IRR0..=0x827 => word32(&self.irr, msr - IRR0),
            ESR => self.esr as u64,
            ICR => self.icr,
            TIMER_INITIAL => self.initial_count as u64,
            TIMER_CURRENT if self.timer_mode() == TIMER_TSC_DEADLINE => 0,
            TIMER_CURRENT => self.current_count(now) as u64,
            DCR => self.dcr as u64,
            _ => match LVT_MSRS.iter().position(|&m| m == msr) {
                Some(i) => self.lvt[i] as u64,
                // EOI and SELF IPI are write-only; the rest of 0x800..=0xBFF is reserved.
                None => return Err(gp0()),
            },
        })
    }

    /// WRMSR of an x2APIC register at cycle `now`.
    fn write(&mut self, msr: u32, v: u64, now: u64) -> Result<Effect, Fault> {
        if msr != ICR && v >> 32 != 0 {
            return Err(gp0());
        }
        self.update(now);
        let v32 = v as u32;
        match msr {
            TPR if v32 <= 0xFF => self.tpr = v32 as u8,
            EOI if v == 0 => self.eoi(),
            SVR if v32 & !0x1FF == 0 => {
                self.svr = v32;
                if !self.software_enabled() {
                    for e in &mut self.lvt {
                        *e |= LVT_MASKED;
                    }
                }
            }
            ESR if v == 0 => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            ICR if v & 0xFFFF_FFFF & !ICR_VALID == 0 => {
                self.icr = v;
                let mode = v & (7 << 8);
                if matches!(mode, ICR_FIXED | ICR_LOWEST) && (v & ICR_VECTOR) < 16 {
                    self.error(ESR_SEND_ILLEGAL);
                    return Ok(Effect::None);
                }
                return Ok(Effect::Send(v));
            }
            TIMER_INITIAL => {
                if self.timer_mode() != TIMER_TSC_DEADLINE {
                    self.initial_count = v32;
                    self.timer_armed = v32 != 0;
                    self.timer_base = now;
                    self.timer_div = divisor(self.dcr);
                }
            }
            DCR if v32 & !0b1011 == 0 => {
                let div = divisor(v32);
                if self.timer_armed {
                    // Keep the count where it is; it goes on at the new rate.
                    let left = self.current_count(now) as u64;
                    let done = self.initial_count as u64 - left;
                    self.timer_base = now.wrapping_sub(done * div);
                }
                self.timer_div = div;
                self.dcr = v32;
            }
            SELF_IPI if v32 <= 0xFF => self.accept(v32 as u8),
            _ => {
                let Some(i) = LVT_MSRS.iter().position(|&m| m == msr) else {
                    return Err(gp0());
                };
                if v32 & !(LVT_WRITABLE[i] | LVT_READ_ONLY) != 0
                    || (i == L_TIMER && v32 & TIMER_MODE == TIMER_MODE)
                {
                    return Err(gp0());
                }
                let mut e = v32 & LVT_WRITABLE[i];
                if !self.software_enabled() {
                    e |= LVT_MASKED;
                }
                if i == L_TIMER {
                    let (old, new) = (self.timer_mode(), e & TIMER_MODE);
                    if old == TIMER_TSC_DEADLINE && new != TIMER_TSC_DEADLINE {
                        self.tsc_deadline = 0;
                    } else if new == TIMER_TSC_DEADLINE && old != TIMER_TSC_DEADLINE {
                        self.timer_armed = false;
                    }
                }
                self.lvt[i] = e;
            }
        }
        Ok(Effect::None)
    }

    /// Feeds the APIC state into a state hash.
    pub fn hash_into(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        for w in self.irr.iter().chain(&self.isr).chain(&self.tmr) {
            h.update(&w.to_le_bytes());
        }
        for w in self.lvt.iter().chain(&[
            self.svr,
            self.esr,
            self.esr_pending,
            self.initial_count,
            self.dcr,
        ]) {
            h.update(&w.to_le_bytes());
        }
        for w in [
            self.base,
            self.icr,
            self.timer_base,
            self.timer_div,
            self.tsc_deadline,
        ] {
            h.update(&w.to_le_bytes());
        }
        h.update(&[self.tpr, self.timer_armed as u8, self.wait_for_sipi as u8]);
        for a in &self.arrivals {
            h.update(&a.time.to_le_bytes());
            h.update(&[a.vector]);
        }
    }
}

/// Whether `msr` belongs to the APIC: `IA32_APIC_BASE`, `IA32_TSC_DEADLINE`, the x2APIC range.
pub fn owns(msr: u32) -> bool {
    matches!(
        msr,
        IA32_APIC_BASE | IA32_TSC_DEADLINE | X2APIC_FIRST..=X2APIC_LAST
    )
}

/// RDMSR of an APIC MSR (see [`owns`]).
pub fn rdmsr(core: &mut Core, msr: u32) -> Result<u64, Fault> {
    let a = &mut core.apic;
    match msr {
        IA32_APIC_BASE => Ok(a.base),
        IA32_TSC_DEADLINE => {
            a.update(core.cycles);
            Ok(if a.timer_mode() == TIMER_TSC_DEADLINE {
                a.tsc_deadline
            } else {
                0
            })
        }
        _ => a.read(msr, core.cycles),
    }
}

/// WRMSR of an APIC MSR (see [`owns`]). The block ends after it, so that what it changed
/// (an interrupt now deliverable, a timer due, an IPI to route) is seen at once.
pub fn wrmsr(core: &mut Core, sys: &mut Sys, msr: u32, v: u64) -> Result<(), Fault> {
    let now = core.cycles;
    let offset = core.tsc_offset;
    let a = &mut core.apic;
    match msr {
        IA32_APIC_BASE => {
            // Reserved: bits 7:0, 9, and 63:48 (48 physical address bits).
            let reserved = 0xFF | (1 << 9) | (0xFFFF << 48);
            if v & reserved != 0
                || v & (APIC_BASE_EN | APIC_BASE_EXTD) != APIC_BASE_EN | APIC_BASE_EXTD
            {
                return Err(gp0());
            }
            a.base = (v & !APIC_BASE_BSP) | (a.base & APIC_BASE_BSP);
        }
        IA32_TSC_DEADLINE => {
            a.update(now);
            if a.timer_mode() == TIMER_TSC_DEADLINE {
                a.tsc_deadline = v;
                a.deadline_cycle = deadline_cycle(v, now, offset);
            }
        }
        _ => {
            if let Effect::Send(icr) = a.write(msr, v, now)? {
                sys.apic_outbox.push(Ipi {
                    from: core.index,
                    time: now,
                    icr,
                });
                a.yield_to_machine = true;
            }
        }
    }
    a.next_event = 0;
    sys.end_block = true;
    Ok(())
}

/// `wrmsr` of IA32_TSC moved `core.tsc_offset`: an armed TSC deadline is due at another
/// cycle, compared against the new TSC.
pub fn tsc_written(core: &mut Core) {
    let a = &mut core.apic;
    a.update(core.cycles);
    if a.tsc_deadline != 0 {
        a.deadline_cycle = deadline_cycle(a.tsc_deadline, core.cycles, core.tsc_offset);
    }
    a.next_event = 0;
}

/// What [`service`] asks of the block loop.
pub enum Serviced {
    /// Go on running.
    Continue,
    /// Run one more instruction, then look again: an interrupt is pending but the core is
    /// in an STI/MOV SS shadow.
    Shadow,
    /// Return to the machine (IPIs to route).
    Yield,
    /// The core stops: an interrupt could not be delivered.
    Stop(Stop),
}

/// At a block boundary once the core's clock has reached `next_event`: timers and arrivals
/// that are due set IRR bits, and the highest deliverable vector is taken through the IDT if
/// `RFLAGS.IF` = 1 and the core is not in an interrupt shadow. A shadow ends here either way:
/// `sti` ends its block and asks for this check, so a shadow seen here is that of the
/// instruction just before; with an interrupt pending, the block loop runs exactly one more
/// instruction ([`Serviced::Shadow`]) before it looks again (SDM Vol. 3A §6.8.3). A load of
/// SS does not end its block, so its shadow may hold an interrupt off a few instructions longer.
#[cold]
#[inline(never)]
pub fn service(core: &mut Core, sys: &mut Sys) -> Serviced {
    if core.apic.yield_to_machine {
        core.apic.yield_to_machine = false;
        core.apic.next_event = 0;
        return Serviced::Yield;
    }
    core.apic.update(core.cycles);
    let shadow = std::mem::take(&mut core.shadow);
    let mut out = Serviced::Continue;
    if core.rflags & IF != 0
        && let Some(v) = core.apic.deliverable()
    {
        if shadow {
            out = Serviced::Shadow;
        } else {
            core.apic.acknowledge(v);
            if let Err(f) = core.deliver(sys, v, None, Source::External) {
                out = if core.idtr.limit == 0 {
                    Serviced::Stop(Stop::Fault(f))
                } else {
                    match core.raise_exception(sys, f) {
                        Ok(()) => Serviced::Continue,
                        Err(triple) => Serviced::Stop(Stop::Shutdown(triple)),
                    }
                };
            }
        }
    }
    core.apic.next_event = core.apic.compute_next_event();
    out
}

/// Moves a core's clock forward to `time` (never back); the cycles skipped count as halted.
fn advance(core: &mut Core, time: u64) {
    if time > core.cycles {
        core.halted_cycles += time - core.cycles;
        core.cycles = time;
    }
}

/// For the schedule: a halted core whose [`LocalApic::wake_time`] is `at` (clamped to its
/// own clock) comes to `at`. Returns whether it runs again (an interrupt it will take is
/// pending); if not, it stays halted with a later wake time, or none.
pub fn wake(core: &mut Core, at: u64) -> bool {
    advance(core, at);
    // The shadow of an `sti` right before `hlt` ended with the `hlt`.
    core.shadow = false;
    core.apic.update(core.cycles);
    if core.apic.deliverable().is_some() {
        core.state = RunState::Running;
        core.apic.next_event = 0;
        true
    } else {
        core.apic.next_event = core.apic.compute_next_event();
        false
    }
}

/// Delivers an IPI written by core `ipi.from` to its targets (SDM §11.6.1, §11.12.9–10).
pub fn route(cores: &mut [Core], ipi: &Ipi) {
    let icr = ipi.icr;
    let vector = (icr & ICR_VECTOR) as u8;
    let dest = (icr >> 32) as u32;
    let from = ipi.from as usize;
    let mode = icr & (7 << 8);
    for (i, c) in cores.iter_mut().enumerate() {
        let target = match icr & ICR_ALL_BUT_SELF {
            ICR_SELF => i == from,
            ICR_ALL => true,
            ICR_ALL_BUT_SELF => i != from,
            _ if dest == BROADCAST => true,
            _ if icr & ICR_LOGICAL != 0 => {
                let ldr = c.apic.ldr();
                ldr >> 16 == dest >> 16 && ldr & dest & 0xFFFF != 0
            }
            _ => c.apic_id == dest,
        };
        if !target {
            continue;
        }
        match mode {
            ICR_FIXED => c.apic.post(ipi.time, vector, c.cycles),
            ICR_LOWEST => {
                // Any one target will do (SDM §11.6.2.4); the first, so that it is determined.
                c.apic.post(ipi.time, vector, c.cycles);
                break;
            }
            ICR_INIT if icr & ICR_ASSERT != 0 => init(c, ipi.time),
            ICR_STARTUP => startup(c, ipi.time, vector),
            // INIT de-assert, SMI, NMI, ExtINT and reserved modes: not modelled.
            _ => {}
        }
    }
}

/// A fixed interrupt from a device (the NIC, …) raised at `time` on `core`: an edge-triggered
/// vector in its IRR once its clock reaches `time`; a halted core wakes then.
pub fn interrupt(core: &mut Core, time: u64, vector: u8) {
    let now = core.cycles;
    core.apic.post(time, vector, now);
}

/// INIT: the core's registers and APIC return to their power-up state (its clock and
/// counters stay), and it waits for a start-up IPI.
fn init(core: &mut Core, time: u64) {
    let mut fresh = Core::new(core.index, core.apic_id, core.socket, core.node);
    // INIT leaves the TSC alone (SDM Vol. 3A Table 9-1), and the counters are the run's.
    fresh.cycles = core.cycles;
    fresh.tsc_offset = core.tsc_offset;
    fresh.instret = core.instret;
    fresh.halted_cycles = core.halted_cycles;
    fresh.unimplemented_ud = core.unimplemented_ud;
    fresh.unimplemented_first = std::mem::take(&mut core.unimplemented_first);
    fresh.apic = std::mem::replace(&mut core.apic, LocalApic::new(0, false));
    fresh.apic.init_reset();
    fresh.apic.wait_for_sipi = true;
    fresh.state = RunState::Stopped;
    *core = fresh;
    advance(core, time);
}

/// Start-up with vector `vector`: a core waiting for it starts at
/// `SIPI_BASE + (vector << 12)` in its boot register state (`abi::apic`).
fn startup(core: &mut Core, time: u64, vector: u8) {
    if !core.apic.wait_for_sipi {
        return;
    }
    let s = core.apic.startup;
    core.apic.wait_for_sipi = false;
    core.gpr = [0; 16];
    core.gpr[RDI] = s.boot_info;
    core.gpr[RSI] = core.index as u64;
    core.gpr[RSP] = s.rsp;
    core.rip = SIPI_BASE + ((vector as u64) << 12);
    core.rflags = RFLAGS_FIXED;
    core.cr3 = s.cr3;
    core.tlb.flush();
    core.set_segments(0x08, 0x10);
    core.gdtr = TableReg {
        base: s.gdt_base,
        limit: s.gdt_limit,
    };
    core.idtr = TableReg::default();
    core.shadow = false;
    advance(core, time);
    core.apic.next_event = core.apic.compute_next_event();
    core.state = RunState::Running;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> LocalApic {
        let mut a = LocalApic::new(3, false);
        a.write(SVR, (SVR_ENABLE | 0xFF) as u64, 0).ok().unwrap();
        a
    }

    #[test]
    fn priority_follows_the_sdm() {
        let mut a = enabled();
        assert_eq!(a.ppr(), 0);
        assert_eq!(a.deliverable(), None);
        // TPR class 5 blocks classes 0-5.
        a.tpr = 0x55;
        a.accept(0x5F);
        assert_eq!(
            a.ppr(),
            0x55,
            "PPR = TPR when no higher class is in service"
        );
        assert_eq!(a.deliverable(), None, "class 5 does not beat PPR class 5");
        a.accept(0x60);
        assert_eq!(a.deliverable(), Some(0x60));
        a.acknowledge(0x60);
        assert_eq!(
            a.ppr(),
            0x60,
            "in-service class 6 above TPR: PPR = 0x60, sub-class 0"
        );
        a.accept(0x6F);
        assert_eq!(
            a.deliverable(),
            None,
            "same class as in service waits for EOI"
        );
        a.accept(0x70);
        assert_eq!(a.deliverable(), Some(0x70), "a higher class nests");
        a.acknowledge(0x70);
        a.eoi();
        assert_eq!(
            a.isr,
            {
                let mut r = [0; 4];
                set_bit(&mut r, 0x60);
                r
            },
            "EOI clears the highest in-service vector"
        );
        a.eoi();
        assert_eq!(a.deliverable(), Some(0x6F), "highest IRR first");
        a.tpr = 0xF0;
        assert_eq!(a.deliverable(), None);
        assert_eq!(a.ppr(), 0xF0);
    }

    #[test]
    fn illegal_vectors_and_disabled_apic() {
        let mut a = LocalApic::new(0, true);
        a.accept(0x40);
        assert_eq!(
            a.irr, [0; 4],
            "software-disabled: fixed interrupts are dropped"
        );
        let mut a = enabled();
        a.accept(5);
        assert_eq!(a.irr, [0; 4]);
        assert!(
            matches!(a.write(ICR, 0x0000_0004_0000_0003, 0), Ok(Effect::None)),
            "not sent"
        );
        assert_eq!(
            a.read(ESR, 0).unwrap(),
            0,
            "ESR shows errors only after a write"
        );
        a.write(ESR, 0, 0).ok().unwrap();
        assert_eq!(
            a.read(ESR, 0).unwrap() as u32,
            ESR_SEND_ILLEGAL | ESR_RECV_ILLEGAL
        );
    }

    #[test]
    fn register_access_rules() {
        let mut a = enabled();
        assert_eq!(a.read(ID, 0).unwrap(), 3);
        assert_eq!(a.read(LDR, 0).unwrap(), 1 << 3);
        assert_eq!(a.read(VERSION, 0).unwrap(), VERSION_VALUE as u64);
        for bad in [
            0x800, 0x809, 0x80C, 0x80E, 0x831, 0x83A, 0x840, 0xBFF, EOI, SELF_IPI,
        ] {
            assert!(a.read(bad, 0).is_err(), "read {bad:#x}");
        }
        for (msr, v) in [
            (ID, 0),
            (PPR, 0),
            (LDR, 0),
            (ISR0, 0),
            (IRR0 + 7, 0),
            (TIMER_CURRENT, 0),
            (EOI, 1),
            (ESR, 1),
            (TPR, 0x100),
            (TPR, 1 << 32),
            (SVR, 0x1000),
            (DCR, 0x4),
            (LVT_TIMER, 3 << 17),
            (LVT_ERROR, 1 << 17),
            (ICR, 1 << 12),
            (SELF_IPI, 0x100),
        ] {
            assert!(a.write(msr, v, 0).is_err(), "write {msr:#x} = {v:#x}");
        }
        assert!(a.write(LVT_LINT0, 0x1_A7FF, 0).is_ok());
        assert_eq!(a.read(LVT_LINT0, 0).unwrap(), 0x1_A7FF);
    }

    #[test]
    fn divide_configuration() {
        let all = [DIV_1, DIV_2, DIV_4, DIV_8, DIV_16, DIV_32, DIV_64, DIV_128];
        let got: Vec<u64> = all.iter().map(|&d| divisor(d)).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128]);
    }

    #[test]
    fn timer_counts_in_simulated_time() {
        let mut a = enabled();
        a.write(DCR, DIV_4 as u64, 0).ok().unwrap();
        a.write(LVT_TIMER, (TIMER_PERIODIC | 0x40) as u64, 0)
            .ok()
            .unwrap();
        a.write(TIMER_INITIAL, 100, 1000).ok().unwrap();
        assert_eq!(a.timer_due(), Some(1400));
        assert_eq!(a.current_count(1000), 100);
        assert_eq!(a.current_count(1003), 100);
        assert_eq!(a.current_count(1004), 99);
        assert_eq!(a.current_count(1399), 1);
        a.update(1399);
        assert_eq!(a.irr, [0; 4]);
        a.update(1400);
        assert_eq!(a.deliverable(), Some(0x40));
        assert_eq!(a.timer_due(), Some(1800), "periodic: reloads");
        // Halfway through, the divider goes from 4 to 1: the count goes on from 50.
        a.write(DCR, DIV_1 as u64, 1600).ok().unwrap();
        assert_eq!(a.current_count(1600), 50);
        assert_eq!(a.timer_due(), Some(1650));
        // One-shot: fires once.
        a.write(LVT_TIMER, 0x41, 1600).ok().unwrap();
        a.update(10_000);
        assert_eq!(a.timer_due(), None);
        assert_eq!(a.current_count(10_000), 0);
    }
}

//! Checkpoint state of the cores and of [`Sys`] (`crate::checkpoint`): everything but RAM,
//! which the checkpoint stores apart, and the caches of host pointers, rebuilt on restore.

use super::decode::CodeCache;
use super::tlb::{SoftTlb, TlbState};
use super::{Core, Sys};
use crate::checkpoint::{CheckpointError, Persist};
use crate::desc::MachineDesc;
use crate::devices::Ports;
use crate::memory::Ram;
use crate::timing::TimingModel;
use serde::{Deserialize, Serialize};

/// A core: its architectural state and counters (serde on [`Core`], every field but the soft
/// TLB and the breakpoints derived from the debug registers), and the soft TLB's
/// translations.
#[derive(Clone, Serialize, Deserialize)]
pub struct CoreState {
    core: Core,
    tlb: TlbState,
}

impl Persist for Core {
    type State = CoreState;
    /// The machine's RAM, already restored: the soft TLB takes its host pointers from it.
    type Context<'a> = &'a mut Ram;

    fn save(&self) -> CoreState {
        CoreState {
            core: self.clone(),
            tlb: self.tlb.state(),
        }
    }

    fn restore(ram: &mut Ram, state: CoreState) -> Result<Core, CheckpointError> {
        let mut core = state.core;
        let index = core.index;
        if core.halted_cycles > core.cycles {
            return Err(CheckpointError::inconsistent(format!(
                "core {index}: {} halted cycles of {} in all",
                core.halted_cycles, core.cycles
            )));
        }
        core.tlb = SoftTlb::from_state(&state.tlb, ram)
            .map_err(|m| CheckpointError::inconsistent(format!("core {index}: {m}")))?;
        // What DR7 enables is derived from the debug registers, not saved; so is the TLB's
        // mode (the CPL, and alignment checking from CR0.AM and RFLAGS.AC).
        core.dbg.rearm();
        core.sync_tlb_mode();
        Ok(core)
    }
}

/// [`Sys`] without RAM (stored apart) and without `cpuid` (it follows from the machine
/// description).
#[derive(Clone, Serialize, Deserialize)]
pub struct SysState {
    code_pages: Vec<u64>,
    code_epoch: u64,
    written_code: Vec<u64>,
    end_block: bool,
    io: Ports,
    timing: Option<TimingModel>,
    /// IPIs not yet routed (empty between quanta, kept for exactness).
    apic_outbox: Vec<crate::apic::Ipi>,
    /// Announced domains and the work charged to them.
    domains: crate::domains::Domains,
    /// Devices, wires and device events; endpoints travel as their saved bytes and are
    /// handed back with `Wire::restore_endpoint` (see `crate::wire`).
    bus: crate::mmio::Bus,
}

/// What [`Sys`]'s restore needs: a new `Sys` for the machine's description, its RAM already
/// restored, and the description (a saved timing model must have the shape of a new one).
pub struct SysContext<'a> {
    pub sys: Sys,
    pub desc: &'a MachineDesc,
}

impl Persist for Sys {
    type State = SysState;
    type Context<'a> = SysContext<'a>;

    fn save(&self) -> SysState {
        // Every field, by name: a field added to `Sys` must be added here.
        let Sys {
            ram: _,
            code_pages,
            code_epoch,
            written_code,
            end_block,
            io,
            cpuid: _,
            timing,
            apic_outbox,
            domains,
            bus,
        } = self;
        SysState {
            code_pages: code_pages.clone(),
            code_epoch: *code_epoch,
            written_code: written_code.clone(),
            end_block: *end_block,
            io: io.save(),
            timing: timing.as_deref().map(Persist::save),
            apic_outbox: apic_outbox.clone(),
            domains: domains.clone(),
            bus: bus.clone(),
        }
    }

    fn restore(ctx: SysContext<'_>, state: SysState) -> Result<Sys, CheckpointError> {
        let mut sys = ctx.sys;
        if state.code_pages.len() != sys.code_pages.len() {
            return Err(CheckpointError::inconsistent(format!(
                "a code-page map of {} words for {} of RAM",
                state.code_pages.len(),
                sys.code_pages.len()
            )));
        }
        sys.code_pages = state.code_pages;
        sys.code_epoch = state.code_epoch;
        sys.written_code = state.written_code;
        sys.end_block = state.end_block;
        sys.io = Ports::restore((), state.io)?;
        if state.domains.running.len() != sys.domains.running.len() {
            return Err(CheckpointError::inconsistent(format!(
                "domains announced for {} cores",
                state.domains.running.len()
            )));
        }
        sys.apic_outbox = state.apic_outbox;
        sys.domains = state.domains;
        // `sys.bus` is the one the description gives: the saved one must match it.
        state
            .bus
            .check_restored(&sys.bus)
            .map_err(CheckpointError::inconsistent)?;
        sys.bus = state.bus;
        sys.timing = match state.timing {
            Some(t) => {
                let ram = sys.ram.ranges().to_vec();
                let fresh = TimingModel::new(ctx.desc, &ram, &ctx.desc.core_sockets());
                Some(Box::new(TimingModel::restore(&fresh, t)?))
            }
            None => None,
        };
        Ok(sys)
    }
}

impl Persist for CodeCache {
    type State = super::decode::CodeCacheState;
    /// The restored RAM: blocks are decoded again from it.
    type Context<'a> = &'a Ram;

    fn save(&self) -> Self::State {
        self.state()
    }

    fn restore(ram: &Ram, state: Self::State) -> Result<CodeCache, CheckpointError> {
        CodeCache::from_state(&state, ram).map_err(CheckpointError::inconsistent)
    }
}

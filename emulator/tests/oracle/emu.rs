//! The emulated side of the oracle: one `Core` + `Sys` per test thread, RAM covering the same
//! fixed code and scratch addresses the native side maps; each case gets a fresh core and code
//! cache and runs exactly one instruction.

use super::{Regs, SCRATCH_BASE, SCRATCH_LEN, TEST_RIP};
use emulator::cpu::decode::CodeCache;
use emulator::cpu::{Core, CpuidInfo, Fault, RunState, Stop, Sys};
use emulator::devices::Ports;
use emulator::memory::{Ram, RamRange};
use std::cell::RefCell;

/// What the emulator did with a case.
pub enum EmuOut {
    /// Retired the instruction (or stopped it without a fault: `rip` tells where it went).
    Done(Regs, Vec<u8>),
    /// Raised a fault; registers and memory as left.
    Fault(Fault, Regs, Vec<u8>),
    /// Valid instruction pvmlab does not implement (yet).
    Unimplemented,
    /// The handler panicked.
    Panic(String),
    /// `hlt` / exit.
    Other(Stop),
}

const RAM_BASE: u64 = 0x10_0000;
const RAM_END: u64 = 0x0400_0000;

thread_local! {
    static SYS: RefCell<Sys> = RefCell::new(Sys::new(
        Ram::new(&[RamRange { base: RAM_BASE, len: RAM_END - RAM_BASE, node: 0 }]).expect("oracle RAM"),
        Ports::default(),
        CpuidInfo { ncores: 1, cores_per_socket: 1, tsc_hz: 1_000_000_000 },
    ));
}

fn regs_of(core: &Core) -> Regs {
    Regs {
        gpr: core.gpr,
        rflags: core.rflags,
        rip: core.rip,
        mxcsr: core.mxcsr,
        _pad: [0; 3],
        xmm: core.xmm,
    }
}

/// Runs `bytes` at `TEST_RIP` in the emulator from `regs` and scratch memory `mem`, again
/// while RIP stays on it, up to `max_steps` times.
pub fn run(bytes: &[u8], regs: &Regs, mem: &[u8], max_steps: u32) -> EmuOut {
    SYS.with(|s| {
        let mut sys = s.borrow_mut();
        let sys = &mut *sys;
        // The instruction, then int3s so the decoded block ends right after it.
        let mut code = bytes.to_vec();
        code.resize(bytes.len() + 32, 0xCC);
        sys.ram.write(TEST_RIP, &code).expect("code in RAM");
        sys.ram.write(SCRATCH_BASE, mem).expect("scratch in RAM");
        let mut core = Core::new(0, 0, 0, 0);
        core.state = RunState::Running;
        core.gpr = regs.gpr;
        core.rflags = regs.rflags;
        core.xmm = regs.xmm;
        core.mxcsr = regs.mxcsr;
        core.rip = TEST_RIP;
        let mut cache = CodeCache::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut stop = emulator::cpu::run(&mut core, sys, &mut cache, 1);
            let mut steps = 1;
            while stop.is_none() && core.rip == TEST_RIP && steps < max_steps {
                stop = emulator::cpu::run(&mut core, sys, &mut cache, 1);
                steps += 1;
            }
            stop
        }));
        let stop = match r {
            Ok(s) => s,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                return EmuOut::Panic(msg);
            }
        };
        let mut after = vec![0u8; SCRATCH_LEN];
        sys.ram
            .read(SCRATCH_BASE, &mut after)
            .expect("scratch in RAM");
        let out = regs_of(&core);
        match stop {
            None => EmuOut::Done(out, after),
            Some(Stop::Fault(f)) if f.unimplemented => EmuOut::Unimplemented,
            Some(Stop::Fault(f)) => EmuOut::Fault(f, out, after),
            Some(other) => EmuOut::Other(other),
        }
    })
}

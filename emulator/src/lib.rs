//! The emulated multi-socket x86-64 machine of pvmlab (DESIGN.md §2). It knows nothing of
//! hypervisors: it runs whatever image it is given, instruction by instruction, deterministically.

pub mod apic;
pub mod checkpoint;
pub mod cpu;
pub mod desc;
pub mod devices;
pub mod domains;
pub mod events;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod mmio;
pub mod stats;
pub mod timing;
pub mod wire;

pub use checkpoint::CheckpointError;
pub use desc::{DescError, MachineDesc};
pub use machine::{Machine, MachineError, RunEnd};

/// Options of a bare-metal run (`pvmlab exec`).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// A preset name (`1s`, `2s`, `4s`, `8s`) or a RON machine file.
    pub machine: String,
    /// Start core 0 only.
    pub bsp_only: bool,
    /// End the run after this many instructions (all cores together).
    pub max_instructions: Option<u64>,
    /// The BootInfo command line.
    pub cmdline: String,
    /// Run the cache/memory/interconnect model (`--timing on`); off = functional mode.
    pub timing: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            machine: "1s".into(),
            bsp_only: false,
            max_instructions: None,
            cmdline: String::new(),
            timing: false,
        }
    }
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Everything the image wrote to the debug console.
    pub console: Vec<u8>,
    pub end: RunEnd,
    /// Instructions retired by all cores.
    pub instructions: u64,
    /// Simulated cycles (the furthest core clock).
    pub cycles: u64,
    /// [`Machine::state_hash`] at the end.
    pub state_hash: u64,
    /// The statistics summary (host time left at zero: results are deterministic).
    pub report: stats::Report,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Desc(#[from] DescError),
    #[error(transparent)]
    Machine(#[from] MachineError),
}

/// Runs a bare-metal image to its end.
pub fn run_image(elf: &[u8], cfg: &RunConfig) -> Result<Outcome, Error> {
    let desc = MachineDesc::load(&cfg.machine)?;
    let mut m = Machine::new(&desc)?;
    if cfg.timing {
        m.enable_timing();
    }
    m.load_elf(elf, cfg.bsp_only, &cfg.cmdline)?;
    let end = loop {
        if let Some(end) = m.run_for(u64::MAX, cfg.max_instructions) {
            break end;
        }
    };
    Ok(Outcome {
        console: std::mem::take(&mut m.sys.io.console),
        end,
        instructions: m.instructions,
        cycles: m.cycles(),
        state_hash: m.state_hash(),
        report: m.report(0.0),
    })
}

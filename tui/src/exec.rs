//! `pvmlab exec`: a bare-metal run. The guest's console goes to standard output and nothing
//! else does; reports go to standard error.

use emulator::machine::status;
use emulator::{Machine, MachineDesc, RunEnd};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Machine preset (1s, 2s, 4s, 8s) or a machine description file (.ron).
    #[arg(long, default_value = "1s", value_name = "PRESET|FILE")]
    pub machine: String,
    /// Start core 0 only; the others stay stopped.
    #[arg(long)]
    pub bsp_only: bool,
    /// End the run (exit status 124) after this many instructions, all cores together.
    #[arg(long, value_name = "N")]
    pub max_instructions: Option<u64>,
    /// `on`: caches, memory controllers and interconnect are modelled (cycle level);
    /// `off`: fixed latencies, same architectural results, faster.
    #[arg(long, value_enum, default_value = "on")]
    pub timing: Timing,
    /// Print run statistics on standard error at the end.
    #[arg(long)]
    pub stats: bool,
    /// Write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// The command line handed to the image in BootInfo.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// The static x86-64 ELF image to run.
    #[arg(value_name = "IMAGE.elf")]
    pub image: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    On,
    Off,
}

/// Instructions between two flushes of the guest console to stdout.
const CHUNK: u64 = 20_000_000;

pub fn run(args: &ExecArgs) -> i32 {
    let desc = match MachineDesc::load(&args.machine) {
        Ok(d) => d,
        Err(e) => {
            crate::report_error(&e);
            return status::BAD_INPUT;
        }
    };
    let image = match std::fs::read(&args.image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pvmlab: error: cannot read {}: {e}", args.image.display());
            return status::BAD_INPUT;
        }
    };
    let mut m = match Machine::new(&desc) {
        Ok(m) => m,
        Err(e) => {
            crate::report_error(&e);
            return status::BAD_INPUT;
        }
    };
    if args.timing == Timing::On {
        m.enable_timing();
    }
    if let Err(e) = m.load_elf(&image, args.bsp_only, &args.cmdline) {
        eprintln!("pvmlab: error: {}: {e}", args.image.display());
        return status::BAD_INPUT;
    }
    // Host time is measured for the report only; it never reaches the simulation.
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let end = loop {
        let end = m.run_for(CHUNK, args.max_instructions);
        let bytes = std::mem::take(&mut m.sys.io.console);
        // A closed stdout (e.g. `| head`) must not stop or crash the run.
        let _ = out.write_all(&bytes).and_then(|_| out.flush());
        if let Some(end) = end {
            break end;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    match &end {
        RunEnd::Exit(v) => {
            if *v > 0xFF || args.stats {
                eprintln!("pvmlab: exit port: {v:#x} (status {})", v & 0xFF);
            }
        }
        RunEnd::AllHalted => {
            if args.stats {
                eprintln!("pvmlab: every core halted");
            }
        }
        RunEnd::InstructionLimit => {
            eprintln!(
                "pvmlab: stopped after {} instructions (--max-instructions)",
                m.instructions
            );
        }
        RunEnd::Fault { report, .. } => eprintln!("pvmlab: {report}"),
    }
    let report = m.report(secs);
    if args.stats {
        eprint!("{}", report.table());
        eprintln!(
            "state hash {:016x}; {} blocks decoded, {} invalidated",
            m.state_hash(),
            m.cache.decoded_blocks,
            m.cache.invalidated_blocks
        );
    }
    if let Some(path) = &args.stats_json {
        let json = serde_json::to_string_pretty(&report).expect("reports serialise");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("pvmlab: error: cannot write {}: {e}", path.display());
            return status::BAD_INPUT;
        }
    }
    end.exit_status()
}

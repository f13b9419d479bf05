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
    /// Print run statistics on standard error at the end.
    #[arg(long)]
    pub stats: bool,
    /// The command line handed to the image in BootInfo.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// The static x86-64 ELF image to run.
    #[arg(value_name = "IMAGE.elf")]
    pub image: PathBuf,
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
    if args.stats {
        print_stats(&m, secs);
    }
    end.exit_status()
}

fn print_stats(m: &Machine, secs: f64) {
    let mips = m.instructions as f64 / secs.max(1e-9) / 1e6;
    eprintln!(
        "machine      {} ({} cores, {} nodes)",
        m.desc.name,
        m.cores.len(),
        m.desc.nnodes()
    );
    eprintln!("instructions {}", m.instructions);
    eprintln!("cycles       {}", m.cycles());
    eprintln!("host time    {secs:.3} s ({mips:.1} MIPS)");
    eprintln!(
        "blocks       {} decoded, {} invalidated",
        m.cache.decoded_blocks, m.cache.invalidated_blocks
    );
    eprintln!("state hash   {:016x}", m.state_hash());
    eprintln!("core  socket  instructions      cycles  state");
    for c in &m.cores {
        eprintln!(
            "{:>4}  {:>6}  {:>12}  {:>10}  {:?}",
            c.index, c.socket, c.instret, c.cycles, c.state
        );
    }
}

//! `pvmlab exec`: a bare-metal run. The guest's console goes to standard output and nothing
//! else does; reports go to standard error.

use emulator::machine::status;
use emulator::{Machine, MachineDesc, RunEnd};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use workloads::udpgen::{UdpGenConfig, UdpGenerator};

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
    /// Run to the first quantum boundary at or after simulated cycle CYCLE, write a
    /// checkpoint of the whole machine there (--checkpoint FILE), and go on.
    #[arg(long, value_name = "CYCLE", requires = "checkpoint")]
    pub checkpoint_at: Option<u64>,
    /// Where --checkpoint-at writes its checkpoint (`--restore FILE` continues from it).
    #[arg(long, value_name = "FILE", requires = "checkpoint_at")]
    pub checkpoint: Option<PathBuf>,
    /// End once the checkpoint is written (exit status 0) instead of running on.
    #[arg(long, requires = "checkpoint_at")]
    pub stop_after_checkpoint: bool,
    /// Attach a seeded UDP request/response generator to the wire of the machine's first
    /// NIC: a RON file (e.g. workloads/scenarios/udpgen.ron) or the inline form
    /// `closed:4,requests=1000,seed=7` (`open:200k` for open loop at a rate; FIELD=VALUE for
    /// the file's other fields). Targets default to the NIC's MAC. Repeat for several
    /// generators (distinct names and MACs). Its report goes to stderr and --stats-json.
    #[arg(long, value_name = "FILE.ron|SPEC", conflicts_with = "restore")]
    pub udp_gen: Vec<String>,
    /// Continue the run a checkpoint file holds (its machine, image and timing mode come
    /// from the file) instead of starting IMAGE.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["image", "machine", "bsp_only", "cmdline", "timing"]
    )]
    pub restore: Option<PathBuf>,
    /// The static x86-64 ELF image to run (none with --restore).
    #[arg(value_name = "IMAGE.elf", required_unless_present = "restore")]
    pub image: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    On,
    Off,
}

/// Instructions between two flushes of the guest console to stdout.
const CHUNK: u64 = 20_000_000;
/// Simulated cycles between two flushes on the way to a checkpoint.
const CHUNK_CYCLES: u64 = 20_000_000;

/// Prints an error about `path` and its causes on one line.
fn report_file_error(path: &Path, e: &dyn std::error::Error) {
    let mut line = format!("pvmlab: error: {}: {e}", path.display());
    let mut cause = e.source();
    while let Some(c) = cause {
        line += &format!(": {c}");
        cause = c.source();
    }
    eprintln!("{line}");
}

pub fn run(args: &ExecArgs) -> i32 {
    let mut m = match &args.restore {
        Some(path) => {
            let t = Instant::now();
            match Machine::restore_file(path) {
                Ok(mut m) => {
                    if let Err(status) = reattach_endpoints(&mut m, path) {
                        return status;
                    }
                    if args.stats {
                        eprintln!(
                            "pvmlab: restored {} ({} bytes) in {:.1} ms host time",
                            path.display(),
                            file_len(path),
                            t.elapsed().as_secs_f64() * 1e3
                        );
                    }
                    m
                }
                Err(e) => {
                    report_file_error(path, &e);
                    return status::BAD_INPUT;
                }
            }
        }
        None => match start(args) {
            Ok(m) => m,
            Err(status) => return status,
        },
    };
    // Refuse a checkpoint file that cannot be written before running, not after.
    if let Some(path) = &args.checkpoint
        && let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    {
        report_file_error(path, &emulator::CheckpointError::Write(e));
        return status::BAD_INPUT;
    }
    // Host time is measured for the report only; it never reaches the simulation.
    let start = Instant::now();
    let restored_instructions = m.instructions;
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) must not stop or crash the run.
    let mut flush = |m: &mut Machine| {
        let bytes = std::mem::take(&mut m.sys.io.console);
        let _ = out.write_all(&bytes).and_then(|_| out.flush());
    };
    // Kinds of unimplemented #UD already warned about (a restored run's were, before).
    let mut warned: Vec<String> = m
        .cores
        .iter()
        .flat_map(|c| c.unimplemented_first.iter().map(|u| u.what.clone()))
        .collect();
    let mut stopped = false;
    if let (Some(at), Some(path)) = (args.checkpoint_at, &args.checkpoint) {
        // In pieces, so that the console streams meanwhile; stopping between quanta never
        // changes the schedule.
        while m.end().is_none() && m.now() < at {
            m.run_until_cycle(
                at.min(m.now().saturating_add(CHUNK_CYCLES)),
                args.max_instructions,
            );
            flush(&mut m);
            warn_unimplemented(&m, &mut warned);
        }
        // The console is flushed: a restored run prints what comes after.
        let t = Instant::now();
        if let Err(e) = m.save_checkpoint(path) {
            report_file_error(path, &e);
            return status::BAD_INPUT;
        }
        if m.end().is_some() {
            eprintln!(
                "pvmlab: the run ended at cycle {}, before cycle {at}: the checkpoint holds its end",
                m.cycles()
            );
        } else if args.stats {
            eprintln!(
                "pvmlab: checkpoint at cycle {} ({} instructions) written to {} ({} bytes, \
                 {:.1} ms host time)",
                m.now(),
                m.instructions,
                path.display(),
                file_len(path),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        stopped = args.stop_after_checkpoint && m.end().is_none();
    }
    let end = if stopped {
        None
    } else {
        loop {
            let end = m.run_for(CHUNK, args.max_instructions);
            flush(&mut m);
            warn_unimplemented(&m, &mut warned);
            if end.is_some() {
                break end;
            }
        }
    };
    let secs = start.elapsed().as_secs_f64();
    if let Some(end) = &end {
        match end {
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
    }
    let mut report = m.report(secs);
    // MIPS of this process's part of a restored run.
    report.mips = (m.instructions - restored_instructions) as f64 / secs.max(1e-9) / 1e6;
    if args.stats {
        eprint!("{}", report.table());
        eprintln!(
            "state hash {:016x}; {} blocks decoded, {} invalidated",
            m.state_hash(),
            m.cache.decoded_blocks,
            m.cache.invalidated_blocks
        );
    }
    if end.is_some() {
        print_endpoints(&m);
    }
    if let Some(path) = &args.stats_json {
        let json =
            serde_json::to_string_pretty(&stats_json(&report, &m)).expect("reports serialise");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("pvmlab: error: cannot write {}: {e}", path.display());
            return status::BAD_INPUT;
        }
    }
    end.map_or(0, |e| e.exit_status())
}

/// One line on stderr for each kind of instruction (or mode) pvmlab does not implement whose
/// #UD went to the image's own handler since the last call, the first time it does
/// (`Core::unimplemented_first`); `--stats` counts them per core (`unimpl #UD`).
fn warn_unimplemented(m: &Machine, warned: &mut Vec<String>) {
    for c in &m.cores {
        for u in &c.unimplemented_first {
            if !warned.contains(&u.what) {
                eprintln!(
                    "pvmlab: warning: core {}: {} (rip {:#x}) is not implemented by pvmlab; \
                     raised #UD to the image's handler",
                    c.index, u.what, u.rip
                );
                warned.push(u.what.clone());
            }
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A new machine with the image of `args` loaded, or the exit status of a bad input.
fn start(args: &ExecArgs) -> Result<Machine, i32> {
    // clap requires IMAGE unless --restore is given.
    let Some(image_path) = &args.image else {
        eprintln!("pvmlab: error: no IMAGE to run");
        return Err(status::BAD_INPUT);
    };
    let desc = match MachineDesc::load(&args.machine) {
        Ok(d) => d,
        Err(e) => {
            crate::report_error(&e);
            return Err(status::BAD_INPUT);
        }
    };
    let image = match std::fs::read(image_path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pvmlab: error: cannot read {}: {e}", image_path.display());
            return Err(status::BAD_INPUT);
        }
    };
    let mut m = match Machine::new(&desc) {
        Ok(m) => m,
        Err(e) => {
            crate::report_error(&e);
            return Err(status::BAD_INPUT);
        }
    };
    if args.timing == Timing::On {
        m.enable_timing();
    }
    if let Err(e) = m.load_elf(&image, args.bsp_only, &args.cmdline) {
        eprintln!("pvmlab: error: {}: {e}", image_path.display());
        return Err(status::BAD_INPUT);
    }
    attach_generators(&mut m, &args.udp_gen)?;
    Ok(m)
}

/// Attaches a UDP generator for each `--udp-gen` spec to the wire of the machine's first NIC,
/// in the order given, at time 0; or the exit status of a bad spec.
fn attach_generators(m: &mut Machine, specs: &[String]) -> Result<(), i32> {
    if specs.is_empty() {
        return Ok(());
    }
    let fail = |spec: &str, e: &dyn std::fmt::Display| {
        eprintln!("pvmlab: error: --udp-gen {spec}: {e}");
        Err(status::BAD_INPUT)
    };
    let Some(nic) = m.sys.bus.nics.first().map(|n| n.mac) else {
        return fail(
            &specs[0],
            &format!(
                "machine `{}` has no NIC to attach it to (the presets have one)",
                m.desc.name
            ),
        );
    };
    let mut generators: Vec<UdpGenerator> = Vec::new();
    for spec in specs {
        let mut cfg = match UdpGenConfig::load(spec) {
            Ok(c) => c,
            Err(e) => {
                crate::report_error(&e);
                return Err(status::BAD_INPUT);
            }
        };
        cfg.fill_in_target_macs(nic);
        let g = match UdpGenerator::new(cfg) {
            Ok(g) => g,
            Err(e) => return fail(spec, &e),
        };
        let (name, mac) = (&g.config().name, g.config().mac);
        if let Some(other) = generators
            .iter()
            .find(|o| &o.config().name == name || o.config().mac == mac)
        {
            return fail(
                spec,
                &format!(
                    "another generator is `{}` with MAC {}: give each its own `name` and `mac`",
                    other.config().name,
                    other.config().mac
                ),
            );
        }
        if mac.0 == nic {
            return fail(spec, &format!("the generator's MAC {mac} is the NIC's"));
        }
        generators.push(g);
    }
    for g in generators {
        m.attach_endpoint(0, Box::new(g));
    }
    Ok(())
}

/// Hands every endpoint of a restored checkpoint back to its wire, rebuilt from the state
/// the checkpoint holds; or the exit status if one cannot be.
fn reattach_endpoints(m: &mut Machine, path: &Path) -> Result<(), i32> {
    workloads::endpoints::reattach_all(m)
        .map(drop)
        .map_err(|e| {
            eprintln!("pvmlab: error: {}: {e}", path.display());
            status::BAD_INPUT
        })
}

/// The wires' counters and their endpoints' reports, on stderr, if any endpoint is attached.
fn print_endpoints(m: &Machine) {
    for w in workloads::endpoints::summaries(m) {
        if !w.endpoints.is_empty() {
            eprint!("{}", w.text());
        }
    }
}

/// What `--stats-json` writes: the report, and `wires`, one per NIC, with its endpoints.
fn stats_json(report: &emulator::stats::Report, m: &Machine) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("reports serialise");
    if let Some(o) = v.as_object_mut() {
        let wires = workloads::endpoints::summaries(m);
        o.insert(
            "wires".into(),
            serde_json::to_value(wires).expect("wire summaries serialise"),
        );
    }
    v
}

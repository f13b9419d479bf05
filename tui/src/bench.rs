//! `pvmlab bench`: emulated MIPS on a fixed CPU-bound image (the `bench` bare-metal program,
//! one core), in functional mode and with the timing model, and what the model costs.
//! Host time is measured here only; it never reaches the simulation.

use emulator::{Machine, MachineDesc, RunEnd};
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modes {
    Off,
    On,
    Both,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which built-in image to run (`bench` or `bench-small`).
    #[arg(long, default_value = "bench")]
    pub image: String,
    /// Timing model off (functional), on, or both for comparison.
    #[arg(long, value_enum, default_value = "both")]
    pub timing: Modes,
    /// Also run the functional mode without page tables (linear = physical, no walks at all)
    /// to show what 4-level paging costs once the TLB is warm.
    #[arg(long)]
    pub paging_cost: bool,
    /// How many times to run each mode; the best run is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

pub fn run(args: &BenchArgs) -> i32 {
    let Some(image) = workloads::images::get(&args.image) else {
        eprintln!(
            "pvmlab: error: no built-in image `{}` (have: {})",
            args.image,
            workloads::images::names().collect::<Vec<_>>().join(", ")
        );
        return emulator::machine::status::BAD_INPUT;
    };
    let modes: &[bool] = match args.timing {
        Modes::Off => &[false],
        Modes::On => &[true],
        Modes::Both => &[false, true],
    };
    let mut best = Vec::new();
    if args.paging_cost {
        let paged = measure(image, false, args.runs.max(1), true);
        let bare = measure(image, false, args.runs.max(1), false);
        match (paged, bare) {
            (Ok(paged), Ok(bare)) => {
                println!(
                    "paging costs {:.1}% ({bare:.1} MIPS without page tables -> {paged:.1} with)",
                    (1.0 - paged / bare) * 100.0
                );
                return 0;
            }
            (Err(msg), _) | (_, Err(msg)) => {
                eprintln!("pvmlab: error: {msg}");
                return 1;
            }
        }
    }
    for &timing in modes {
        match measure(image, timing, args.runs.max(1), true) {
            Ok(mips) => best.push((timing, mips)),
            Err(msg) => {
                eprintln!("pvmlab: error: {msg}");
                return 1;
            }
        }
    }
    if let [(_, off), (_, on)] = best[..] {
        println!(
            "timing model costs {:.0}% of functional speed ({off:.1} -> {on:.1} MIPS)",
            (1.0 - on / off) * 100.0
        );
    }
    0
}

/// Runs the image `runs` times; returns the best MIPS.
fn measure(image: &[u8], timing: bool, runs: u32, paging: bool) -> Result<f64, String> {
    let desc = MachineDesc::load("1s").expect("the 1s preset is valid");
    let mode = match (timing, paging) {
        (true, _) => "timing on ",
        (false, true) => "timing off",
        (false, false) => "no paging ",
    };
    let mut best: f64 = 0.0;
    for run in 0..runs {
        let mut m = Machine::new(&desc).map_err(|e| e.to_string())?;
        if timing {
            m.enable_timing();
        }
        m.load_elf(image, true, "").map_err(|e| e.to_string())?;
        if !paging {
            // CR3 = 0 is the emulator's bare mode: linear = physical, no tables walked.
            m.cores[0].cr3 = 0;
        }
        let start = Instant::now();
        let end = m.run_for(u64::MAX, None);
        let secs = start.elapsed().as_secs_f64();
        if !matches!(end, Some(RunEnd::Exit(0) | RunEnd::AllHalted)) {
            return Err(format!(
                "the benchmark image did not finish cleanly: {end:?}"
            ));
        }
        let mips = m.instructions as f64 / secs / 1e6;
        println!(
            "{mode} run {}: {} instructions, {} cycles, {secs:.3} s = {mips:.1} MIPS",
            run + 1,
            m.instructions,
            m.cycles()
        );
        best = best.max(mips);
    }
    println!("{mode} best: {best:.1} MIPS (one host core)");
    Ok(best)
}

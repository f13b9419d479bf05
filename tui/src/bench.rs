//! `pvmlab bench`: emulated MIPS on a fixed CPU-bound image (the `bench` bare-metal program),
//! functional level, one host core.

use emulator::{Machine, MachineDesc, RunEnd};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which built-in image to run (`bench` or `bench-small`).
    #[arg(long, default_value = "bench")]
    pub image: String,
    /// How many times to run it; the best run is reported.
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
    let desc = MachineDesc::load("1s").expect("the 1s preset is valid");
    let mut best = f64::INFINITY;
    let mut count = 0;
    for run in 0..args.runs.max(1) {
        let mut m = Machine::new(&desc).expect("the 1s preset maps");
        if let Err(e) = m.load_elf(image, true, "") {
            crate::report_error(&e);
            return 1;
        }
        let start = Instant::now();
        let end = m.run_for(u64::MAX, None);
        let secs = start.elapsed().as_secs_f64();
        if !matches!(end, Some(RunEnd::Exit(0) | RunEnd::AllHalted)) {
            eprintln!("pvmlab: error: the benchmark image did not finish cleanly: {end:?}");
            return 1;
        }
        count = m.instructions;
        println!(
            "run {}: {} instructions in {secs:.3} s = {:.1} MIPS",
            run + 1,
            m.instructions,
            m.instructions as f64 / secs / 1e6
        );
        best = best.min(secs);
    }
    println!(
        "best: {:.1} MIPS ({} instructions, functional level, one host core)",
        count as f64 / best / 1e6,
        count
    );
    0
}

//! `pvmlab`: the command-line front end (DESIGN.md §8).

mod bench;
mod exec;
mod mlc;
mod tui;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pvmlab",
    version,
    about = "A deterministic, cycle-level testbed for pVM-based hypervisors on NUMA machines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a bare-metal x86-64 ELF image on an emulated machine (DESIGN.md §3.1).
    Exec(exec::ExecArgs),
    /// Watch a run live: per-node memory traffic, links, queues (`--lesson numa` teaches NUMA).
    Tui(tui::TuiArgs),
    /// Measure the emulator's speed (emulated MIPS) on a fixed CPU-bound image.
    Bench(bench::BenchArgs),
    /// Measure idle latency and read bandwidth between every socket and node, like Intel MLC.
    Mlc(mlc::MlcArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Exec(args) => exec::run(&args),
        Command::Tui(args) => tui::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Mlc(args) => mlc::run(&args),
    };
    ExitCode::from(status as u8)
}

/// Prints an error and its causes on one line: `pvmlab: error: outer: inner`.
pub fn report_error(e: &dyn std::error::Error) {
    let mut line = format!("pvmlab: error: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        line += &format!(": {c}");
        cause = c.source();
    }
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

//! `smp` on the 8 cores of preset `2s`: atomics, spinlock and barrier give the totals the logic
//! implies, the same as 8 host threads running the same code; two runs are identical.

use std::thread;

use emulator::RunConfig;

use crate::progs::smp::{self, ITERS, Shared};

fn cfg() -> RunConfig {
    RunConfig {
        machine: "2s".into(),
        ..RunConfig::default()
    }
}

/// The same worker and report on 8 host threads.
fn native(ncores: usize) -> String {
    let shared = Shared::new();
    thread::scope(|s| {
        for core in 0..ncores {
            let shared = &shared;
            s.spawn(move || smp::worker(shared, core, ncores));
        }
    });
    let mut out = String::new();
    assert!(
        smp::report(&mut out, &shared, ncores).unwrap(),
        "native smp failed:\n{out}"
    );
    out
}

#[test]
fn smp_on_8_cores() {
    let out = crate::run("smp", &cfg());
    crate::assert_exit_0("smp", &out);
    let console = String::from_utf8_lossy(&out.console);
    // Totals written out here, not taken from the program.
    for line in [
        "cores: 8, 2000 operations per core per phase".to_string(),
        format!("fetch_add u64: {0} (expected {0})", 8 * ITERS),
        format!("compare_exchange_weak u64: {0} (expected {0})", 8 * ITERS),
        format!("spinlock counter: {0} (expected {0})", 8 * ITERS),
        format!("spinlock sum: {0} (expected {0})", 36 * ITERS),
        format!("ring turns: {0} (expected {0})", 8 * smp::LAPS),
        "smp: ok".to_string(),
    ] {
        assert!(
            console.lines().any(|l| l == line),
            "missing {line:?} in:\n{console}"
        );
    }
    assert!(!console.contains("WRONG"), "{console}");
    crate::assert_same_output("smp", &out.console, native(8).as_bytes());
}

#[test]
fn smp_runs_are_identical() {
    let a = crate::run("smp", &cfg());
    let b = crate::run("smp", &cfg());
    crate::assert_exit_0("smp", &a);
    assert_eq!(a.console, b.console, "console");
    assert_eq!(a.end, b.end, "end");
    assert_eq!(a.instructions, b.instructions, "instructions");
    assert_eq!(a.cycles, b.cycles, "cycles");
    assert_eq!(a.state_hash, b.state_hash, "state hash");
}

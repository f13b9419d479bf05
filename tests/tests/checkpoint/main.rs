//! Checkpoint and restore with the real images (DESIGN.md §2.4): a run restored from a
//! checkpoint finishes exactly as the uninterrupted run does — the same console output,
//! instruction counts, cycles, statistics, state hash, and a byte-identical final checkpoint
//! (the whole machine: cores, TLBs, code cache, caches, directory, queues, devices) — with the
//! timing model on and off, on multi-core images, from checkpoints taken at several points.
//! `nic.rs`: the same with NIC traffic in flight and the wire's generator handed back.

mod nic;

use emulator::stats::Report;
use emulator::{Machine, MachineDesc, RunEnd};

fn start(image: &str, preset: &str, timing: bool) -> Machine {
    start_with(image, preset, timing, false)
}

fn start_with(image: &str, preset: &str, timing: bool, bsp_only: bool) -> Machine {
    let elf = workloads::images::get(image).unwrap_or_else(|| panic!("no image {image}"));
    let mut m = Machine::new(&MachineDesc::load(preset).unwrap()).unwrap();
    if timing {
        m.enable_timing();
    }
    m.load_elf(elf, bsp_only, "").unwrap();
    m
}

/// What a finished run shows.
#[derive(Debug, PartialEq)]
struct Finish {
    console: String,
    end: RunEnd,
    instructions: u64,
    cycles: u64,
    state_hash: u64,
    /// Host time left at zero: everything else in it is deterministic.
    report: Report,
}

/// Runs `m` to its end; `console` is what was taken from it before.
fn finish(m: &mut Machine, mut console: Vec<u8>) -> (Finish, Vec<u8>) {
    let end = m.run_for(u64::MAX, None).expect("the run ends");
    console.append(&mut m.sys.io.console);
    let f = Finish {
        console: String::from_utf8_lossy(&console).into_owned(),
        end,
        instructions: m.instructions,
        cycles: m.cycles(),
        state_hash: m.state_hash(),
        report: m.report(0.0),
    };
    (f, m.checkpoint())
}

fn same_state(a: &[u8], b: &[u8], what: &str) {
    if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!(
            "{what}: final checkpoints differ at byte {at} of {}",
            a.len()
        );
    }
    assert_eq!(a.len(), b.len(), "{what}: final checkpoint lengths");
}

/// Checkpoints `image` at each fraction of its simulated run, restores, and finishes.
fn continues_exactly(image: &str, preset: &str, timing: bool, fractions: &[(u64, u64)]) {
    continues_exactly_with(image, preset, timing, false, fractions);
}

fn continues_exactly_with(
    image: &str,
    preset: &str,
    timing: bool,
    bsp_only: bool,
    fractions: &[(u64, u64)],
) {
    let start =
        |image: &str, preset: &str, timing: bool| start_with(image, preset, timing, bsp_only);
    let (reference, last) = finish(&mut start(image, preset, timing), Vec::new());
    assert_eq!(reference.end, RunEnd::Exit(0), "{}", reference.console);
    for &(num, den) in fractions {
        let at = reference.cycles * num / den;
        let what = format!(
            "{image} on {preset}, timing {timing}, bsp-only {bsp_only}, checkpoint at cycle {at}"
        );
        let mut m = start(image, preset, timing);
        assert_eq!(m.run_until_cycle(at, None), None, "{what}: ended early");
        let console = std::mem::take(&mut m.sys.io.console);
        let mut r = Machine::restore(&m.checkpoint()).unwrap_or_else(|e| panic!("{what}: {e}"));
        drop(m);
        let (restored, restored_last) = finish(&mut r, console);
        assert_eq!(restored, reference, "{what}");
        same_state(&restored_last, &last, &what);
    }
}

#[test]
fn smp_on_2s_continues_exactly_from_checkpoints() {
    for timing in [false, true] {
        continues_exactly("smp", "2s", timing, &[(1, 100), (1, 4), (1, 2), (9, 10)]);
    }
}

#[test]
fn sort_on_2s_continues_exactly_from_checkpoints() {
    for timing in [false, true] {
        continues_exactly("sort", "2s", timing, &[(1, 50), (1, 2), (19, 20)]);
    }
}

/// The mini kernel: its own page tables (4 KiB pages, ring 3, accessed/dirty bits), IDT and
/// TSS, APIC timers in all three modes, cores started by INIT/SIPI, IPIs — checkpointed at
/// twenty points across its run.
#[test]
fn the_kernel_continues_exactly_from_checkpoints_everywhere() {
    let points: Vec<(u64, u64)> = (1..=20).map(|k| (k, 21)).collect();
    for (timing, bsp_only) in [(false, false), (true, false), (true, true)] {
        continues_exactly_with("kernel", "2s", timing, bsp_only, &points);
    }
}

/// Checkpoint, restore, run on, checkpoint the restored machine, restore again: a chain of
/// restores is as good as one uninterrupted run.
#[test]
fn a_chain_of_restores_continues_exactly() {
    let (reference, last) = finish(&mut start("smp", "4s", true), Vec::new());
    let mut m = start("smp", "4s", true);
    let mut console = Vec::new();
    for k in 1..=4 {
        m.run_until_cycle(reference.cycles * k / 5, None);
        console.append(&mut m.sys.io.console);
        m = Machine::restore(&m.checkpoint()).unwrap();
    }
    let (restored, restored_last) = finish(&mut m, console);
    assert_eq!(restored, reference);
    same_state(&restored_last, &last, "smp on 4s, four restores");
}

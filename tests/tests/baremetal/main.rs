//! Bare-metal images in the emulator (DESIGN.md §3.1, §9): programs of real library code
//! compared byte for byte with the same logic run natively, atomics across cores, determinism,
//! and the error outcomes.

// The program logic of the images, compiled here for the host. `progs.rs` names its modules
// by paths relative to itself, so the same file serves both builds.
extern crate alloc;
// Not every item is used here (`bench::ROUNDS_FULL` runs only as an image).
#[allow(dead_code)]
#[path = "../../../guests/baremetal/src/progs.rs"]
mod progs;
#[path = "../../../guests/baremetal/src/sync.rs"]
mod sync;

mod faults;
mod hello;
mod smp;
mod twins;

use emulator::{Outcome, RunConfig, RunEnd};

/// Runs the image `name` from `target/images` with `cfg`.
pub fn run(name: &str, cfg: &RunConfig) -> Outcome {
    let elf = workloads::images::get(name).unwrap_or_else(|| panic!("no image {name}"));
    emulator::run_image(elf, cfg).unwrap_or_else(|e| panic!("{name}: the run failed to start: {e}"))
}

/// Panics with the console and how the run ended unless it exited with status 0.
pub fn assert_exit_0(name: &str, out: &Outcome) {
    assert!(
        out.end == RunEnd::Exit(0),
        "{name} ended with {:?} after {} instructions; console:\n{}",
        out.end,
        out.instructions,
        String::from_utf8_lossy(&out.console)
    );
}

/// Asserts two outputs are equal, showing the first differing line when they are not.
pub fn assert_same_output(name: &str, emulated: &[u8], native: &[u8]) {
    if emulated == native {
        return;
    }
    let e = String::from_utf8_lossy(emulated);
    let n = String::from_utf8_lossy(native);
    let (el, nl): (Vec<_>, Vec<_>) = (e.lines().collect(), n.lines().collect());
    let at = el
        .iter()
        .zip(&nl)
        .position(|(a, b)| a != b)
        .unwrap_or(el.len().min(nl.len()));
    panic!(
        "{name}: emulated output differs from native at line {} ({} vs {} bytes)\n\
         emulated: {:?}\n  native: {:?}",
        at + 1,
        emulated.len(),
        native.len(),
        el.get(at),
        nl.get(at)
    );
}

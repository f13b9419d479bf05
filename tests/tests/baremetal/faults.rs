//! The error outcomes of a bare-metal run (DESIGN.md §3.1), and the runtime's panic path.

use emulator::{RunConfig, RunEnd};

fn faults(mode: &str, max_instructions: Option<u64>) -> emulator::Outcome {
    let cfg = RunConfig {
        cmdline: mode.into(),
        max_instructions,
        ..RunConfig::default()
    };
    crate::run("faults", &cfg)
}

#[track_caller]
fn assert_fault(mode: &str, vector: u8) {
    let out = faults(mode, Some(10_000_000));
    match &out.end {
        RunEnd::Fault {
            vector: v,
            rip,
            report,
        } => {
            assert_eq!(*v, vector, "{mode}: wrong vector; report:\n{report}");
            assert!(*rip >= 0x20_0000, "{mode}: rip {rip:#x} outside the image");
            assert!(!report.is_empty(), "{mode}: empty report");
        }
        other => panic!("{mode}: expected a fault with vector {vector}, got {other:?}"),
    }
}

#[test]
fn ud2_is_an_invalid_opcode() {
    assert_fault("ud2", 6);
}

#[test]
fn division_by_zero_is_a_divide_error() {
    assert_fault("div0", 0);
}

#[test]
fn unmapped_read_is_a_page_fault() {
    assert_fault("pf", 14);
}

#[test]
fn endless_loop_stops_at_the_instruction_limit() {
    let out = faults("spin", Some(200_000));
    assert_eq!(out.end, RunEnd::InstructionLimit);
    assert!(
        (200_000..200_000 + 10_000).contains(&out.instructions),
        "stopped after {} instructions",
        out.instructions
    );
}

#[test]
fn panic_prints_its_message_and_exits_101() {
    let out = faults("panic", Some(10_000_000));
    assert_eq!(
        out.end,
        RunEnd::Exit(101),
        "{}",
        String::from_utf8_lossy(&out.console)
    );
    let console = String::from_utf8_lossy(&out.console);
    assert!(
        console.contains("panicked at src/bin/faults.rs"),
        "{console}"
    );
    assert!(console.contains("deliberate panic, 2 + 2 = 4"), "{console}");
}

#[test]
fn unknown_mode_exits_2() {
    let out = faults("nonsense", Some(10_000_000));
    assert_eq!(out.end, RunEnd::Exit(2));
}

//! The kernel's deliberate failures (its command line picks one): what the machine does when
//! an exception has nowhere to go.

use emulator::RunEnd;
use emulator::machine::status;

use crate::{console, run};

/// Ring 3 runs `hlt` and there is no IDT at all: the #GP ends the run with the machine's
/// report, pointing at the `hlt` in ring 3.
#[test]
fn ring3_hlt_without_an_idt_ends_the_run_with_a_gp_report() {
    let out = run("1s", false, false, "no-idt");
    let text = console(&out);
    assert!(text.contains("kernel: ring 3 runs hlt (NoIdt)"), "{text}");
    match &out.end {
        RunEnd::Fault {
            vector: 13,
            rip,
            report,
        } => {
            assert!(*rip >= 0x20_0000, "rip {rip:#x}");
            assert!(
                report.contains("#GP general protection error code 0x0 at `hlt"),
                "{report}"
            );
        }
        other => panic!("expected an unhandled #GP, got {other:?}; console:\n{text}"),
    }
    assert_eq!(out.end.exit_status(), status::UNHANDLED_EXCEPTION);
}

/// Ring 3 runs `hlt`, the #GP gate is not present: delivering the #GP raises #NP, two
/// contributory faults make a #DF, and the kernel's #DF handler (on IST1) reports it.
#[test]
fn ring3_hlt_without_a_gp_gate_double_faults() {
    let out = run("1s", false, false, "no-gp-gate");
    let text = console(&out);
    assert_eq!(out.end, RunEnd::Exit(8), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("kernel: double fault: vector 8 error 0x0 at rip 0x")
                && l.contains(" cs 0x33 ")
        ),
        "{text}"
    );
}

/// As above, and the #DF gate is not present either: a triple fault, which ends the run with
/// a report saying so.
#[test]
fn no_double_fault_gate_is_a_triple_fault() {
    for timing in [false, true] {
        let out = run("2s", timing, true, "triple");
        let text = console(&out);
        assert!(text.contains("kernel: ring 3 runs hlt (Triple)"), "{text}");
        match &out.end {
            RunEnd::Fault {
                vector: 8, report, ..
            } => assert!(
                report.contains("triple fault: could not deliver #DF double fault"),
                "{report}"
            ),
            other => panic!("expected a triple fault, got {other:?}; console:\n{text}"),
        }
        assert_eq!(out.end.exit_status(), status::UNHANDLED_EXCEPTION);
    }
}

#[test]
fn a_bad_command_line_exits_2() {
    for cmdline in [
        "no-such-mode",
        "net triple",
        "no-idt triple",
        "net no-such-mode",
    ] {
        let out = run("1s", false, false, cmdline);
        assert_eq!(out.end, RunEnd::Exit(2), "{cmdline}");
        assert!(
            console(&out).contains(&format!("kernel: bad command line {cmdline:?}")),
            "{cmdline}: {}",
            console(&out)
        );
    }
}

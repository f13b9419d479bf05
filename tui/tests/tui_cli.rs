//! `pvmlab tui` from the command line: bad input and a missing terminal get one clear line on
//! stderr and status 1, never a garbled screen or a panic. (The screen itself is tested in
//! `tui/src/tui/tests.rs` with a `TestBackend`.)

use std::process::{Command, Output, Stdio};

fn pvmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvmlab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("pvmlab runs")
}

fn assert_one_line_error(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {:?}", o.stdout);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("pvmlab: error: ") && err.contains(what),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_lesson_lists_the_ones_there_are() {
    let o = pvmlab(&["tui", "--lesson", "nope"]);
    assert_one_line_error(&o, "no lesson `nope` (have: numa)");
}

#[test]
fn a_missing_image_is_named() {
    let o = pvmlab(&["tui", "/no/such/image.elf"]);
    assert_one_line_error(&o, "cannot read /no/such/image.elf");
}

#[test]
fn without_a_terminal_it_says_so_and_points_to_exec() {
    // Standard output is a pipe here.
    for args in [&["tui", "--lesson", "numa"][..], &["tui", "smp"]] {
        let o = pvmlab(args);
        assert_one_line_error(&o, "pvmlab tui needs a terminal");
        assert!(String::from_utf8_lossy(&o.stderr).contains("pvmlab exec --stats"));
    }
}

#[test]
fn an_image_or_a_lesson_is_required_not_both() {
    let o = pvmlab(&["tui"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    let o = pvmlab(&["tui", "--lesson", "numa", "smp"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    let help = pvmlab(&["tui", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for opt in ["--machine", "--lesson", "--timing", "--paused", "IMAGE.elf"] {
        assert!(text.contains(opt), "{opt} in {text}");
    }
}

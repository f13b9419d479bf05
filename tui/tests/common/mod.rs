//! Helpers shared by the CLI tests: run the built `pvmlab`, find built-in images, scratch files.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn pvmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvmlab"))
        .args(args)
        .output()
        .expect("pvmlab runs")
}

pub fn image(name: &str) -> String {
    workloads::images::path(name)
        .unwrap_or_else(|| panic!("image {name} is built"))
        .display()
        .to_string()
}

/// A path under this test binary's own scratch folder (`group`).
pub fn scratch_in(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Asserts a bad-input failure: status 1, nothing on stdout, one line on stderr starting
/// `pvmlab: error: ` and naming `what`, no panic.
#[track_caller]
pub fn assert_one_line_error(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("pvmlab: error: ") && err.contains(what),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

//! `pvmlab exec` as a user runs it: the console on stdout and nothing else, the exit status,
//! and one clear line on stderr (no panic, no backtrace) for every bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pvmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvmlab"))
        .args(args)
        .output()
        .expect("pvmlab runs")
}

fn image(name: &str) -> String {
    workloads::images::path(name)
        .unwrap_or_else(|| panic!("image {name} is built"))
        .display()
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("exec_cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Asserts a bad-input failure: status 1, exactly one line on stderr naming `what`.
fn assert_one_line_error(o: &Output, what: &str) {
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

#[test]
fn hello_prints_only_the_guest_console_on_stdout() {
    let o = pvmlab(&["exec", "--machine", "2s", &image("hello")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("8"),
        "the greeting reports the 8 cores of 2s: {out}"
    );
    assert!(o.stderr.is_empty(), "no report without --stats");
}

#[test]
fn stats_go_to_stderr() {
    let o = pvmlab(&["exec", "--stats", &image("hello")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("instructions") && err.contains("MIPS") && err.contains("state hash"),
        "{err}"
    );
}

#[test]
fn faults_and_limits_have_their_documented_statuses() {
    let faults = image("faults");
    let o = pvmlab(&["exec", "--cmdline", "ud2", &faults]);
    assert_eq!(o.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ud2"));
    let o = pvmlab(&["exec", "--cmdline", "div0", &faults]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("#DE"));
    let o = pvmlab(&[
        "exec",
        "--cmdline",
        "spin",
        "--max-instructions",
        "100000",
        &faults,
    ]);
    assert_eq!(o.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&o.stderr).contains("100000 instructions"));
}

#[test]
fn missing_and_malformed_images() {
    assert_one_line_error(
        &pvmlab(&["exec", "/nonexistent/image.elf"]),
        "cannot read /nonexistent/image.elf",
    );
    let good = std::fs::read(image("hello")).unwrap();
    let p = scratch("truncated.elf");
    std::fs::write(&p, &good[..100]).unwrap();
    assert_one_line_error(&pvmlab(&["exec", p.to_str().unwrap()]), "truncated.elf");
    let p = scratch("text.elf");
    std::fs::write(&p, b"this is not an ELF file").unwrap();
    assert_one_line_error(&pvmlab(&["exec", p.to_str().unwrap()]), "ELF");
    let p = scratch("empty.elf");
    std::fs::write(&p, b"").unwrap();
    assert_one_line_error(&pvmlab(&["exec", p.to_str().unwrap()]), "ELF");
}

#[test]
fn segment_outside_ram() {
    // Move the first PT_LOAD segment of a real image into the unmapped hole below 1 MiB.
    let mut elf = std::fs::read(image("hello")).unwrap();
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(elf[0x38..0x3A].try_into().unwrap()) as usize;
    let ph = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&p| elf[p..p + 4] == 1u32.to_le_bytes())
        .unwrap();
    elf[ph + 24..ph + 32].copy_from_slice(&0x1000u64.to_le_bytes());
    let p = scratch("low.elf");
    std::fs::write(&p, &elf).unwrap();
    assert_one_line_error(
        &pvmlab(&["exec", p.to_str().unwrap()]),
        "not inside node 0 RAM",
    );
}

#[test]
fn unknown_preset_and_bad_machine_files() {
    let hello = image("hello");
    assert_one_line_error(
        &pvmlab(&["exec", "--machine", "3s", &hello]),
        "unknown machine preset `3s`",
    );
    let p = scratch("bad.ron");
    std::fs::write(
        &p,
        "MachineDesc(\n  name: \"bad\",\n  frequency_mhz: 2400,\n  sockets: [ nope ],\n)\n",
    )
    .unwrap();
    let o = pvmlab(&["exec", "--machine", p.to_str().unwrap(), &hello]);
    assert_one_line_error(&o, "bad.ron:4:");
    assert_one_line_error(
        &pvmlab(&["exec", "--machine", "/nonexistent/m.ron", &hello]),
        "cannot read machine file",
    );
}

#[test]
fn a_user_machine_file_works() {
    let p = scratch("3s.ron");
    let two = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../emulator/machines/2s.ron"
    ))
    .unwrap();
    std::fs::write(&p, two.replace("name: \"2s\"", "name: \"mine\"")).unwrap();
    let o = pvmlab(&[
        "exec",
        "--stats",
        "--machine",
        p.to_str().unwrap(),
        &image("hello"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("machine mine") && err.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).count() >= 8, "{err}");
}

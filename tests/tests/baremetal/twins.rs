//! Each program runs in the emulator and natively; the console bytes must be equal. The
//! programs push library code nobody here wrote (sorting, formatting, 128-bit arithmetic,
//! hashing crates, Unicode tables, SSE2) through the emulated CPU: a mismatch is a CPU bug.

use std::fmt;

use emulator::RunConfig;

use crate::progs;

fn twin(name: &str, native: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) {
    let mut expected = String::new();
    native(&mut expected).expect("native run");
    let out = crate::run(name, &RunConfig::default());
    crate::assert_exit_0(name, &out);
    crate::assert_same_output(name, &out.console, expected.as_bytes());
}

#[test]
fn sort() {
    twin("sort", progs::sort::run);
}

#[test]
fn fmt() {
    twin("fmt", progs::fmt::run);
}

#[test]
fn int128() {
    twin("int128", progs::int128::run);
}

#[test]
fn hash() {
    twin("hash", progs::hash::run);
}

#[test]
fn utf8() {
    twin("utf8", progs::utf8::run);
}

#[test]
fn floats() {
    twin("floats", progs::floats::run);
}

#[test]
fn simd() {
    twin("simd", progs::simd::run);
}

#[test]
fn bench_small() {
    twin("bench-small", |out| {
        progs::bench::run(out, progs::bench::ROUNDS_SMALL)
    });
}

/// The native outputs carry the checks the programs make on themselves; a program whose own
/// checks fail natively would make the comparisons above meaningless.
#[test]
fn native_self_checks_pass() {
    let mut out = String::new();
    progs::sort::run(&mut out).unwrap();
    progs::hash::run(&mut out).unwrap();
    assert!(
        !out.contains("false"),
        "a self-check failed natively:\n{out}"
    );
    // Published test vectors: SHA-256("abc") and CRC-32("123456789").
    assert!(
        out.contains("sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert!(out.contains("crc32(123456789)=cbf43926"));
}

//! `pvmlab exec --checkpoint-at CYCLE --checkpoint FILE` and `pvmlab exec --restore FILE` as a
//! user runs them: the restored run prints the rest of the console output and ends as the
//! uninterrupted run does; bad checkpoint files get one clear line on stderr and status 1.

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{image, pvmlab};

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("checkpoint_cli", name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The deterministic lines of `--stats` (not the host-time line).
fn stats(o: &Output) -> Vec<String> {
    text(&o.stderr)
        .lines()
        .filter(|l| {
            !l.starts_with("host ")
                && !l.contains("checkpoint at cycle")
                && !l.starts_with("pvmlab: restored ")
        })
        .map(str::to_string)
        .collect()
}

/// Asserts a bad-input failure: status 1, nothing on stdout, one line on stderr naming
/// `what`, no panic.
fn assert_one_line_error(o: &Output, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("pvmlab: error: ") && err.contains(what),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_restored_run_prints_the_rest_and_ends_the_same() {
    // `smp` runs all eight cores of 2s (about 2.9 M cycles, its console at the end); `hash`
    // prints as it goes (about 6.9 M cycles): both are cut about half-way.
    for (name, at) in [("smp", "1500000"), ("hash", "3000000")] {
        let img = image(name);
        for timing in ["on", "off"] {
            let what = format!("{name}, timing {timing}");
            let common = [
                "exec",
                "--machine",
                "2s",
                "--timing",
                timing,
                "--stats",
                &img,
            ];
            let whole = pvmlab(&common);
            assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
            let file = scratch(&format!("{name}-{timing}.ck"));
            let file = file.to_str().unwrap();
            let cut = [
                "--checkpoint-at",
                at,
                "--checkpoint",
                file,
                "--stop-after-checkpoint",
            ];
            let first = pvmlab(&[&common[..], &cut[..]].concat());
            assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
            assert!(
                text(&first.stderr).contains(&format!("written to {file}")),
                "{}",
                text(&first.stderr)
            );
            let rest = pvmlab(&["exec", "--restore", file, "--stats"]);
            assert_eq!(rest.status, whole.status, "{what}: {}", text(&rest.stderr));
            assert!(!rest.stdout.is_empty(), "{what}");
            if name == "hash" {
                assert!(!first.stdout.is_empty(), "{what}");
            }
            assert_eq!(
                text(&[first.stdout.clone(), rest.stdout.clone()].concat()),
                text(&whole.stdout),
                "{what}: what the first part printed, then the rest"
            );
            assert_eq!(stats(&rest), stats(&whole), "{what}");

            // Without --stop-after-checkpoint the run goes on to the end, unchanged.
            let through = pvmlab(&[&common[..], &cut[..4]].concat());
            assert_eq!(through.status, whole.status, "{what}");
            assert_eq!(through.stdout, whole.stdout, "{what}");
            assert_eq!(stats(&through), stats(&whole), "{what}");
            let again = pvmlab(&["exec", "--restore", file]);
            assert_eq!(again.stdout, rest.stdout, "{what}");
        }
    }
}

#[test]
fn restored_runs_keep_the_exit_status_and_the_instruction_limit() {
    // `faults`-style endings are covered by the library tests; here: an instruction limit
    // that falls after the checkpoint ends the restored run at the same count, status 124.
    let sort = image("sort");
    let file = scratch("sort-limit.ck");
    let file = file.to_str().unwrap();
    let limit = "5000000";
    let whole = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        &sort,
        "--max-instructions",
        limit,
    ]);
    assert_eq!(whole.status.code(), Some(124));
    let first = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        &sort,
        "--max-instructions",
        limit,
        "--checkpoint-at",
        "1000000",
        "--checkpoint",
        file,
        "--stop-after-checkpoint",
    ]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let rest = pvmlab(&["exec", "--restore", file, "--max-instructions", limit]);
    assert_eq!(rest.status.code(), Some(124));
    assert_eq!(text(&rest.stderr), text(&whole.stderr));
    assert_eq!([first.stdout, rest.stdout].concat(), whole.stdout);
}

#[test]
fn a_checkpoint_after_the_end_holds_the_end() {
    let hello = image("hello");
    let file = scratch("hello-end.ck");
    let file = file.to_str().unwrap();
    let o = pvmlab(&[
        "exec",
        &hello,
        "--checkpoint-at",
        "100000000000",
        "--checkpoint",
        file,
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("the checkpoint holds its end"),
        "{}",
        text(&o.stderr)
    );
    let r = pvmlab(&["exec", "--restore", file]);
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stdout.is_empty(), "everything was printed before");
}

#[test]
fn bad_checkpoint_files_get_one_clear_line() {
    let missing = scratch("missing.ck");
    let _ = std::fs::remove_file(&missing);
    let o = pvmlab(&["exec", "--restore", missing.to_str().unwrap()]);
    assert_one_line_error(&o, "cannot read the checkpoint");

    let elf = image("hello");
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", &elf]),
        "not a pvmlab checkpoint",
    );

    let good = scratch("good.ck");
    let o = pvmlab(&[
        "exec",
        &elf,
        "--checkpoint-at",
        "1000",
        "--checkpoint",
        good.to_str().unwrap(),
        "--stop-after-checkpoint",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let bytes = std::fs::read(&good).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = scratch(name);
        std::fs::write(&p, b).unwrap();
        p.to_str().unwrap().to_string()
    };

    let cut = write("cut.ck", &bytes[..bytes.len() / 2]);
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", &cut]),
        "truncated checkpoint",
    );

    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    let flipped = write("flipped.ck", &flipped);
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", &flipped]),
        "corrupt checkpoint: checksum mismatch",
    );

    let mut v2 = bytes.clone();
    v2[8] = 2;
    let v2 = write("v2.ck", &v2);
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", &v2]),
        "checkpoint format v2, this pvmlab reads v1",
    );

    // Found out before the run, not after.
    let nowhere = scratch("no/such/dir/x.ck");
    let o = pvmlab(&[
        "exec",
        &elf,
        "--checkpoint-at",
        "1000",
        "--checkpoint",
        nowhere.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, "cannot write the checkpoint");
}

#[test]
fn image_or_restore_is_required_and_they_do_not_mix() {
    let o = pvmlab(&["exec"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("IMAGE.elf") && err.contains("required"),
        "{err}"
    );

    let elf = image("hello");
    for extra in [
        vec![elf.as_str()],
        vec!["--machine", "2s"],
        vec!["--timing", "off"],
        vec!["--bsp-only"],
    ] {
        let mut args = vec!["exec", "--restore", "x.ck"];
        args.extend(extra);
        let o = pvmlab(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            text(&o.stderr).contains("cannot be used with"),
            "{}",
            text(&o.stderr)
        );
    }
    let o = pvmlab(&["exec", &elf, "--checkpoint-at", "1000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--checkpoint <FILE>"),
        "{}",
        text(&o.stderr)
    );
    let o = pvmlab(&["exec", &elf, "--checkpoint", "x.ck"]);
    assert_eq!(o.status.code(), Some(2));
}

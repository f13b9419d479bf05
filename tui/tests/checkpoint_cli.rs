//! `pvmlab exec --checkpoint-at CYCLE --checkpoint FILE` and `pvmlab exec --restore FILE` as a
//! user runs them: the restored run prints the rest of the console output and ends as the
//! uninterrupted run does; bad checkpoint files get one clear line on stderr and status 1.

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{assert_one_line_error, image, pvmlab};

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

    let ours = emulator::checkpoint::FORMAT_VERSION;
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&(ours + 1).to_le_bytes());
    let newer = write("newer.ck", &newer);
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", &newer]),
        &format!("checkpoint format v{}, this pvmlab reads v{ours}", ours + 1),
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

/// The JSON stats without host time.
fn json_stats(path: &std::path::Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("host_seconds");
    o.remove("mips");
    v
}

/// `udp-echo` answering `--udp-gen`, cut while requests are in flight: the restored run needs
/// no `--udp-gen` (the generator, configuration included, is in the checkpoint) and ends as
/// the uninterrupted one, with the same generator report on stderr and in the JSON stats.
#[test]
fn a_run_with_a_udp_generator_restores_without_its_configuration() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workloads/scenarios/udpgen.ron"
    );
    let echo = image("udp-echo");
    // Requests start at 100 µs (240,000 cycles at 2.4 GHz); the runs take 3.4 and 2.4 M cycles.
    for (timing, cmdline, spec, at) in [
        ("on", "", example, "1200000"),
        (
            "off",
            "irq",
            "closed:2,requests=300,seed=11,payload=24-1472",
            "700000",
        ),
    ] {
        let what = format!("timing {timing}, cmdline `{cmdline}`, {spec}");
        let tag = format!("udpgen-{timing}");
        let (whole_json, rest_json) = (
            scratch(&format!("{tag}-whole.json")),
            scratch(&format!("{tag}-rest.json")),
        );
        let common = [
            "exec",
            "--machine",
            "2s",
            "--timing",
            timing,
            "--cmdline",
            cmdline,
            "--udp-gen",
            spec,
            "--stats",
            &echo,
        ];
        let whole =
            pvmlab(&[&common[..], &["--stats-json", whole_json.to_str().unwrap()]].concat());
        assert_eq!(
            whole.status.code(),
            Some(0),
            "{what}: {}",
            text(&whole.stderr)
        );
        let err = text(&whole.stderr);
        assert!(err.contains("timed out 0, invalid 0"), "{what}: {err}");
        let file = scratch(&format!("{tag}.ck"));
        let file = file.to_str().unwrap();
        let cut = [
            "--checkpoint-at",
            at,
            "--checkpoint",
            file,
            "--stop-after-checkpoint",
        ];
        let first = pvmlab(&[&common[..], &cut[..]].concat());
        assert_eq!(
            first.status.code(),
            Some(0),
            "{what}: {}",
            text(&first.stderr)
        );
        // Stopped mid-run: no report yet.
        let first_err = text(&first.stderr);
        assert!(!first_err.contains("wire of NIC"), "{what}: {first_err}");
        assert!(!first_err.contains("the run ended"), "{what}: {first_err}");
        let rest = pvmlab(&[
            "exec",
            "--restore",
            file,
            "--stats",
            "--stats-json",
            rest_json.to_str().unwrap(),
        ]);
        assert_eq!(rest.status, whole.status, "{what}: {}", text(&rest.stderr));
        assert_eq!(
            text(&[first.stdout.clone(), rest.stdout.clone()].concat()),
            text(&whole.stdout),
            "{what}"
        );
        assert!(text(&whole.stdout).contains("udp-echo: answered"), "{what}");
        assert_eq!(stats(&rest), stats(&whole), "{what}");
        assert!(
            stats(&rest).iter().any(|l| l.contains("latency us: min")),
            "{what}: {:?}",
            stats(&rest)
        );
        assert_eq!(json_stats(&rest_json), json_stats(&whole_json), "{what}");
        // And through the checkpoint without stopping: unchanged.
        let through = pvmlab(&[&common[..], &cut[..4]].concat());
        assert_eq!(through.stdout, whole.stdout, "{what}");
        assert_eq!(stats(&through), stats(&whole), "{what}");
    }
}

/// A checkpoint holding an endpoint that pvmlab cannot rebuild (attached by a program through
/// the library): restoring it is refused with one line naming it, not run without it.
#[test]
fn a_checkpoint_with_an_endpoint_pvmlab_cannot_rebuild_is_refused() {
    #[derive(Clone)]
    struct Custom;
    impl emulator::wire::Endpoint for Custom {
        fn name(&self) -> &str {
            "custom"
        }
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 0x33]
        }
        fn start(&mut self, _: &mut emulator::wire::EndpointIo) {}
        fn receive(&mut self, _: &[u8], _: &mut emulator::wire::EndpointIo) {}
        fn wake(&mut self, _: &mut emulator::wire::EndpointIo) {}
        fn save(&self) -> Vec<u8> {
            b"custom".to_vec()
        }
        fn restore(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn clone_box(&self) -> Box<dyn emulator::wire::Endpoint> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
    let desc = emulator::MachineDesc::load("1s").unwrap();
    let mut m = emulator::Machine::new(&desc).unwrap();
    m.load_elf(workloads::images::get("hello").unwrap(), false, "")
        .unwrap();
    m.attach_endpoint(0, Box::new(Custom));
    let file = scratch("custom-endpoint.ck");
    m.save_checkpoint(&file).unwrap();
    assert_one_line_error(
        &pvmlab(&["exec", "--restore", file.to_str().unwrap()]),
        "custom-endpoint.ck: NIC 0's wire, endpoint 0: endpoint `custom` is of a kind pvmlab \
         cannot rebuild from a checkpoint (it knows: udpgen)",
    );
}

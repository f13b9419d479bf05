//! `pvmlab exec --udp-gen` as a user runs it: a UDP generator on the wire of the machine's
//! first NIC, from a RON file or the inline form, its report on stderr and in
//! `--stats-json`; bad specs get one clear line and status 1.

use std::path::PathBuf;

mod common;
use common::{assert_one_line_error, image, pvmlab};

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("udpgen_cli", name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The example configuration shipped with the sources.
fn example() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workloads/scenarios/udpgen.ron"
    )
    .to_string()
}

#[test]
fn the_example_file_drives_udp_echo_and_reports_on_stderr() {
    let json = scratch("example.json");
    let args = [
        "exec",
        "--machine",
        "2s",
        "--udp-gen",
        &example(),
        "--stats-json",
        json.to_str().unwrap(),
        &image("udp-echo"),
    ];
    let o = pvmlab(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // The console is the image's alone: its count of answers.
    let out = text(&o.stdout);
    assert!(out.contains("udp-echo: answered 1000, ignored 0"), "{out}");
    assert!(!out.contains("udpgen"), "{out}");
    // The report: counts, latency percentiles, throughput — without --stats too.
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("wire of NIC 0: 1000 frames (106000 B) to the endpoints, 1001 frames"),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "  udpgen (02:00:00:00:00:fe): sent 1000, answered 1000 (per target [1000]), \
         timed out 0, invalid 0"
    );
    assert!(
        lines[2].starts_with("  udpgen latency us: min ")
            && ["p50", "p90", "p99", "max", "mean", "requests/s"]
                .iter()
                .all(|k| lines[2].contains(k)),
        "{err}"
    );
    // The same in the stats JSON, under `wires`.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let wires = v["wires"].as_array().expect("a `wires` section");
    assert_eq!(wires.len(), 1);
    let w = &wires[0];
    for key in [
        "nic",
        "frames_out",
        "bytes_out",
        "frames_in",
        "bytes_in",
        "unclaimed",
    ] {
        assert!(w[key].is_u64(), "wire missing {key}: {w}");
    }
    assert_eq!(w["frames_out"], 1000);
    let e = &w["endpoints"][0];
    assert_eq!(
        (&e["name"], &e["mac"], &e["kind"], &e["finished"]),
        (
            &serde_json::json!("udpgen"),
            &serde_json::json!("02:00:00:00:00:fe"),
            &serde_json::json!("udpgen"),
            &serde_json::json!(true)
        )
    );
    let r = &e["report"];
    for key in [
        "sent",
        "answered",
        "timed_out",
        "invalid",
        "min_ns",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "max_ns",
        "mean_ns",
        "throughput_rps",
    ] {
        assert!(r[key].is_number(), "report missing {key}: {r}");
    }
    assert_eq!(r["answered_per_target"], serde_json::json!([1000]));
    let (p50, p99) = (r["p50_ns"].as_f64().unwrap(), r["p99_ns"].as_f64().unwrap());
    assert!(p50 > 2000.0 && p50 <= p99, "{r}");
    // Deterministic: the same run again gives the same report.
    let again = pvmlab(&args);
    assert_eq!(again.stderr, o.stderr);
    assert_eq!(again.stdout, o.stdout);
}

#[test]
fn the_inline_form_needs_no_file_and_several_generators_can_share_the_wire() {
    let one = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        "--timing",
        "off",
        "--udp-gen",
        "closed:4,requests=200,seed=7",
        &image("udp-echo"),
    ]);
    let err = text(&one.stderr);
    assert_eq!(one.status.code(), Some(0), "{err}");
    assert!(
        err.contains("sent 200, answered 200 (per target [200])"),
        "{err}"
    );
    // Two generators, open and closed loop. udp-echo stops at the first bye it gets: only
    // the open-loop one says bye, and the probe is done long before it.
    let two = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        "--timing",
        "off",
        "--udp-gen",
        "open:100k,requests=300,seed=1",
        "--udp-gen",
        "closed:1,requests=5,seed=2,name=probe,mac=02:00:00:00:00:aa,bye=false",
        &image("udp-echo"),
    ]);
    let err = text(&two.stderr);
    assert_eq!(two.status.code(), Some(0), "{err}");
    assert!(
        err.contains("  udpgen (02:00:00:00:00:fe): sent 300, answered 300")
            && err.contains("  probe (02:00:00:00:00:aa): sent 5, answered 5"),
        "{err}"
    );
    assert!(
        text(&two.stdout).contains("answered 305"),
        "{}",
        text(&two.stdout)
    );
}

#[test]
fn bad_generator_specs_get_one_clear_line() {
    let hello = image("hello");
    let run = |spec: &str| pvmlab(&["exec", "--udp-gen", spec, &hello]);
    assert_one_line_error(
        &run("closed:4,requests=10"),
        "`closed:4,requests=10`: missing seed=N",
    );
    assert_one_line_error(
        &run("closed:4,requests=10,seed=1,rate=5"),
        "unknown field `rate`",
    );
    assert_one_line_error(&run("fast"), "neither a load");
    assert_one_line_error(
        &run("/nonexistent/gen.ron"),
        "cannot read UDP generator file /nonexistent/gen.ron",
    );
    let bad = scratch("bad.ron");
    std::fs::write(
        &bad,
        "(\n    seed: 1,\n    load: ClosedLoop(outstanding: 2),\n    requests: 5,\n    sped: 3,\n)\n",
    )
    .unwrap();
    assert_one_line_error(&run(bad.to_str().unwrap()), "bad.ron:5:");
    std::fs::write(
        &bad,
        "(seed: 1, load: ClosedLoop(outstanding: 2), requests: 5, payload_min: 9)",
    )
    .unwrap();
    assert_one_line_error(&run(bad.to_str().unwrap()), "payload sizes 9..=64");
    // Two generators with one MAC would take each other's answers.
    assert_one_line_error(
        &pvmlab(&[
            "exec",
            "--udp-gen",
            "closed:1,requests=1,seed=1",
            "--udp-gen",
            "closed:1,requests=1,seed=2,name=other",
            &hello,
        ]),
        "another generator is `udpgen` with MAC 02:00:00:00:00:fe",
    );
    assert_one_line_error(
        &run("closed:1,requests=1,seed=1,mac=02:00:00:00:00:01,target=02:00:00:00:00:07"),
        "the generator's MAC 02:00:00:00:00:01 is the NIC's",
    );
    // A machine without a NIC has no wire.
    let one = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../emulator/machines/1s.ron"
    ))
    .unwrap();
    let (head, tail) = one.split_once("    devices: [").unwrap();
    let no_nic = scratch("no-nic.ron");
    std::fs::write(
        &no_nic,
        format!("{head}{}", &tail[tail.find("    ],\n").unwrap() + 7..]),
    )
    .unwrap();
    assert_one_line_error(
        &pvmlab(&[
            "exec",
            "--machine",
            no_nic.to_str().unwrap(),
            "--udp-gen",
            "closed:1,requests=1,seed=1",
            &hello,
        ]),
        "has no NIC to attach it to",
    );
    // The generator of a restored run comes from the checkpoint.
    let o = pvmlab(&[
        "exec",
        "--restore",
        "x.ck",
        "--udp-gen",
        "closed:1,requests=1,seed=1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

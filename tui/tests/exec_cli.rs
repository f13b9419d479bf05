//! `pvmlab exec` as a user runs it: the console on stdout and nothing else, the exit status,
//! and one clear line on stderr (no panic, no backtrace) for every bad input.

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{assert_one_line_error, image, pvmlab};

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("exec_cli", name)
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
    assert!(
        err.contains("machine mine")
            && err
                .lines()
                .filter(|l| l.trim_start().starts_with(char::is_numeric))
                .count()
                >= 8,
        "{err}"
    );
}

#[test]
fn stats_json_has_the_documented_keys() {
    let p = scratch("stats.json");
    let o = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        "--stats-json",
        p.to_str().unwrap(),
        &image("smp"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    for key in [
        "instructions",
        "cycles",
        "simulated_ns",
        "host_seconds",
        "mips",
        "nodes",
        "links",
        "wires",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    // One wire per NIC, with no endpoint: `pvmlab exec` attaches one only with --udp-gen.
    assert_eq!(v["wires"].as_array().unwrap().len(), 1);
    assert_eq!(v["wires"][0]["nic"], 0);
    assert_eq!(v["wires"][0]["endpoints"], serde_json::json!([]));
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        for key in [
            "node",
            "read_bytes",
            "write_bytes",
            "remote_read_bytes",
            "remote_write_bytes",
            "dma_bytes",
        ] {
            assert!(
                n.get(key).is_some_and(|x| x.is_u64()),
                "node missing {key}: {n}"
            );
        }
    }
    // smp's cores on socket 1 share counters homed on node 0: remote traffic must show.
    let remote: u64 = nodes
        .iter()
        .map(|n| n["remote_read_bytes"].as_u64().unwrap())
        .sum();
    assert!(remote > 0, "{v}");
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "one link, both directions");
    for l in links {
        for key in ["from", "to", "bytes"] {
            assert!(
                l.get(key).is_some_and(|x| x.is_u64()),
                "link missing {key}: {l}"
            );
        }
    }
    assert!(links.iter().any(|l| l["bytes"].as_u64().unwrap() > 0));
}

#[test]
fn stats_charge_each_domain_its_bytes_per_node() {
    let p = scratch("domains.json");
    let o = pvmlab(&[
        "exec",
        "--machine",
        "2s",
        "--stats",
        "--stats-json",
        p.to_str().unwrap(),
        &image("domains"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("DRAM B    remote B      link B")
            && err.contains("domain  node      read B     write B")
            && err.lines().any(|l| l.trim_start().starts_with("1  pvm ")),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let domains = v["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 3, "pvm, guest, (none): {v}");
    let nodes = v["nodes"].as_array().unwrap();
    for d in domains {
        for key in ["dram_read_bytes", "dram_write_bytes"] {
            assert_eq!(d[key].as_array().map(Vec::len), Some(2), "{key}: {d}");
        }
        for key in ["remote_dram_bytes", "link_bytes"] {
            assert!(d[key].is_u64(), "{key}: {d}");
        }
    }
    // No DMA here: the domains' bytes are the nodes' bytes.
    for (n, node) in nodes.iter().enumerate() {
        for (per_domain, total) in [
            ("dram_read_bytes", "read_bytes"),
            ("dram_write_bytes", "write_bytes"),
        ] {
            let sum: u64 = domains
                .iter()
                .map(|d| d[per_domain][n].as_u64().unwrap())
                .sum();
            assert_eq!(sum, node[total].as_u64().unwrap(), "node {n} {total}");
        }
    }
    let pvm = domains.iter().find(|d| d["name"] == "pvm").unwrap();
    assert!(
        pvm["remote_dram_bytes"].as_u64().unwrap() > 24 << 20,
        "{pvm}"
    );
}

#[test]
fn timing_off_gives_the_same_console_and_instruction_count() {
    // A single-core image: its instruction count cannot depend on how cores interleave.
    let sort = image("sort");
    let on = pvmlab(&["exec", "--bsp-only", "--stats", &sort]);
    let off = pvmlab(&["exec", "--bsp-only", "--stats", "--timing", "off", &sort]);
    assert_eq!(on.status.code(), Some(0));
    assert_eq!(on.stdout, off.stdout);
    let count = |o: &Output| {
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let first = err
            .lines()
            .find(|l| l.starts_with("machine "))
            .unwrap()
            .to_string();
        first.split(", ").nth(1).unwrap().to_string()
    };
    assert_eq!(count(&on), count(&off), "same instructions retired");
    assert!(String::from_utf8_lossy(&on.stderr).contains("(timing)"));
    assert!(String::from_utf8_lossy(&off.stderr).contains("(functional)"));
}

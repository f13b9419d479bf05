//! The `numa` image on preset `2s` with the timing model on (issue 3, item 6): its statistics
//! summary as a golden snapshot, remote traffic where the image puts it, bit-identical timing
//! runs, and the functional mode giving the same architectural results.
//!
//! The image never waits for another core and only core 0 prints, so its console, every core's
//! instruction count, registers and memory cannot depend on how cores interleave; only cycle
//! counts (and what derives from them) differ between the two modes. `Machine::state_hash`
//! covers the cycle counters, so the functional comparison hashes memory and registers here.

use emulator::stats::Report;
use emulator::{Machine, MachineDesc, RunEnd};
use std::sync::OnceLock;

/// Far above what the image needs (about 20 million instructions): a hang fails, not hangs.
const LIMIT: u64 = 200_000_000;

struct Run {
    console: String,
    end: RunEnd,
    instructions: u64,
    state_hash: u64,
    /// xxh3 of every core's registers except its clock, and of every non-zero page.
    architecture_hash: u64,
    report: Report,
}

fn run(timing: bool) -> Run {
    let desc = MachineDesc::load("2s").expect("preset 2s");
    let mut m = Machine::new(&desc).expect("2s maps");
    if timing {
        m.enable_timing();
    }
    let image = workloads::images::get("numa").expect("the numa image is built");
    m.load_elf(image, false, "").expect("numa loads");
    let end = loop {
        if let Some(end) = m.run_for(u64::MAX, Some(LIMIT)) {
            break end;
        }
    };
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for c in &m.cores {
        for v in c.gpr.iter().chain([&c.rip, &c.rflags, &c.instret]) {
            h.update(&v.to_le_bytes());
        }
        for x in c.xmm {
            h.update(&x.to_le_bytes());
        }
    }
    m.sys.ram.for_each_nonzero_page(|addr, page| {
        h.update(&addr.to_le_bytes());
        h.update(page);
    });
    let mut report = m.report(0.0);
    // Host-dependent: left out of every comparison and of the snapshot.
    report.host_seconds = 0.0;
    report.mips = 0.0;
    Run {
        console: String::from_utf8(std::mem::take(&mut m.sys.io.console)).expect("UTF-8"),
        end,
        instructions: m.instructions,
        state_hash: m.state_hash(),
        architecture_hash: h.digest(),
        report,
    }
}

/// The timing run, shared by the tests of this binary.
fn timed() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run(true))
}

#[test]
fn finishes_with_every_core_checked() {
    let r = timed();
    assert_eq!(r.end, RunEnd::AllHalted, "console:\n{}", r.console);
    assert!(
        r.console.contains("core 0: sum ") && r.console.ends_with(" ok\n"),
        "{}",
        r.console
    );
    assert!(
        r.console.contains("core 2 (socket 0): node 1 (remote)"),
        "{}",
        r.console
    );
}

#[test]
fn remote_traffic_shows_where_the_image_puts_it() {
    let r = &timed().report;
    assert!(r.timing);
    let (n0, n1) = (&r.nodes[0], &r.nodes[1]);
    // Cores 2 and 3 (socket 0) work on node 1; core 5 (socket 1) on node 0.
    assert!(
        n1.remote_read_bytes > 0 && n1.read_bytes_from[0] == n1.remote_read_bytes,
        "{n1:?}"
    );
    assert!(
        n0.remote_read_bytes > 0 && n0.read_bytes_from[1] == n0.remote_read_bytes,
        "{n0:?}"
    );
    // Two remote cores against one: socket 0 reads more from node 1 than socket 1 from node 0.
    assert!(n1.remote_read_bytes > n0.remote_read_bytes, "{n0:?} {n1:?}");
    // Four 8 MiB buffers overflow socket 0's LLC: dirty lines go back, some across the link.
    assert!(n1.remote_write_bytes > 0, "{n1:?}");
    for l in &r.links {
        assert!(l.bytes > 0, "{l:?}");
    }
    // The idle cores 6 and 7 did (almost) nothing.
    assert!(r.cores[6].instructions < 1000 && r.cores[7].instructions < 1000);
}

#[test]
fn report_matches_the_snapshot() {
    let r = timed();
    let json = serde_json::to_string_pretty(&r.report).expect("reports serialise");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_description("numa image, preset 2s, timing on; host_seconds and mips zeroed");
    settings.bind(|| insta::assert_snapshot!("numa_2s_report", json));
}

#[test]
fn timing_runs_are_bit_identical() {
    let (a, b) = (timed(), run(true));
    assert_eq!(a.console, b.console);
    assert_eq!(a.instructions, b.instructions);
    assert_eq!(a.state_hash, b.state_hash);
    assert_eq!(a.report, b.report);
}

#[test]
fn functional_mode_has_the_same_architectural_results() {
    let (t, f) = (timed(), &run(false));
    assert_eq!(f.end, t.end);
    assert_eq!(f.console, t.console);
    assert_eq!(f.instructions, t.instructions);
    let per_core = |r: &Run| {
        r.report
            .cores
            .iter()
            .map(|c| c.instructions)
            .collect::<Vec<_>>()
    };
    assert_eq!(per_core(f), per_core(t));
    assert_eq!(
        f.architecture_hash, t.architecture_hash,
        "registers or memory differ"
    );
    // Only time differs: memory stalls make the timed run longer.
    assert!(!f.report.timing && f.report.nodes.iter().all(|n| n.read_bytes == 0));
    assert!(
        t.report.cycles > f.report.cycles,
        "{} vs {}",
        t.report.cycles,
        f.report.cycles
    );
}

//! Bytes of memory traffic charged to the domains software announces on the annotation port
//! (issue 4, item 3), with the `domains` image on preset `2s`: the pVM (domain 1) works on the
//! guest's memory (node 1) from socket 0 and from socket 1, the guest (domain 2) from socket 1.
//! The domains' bytes at each node add up to the node's controller traffic byte for byte, a
//! domain working against remote memory is charged remote bytes at that node, and the counters
//! survive a checkpoint.

use emulator::stats::{DomainReport, Report};
use emulator::{Machine, MachineDesc, RunEnd};
use std::sync::OnceLock;

/// `abi::annotate::NO_DOMAIN`: work before any announcement.
const NO_DOMAIN: u32 = u32::MAX;
/// Each working core's buffer (see the image).
const BUFFER: u64 = 24 << 20;
/// Far above what the image needs (about 30 million instructions).
const LIMIT: u64 = 300_000_000;

fn start() -> Machine {
    let desc = MachineDesc::load("2s").expect("preset 2s");
    let mut m = Machine::new(&desc).expect("2s maps");
    m.enable_timing();
    let image = workloads::images::get("domains").expect("the domains image is built");
    m.load_elf(image, false, "").expect("domains loads");
    m
}

fn finish(m: &mut Machine) -> (RunEnd, String, Report) {
    let end = m.run_for(u64::MAX, Some(LIMIT)).expect("the run ends");
    let console = String::from_utf8_lossy(&std::mem::take(&mut m.sys.io.console)).into_owned();
    (end, console, m.report(0.0))
}

fn timed() -> &'static (RunEnd, String, Report) {
    static RUN: OnceLock<(RunEnd, String, Report)> = OnceLock::new();
    RUN.get_or_init(|| finish(&mut start()))
}

fn domain(r: &Report, id: u32) -> &DomainReport {
    r.domains
        .iter()
        .find(|d| d.domain == id)
        .unwrap_or_else(|| panic!("domain {id} reported: {:?}", r.domains))
}

fn dram(d: &DomainReport) -> u64 {
    d.dram_read_bytes.iter().chain(&d.dram_write_bytes).sum()
}

#[test]
fn the_domains_bytes_add_up_to_each_node_byte_for_byte() {
    let (end, console, r) = timed();
    assert_eq!(*end, RunEnd::AllHalted, "console:\n{console}");
    assert!(
        console.contains("core 5 (socket 1): pvm vCPU 1"),
        "{console}"
    );
    let names: Vec<_> = r
        .domains
        .iter()
        .map(|d| (d.domain, d.name.as_str()))
        .collect();
    assert_eq!(names, [(1, "pvm"), (2, "guest"), (NO_DOMAIN, "(none)")]);
    for n in &r.nodes {
        let i = n.node as usize;
        // No device moved anything: every byte is some core's, so some domain's.
        assert_eq!((n.dma_bytes, n.dma_writeback_bytes), (0, 0));
        let reads: u64 = r.domains.iter().map(|d| d.dram_read_bytes[i]).sum();
        let writes: u64 = r.domains.iter().map(|d| d.dram_write_bytes[i]).sum();
        assert_eq!(reads, n.read_bytes, "node {i} reads");
        assert_eq!(writes, n.write_bytes, "node {i} writes");
    }
    let links: u64 = r.links.iter().map(|l| l.bytes).sum();
    assert_eq!(
        r.domains.iter().map(|d| d.link_bytes).sum::<u64>(),
        links,
        "link bytes"
    );
    // Work before the announcements (the runtime's start-up, core 0's printing) is the
    // remainder, and small.
    let none = domain(r, NO_DOMAIN);
    assert!(dram(none) > 0 && dram(none) < 64 << 10, "{none:?}");
}

#[test]
fn remote_work_is_charged_remote_bytes_at_the_remote_node() {
    let r = &timed().2;
    let (pvm, guest) = (domain(r, 1), domain(r, 2));
    // Every line of the 24 MiB buffers was read from node 1 at least twice (the buffers do not
    // fit an LLC) and written back at least once.
    for d in [pvm, guest] {
        assert!(d.dram_read_bytes[1] >= 2 * BUFFER, "{d:?}");
        assert!(d.dram_write_bytes[1] >= BUFFER / 2, "{d:?}");
    }
    assert!(pvm.dram_read_bytes[1] >= 4 * BUFFER, "two vCPUs: {pvm:?}");
    // The guest ran next to its memory: (almost) nothing remote, (almost) nothing on a link.
    assert!(guest.remote_dram_bytes < 4096, "{guest:?}");
    assert!(guest.link_bytes < 8192, "{guest:?}");
    // The pVM's vCPU 0 ran on socket 0: its bytes at node 1 are remote and crossed the link;
    // its vCPU 1 ran on socket 1: local bytes at the same node.
    let pvm_node1 = pvm.dram_read_bytes[1] + pvm.dram_write_bytes[1];
    assert!(pvm.remote_dram_bytes >= 3 * BUFFER, "{pvm:?}");
    assert!(pvm_node1 - pvm.remote_dram_bytes >= 3 * BUFFER, "{pvm:?}");
    assert!(pvm.link_bytes >= 3 * BUFFER, "{pvm:?}");
    // All of socket 0's traffic to node 1 is the pVM's (vCPU 0) or the start-up's.
    let n1 = &r.nodes[1];
    let none = domain(r, NO_DOMAIN);
    assert!(
        pvm.remote_dram_bytes <= n1.remote_read_bytes + n1.remote_write_bytes
            && n1.remote_read_bytes + n1.remote_write_bytes
                <= pvm.remote_dram_bytes + none.remote_dram_bytes,
        "{n1:?} {pvm:?} {none:?}"
    );
    // And the report's table shows the bytes.
    let table = r.table();
    assert!(
        table.contains("DRAM B") && table.contains(&pvm.remote_dram_bytes.to_string()),
        "{table}"
    );
}

#[test]
fn domain_bytes_survive_a_checkpoint() {
    let whole = timed();
    let mut m = start();
    // Half-way: every domain has been announced and is working.
    assert_eq!(m.run_until_cycle(whole.2.cycles / 2, Some(LIMIT)), None);
    let mut console = std::mem::take(&mut m.sys.io.console);
    let mut restored = Machine::restore(&m.checkpoint()).expect("the checkpoint restores");
    let (end, rest, report) = finish(&mut restored);
    console.extend_from_slice(rest.as_bytes());
    assert_eq!(end, whole.0);
    assert_eq!(String::from_utf8_lossy(&console), whole.1);
    assert_eq!(report.domains, whole.2.domains);
    assert_eq!(report, whole.2);
}

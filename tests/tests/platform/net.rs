//! The kernel's NIC phase (`net`): the wire's UDP generator sends requests to two MACs; the
//! NIC steers each MAC to its own queue, whose rings live on the node of the core that serves
//! it — core 0 on socket 0, and a core of socket 1 on `2s` — and whose interrupt goes to that
//! core. Every request is answered, each queue by its own core from its interrupt handler,
//! and each queue's DMA is memory traffic at its own node.

use emulator::stats::Report;
use emulator::{Machine, MachineDesc, RunEnd};
use workloads::udpgen::{UdpGenConfig, UdpGenReport, UdpGenerator};

/// Far above what a run needs: a hang fails instead of hanging.
const LIMIT: u64 = 100_000_000;
const REQUESTS: u64 = 400;

struct Run {
    console: String,
    end: RunEnd,
    generator: UdpGenReport,
    report: Report,
    state_hash: u64,
}

fn run(machine: &str, timing: bool, bsp_only: bool) -> Run {
    let desc = MachineDesc::load(machine).expect("preset");
    let emulator::desc::DeviceDesc::Nic(nic) = &desc.devices[0];
    let mac = nic.mac;
    let mut m = Machine::new(&desc).expect("the preset maps");
    if timing {
        m.enable_timing();
    }
    let image = workloads::images::get("kernel").expect("the kernel image is built");
    m.load_elf(image, bsp_only, "net")
        .expect("the kernel loads");
    // The scenario file README shows: requests to the NIC's MAC (queue 0) and the next one
    // up (queue 1), after the kernel's other checks; fewer of them here.
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workloads/scenarios/kernel-net.ron"
    );
    let mut cfg = UdpGenConfig::load(file).expect("the scenario file parses");
    cfg.fill_in_target_macs(mac.0);
    cfg.requests = REQUESTS;
    let mut second = mac;
    second.0[5] += 1;
    assert_eq!(cfg.targets[1].mac, second, "the kernel's second MAC");
    m.attach_endpoint(0, Box::new(UdpGenerator::new(cfg).expect("valid")));
    let end = loop {
        if let Some(end) = m.run_for(u64::MAX, Some(LIMIT)) {
            break end;
        }
    };
    let generator = m.sys.bus.wires[0]
        .endpoint(0)
        .and_then(|e| e.as_any().downcast_ref::<UdpGenerator>())
        .expect("the generator is attached")
        .report();
    let mut report = m.report(0.0);
    report.mips = 0.0;
    Run {
        console: String::from_utf8_lossy(&std::mem::take(&mut m.sys.io.console)).into_owned(),
        end,
        generator,
        report,
        state_hash: m.state_hash(),
    }
}

/// `(answered, interrupts, core, socket)` of queue `q` from the kernel's line about it.
fn queue_line(console: &str, q: usize) -> (u64, u64, usize, u32) {
    let prefix = format!("queue {q}: core ");
    let line = console
        .lines()
        .find_map(|l| {
            l.strip_prefix("ok ")?
                .split_once(' ')?
                .1
                .strip_prefix(&prefix)
        })
        .unwrap_or_else(|| panic!("no passing line for queue {q}:\n{console}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // "K on socket S answered A requests from its interrupt handler (I interrupts, ..."
    let num = |i: usize| -> u64 {
        words[i]
            .trim_start_matches('(')
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    (num(5), num(11), num(0) as usize, num(3) as u32)
}

#[track_caller]
fn assert_served(r: &Run, what: &str, sockets: [u32; 2]) {
    let c = &r.console;
    assert_eq!(r.end, RunEnd::Exit(0), "{what}:\n{c}");
    assert!(c.contains("kernel: all 52 checks passed"), "{what}:\n{c}");
    let g = &r.generator;
    assert_eq!(
        (g.sent, g.answered, g.timed_out, g.invalid),
        (REQUESTS, REQUESTS, 0, 0),
        "{what}: {g:?}"
    );
    let queues = [queue_line(c, 0), queue_line(c, 1)];
    // Each MAC's answers came from its own queue's core.
    assert_eq!(
        g.answered_per_target,
        [queues[0].0, queues[1].0],
        "{what}: {queues:?}"
    );
    for (q, &(answered, interrupts, _, socket)) in queues.iter().enumerate() {
        // Requests go to either MAC at random: each queue has a fair share of them.
        assert!(answered > REQUESTS / 4, "{what}: queue {q}: {queues:?}");
        assert!(interrupts > 0, "{what}: queue {q}: {queues:?}");
        assert_eq!(socket, sockets[q], "{what}: queue {q}: {queues:?}");
    }
}

#[test]
fn two_sockets_answer_the_wire_from_their_interrupt_handlers() {
    let r = run("2s", true, false);
    assert_served(&r, "2s, timing", [0, 1]);
    // Queue 1's rings are on node 1: its frames and descriptors cross the link by DMA.
    let n = &r.report.nodes;
    assert!(
        n[0].dma_bytes > 0 && n[1].dma_bytes > 0,
        "DMA at both nodes: {n:?}"
    );
    let (_, _, core, _) = queue_line(&r.console, 1);
    assert_eq!(core, 4, "the first core of socket 1");
    eprintln!("{:#?}", r.generator);
}

#[test]
fn the_nic_phase_runs_functional_and_after_bsp_only_boots() {
    assert_served(&run("2s", false, false), "2s, functional", [0, 1]);
    assert_served(&run("2s", false, true), "2s, bsp-only", [0, 1]);
}

#[test]
fn two_runs_with_the_wire_are_identical() {
    let a = run("2s", true, false);
    let b = run("2s", true, false);
    assert_eq!(a.console, b.console);
    assert_eq!(a.end, b.end);
    assert_eq!(a.generator, b.generator);
    assert_eq!(a.report, b.report);
    assert_eq!(a.state_hash, b.state_hash);
}

/// Without a generator nobody says bye: the kernel gives up at its deadline and says which
/// checks failed, instead of waiting for ever.
#[test]
fn without_a_generator_the_nic_checks_fail_at_the_deadline() {
    let cfg = emulator::RunConfig {
        machine: "2s".into(),
        timing: false,
        bsp_only: false,
        cmdline: "net".into(),
        max_instructions: Some(LIMIT),
    };
    let elf = workloads::images::get("kernel").expect("built");
    let out = emulator::run_image(elf, &cfg).expect("loads");
    let text = String::from_utf8_lossy(&out.console);
    assert_eq!(out.end, RunEnd::Exit(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("not ok ")
            && l.contains("queue 0: core 0 on socket 0 answered 0 requests")),
        "{text}"
    );
    assert!(text.contains("kernel: 2 of 52 checks failed"), "{text}");
}

//! The NIC end to end (issue 4, item 4): the `udp-echo` image on preset `2s` answers UDP
//! requests from the wire's load generator — the NIC on socket 0, the responder core and its
//! rings and buffers on socket 1 — with the timing model on. Every request is answered, the
//! round trips take longer than the wire alone, the DMA is memory traffic at node 1 (where the
//! buffers are), and two runs are identical.

use emulator::stats::Report;
use emulator::{Machine, MachineDesc, RunEnd};
use std::sync::OnceLock;
use workloads::udpgen::{Load, Target, UdpGenConfig, UdpGenReport, UdpGenerator};

/// Far above what a run needs: a hang fails instead of hanging.
const LIMIT: u64 = 400_000_000;
const REQUESTS: u64 = 2000;

struct Run {
    console: String,
    end: RunEnd,
    state_hash: u64,
    report: Report,
    generator: UdpGenReport,
    latencies_ns: Vec<f64>,
    wire_latency_ns: f64,
    /// Interrupt messages the NIC sent.
    interrupts: u64,
}

fn run(load: Load, timing: bool) -> Run {
    run_with(load, timing, "", REQUESTS)
}

fn run_with(load: Load, timing: bool, cmdline: &str, requests: u64) -> Run {
    let desc = MachineDesc::load("2s").expect("preset 2s");
    let emulator::desc::DeviceDesc::Nic(nic) = &desc.devices[0];
    let (mac, wire_latency_ns) = (nic.mac, nic.wire.latency_ns);
    let mut m = Machine::new(&desc).expect("2s maps");
    if timing {
        m.enable_timing();
    }
    let image = workloads::images::get("udp-echo").expect("the udp-echo image is built");
    m.load_elf(image, false, cmdline).expect("udp-echo loads");
    let target = Target {
        mac,
        ip: [10, 0, 0, 1],
        port: abi::udp_rr::ECHO_PORT,
    };
    let mut cfg = UdpGenConfig::closed_loop(target, requests, 4, 42);
    cfg.load = load;
    let generator = UdpGenerator::new(cfg).expect("valid generator");
    m.attach_endpoint(0, Box::new(generator));
    let end = loop {
        if let Some(end) = m.run_for(u64::MAX, Some(LIMIT)) {
            break end;
        }
    };
    let g = m.sys.bus.wires[0]
        .endpoint(0)
        .expect("attached")
        .as_any()
        .downcast_ref::<UdpGenerator>()
        .expect("a UDP generator");
    let interrupts = m.sys.bus.nics[0].stats.interrupts;
    let mut report = m.report(0.0);
    report.host_seconds = 0.0;
    report.mips = 0.0;
    Run {
        console: String::from_utf8(std::mem::take(&mut m.sys.io.console)).expect("UTF-8"),
        end,
        state_hash: m.state_hash(),
        report,
        generator: g.report(),
        latencies_ns: g.latencies_ns(),
        wire_latency_ns,
        interrupts,
    }
}

fn closed() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run(Load::ClosedLoop { outstanding: 4 }, true))
}

#[test]
fn every_request_is_answered() {
    let r = closed();
    assert_eq!(r.end, RunEnd::Exit(0), "console:\n{}", r.console);
    let g = &r.generator;
    assert_eq!(
        (g.sent, g.answered, g.timed_out, g.invalid),
        (REQUESTS, REQUESTS, 0, 0),
        "{g:?}"
    );
    assert!(
        r.console
            .contains(&format!("answered {REQUESTS}, ignored 0")),
        "{}",
        r.console
    );
    eprintln!("closed loop, 4 outstanding: {g:#?}");
}

#[test]
fn round_trips_take_longer_than_the_wire() {
    let r = closed();
    let g = &r.generator;
    // Two crossings of the wire at least, plus DMA, polling and the responder's work.
    let wire = 2.0 * r.wire_latency_ns;
    assert!(g.min_ns > wire, "{g:?}");
    assert!(
        g.p50_ns > wire && g.p50_ns <= g.p90_ns && g.p90_ns <= g.p99_ns,
        "{g:?}"
    );
    assert!(g.p99_ns < 100_000.0, "{g:?}");
    assert!(g.throughput_rps > 0.0);
    assert_eq!(r.latencies_ns.len() as u64, REQUESTS);
}

#[test]
fn dma_is_counted_at_the_node_of_the_buffers() {
    let r = closed();
    let n = &r.report.nodes;
    // Every frame in and out: at least the payload-bearing frames, both ways.
    assert!(n[1].dma_bytes >= 2 * REQUESTS * 106, "{:?}", n[1]);
    assert_eq!(n[0].dma_bytes, 0, "{:?}", n[0]);
    // The NIC on socket 0 reaches node 1 over the link.
    assert!(
        r.report
            .links
            .iter()
            .any(|l| l.from == 0 && l.to == 1 && l.bytes > 0)
    );
}

#[test]
fn two_runs_are_identical() {
    let a = closed();
    let b = run(Load::ClosedLoop { outstanding: 4 }, true);
    assert_eq!(a.console, b.console);
    assert_eq!(a.end, b.end);
    assert_eq!(a.latencies_ns, b.latencies_ns);
    assert_eq!(a.generator, b.generator);
    assert_eq!(a.report, b.report);
    assert_eq!(a.state_hash, b.state_hash);
}

#[test]
fn open_loop_and_functional_mode_answer_everything_too() {
    let r = run(Load::OpenLoop { rate: 200_000.0 }, true);
    assert_eq!(r.end, RunEnd::Exit(0), "console:\n{}", r.console);
    let g = &r.generator;
    assert_eq!(
        (g.answered, g.timed_out, g.invalid),
        (REQUESTS, 0, 0),
        "{g:?}"
    );
    // 200 k requests/s offered, all answered: the throughput follows the offered rate.
    assert!(
        (g.throughput_rps - 200_000.0).abs() / 200_000.0 < 0.1,
        "{g:?}"
    );
    eprintln!("open loop, 200 k/s: {g:#?}");
    let f = run(Load::ClosedLoop { outstanding: 4 }, false);
    assert_eq!(f.end, RunEnd::Exit(0));
    assert_eq!(f.generator.answered, REQUESTS);
    eprintln!("closed loop, functional mode: {:#?}", f.generator);
}

#[test]
fn interrupt_mode_sleeps_until_the_nic_interrupts() {
    let r = run_with(Load::ClosedLoop { outstanding: 1 }, true, "irq", 300);
    assert_eq!(r.end, RunEnd::Exit(0), "console:\n{}", r.console);
    let g = &r.generator;
    assert_eq!((g.answered, g.timed_out, g.invalid), (300, 0, 0), "{g:?}");
    // One request at a time: the responder sleeps before each, and each wakes it.
    assert!(r.interrupts >= 300, "{} interrupts", r.interrupts);
    assert!(r.console.contains("slept "), "{}", r.console);
    let responder = &r.report.cores[4];
    assert!(
        responder.halted_cycles > responder.busy_cycles,
        "{responder:?}"
    );
    // Waking costs more than finding the frame by polling.
    let polled = run_with(Load::ClosedLoop { outstanding: 1 }, true, "", 300);
    assert_eq!(polled.interrupts, 0);
    assert!(
        g.p50_ns > polled.generator.p50_ns,
        "{g:?} vs {:?}",
        polled.generator
    );
    eprintln!(
        "irq, 1 outstanding: {g:#?}\npolled, 1 outstanding: {:#?}",
        polled.generator
    );
}

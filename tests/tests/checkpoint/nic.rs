//! Checkpoints with NIC traffic in flight (issue 4): `udp-echo` on preset `2s` answering the
//! wire's UDP generator, polling or sleeping on interrupts (`irq`), timing on and off. A
//! checkpoint taken while frames are on the wire both ways, DMA write-backs and doorbells
//! are pending and the generator waits for a wake-up restores exactly: once the generator is
//! handed back to the wire — built again from its configuration, or rebuilt from the
//! checkpoint alone (`workloads::endpoints`) — the run finishes as the uninterrupted one,
//! down to the generator's latencies and a byte-identical final checkpoint. A generator not
//! handed back shows up as detached and its frames as unclaimed; one of another name, MAC
//! or configuration is refused. Forged bytes in the device part of a checkpoint get an
//! error, never a panic.

use super::same_state;
use emulator::mmio::Event;
use emulator::stats::Report;
use emulator::wire::WireStats;
use emulator::{Machine, MachineDesc, RunEnd};
use workloads::endpoints;
use workloads::udpgen::{Target, UdpGenConfig, UdpGenReport, UdpGenerator};

/// Far above what a run needs: a hang fails instead of hanging.
const LIMIT: u64 = 200_000_000;
/// Requests per run: enough for the ring indices to wrap (256 descriptors) and for
/// hundreds of quanta with traffic in flight.
const REQUESTS: u64 = 400;

#[derive(Clone, Copy, Debug)]
struct Setup {
    timing: bool,
    irq: bool,
}

fn config() -> UdpGenConfig {
    let desc = MachineDesc::load("2s").unwrap();
    let emulator::desc::DeviceDesc::Nic(nic) = &desc.devices[0];
    let target = Target {
        mac: nic.mac,
        ..Target::nic()
    };
    UdpGenConfig::closed_loop(target, REQUESTS, 4, 1234)
}

fn start(setup: Setup) -> Machine {
    let mut m = Machine::new(&MachineDesc::load("2s").unwrap()).unwrap();
    if setup.timing {
        m.enable_timing();
    }
    let image = workloads::images::get("udp-echo").expect("the udp-echo image is built");
    m.load_elf(image, false, if setup.irq { "irq" } else { "" })
        .unwrap();
    let g = UdpGenerator::new(config()).unwrap();
    assert_eq!(m.attach_endpoint(0, Box::new(g)), 0);
    m
}

/// What a finished run shows.
#[derive(Debug, PartialEq)]
struct Finish {
    console: String,
    end: RunEnd,
    instructions: u64,
    cycles: u64,
    state_hash: u64,
    report: Report,
    generator: UdpGenReport,
    latencies_ns: Vec<f64>,
    wire: WireStats,
    nic: emulator::devices::nic::NicStats,
}

fn generator(m: &Machine) -> &UdpGenerator {
    m.sys.bus.wires[0]
        .endpoint(0)
        .expect("the generator is attached")
        .as_any()
        .downcast_ref::<UdpGenerator>()
        .expect("a UDP generator")
}

/// Runs `m` to its end; `console` is what was taken from it before.
fn finish(m: &mut Machine, mut console: Vec<u8>) -> (Finish, Vec<u8>) {
    let end = loop {
        if let Some(end) = m.run_for(u64::MAX, Some(LIMIT)) {
            break end;
        }
    };
    console.append(&mut m.sys.io.console);
    let g = generator(m);
    let f = Finish {
        console: String::from_utf8_lossy(&console).into_owned(),
        end,
        instructions: m.instructions,
        cycles: m.cycles(),
        state_hash: m.state_hash(),
        report: m.report(0.0),
        generator: g.report(),
        latencies_ns: g.latencies_ns(),
        wire: m.sys.bus.wires[0].stats.clone(),
        nic: m.sys.bus.nics[0].stats.clone(),
    };
    (f, m.checkpoint())
}

/// What is in flight at a stop: which kinds of device event are pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    /// A frame on the wire towards the generator, and one towards the NIC.
    to_generator: bool,
    to_nic: bool,
    /// A descriptor write-back (the end of a DMA) and a doorbell on their way.
    write_back: bool,
    doorbell: bool,
    /// The generator's wake-up (its start, or a timeout).
    wake: bool,
    /// The responder core halted until an interrupt (`irq` mode).
    asleep: bool,
}

/// The responder: the first core of the last socket of `2s`.
const RESPONDER: usize = 4;

fn in_flight(m: &Machine) -> InFlight {
    let mut f = InFlight {
        asleep: m.cores[RESPONDER].state == emulator::cpu::RunState::Waiting,
        ..InFlight::default()
    };
    for (_, ev) in m.sys.bus.events() {
        match ev {
            Event::WireOut { .. } => f.to_generator = true,
            Event::NicRx { .. } => f.to_nic = true,
            Event::NicDone { .. } => f.write_back = true,
            Event::NicKick { .. } => f.doorbell = true,
            Event::Wake { .. } => f.wake = true,
        }
    }
    f
}

/// A checkpoint taken at a stop of a run, with the console printed before it.
struct Cut {
    at: u64,
    flight: InFlight,
    console: Vec<u8>,
    bytes: Vec<u8>,
}

/// Runs a machine through the whole run, stopping every `step` cycles, and keeps a
/// checkpoint at the first stop of each kind of traffic in flight, plus one early (before
/// the generator starts) and one late (about `late` of the run's cycles). Stopping between
/// quanta never changes the schedule, so the machine itself still finishes as `reference`.
fn cuts(setup: Setup, reference: &Finish, step: u64, late: (u64, u64)) -> (Vec<Cut>, Machine) {
    let mut m = start(setup);
    let mut console = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let late_at = reference.cycles * late.0 / late.1;
    let mut cuts = Vec::new();
    let mut t = 0;
    let mut late_done = false;
    while m.end().is_none() {
        t += step;
        if m.run_until_cycle(t, Some(LIMIT)).is_some() {
            break;
        }
        let flight = in_flight(&m);
        let first_late = !late_done && m.now() >= late_at;
        if seen.insert(flight) || first_late {
            late_done |= first_late;
            console.append(&mut m.sys.io.console);
            cuts.push(Cut {
                at: m.now(),
                flight,
                console: console.clone(),
                bytes: m.checkpoint(),
            });
        }
    }
    (cuts, m)
}

/// How a restored machine gets its generator back.
#[derive(Clone, Copy, Debug)]
enum Reattach {
    /// Built again from the configuration, as a scenario runner does.
    FromConfig,
    /// Rebuilt from the checkpoint's bytes alone, as `pvmlab exec --restore` does.
    FromCheckpoint,
}

fn restore(bytes: &[u8], how: Reattach) -> Machine {
    let mut r = Machine::restore(bytes).unwrap_or_else(|e| panic!("restore: {e}"));
    assert_eq!(r.sys.bus.wires[0].detached(), [0]);
    match how {
        Reattach::FromConfig => {
            let g = UdpGenerator::new(config()).unwrap();
            r.sys.bus.wires[0].restore_endpoint(0, Box::new(g)).unwrap();
        }
        Reattach::FromCheckpoint => assert_eq!(endpoints::reattach_all(&mut r), Ok(1)),
    }
    assert!(r.sys.bus.wires[0].detached().is_empty());
    r
}

fn reference(setup: Setup) -> (Finish, Vec<u8>) {
    let (f, last) = finish(&mut start(setup), Vec::new());
    assert_eq!(f.end, RunEnd::Exit(0), "{setup:?}: {}", f.console);
    let g = &f.generator;
    assert_eq!(
        (g.sent, g.answered, g.timed_out, g.invalid),
        (REQUESTS, REQUESTS, 0, 0),
        "{setup:?}: {g:?}"
    );
    (f, last)
}

fn continues_exactly(setup: Setup) {
    let (reference, last) = reference(setup);
    let (cuts, mut m) = cuts(setup, &reference, 2_500, (9, 10));
    // The machine stopped at every cut finishes as the uninterrupted one.
    let console = cuts.last().map(|c| c.console.clone()).unwrap_or_default();
    assert_eq!(
        finish(&mut m, console).0,
        reference,
        "{setup:?}, with stops"
    );
    // Every kind of traffic was in flight at some cut.
    let any = |f: fn(&InFlight) -> bool| cuts.iter().any(|c| f(&c.flight));
    assert!(
        any(|f| f.to_generator),
        "{setup:?}: no frame to the generator"
    );
    assert!(any(|f| f.to_nic), "{setup:?}: no frame to the NIC");
    assert!(any(|f| f.write_back), "{setup:?}: no DMA write-back");
    assert!(any(|f| f.wake), "{setup:?}: no wake-up");
    assert!(
        any(|f| f.to_generator && f.write_back) || any(|f| f.to_nic && f.write_back),
        "{setup:?}: never two kinds at once"
    );
    assert!(any(|f| f.doorbell), "{setup:?}: no doorbell");
    if setup.irq {
        assert!(
            any(|f| f.asleep),
            "{setup:?}: the responder never slept at a cut"
        );
        assert!(reference.nic.interrupts > 0);
    }
    for (k, cut) in cuts.iter().enumerate() {
        let how = if k % 2 == 0 {
            Reattach::FromCheckpoint
        } else {
            Reattach::FromConfig
        };
        let what = format!(
            "{setup:?}, cut at cycle {} ({:?}), {how:?}",
            cut.at, cut.flight
        );
        let mut r = restore(&cut.bytes, how);
        same_state(&r.checkpoint(), &cut.bytes, &format!("{what}: restored"));
        let (restored, restored_last) = finish(&mut r, cut.console.clone());
        assert_eq!(restored, reference, "{what}");
        same_state(&restored_last, &last, &what);
    }
    eprintln!(
        "{setup:?}: {} cuts, {} cycles; generator {:?}",
        cuts.len(),
        reference.cycles,
        reference.generator
    );
}

#[test]
fn udp_echo_polling_continues_exactly_with_traffic_in_flight() {
    for timing in [true, false] {
        continues_exactly(Setup { timing, irq: false });
    }
}

#[test]
fn udp_echo_on_interrupts_continues_exactly_with_traffic_in_flight() {
    for timing in [true, false] {
        continues_exactly(Setup { timing, irq: true });
    }
}

/// Checkpoint, restore, re-attach, run on, again and again: a chain of restores with traffic
/// in flight is as good as one run.
#[test]
fn a_chain_of_restores_with_traffic_continues_exactly() {
    let setup = Setup {
        timing: true,
        irq: true,
    };
    let (reference, last) = reference(setup);
    let mut m = start(setup);
    let mut console = Vec::new();
    for k in 1..=5 {
        m.run_until_cycle(reference.cycles * k / 6, Some(LIMIT));
        console.append(&mut m.sys.io.console);
        m = restore(&m.checkpoint(), Reattach::FromCheckpoint);
    }
    let (restored, restored_last) = finish(&mut m, console);
    assert_eq!(restored, reference);
    same_state(&restored_last, &last, "five restores");
}

/// A cut with requests in flight, taken while polling with the timing model.
fn busy_cut() -> (Finish, Cut) {
    let setup = Setup {
        timing: true,
        irq: false,
    };
    let (reference, _) = reference(setup);
    let (cuts, _) = cuts(setup, &reference, 2_500, (1, 2));
    let cut = cuts
        .into_iter()
        .find(|c| c.flight.to_generator && c.flight.to_nic)
        .expect("a cut with frames on the wire both ways");
    (reference, cut)
}

#[test]
fn a_generator_not_handed_back_shows_up_and_its_frames_are_unclaimed() {
    let (reference, cut) = busy_cut();
    let mut r = Machine::restore(&cut.bytes).unwrap();
    let w = &r.sys.bus.wires[0];
    assert_eq!(w.detached(), [0]);
    assert_eq!(w.endpoints()[0].name(), "udpgen");
    assert!(w.endpoints()[0].endpoint().is_none());
    let summary = endpoints::summaries(&r);
    assert!(summary[0].endpoints[0].detached, "{summary:?}");
    assert!(
        summary[0]
            .text()
            .contains("udpgen (02:00:00:00:00:fe): detached")
    );
    let unclaimed = w.stats.unclaimed;
    // Run on without it: the answers in flight reach nobody, no new request comes, and the
    // responder, never told bye, is still waiting when the reference run has long ended.
    assert_eq!(r.run_until_cycle(reference.cycles * 2, Some(LIMIT)), None);
    let w = &r.sys.bus.wires[0];
    assert!(w.stats.unclaimed > unclaimed, "{:?}", w.stats);
    assert!(
        w.stats.frames_in < reference.wire.frames_in,
        "{:?}",
        w.stats
    );
    assert_eq!(w.detached(), [0]);
}

#[test]
fn a_generator_of_another_name_mac_or_configuration_is_refused() {
    let (reference, cut) = busy_cut();
    let mut r = Machine::restore(&cut.bytes).unwrap();
    let wire = &mut r.sys.bus.wires[0];
    let mut renamed = config();
    renamed.name = "other".into();
    let e = wire
        .restore_endpoint(0, Box::new(UdpGenerator::new(renamed).unwrap()))
        .unwrap_err();
    assert_eq!(
        e,
        "endpoint 0 was `udpgen` (02:00:00:00:00:fe), not `other` (02:00:00:00:00:fe)"
    );
    let mut moved = config();
    moved.mac = emulator::desc::MacAddr([2, 0, 0, 0, 0, 0xFD]);
    let e = wire
        .restore_endpoint(0, Box::new(UdpGenerator::new(moved).unwrap()))
        .unwrap_err();
    assert_eq!(
        e,
        "endpoint 0 was `udpgen` (02:00:00:00:00:fe), not `udpgen` (02:00:00:00:00:fd)"
    );
    let mut longer = config();
    longer.requests += 1;
    let e = wire
        .restore_endpoint(0, Box::new(UdpGenerator::new(longer).unwrap()))
        .unwrap_err();
    assert!(
        e.starts_with("endpoint 0 (`udpgen`): UDP generator `udpgen`: the saved state is of a generator configured otherwise"),
        "{e}"
    );
    let e = wire
        .restore_endpoint(1, Box::new(UdpGenerator::new(config()).unwrap()))
        .unwrap_err();
    assert_eq!(e, "the wire has no endpoint 1 (1 endpoints)");
    // Refusals leave the slot as it was: the right generator still continues exactly.
    assert_eq!(wire.detached(), [0]);
    wire.restore_endpoint(0, Box::new(UdpGenerator::new(config()).unwrap()))
        .unwrap();
    let e = wire
        .restore_endpoint(0, Box::new(UdpGenerator::new(config()).unwrap()))
        .unwrap_err();
    assert_eq!(e, "endpoint 0 (`udpgen`) is attached already");
    let (restored, _) = finish(&mut r, cut.console);
    assert_eq!(restored, reference);
}

// ---- forged device state ----------------------------------------------------------------

/// The sections of a checkpoint (layout in `emulator/src/checkpoint.rs`): header fields,
/// description, state, memory.
fn sections(b: &[u8]) -> (u64, &[u8], &[u8], &[u8]) {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (ram, desc, state) = (word(16), word(24) as usize, word(32) as usize);
    let rest = &b[64..];
    (
        ram,
        &rest[..desc],
        &rest[desc..desc + state],
        &rest[desc + state..],
    )
}

/// A checkpoint of these sections with its lengths and checksums right (what a forger
/// writes).
fn assemble(ram: u64, desc: &[u8], state: &[u8], mem: &[u8]) -> Vec<u8> {
    use xxhash_rust::xxh3::xxh3_64;
    let payload = [desc, state, mem].concat();
    let mut h = Vec::with_capacity(64);
    h.extend_from_slice(b"PVMLABCK");
    h.extend_from_slice(&emulator::checkpoint::FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    for v in [
        ram,
        desc.len() as u64,
        state.len() as u64,
        mem.len() as u64,
        xxh3_64(&payload),
    ] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    let sum = xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    [h, payload].concat()
}

/// xorshift64*: a fixed, seeded sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The device part of a checkpoint's state section — the NIC's registers and counters, the
/// wire, the endpoint's saved bytes, the device events with their frames — edited byte by
/// byte behind valid checksums, each edit that still decodes re-encoded in place (so that
/// the rest of the state reads as before): restore, re-attaching the generator and running
/// on may refuse such a file, but never panic.
#[test]
fn forged_device_state_is_refused_never_panicked_on() {
    use emulator::mmio::Bus;
    let (reference, cut) = busy_cut();
    let (ram, desc, state, mem) = sections(&cut.bytes);
    // Where the bus is in the state: its encoding, found whole.
    let r = Machine::restore(&cut.bytes).unwrap();
    let bus = postcard::to_stdvec(&r.sys.bus).unwrap();
    let from = state
        .windows(bus.len())
        .position(|w| w == bus)
        .expect("the bus in the state section");
    let (before, after) = (&state[..from], &state[from + bus.len()..]);
    assert!(Machine::restore(&assemble(ram, desc, state, mem)).is_ok());
    // The NIC comes first in the bus, after the owners; the endpoint's name marks the wire.
    let name = bus
        .windows(7)
        .position(|w| w == b"\x06udpgen")
        .expect("the endpoint's name in the bus");
    let mut rng = Rng(0x005E_ED0F_D15C);
    let (mut undecodable, mut refused, mut ran) = (0, 0, 0);
    for i in 0..3000 {
        let mut b = bus.clone();
        for _ in 0..1 + rng.below(3) {
            // Half the edits in the NIC and the head of the wire, half anywhere.
            let end = if i % 2 == 0 { name + 8 } else { b.len() };
            let at = rng.below(end.min(b.len()));
            match rng.below(4) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next() as u8,
                2 => b[at] = [0, 0x7F, 0x80, 0xFF][rng.below(4)],
                // A large varint: a time, a size or an index far out.
                _ => b
                    .splice(at..at + 1, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F])
                    .for_each(drop),
            }
        }
        let Ok((forged, _)) = postcard::take_from_bytes::<Bus>(&b) else {
            undecodable += 1;
            continue;
        };
        let s = [before, &postcard::to_stdvec(&forged).unwrap(), after].concat();
        let Ok(mut m) = Machine::restore(&assemble(ram, desc, &s, mem)) else {
            refused += 1;
            continue;
        };
        if endpoints::reattach_all(&mut m).is_err() {
            refused += 1;
            continue;
        }
        // Accepted: it runs on (a little), whatever it holds.
        let limit = m.instructions + 2_000_000;
        m.run_until_cycle(cut.at + 20_000, Some(limit));
        ran += 1;
    }
    assert!(refused > 100 && ran > 100, "refused {refused}, ran {ran}");
    eprintln!(
        "forged device state: {undecodable} not decodable, {refused} refused, {ran} ran on \
         (run of {} cycles)",
        reference.cycles
    );
}

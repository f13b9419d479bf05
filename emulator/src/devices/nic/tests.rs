//! The NIC's registers, steering, descriptor rings, DMA timing and interrupts, driven through
//! the MMIO bus and the event queue as a core and the machine would, on preset `2s` (2.4 GHz:
//! PCIe 250 ns = 600 cycles each way; wire 1 µs = 2400 cycles, 10 Gb/s = 1.92 cycles/byte).

use crate::cpu::{CpuidInfo, GP, Sys};
use crate::desc::MachineDesc;
use crate::devices::Ports;
use crate::memory::Ram;
use crate::mmio::{Bus, IrqMessage};
use crate::timing::TimingModel;
use crate::wire::{Endpoint, EndpointIo};
use abi::nic::{self as reg, Desc};
use std::any::Any;

const NIC: u64 = abi::mmio::MMIO_BASE;
const PCIE: u64 = 600;
const WIRE: u64 = 2400;
const NIC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

fn sys(timing: bool) -> Sys {
    let desc = MachineDesc::load("2s").unwrap();
    let ram = Ram::new(&desc.ram_layout()).unwrap();
    let cpuid = CpuidInfo {
        ncores: desc.ncores(),
        cores_per_socket: 4,
        tsc_hz: 2_400_000_000,
    };
    let mut sys = Sys::new(ram, Ports::default(), cpuid);
    sys.bus = Bus::new(&desc);
    if timing {
        let ram = sys.ram.ranges().to_vec();
        sys.timing = Some(Box::new(TimingModel::new(
            &desc,
            &ram,
            &desc.core_sockets(),
        )));
    }
    sys
}

fn rd(s: &mut Sys, off: u64) -> u64 {
    s.bus.read(NIC + off, 8, 0).unwrap().0
}

fn wr(s: &mut Sys, off: u64, v: u64) {
    s.bus.write(NIC + off, 8, v, 0, 0).unwrap();
}

/// A frame of `len` bytes from `src` to `dst`, payload bytes = their index.
fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
    for (i, b) in f.iter_mut().enumerate().skip(14) {
        *b = i as u8;
    }
    f
}

/// An endpoint that sends scripted frames at given times and records what it receives.
#[derive(Clone, Default)]
struct Script {
    to_send: Vec<(u64, Vec<u8>)>,
    got: Vec<(u64, Vec<u8>)>,
}

impl Script {
    fn arm(&self, io: &mut EndpointIo) {
        if let Some((t, _)) = self.to_send.first() {
            io.wake_at(*t);
        }
    }
}

impl Endpoint for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn mac(&self) -> [u8; 6] {
        PEER
    }
    fn start(&mut self, io: &mut EndpointIo) {
        self.arm(io);
    }
    fn receive(&mut self, frame: &[u8], io: &mut EndpointIo) {
        self.got.push((io.now(), frame.to_vec()));
    }
    fn wake(&mut self, io: &mut EndpointIo) {
        while self.to_send.first().is_some_and(|(t, _)| *t <= io.now()) {
            let (_, f) = self.to_send.remove(0);
            io.send(f);
        }
        self.arm(io);
    }
    fn save(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Endpoint> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn script(s: &Sys) -> &Script {
    s.bus.wires[0]
        .endpoint(0)
        .unwrap()
        .as_any()
        .downcast_ref::<Script>()
        .unwrap()
}

fn desc_at(s: &Sys, pa: u64) -> Desc {
    let mut b = [0u8; 16];
    s.ram.read(pa, &mut b).unwrap();
    Desc {
        addr: u64::from_le_bytes(b[..8].try_into().unwrap()),
        len: u16::from_le_bytes([b[8], b[9]]),
        flags: u16::from_le_bytes([b[10], b[11]]),
        status: u16::from_le_bytes([b[12], b[13]]),
        reserved: 0,
    }
}

fn put_desc(s: &mut Sys, pa: u64, addr: u64, len: u16) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&addr.to_le_bytes());
    b[8..10].copy_from_slice(&len.to_le_bytes());
    s.ram.write(pa, &b).unwrap();
}

/// Queue `q` with an `n`-descriptor receive ring at `ring` (buffers of `buf` bytes after it)
/// given to the NIC, and an `n`-descriptor transmit ring after those.
fn setup_queue(s: &mut Sys, q: u64, ring: u64, n: u64, buf: u16) -> (u64, u64) {
    let bufs = ring + n * 16;
    for i in 0..n {
        put_desc(s, ring + i * 16, bufs + i * buf as u64, buf);
    }
    let tx = bufs + n * buf as u64;
    wr(s, reg::queue(q) + reg::RX_BASE, ring);
    wr(s, reg::queue(q) + reg::RX_SIZE, n);
    wr(s, reg::queue(q) + reg::RX_TAIL, n - 1);
    wr(s, reg::queue(q) + reg::TX_BASE, tx);
    wr(s, reg::queue(q) + reg::TX_SIZE, n);
    (bufs, tx)
}

#[test]
fn registers_after_reset() {
    let mut s = sys(false);
    assert_eq!(rd(&mut s, reg::ID), reg::NIC_ID);
    assert_eq!(rd(&mut s, abi::mmio::DEVICE_ID), reg::NIC_ID);
    assert_eq!(rd(&mut s, reg::QUEUES), 4);
    assert_eq!(reg::mac_from_bits(rd(&mut s, reg::MAC)), NIC_MAC);
    assert_eq!(rd(&mut s, reg::STATUS), reg::STATUS_LINK_UP);
    assert_eq!(
        rd(&mut s, reg::filter(0)),
        reg::FILTER_VALID | reg::mac_bits(NIC_MAC)
    );
    assert_eq!(rd(&mut s, reg::filter(1)), 0);
    // Read-only registers ignore writes; unknown offsets read 0.
    wr(&mut s, reg::ID, 5);
    assert_eq!(rd(&mut s, reg::ID), reg::NIC_ID);
    assert_eq!(rd(&mut s, 0x800), 0);
    assert_eq!(rd(&mut s, reg::queue(4) + reg::RX_BASE), 0, "no queue 4");
    // Enable, then reset: everything back to the reset state.
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    wr(&mut s, reg::queue(1) + reg::IRQ, 0x41);
    assert_eq!(
        rd(&mut s, reg::STATUS),
        reg::STATUS_LINK_UP | reg::STATUS_ENABLED
    );
    wr(&mut s, reg::CTRL, reg::CTRL_RESET);
    assert_eq!(rd(&mut s, reg::CTRL), 0);
    assert_eq!(rd(&mut s, reg::queue(1) + reg::IRQ), 0);
}

#[test]
fn narrow_accesses_read_and_merge_bytes_of_a_register() {
    let mut s = sys(false);
    let id = reg::NIC_ID;
    // A 4-byte load of the upper half, a 1-byte load of byte 3.
    assert_eq!(s.bus.read(NIC + 4, 4, 0).unwrap().0, id >> 32);
    assert_eq!(s.bus.read(NIC + 3, 1, 0).unwrap().0, (id >> 24) & 0xFF);
    // A 4-byte store to the upper half of IRQ keeps the vector in the lower half.
    let irq = reg::queue(0) + reg::IRQ;
    wr(&mut s, irq, 0x40);
    s.bus.write(NIC + irq + 4, 4, 7, 0, 0).unwrap();
    assert_eq!(rd(&mut s, irq), 7 << 32 | 0x40);
    // Sizes other than 1/2/4/8, and accesses across two registers: #GP(0).
    for (off, size) in [(0, 16), (0, 3), (4, 8), (6, 4)] {
        let e = s.bus.read(NIC + off, size, 0).unwrap_err();
        assert_eq!((e.vector, e.error_code), (GP, Some(0)), "{off} {size}");
        assert!(s.bus.write(NIC + off, size, 0, 0, 0).is_err());
    }
    // Outside every window.
    assert!(!s.bus.is_mmio(abi::mmio::window(1)));
    assert!(s.bus.is_mmio(abi::mmio::window(1) - 8));
}

#[test]
fn mmio_loads_cost_the_round_trip_and_more_from_the_other_socket() {
    let mut s = sys(false);
    let local = s.bus.read(NIC, 8, 0).unwrap().1;
    let remote = s.bus.read(NIC, 8, 1).unwrap().1;
    assert_eq!(local, 2 * PCIE);
    // 2s: one 25 ns link hop each way = 60 cycles each way.
    assert_eq!(remote, 2 * (PCIE + 60));
}

#[test]
fn ring_registers_reset_head_and_tail_and_wrap_the_tail() {
    let mut s = sys(false);
    let q = reg::queue(2);
    wr(&mut s, q + reg::RX_SIZE, 8);
    wr(&mut s, q + reg::RX_TAIL, 11);
    assert_eq!(rd(&mut s, q + reg::RX_TAIL), 3);
    wr(&mut s, q + reg::RX_BASE, 0x10_0000);
    assert_eq!(
        (rd(&mut s, q + reg::RX_HEAD), rd(&mut s, q + reg::RX_TAIL)),
        (0, 0)
    );
    wr(&mut s, q + reg::TX_SIZE, 1 << 20);
    assert_eq!(rd(&mut s, q + reg::TX_SIZE), reg::MAX_RING);
    // Head registers are read-only.
    wr(&mut s, q + reg::RX_HEAD, 5);
    assert_eq!(rd(&mut s, q + reg::RX_HEAD), 0);
}

#[test]
fn filters_steer_by_destination_mac() {
    let mut s = sys(false);
    let a = [2, 0, 0, 0, 0, 0xA];
    let b = [2, 0, 0, 0, 0, 0xB];
    wr(
        &mut s,
        reg::filter(3),
        reg::FILTER_VALID | 2 << reg::FILTER_QUEUE_SHIFT | reg::mac_bits(a),
    );
    wr(
        &mut s,
        reg::filter(4),
        3 << reg::FILTER_QUEUE_SHIFT | reg::mac_bits(b),
    );
    let nic = &s.bus.nics[0];
    assert_eq!(nic.steer(NIC_MAC), Some(0));
    assert_eq!(nic.steer(a), Some(2));
    assert_eq!(nic.steer(b), None, "filter 4 is not valid");
    assert_eq!(nic.steer([0xFF; 6]), Some(0), "broadcast");
    assert_eq!(nic.steer([0x01, 0, 0x5E, 0, 0, 1]), Some(0), "multicast");
}

#[test]
fn a_received_frame_lands_in_the_next_buffer_then_its_descriptor_is_written_back() {
    let mut s = sys(false);
    let ring = 0x20_0000;
    let (bufs, _) = setup_queue(&mut s, 1, ring, 4, 2048);
    let mac = [2, 0, 0, 0, 0, 0x11];
    wr(
        &mut s,
        reg::filter(1),
        reg::FILTER_VALID | 1 << reg::FILTER_QUEUE_SHIFT | reg::mac_bits(mac),
    );
    wr(&mut s, reg::queue(1) + reg::IRQ, 3 << 32 | 0x51);
    wr(&mut s, reg::IMS, reg::cause_rx(1));
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    let f = frame(mac, PEER, 100);
    let ep = Script {
        to_send: vec![(1000, f.clone())],
        ..Script::default()
    };
    s.bus.attach_endpoint(0, Box::new(ep), 0);
    let ser = s.bus.wires[0].serialization(100);
    assert_eq!(ser, (124.0f64 * 1.92).ceil() as u64);
    let arrival = 1000 + ser + WIRE;
    // Descriptor read (round trip), buffer write, descriptor write (posted).
    let done = arrival + 2 * PCIE + PCIE + PCIE;
    Bus::run_events(&mut s, done - 1);
    // The data is there, but the descriptor is not yet done.
    let mut got = vec![0u8; 100];
    s.ram.read(bufs, &mut got).unwrap();
    assert_eq!(got, f);
    assert_eq!(desc_at(&s, ring).status, 0);
    assert_eq!(rd(&mut s, reg::queue(1) + reg::RX_HEAD), 1);
    assert!(s.bus.irqs.is_empty());
    Bus::run_events(&mut s, done);
    let d = desc_at(&s, ring);
    assert_eq!((d.addr, d.len, d.status), (bufs, 100, reg::DD | reg::EOP));
    assert_eq!(rd(&mut s, reg::ICR), reg::cause_rx(1));
    assert_eq!(
        s.bus.irqs,
        [IrqMessage {
            time: done,
            dest: 3,
            vector: 0x51
        }]
    );
    assert_eq!(rd(&mut s, reg::RX_PACKETS), 1);
    assert_eq!(rd(&mut s, reg::RX_BYTES), 100);
    assert_eq!(s.bus.pending_events(), 0);
}

#[test]
fn frames_without_a_descriptor_a_filter_or_an_enabled_nic_are_dropped() {
    let mut s = sys(false);
    let ring = 0x20_0000;
    setup_queue(&mut s, 0, ring, 4, 64);
    let frames = vec![
        // NIC disabled.
        (100, frame(NIC_MAC, PEER, 60)),
        // Unicast to nobody.
        (20_000, frame([2, 0, 0, 0, 0, 0x77], PEER, 60)),
        // Four frames for a ring that has three descriptors (size 4); the third is 100 bytes
        // for a 64-byte buffer.
        (20_001, frame(NIC_MAC, PEER, 60)),
        (20_002, frame(NIC_MAC, PEER, 60)),
        (20_003, frame(NIC_MAC, PEER, 100)),
        (20_004, frame(NIC_MAC, PEER, 60)),
    ];
    let ep = Script {
        to_send: frames,
        ..Script::default()
    };
    s.bus.attach_endpoint(0, Box::new(ep), 0);
    Bus::run_events(&mut s, 10_000);
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    Bus::run_events(&mut s, 1_000_000);
    assert_eq!(rd(&mut s, reg::RX_NO_DESC), 2);
    assert_eq!(rd(&mut s, reg::RX_NO_MATCH), 1);
    assert_eq!(rd(&mut s, reg::RX_PACKETS), 3);
    let d = desc_at(&s, ring + 32);
    assert_eq!((d.len, d.status), (64, reg::DD | reg::EOP | reg::TRUNC));
    // Without IMS, causes rise but send nothing.
    assert_eq!(rd(&mut s, reg::ICR), reg::cause_rx(0));
    assert!(s.bus.irqs.is_empty());
    // Unmasking a raised cause interrupts at once (when the write reaches the NIC).
    wr(&mut s, reg::queue(0) + reg::IRQ, 0x30);
    s.bus.write(NIC + reg::IMS, 8, 1, 5000, 0).unwrap();
    assert_eq!(
        s.bus.irqs,
        [IrqMessage {
            time: 5000 + PCIE,
            dest: 0,
            vector: 0x30
        }]
    );
}

#[test]
fn a_doorbell_sends_the_frames_and_completes_their_descriptors() {
    let mut s = sys(false);
    let ring = 0x20_0000;
    let (_, tx) = setup_queue(&mut s, 0, ring, 8, 2048);
    let buf = 0x30_0000;
    let f1 = frame(PEER, NIC_MAC, 1514);
    let f2 = frame(PEER, NIC_MAC, 60);
    s.ram.write(buf, &f1).unwrap();
    s.ram.write(buf + 2048, &f2).unwrap();
    put_desc(&mut s, tx, buf, 1514);
    put_desc(&mut s, tx + 16, buf + 2048, 60);
    // A bad length: completed with ERR, not sent.
    put_desc(&mut s, tx + 32, buf, 5);
    wr(&mut s, reg::queue(0) + reg::IRQ, 1 << 32 | 0x40);
    wr(&mut s, reg::IMS, reg::cause_tx(0));
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    s.bus.attach_endpoint(0, Box::new(Script::default()), 0);
    // The doorbell, written at cycle 1000 by a core of socket 0, reaches the NIC at 1600.
    s.bus
        .write(NIC + reg::queue(0) + reg::TX_TAIL, 4, 3, 1000, 0)
        .unwrap();
    Bus::run_events(&mut s, u64::MAX);
    let kick = 1000 + PCIE;
    // Frame 1: descriptor read and buffer read, each a round trip; then the wire.
    let sent1 = kick + 4 * PCIE;
    let w = &s.bus.wires[0];
    let (ser1, ser2) = (w.serialization(1514), w.serialization(60));
    let sent2 = sent1 + 4 * PCIE;
    let got = &script(&s).got;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (sent1 + ser1 + WIRE, f1));
    // Frame 2 was read while frame 1 was on the wire, and queued behind it.
    assert!(sent2 < sent1 + ser1);
    // (The link keeps fractions of a cycle: within one cycle of the sum of the two.)
    assert!(got[1].0.abs_diff(sent1 + ser1 + ser2 + WIRE) <= 1);
    assert_eq!(got[1].1, f2);
    assert_eq!(desc_at(&s, tx).status, reg::DD);
    assert_eq!(desc_at(&s, tx + 16).status, reg::DD);
    assert_eq!(desc_at(&s, tx + 32).status, reg::DD | reg::ERR);
    assert_eq!(rd(&mut s, reg::queue(0) + reg::TX_HEAD), 3);
    assert_eq!(rd(&mut s, reg::TX_PACKETS), 2);
    assert_eq!(rd(&mut s, reg::TX_ERRORS), 1);
    // One interrupt: the cause stayed raised for the second and third completions.
    assert_eq!(
        s.bus.irqs,
        [IrqMessage {
            time: sent1 + PCIE,
            dest: 1,
            vector: 0x40
        }]
    );
    // Cleared, the next completion interrupts again.
    wr(&mut s, reg::ICR, reg::cause_tx(0));
    put_desc(&mut s, tx + 48, buf + 2048, 60);
    wr(&mut s, reg::queue(0) + reg::TX_TAIL, 4);
    Bus::run_events(&mut s, u64::MAX);
    assert_eq!(s.bus.irqs.len(), 2);
}

#[test]
fn a_reset_cancels_work_in_flight() {
    let mut s = sys(false);
    let ring = 0x20_0000;
    setup_queue(&mut s, 0, ring, 4, 2048);
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    let ep = Script {
        to_send: vec![(0, frame(NIC_MAC, PEER, 64))],
        ..Script::default()
    };
    s.bus.attach_endpoint(0, Box::new(ep), 0);
    // The frame arrives and is stored; the write-back is still in flight at the reset.
    let arrival = s.bus.wires[0].serialization(64) + WIRE;
    Bus::run_events(&mut s, arrival);
    assert_eq!(rd(&mut s, reg::RX_PACKETS), 1);
    wr(&mut s, reg::CTRL, reg::CTRL_RESET);
    put_desc(&mut s, ring, 0x1234, 99);
    Bus::run_events(&mut s, u64::MAX);
    assert_eq!(desc_at(&s, ring).status, 0);
    assert_eq!(rd(&mut s, reg::ICR), 0);
}

#[test]
fn dma_is_memory_traffic_at_the_buffers_node_and_takes_its_time() {
    // Ring and buffers on node 1, the NIC on socket 0.
    let node1 = MachineDesc::load("2s").unwrap().ram_layout()[1].base;
    let run = |timing: bool| {
        let mut s = sys(timing);
        let (bufs, _) = setup_queue(&mut s, 0, node1 + 0x10_0000, 16, 2048);
        wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
        let ep = Script {
            to_send: (0..8)
                .map(|i| (i * 10_000, frame(NIC_MAC, PEER, 1024)))
                .collect(),
            ..Script::default()
        };
        s.bus.attach_endpoint(0, Box::new(ep), 0);
        Bus::run_events(&mut s, u64::MAX);
        let mut b = vec![0u8; 1024];
        s.ram.read(bufs + 7 * 2048, &mut b).unwrap();
        assert_eq!(b, frame(NIC_MAC, PEER, 1024));
        let stats = s.timing.as_ref().map(|t| t.stats());
        (s.bus.nics[0].stats.clone(), stats)
    };
    let (nic, t) = run(true);
    assert_eq!(nic.rx_packets, 8);
    // Per frame: the descriptor read (16 bytes), the frame and the write-back (16 bytes).
    assert_eq!(nic.dma_write_bytes, 8 * (1024 + 16));
    assert_eq!(nic.dma_read_bytes, 8 * 16);
    let t = t.unwrap();
    let n1 = &t.nodes[1];
    assert!(
        n1.dma_write_bytes >= 8 * 1024,
        "node 1 DMA writes {}",
        n1.dma_write_bytes
    );
    assert!(n1.dma_read_bytes > 0);
    assert_eq!(t.nodes[0].dma_write_bytes + t.nodes[0].dma_read_bytes, 0);
    // The link carried the DMA from socket 0 to node 1.
    assert!(
        t.links
            .iter()
            .any(|l| l.from == 0 && l.to == 1 && l.bytes > 0)
    );
    // In functional mode the same frames move, with PCIe latency only.
    let (functional, none) = run(false);
    assert!(none.is_none());
    assert_eq!(functional.rx_packets, 8);
}

#[test]
fn device_state_round_trips_through_a_checkpoint_encoding() {
    let mut s = sys(false);
    setup_queue(&mut s, 0, 0x20_0000, 4, 2048);
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    let ep = Script {
        to_send: (0..3)
            .map(|i| (i * 500, frame(NIC_MAC, PEER, 80)))
            .collect(),
        ..Script::default()
    };
    s.bus.attach_endpoint(0, Box::new(ep.clone()), 0);
    // Mid-flight: frames on the wire, write-backs pending.
    Bus::run_events(&mut s, 3500);
    assert!(s.bus.pending_events() > 0);
    let bytes = postcard::to_allocvec(&s.bus).unwrap();
    let mut restored: Bus = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(postcard::to_allocvec(&restored).unwrap(), bytes);
    assert_eq!(restored.wires[0].detached(), [0]);
    restored.wires[0].restore_endpoint(0, Box::new(ep)).unwrap();
    // The restored devices go on to the same end as the original would.
    let mut original = s.bus.clone();
    s.bus = restored;
    Bus::run_events(&mut s, u64::MAX);
    assert_eq!(rd(&mut s, reg::RX_PACKETS), 3);
    assert_eq!(desc_at(&s, 0x20_0000 + 32).status, reg::DD | reg::EOP);
    std::mem::swap(&mut s.bus, &mut original);
    Bus::run_events(&mut s, u64::MAX);
    assert_eq!(
        postcard::to_allocvec(&s.bus).unwrap(),
        postcard::to_allocvec(&original).unwrap()
    );
}

/// A NIC read from a checkpoint must be the description's, in a state its registers could
/// reach: rings within their sizes and the address space, engines and generation within
/// the time limit (a forged one would otherwise loop forever, overflow or index past the
/// filters).
#[test]
fn a_restored_nic_is_checked_against_the_description() {
    let fresh = sys(false).bus.nics[0].clone();
    let mut s = sys(false);
    setup_queue(&mut s, 0, 0x20_0000, 4, 2048);
    wr(&mut s, reg::CTRL, reg::CTRL_ENABLE);
    let good = s.bus.nics[0].clone();
    good.check_restored(&fresh).unwrap();
    type Edit = fn(&mut crate::devices::nic::Nic);
    let cases: [(&str, Edit); 13] = [
        ("socket", |n| n.socket = 1),
        ("PCIe", |n| n.pcie += 1),
        ("queues", |n| n.queues.truncate(1)),
        ("filters", |n| n.filters.truncate(3)),
        ("control", |n| n.ctrl |= reg::CTRL_RESET),
        ("rx engine", |n| n.rx_free = u64::MAX),
        ("tx engine", |n| n.tx_free = crate::events::MAX_TIME + 1),
        ("generation", |n| n.generation = u64::MAX),
        ("ring size", |n| n.queues[0].rx_size = reg::MAX_RING + 1),
        ("head", |n| n.queues[0].rx_head = 4),
        ("tail", |n| n.queues[0].tx_tail = 4),
        ("off ring", |n| n.queues[1].tx_head = 1),
        ("base", |n| {
            n.queues[0].rx_base = u64::MAX - 8;
            n.queues[0].rx_head = 1;
        }),
    ];
    for (what, edit) in cases {
        let mut n = good.clone();
        edit(&mut n);
        assert!(n.check_restored(&fresh).is_err(), "{what}: accepted");
    }
    // A ring at the top of the address space is a driver's mistake, not a forgery: the NIC
    // reads nothing there and its head stays at 0.
    wr(&mut s, reg::queue(0) + reg::RX_BASE, u64::MAX - 8);
    s.bus.nics[0].check_restored(&fresh).unwrap();
}

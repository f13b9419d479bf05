//! Memory-mapped devices and their event queue (DESIGN.md §2.4, §2.5).
//!
//! The [`Bus`] owns the devices of the machine description — each in its MMIO window
//! (`abi::mmio`) — the wires behind the NICs, and the queue of device events keyed by
//! (time, sequence number). Cores reach it through the CPU's memory path: a soft-TLB miss whose
//! physical address is in a device window calls [`Bus::read`] or [`Bus::write`] instead of
//! filling the TLB, so every access reaches the device. The machine's schedule runs the
//! events due before letting a core run past them ([`Bus::run_events`]) and delivers the
//! interrupt messages devices raise ([`Bus::irqs`]) to the local APICs.
//!
//! # Time
//! Every device time is in core cycles of the machine clock, the clock of the core that runs
//! at the frontier of simulated time. An MMIO load stalls the core for the round trip (the
//! NIC's PCIe latency both ways, plus the interconnect latency both ways when the core is on
//! another socket: hop count × the mean link latency of the machine description); a store is
//! posted — the core goes on, and the device acts on it one way later (a doorbell becomes an
//! event at that time). Register state itself changes at once, so a load that follows a store
//! reads what was stored.

use crate::cpu::{Fault, GP, Sys};
use crate::desc::{DeviceDesc, MachineDesc};
use crate::devices::nic::{Action, Completion, Nic};
use crate::events::EventQueue;
use crate::wire::{Endpoint, EndpointIo, Wire};
use abi::mmio::{MMIO_BASE, MMIO_WINDOW};
use serde::{Deserialize, Serialize};

/// An interrupt a device sends: a fixed interrupt of `vector` to the local APIC whose x2APIC
/// id is `dest`, raised at `time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqMessage {
    pub time: u64,
    pub dest: u32,
    pub vector: u8,
}

/// A device event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A frame from the wire has fully arrived at NIC `nic`.
    NicRx { nic: u32, frame: Vec<u8> },
    /// A transmit doorbell of `queue` reaches NIC `nic`.
    NicKick { nic: u32, queue: u32 },
    /// A descriptor write-back of NIC `nic` lands.
    NicDone { nic: u32, completion: Completion },
    /// A frame from NIC `nic` has fully arrived at the far end of its wire.
    WireOut { nic: u32, frame: Vec<u8> },
    /// Endpoint `ep` on NIC `nic`'s wire asked to be woken now.
    Wake { nic: u32, ep: u32 },
}

/// What owns an MMIO window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Owner {
    /// `Bus::nics[i]`.
    Nic(u32),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Bus {
    /// Device `i`'s window is `abi::mmio::window(i)`.
    owners: Vec<Owner>,
    pub nics: Vec<Nic>,
    /// `wires[i]` is the far side of `nics[i]`.
    pub wires: Vec<Wire>,
    events: EventQueue<Event>,
    /// Interrupt messages raised and not yet delivered, in the order raised.
    pub irqs: Vec<IrqMessage>,
    /// `[device][socket]`: one-way latency of an MMIO access from a core of that socket.
    one_way: Vec<Vec<u64>>,
    /// Cycles per simulated second.
    hz: u64,
}

impl Bus {
    pub fn new(desc: &MachineDesc) -> Self {
        let mhz = desc.frequency_mhz;
        let cycles = |ns: f64| (ns * mhz as f64 / 1000.0).round() as u64;
        let hops = desc.hops();
        let link_ns = if desc.links.is_empty() {
            0.0
        } else {
            desc.links.iter().map(|l| l.latency_ns).sum::<f64>() / desc.links.len() as f64
        };
        let mut bus = Bus {
            hz: mhz as u64 * 1_000_000,
            ..Bus::default()
        };
        for d in &desc.devices {
            let DeviceDesc::Nic(n) = d;
            bus.owners.push(Owner::Nic(bus.nics.len() as u32));
            bus.nics.push(Nic::new(n, mhz));
            bus.wires
                .push(Wire::new(n.wire.latency_ns, n.wire.bandwidth_gbps, mhz));
            bus.one_way.push(
                (0..desc.sockets.len())
                    .map(|s| {
                        let h = hops[s][n.socket as usize] as f64;
                        cycles(n.pcie_latency_ns + h * link_ns)
                    })
                    .collect(),
            );
        }
        bus
    }

    /// Whether `pa` lies in a device's window.
    #[inline]
    pub fn is_mmio(&self, pa: u64) -> bool {
        pa >= MMIO_BASE && (pa - MMIO_BASE) / MMIO_WINDOW < self.owners.len() as u64
    }

    /// Device index, register offset (8-byte aligned), byte shift and byte mask of an access
    /// of `size` bytes at `pa`; #GP(0) for a size other than 1, 2, 4, 8 or an access across
    /// two registers.
    fn decode(&self, pa: u64, size: u64) -> Result<(usize, u64, u64, u64), Fault> {
        let gp = Fault::with_code(GP, 0);
        if !matches!(size, 1 | 2 | 4 | 8) || (pa & 7) + size > 8 || !self.is_mmio(pa) {
            return Err(gp);
        }
        let dev = ((pa - MMIO_BASE) / MMIO_WINDOW) as usize;
        let off = (pa - MMIO_BASE) % MMIO_WINDOW;
        let shift = (off & 7) * 8;
        let mask = if size == 8 {
            u64::MAX
        } else {
            ((1u64 << (size * 8)) - 1) << shift
        };
        Ok((dev, off & !7, shift, mask))
    }

    /// An MMIO load of `size` bytes at `pa` by a core of `socket`: the value and the cycles
    /// the core stalls.
    pub fn read(&mut self, pa: u64, size: u64, socket: u32) -> Result<(u64, u64), Fault> {
        let (dev, reg, shift, mask) = self.decode(pa, size)?;
        let value = match self.owners[dev] {
            Owner::Nic(i) => self.nics[i as usize].read(reg),
        };
        let stall = 2 * self.one_way[dev][socket as usize];
        Ok(((value & mask) >> shift, stall))
    }

    /// An MMIO store of `size` bytes of `value` at `pa` by a core of `socket` at time `now`
    /// (posted: the core does not wait).
    pub fn write(
        &mut self,
        pa: u64,
        size: u64,
        value: u64,
        now: u64,
        socket: u32,
    ) -> Result<(), Fault> {
        let (dev, reg, shift, mask) = self.decode(pa, size)?;
        let at = now + self.one_way[dev][socket as usize];
        let mut actions = Vec::new();
        match self.owners[dev] {
            Owner::Nic(i) => {
                self.nics[i as usize].write(reg, value << shift, mask, &mut actions);
                self.nic_actions(i, at, &actions);
            }
        }
        Ok(())
    }

    fn nic_actions(&mut self, nic: u32, at: u64, actions: &[Action]) {
        for &a in actions {
            match a {
                Action::Kick(queue) => self.events.push(at, Event::NicKick { nic, queue }),
                Action::Interrupt(q) => {
                    let n = &mut self.nics[nic as usize];
                    if let Some((vector, dest)) = n.irq_of(q) {
                        n.stats.interrupts += 1;
                        self.irqs.push(IrqMessage {
                            time: at,
                            dest,
                            vector,
                        });
                    }
                }
            }
        }
    }

    /// When the next device event is due.
    #[inline]
    pub fn next_event_time(&self) -> Option<u64> {
        self.events.next_time()
    }

    /// Device events not yet run.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Attaches an endpoint to the wire of NIC `nic` and starts it at `now`; returns its
    /// index on that wire.
    pub fn attach_endpoint(&mut self, nic: usize, ep: Box<dyn Endpoint>, now: u64) -> usize {
        let i = self.wires[nic].attach(ep);
        self.call_endpoint(nic as u32, i as u32, now, |ep, io| ep.start(io));
        i
    }

    fn call_endpoint(
        &mut self,
        nic: u32,
        ep: u32,
        now: u64,
        f: impl FnOnce(&mut dyn Endpoint, &mut EndpointIo),
    ) {
        let mut io = EndpointIo::new(now, self.hz);
        let wire = &mut self.wires[nic as usize];
        let Some(slot) = wire.slot_mut(ep as usize) else {
            return;
        };
        let Some(e) = slot.endpoint_mut() else {
            return;
        };
        f(e, &mut io);
        let (frames, wake) = io.into_parts();
        match wake {
            Some(Some(t)) => {
                slot.next_wake = Some(t);
                self.events.push(t, Event::Wake { nic, ep });
            }
            Some(None) => slot.next_wake = None,
            None => {}
        }
        for frame in frames {
            let at = wire.send_in(now, frame.len() as u64);
            self.events.push(at, Event::NicRx { nic, frame });
        }
    }

    /// Runs every device event due at or before `until`, in (time, sequence) order, the ones
    /// they schedule included.
    pub fn run_events(sys: &mut Sys, until: u64) {
        if sys.bus.next_event_time().is_none_or(|t| t > until) {
            return;
        }
        let mut bus = std::mem::take(&mut sys.bus);
        while let Some((t, ev)) = bus.events.pop_due(until) {
            bus.handle(sys, t, ev);
        }
        sys.bus = bus;
    }

    fn handle(&mut self, sys: &mut Sys, t: u64, ev: Event) {
        match ev {
            Event::NicRx { nic, frame } => {
                if let Some((done, completion)) = self.nics[nic as usize].receive(sys, t, &frame) {
                    self.events.push(done, Event::NicDone { nic, completion });
                }
            }
            Event::NicKick { nic, queue } => {
                for s in self.nics[nic as usize].transmit(sys, t, queue) {
                    if let Some(frame) = s.frame {
                        let at = self.wires[nic as usize].send_out(s.at, frame.len() as u64);
                        self.events.push(at, Event::WireOut { nic, frame });
                    }
                    self.events.push(
                        s.done,
                        Event::NicDone {
                            nic,
                            completion: s.completion,
                        },
                    );
                }
            }
            Event::NicDone { nic, completion } => {
                let mut actions = Vec::new();
                self.nics[nic as usize].complete(sys, &completion, &mut actions);
                self.nic_actions(nic, t, &actions);
            }
            Event::WireOut { nic, frame } => {
                let mut dst = [0u8; 6];
                if let Some(d) = frame.get(..6) {
                    dst.copy_from_slice(d);
                }
                let to = self.wires[nic as usize].receivers(dst);
                if to.is_empty() {
                    self.wires[nic as usize].stats.unclaimed += 1;
                }
                for ep in to {
                    self.call_endpoint(nic, ep as u32, t, |e, io| e.receive(&frame, io));
                }
            }
            Event::Wake { nic, ep } => {
                let Some(slot) = self.wires[nic as usize].slot_mut(ep as usize) else {
                    return;
                };
                if slot.next_wake != Some(t) {
                    return; // replaced or cancelled since
                }
                slot.next_wake = None;
                self.call_endpoint(nic, ep, t, |e, io| e.wake(io));
            }
        }
    }
}

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

    /// Checks a bus read from a checkpoint against `fresh`, the one the machine description
    /// gives: the same devices and wires (each checked in turn), and events and interrupt
    /// messages that name devices, queues and endpoints that exist, at times that leave room
    /// to run. A forged checkpoint gets an error here instead of a panic later.
    pub fn check_restored(&self, fresh: &Bus) -> Result<(), String> {
        if self.owners != fresh.owners
            || self.one_way != fresh.one_way
            || self.hz != fresh.hz
            || self.nics.len() != fresh.nics.len()
            || self.wires.len() != fresh.wires.len()
        {
            return Err(format!(
                "{} devices, {} NICs and {} wires; the description has {}, {} and {}",
                self.owners.len(),
                self.nics.len(),
                self.wires.len(),
                fresh.owners.len(),
                fresh.nics.len(),
                fresh.wires.len()
            ));
        }
        for (i, (n, f)) in self.nics.iter().zip(&fresh.nics).enumerate() {
            n.check_restored(f).map_err(|e| format!("NIC {i}: {e}"))?;
        }
        for (i, (w, f)) in self.wires.iter().zip(&fresh.wires).enumerate() {
            w.check_restored(f)
                .map_err(|e| format!("the wire of NIC {i}: {e}"))?;
        }
        for (t, ev) in self.events.iter() {
            let nic = match ev {
                Event::NicRx { nic, .. }
                | Event::NicKick { nic, .. }
                | Event::NicDone { nic, .. }
                | Event::WireOut { nic, .. }
                | Event::Wake { nic, .. } => *nic as usize,
            };
            let ok = nic < self.nics.len()
                && match ev {
                    Event::NicDone { completion, .. } => {
                        (completion.queue as usize) < self.nics[nic].queues.len()
                    }
                    Event::Wake { ep, .. } => (*ep as usize) < self.wires[nic].endpoints().len(),
                    _ => true,
                };
            if !ok {
                let what = match ev {
                    Event::NicRx { .. } => "a received frame",
                    Event::NicKick { .. } => "a doorbell",
                    Event::NicDone { .. } => "a descriptor write-back",
                    Event::WireOut { .. } => "a frame on the wire",
                    Event::Wake { .. } => "a wake-up",
                };
                return Err(format!(
                    "{what} at cycle {t} for NIC {nic}, or a queue or endpoint of it, that \
                     does not exist"
                ));
            }
        }
        if let Some(m) = self.irqs.iter().find(|m| m.time > crate::events::MAX_TIME) {
            return Err(format!("an interrupt message at cycle {}", m.time));
        }
        Ok(())
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

    /// The device events not yet run, with their times, in no particular order (what is in
    /// flight: frames on a wire, DMA write-backs, doorbells, endpoint wake-ups).
    pub fn events(&self) -> impl Iterator<Item = (u64, &Event)> {
        self.events.iter()
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

#[cfg(test)]
mod tests {
    //! [`Bus::check_restored`]: what a forged checkpoint could hold in the device part is
    //! refused with an error naming it (`crate::checkpoint` feeds it whole files).

    use super::*;
    use crate::devices::nic::Completion;
    use crate::wire::{Endpoint, EndpointIo};
    use std::any::Any;

    #[derive(Clone)]
    struct Quiet;
    impl Endpoint for Quiet {
        fn name(&self) -> &str {
            "quiet"
        }
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 9]
        }
        fn start(&mut self, io: &mut EndpointIo) {
            io.wake_at(1000);
        }
        fn receive(&mut self, _: &[u8], _: &mut EndpointIo) {}
        fn wake(&mut self, _: &mut EndpointIo) {}
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

    /// The bus of preset `2s` with an endpoint attached (a wake-up pending), through a
    /// checkpoint encoding: what `Machine::restore` gets.
    fn saved() -> (Bus, Bus) {
        let desc = MachineDesc::load("2s").unwrap();
        let mut b = Bus::new(&desc);
        b.attach_endpoint(0, Box::new(Quiet), 0);
        let r: Bus = postcard::from_bytes(&postcard::to_stdvec(&b).unwrap()).unwrap();
        (r, Bus::new(&desc))
    }

    fn refused(edit: impl FnOnce(&mut Bus), says: &str) {
        let (mut b, fresh) = saved();
        edit(&mut b);
        let e = b.check_restored(&fresh).unwrap_err();
        assert!(e.contains(says), "expected `{says}` in: {e}");
    }

    #[test]
    fn a_restored_bus_must_be_the_descriptions() {
        let (b, fresh) = saved();
        b.check_restored(&fresh).unwrap();
        assert_eq!(b.wires[0].detached(), [0]);

        // The shape: devices, wires, latencies, clock.
        refused(|b| b.owners.push(Owner::Nic(1)), "2 devices, 1 NICs");
        refused(|b| drop(b.nics.pop()), "0 NICs");
        refused(|b| drop(b.wires.pop()), "0 wires");
        refused(|b| b.one_way[0][1] += 1, "devices");
        refused(|b| b.hz += 1, "devices");
        // Events and interrupts that name nothing, or lie beyond any run.
        refused(
            |b| b.events.push(5, Event::NicKick { nic: 1, queue: 0 }),
            "a doorbell at cycle 5 for NIC 1",
        );
        refused(
            |b| b.events.push(5, Event::Wake { nic: 0, ep: 1 }),
            "a wake-up at cycle 5",
        );
        let completion = Completion {
            generation: 1,
            queue: 4,
            tx: false,
            desc_at: 0x20_0000,
            desc: [0; 16],
        };
        refused(
            |b| b.events.push(9, Event::NicDone { nic: 0, completion }),
            "a descriptor write-back at cycle 9",
        );
        refused(
            |b| {
                b.irqs.push(IrqMessage {
                    time: u64::MAX,
                    dest: 0,
                    vector: 32,
                })
            },
            "an interrupt message",
        );
        // The NIC and the wire are checked too.
        refused(
            |b| b.nics[0].mac = [2, 0, 0, 0, 0, 7],
            "NIC 0: socket 0, MAC 02:00:00:00:00:07",
        );
        refused(|b| b.nics[0].queues.push(Default::default()), "NIC 0: ");
        refused(
            |b| b.wires[0] = Wire::new(1.0, 1.0, 2400),
            "the wire of NIC 0: a link of",
        );
        // A queue of forged events does not even deserialise.
        let mut far = EventQueue::default();
        far.push(crate::events::MAX_TIME + 1, 0u8);
        let bytes = postcard::to_stdvec(&far).unwrap();
        assert!(postcard::from_bytes::<EventQueue<u8>>(&bytes).is_err());
    }
}

//! The NIC (DESIGN.md §2.5; register map, descriptors and driver steps in `abi::nic`): its
//! registers, MAC steering, and the receive and transmit engines that move frames between the
//! wire and descriptor rings in guest memory by DMA.
//!
//! The engines are driven by the device event queue ([`crate::mmio::Bus`]); this file holds
//! the device's own logic and state. Receive and transmit each handle one frame at a time, in
//! order: a frame's transfers start when the engine is free and the frame is there, and each
//! DMA transfer takes [`dma_time`] (PCIe latency plus, with the timing model, the memory
//! system's time for the lines at their home node).

use crate::cpu::Sys;
use crate::desc::NicDesc;
use crate::memory::PAGE_SIZE;
use abi::nic as reg;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Counters of a NIC (the registers `RX_PACKETS`… read the same numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_no_desc: u64,
    pub rx_no_match: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Interrupt messages sent.
    pub interrupts: u64,
    /// Bytes the NIC read and wrote by DMA (descriptors and buffers).
    pub dma_read_bytes: u64,
    pub dma_write_bytes: u64,
}

/// The registers of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub rx_base: u64,
    pub rx_size: u64,
    pub rx_head: u64,
    pub rx_tail: u64,
    pub tx_base: u64,
    pub tx_size: u64,
    pub tx_head: u64,
    pub tx_tail: u64,
    pub irq: u64,
}

/// What a register write asks of the rest of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue `q`'s transmit doorbell rang.
    Kick(u32),
    /// Send queue `q`'s interrupt.
    Interrupt(u32),
}

/// A finished receive or transmit: the descriptor to write back, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The NIC's reset generation when the work started: a reset in between cancels it.
    pub generation: u64,
    pub queue: u32,
    pub tx: bool,
    /// Physical address of the descriptor and its new contents.
    pub desc_at: u64,
    pub desc: [u8; 16],
}

/// A transmit descriptor the NIC fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// When the frame is handed to the wire (its last byte read from memory).
    pub at: u64,
    /// The frame; `None` if the descriptor was invalid.
    pub frame: Option<Vec<u8>>,
    /// When the descriptor write-back lands.
    pub done: u64,
    pub completion: Completion,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Nic {
    pub socket: u32,
    pub mac: [u8; 6],
    ctrl: u64,
    icr: u64,
    ims: u64,
    filters: Vec<u64>,
    pub queues: Vec<Queue>,
    pub stats: NicStats,
    generation: u64,
    /// When the receive and transmit engines are next free (cycles).
    rx_free: u64,
    tx_free: u64,
    /// One-way PCIe latency, cycles.
    pub(crate) pcie: u64,
}

/// The time of one DMA transfer of `len` bytes at `pa` by a device on `socket` that starts at
/// `t`: `pcie` (once for a write, which is posted; twice for a read: request and completion)
/// plus the memory system's time with the timing model on, where it counts as DMA traffic
/// at the buffer's home node.
pub fn dma_time(
    sys: &mut Sys,
    socket: u32,
    pcie: u64,
    t: u64,
    pa: u64,
    len: u64,
    write: bool,
) -> u64 {
    let mem = match sys.timing.as_deref_mut() {
        Some(tm) => tm.dma(socket, t + pcie, pa, len, write),
        None => 0,
    };
    if write { pcie + mem } else { 2 * pcie + mem }
}

/// Whether `[pa, pa + len)` lies in one RAM range.
fn is_ram(sys: &Sys, pa: u64, len: u64) -> bool {
    sys.ram
        .ranges()
        .iter()
        .any(|r| r.contains(pa) && pa.checked_add(len).is_some_and(|e| e <= r.end()))
}

/// Reads guest memory for a DMA transfer; `None` if it is not all RAM.
pub fn dma_read(sys: &Sys, pa: u64, buf: &mut [u8]) -> Option<()> {
    if !is_ram(sys, pa, buf.len() as u64) {
        return None;
    }
    sys.ram.read(pa, buf)
}

/// Writes guest memory for a DMA transfer; `None` if it is not all RAM. Code pages written
/// are recorded so that their decoded blocks are dropped.
pub fn dma_write(sys: &mut Sys, pa: u64, data: &[u8]) -> Option<()> {
    if !is_ram(sys, pa, data.len() as u64) {
        return None;
    }
    sys.ram.write(pa, data)?;
    let mut page = pa / PAGE_SIZE;
    let last = (pa + data.len().max(1) as u64 - 1) / PAGE_SIZE;
    while page <= last {
        if sys.is_code_page(page) && !sys.written_code.contains(&page) {
            sys.written_code.push(page);
        }
        page += 1;
    }
    Some(())
}

impl Nic {
    pub fn new(desc: &NicDesc, mhz: u32) -> Self {
        let mut nic = Nic {
            socket: desc.socket,
            mac: desc.mac.0,
            ctrl: 0,
            icr: 0,
            ims: 0,
            filters: Vec::new(),
            queues: Vec::new(),
            stats: NicStats::default(),
            generation: 0,
            rx_free: 0,
            tx_free: 0,
            pcie: (desc.pcie_latency_ns * mhz as f64 / 1000.0).round() as u64,
        };
        nic.queues = vec![Queue::default(); desc.queues as usize];
        nic.reset();
        nic
    }

    /// The reset state (`abi::nic`): counters and engine times survive.
    fn reset(&mut self) {
        self.ctrl = 0;
        self.icr = 0;
        self.ims = 0;
        self.filters = vec![0; reg::FILTERS as usize];
        self.filters[0] = reg::FILTER_VALID | reg::mac_bits(self.mac);
        for q in &mut self.queues {
            *q = Queue::default();
        }
        self.generation += 1;
    }

    /// Checks a NIC read from a checkpoint against `fresh`, the one the machine description
    /// gives: the same device (socket, MAC, queues, PCIe latency) in a state its registers
    /// could hold, with times that leave room to run.
    pub fn check_restored(&self, fresh: &Nic) -> Result<(), String> {
        if (self.socket, self.mac, self.pcie, self.queues.len())
            != (fresh.socket, fresh.mac, fresh.pcie, fresh.queues.len())
        {
            return Err(format!(
                "socket {}, MAC {}, PCIe {} cycles, {} queues: the description says socket {}, \
                 MAC {}, {} cycles, {} queues",
                self.socket,
                crate::desc::MacAddr(self.mac),
                self.pcie,
                self.queues.len(),
                fresh.socket,
                crate::desc::MacAddr(fresh.mac),
                fresh.pcie,
                fresh.queues.len()
            ));
        }
        if self.filters.len() != fresh.filters.len() || self.ctrl & !reg::CTRL_ENABLE != 0 {
            return Err(format!(
                "{} MAC filters, control bits {:#x}",
                self.filters.len(),
                self.ctrl
            ));
        }
        let limit = crate::events::MAX_TIME;
        if self.rx_free > limit || self.tx_free > limit || self.generation > limit {
            return Err(format!(
                "engines busy until cycles {} and {}, generation {}",
                self.rx_free, self.tx_free, self.generation
            ));
        }
        for (i, q) in self.queues.iter().enumerate() {
            // A driver may set any base; the NIC reads at `base + head * DESC_SIZE`, and head
            // moves on only from a descriptor it could read (in RAM), so this never overflows.
            let ring = |base: u64, size: u64, head: u64, tail: u64| {
                size <= reg::MAX_RING
                    && base.checked_add(head * reg::DESC_SIZE).is_some()
                    && if size == 0 {
                        head == 0 && tail == 0
                    } else {
                        head < size && tail < size
                    }
            };
            if !ring(q.rx_base, q.rx_size, q.rx_head, q.rx_tail)
                || !ring(q.tx_base, q.tx_size, q.tx_head, q.tx_tail)
            {
                return Err(format!("queue {i} has rings no driver could set: {q:?}"));
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.ctrl & reg::CTRL_ENABLE != 0
    }

    /// The value of the 64-bit register at `offset`.
    pub fn read(&self, offset: u64) -> u64 {
        let s = &self.stats;
        match offset {
            reg::ID => reg::NIC_ID,
            reg::QUEUES => self.queues.len() as u64,
            reg::CTRL => self.ctrl,
            reg::STATUS => {
                reg::STATUS_LINK_UP
                    | if self.enabled() {
                        reg::STATUS_ENABLED
                    } else {
                        0
                    }
            }
            reg::MAC => reg::mac_bits(self.mac),
            reg::ICR => self.icr,
            reg::IMS => self.ims,
            reg::RX_PACKETS => s.rx_packets,
            reg::RX_BYTES => s.rx_bytes,
            reg::TX_PACKETS => s.tx_packets,
            reg::TX_BYTES => s.tx_bytes,
            reg::RX_NO_DESC => s.rx_no_desc,
            reg::RX_NO_MATCH => s.rx_no_match,
            reg::TX_ERRORS => s.tx_errors,
            reg::RX_ERRORS => s.rx_errors,
            o if (reg::filter(0)..reg::filter(reg::FILTERS)).contains(&o) => {
                self.filters[((o - reg::filter(0)) / 8) as usize]
            }
            o if o >= reg::queue(0) => {
                let (qi, r) = ((o - reg::queue(0)) / 0x100, (o - reg::queue(0)) % 0x100);
                let Some(q) = self.queues.get(qi as usize) else {
                    return 0;
                };
                match r {
                    reg::RX_BASE => q.rx_base,
                    reg::RX_SIZE => q.rx_size,
                    reg::RX_HEAD => q.rx_head,
                    reg::RX_TAIL => q.rx_tail,
                    reg::TX_BASE => q.tx_base,
                    reg::TX_SIZE => q.tx_size,
                    reg::TX_HEAD => q.tx_head,
                    reg::TX_TAIL => q.tx_tail,
                    reg::IRQ => q.irq,
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    /// A write of the bytes `mask` of `value` to the 64-bit register at `offset`. Plain
    /// registers merge the bytes into their value; `ICR`, `IMS` and `IMC` act on the bits
    /// written. Returns what the machine must do.
    pub fn write(&mut self, offset: u64, value: u64, mask: u64, out: &mut Vec<Action>) {
        let bits = value & mask;
        let merge = |old: u64| (old & !mask) | bits;
        match offset {
            reg::CTRL => {
                let v = merge(self.ctrl);
                if v & reg::CTRL_RESET != 0 {
                    self.reset();
                    return;
                }
                let was = self.enabled();
                self.ctrl = v & reg::CTRL_ENABLE;
                if !was && self.enabled() {
                    // Descriptors posted while disabled go out now.
                    for (i, q) in self.queues.iter().enumerate() {
                        if q.tx_size != 0 && q.tx_head != q.tx_tail {
                            out.push(Action::Kick(i as u32));
                        }
                    }
                }
            }
            reg::ICR => self.icr &= !bits,
            reg::IMS => {
                let newly = bits & !self.ims;
                self.ims |= bits;
                self.interrupts_for(newly & self.icr, out);
            }
            reg::IMC => self.ims &= !bits,
            o if (reg::filter(0)..reg::filter(reg::FILTERS)).contains(&o) => {
                let f = &mut self.filters[((o - reg::filter(0)) / 8) as usize];
                *f = merge(*f);
            }
            o if o >= reg::queue(0) => {
                let (qi, r) = ((o - reg::queue(0)) / 0x100, (o - reg::queue(0)) % 0x100);
                let Some(q) = self.queues.get_mut(qi as usize) else {
                    return;
                };
                match r {
                    reg::RX_BASE => {
                        q.rx_base = merge(q.rx_base);
                        (q.rx_head, q.rx_tail) = (0, 0);
                    }
                    reg::RX_SIZE => {
                        q.rx_size = merge(q.rx_size).min(reg::MAX_RING);
                        (q.rx_head, q.rx_tail) = (0, 0);
                    }
                    reg::RX_TAIL => {
                        let v = merge(q.rx_tail);
                        q.rx_tail = if q.rx_size == 0 { 0 } else { v % q.rx_size };
                    }
                    reg::TX_BASE => {
                        q.tx_base = merge(q.tx_base);
                        (q.tx_head, q.tx_tail) = (0, 0);
                    }
                    reg::TX_SIZE => {
                        q.tx_size = merge(q.tx_size).min(reg::MAX_RING);
                        (q.tx_head, q.tx_tail) = (0, 0);
                    }
                    reg::TX_TAIL => {
                        let v = merge(q.tx_tail);
                        q.tx_tail = if q.tx_size == 0 { 0 } else { v % q.tx_size };
                        if self.ctrl & reg::CTRL_ENABLE != 0 && q.tx_head != q.tx_tail {
                            out.push(Action::Kick(qi as u32));
                        }
                    }
                    reg::IRQ => q.irq = merge(q.irq),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// One interrupt per queue with a bit in `causes`.
    fn interrupts_for(&self, causes: u64, out: &mut Vec<Action>) {
        for q in 0..self.queues.len() as u64 {
            if causes & (reg::cause_rx(q) | reg::cause_tx(q)) != 0 {
                out.push(Action::Interrupt(q as u32));
            }
        }
    }

    /// Raises cause bit `bit`: interrupts if it was clear and is enabled.
    pub fn raise(&mut self, bit: u64, out: &mut Vec<Action>) {
        let rising = self.icr & bit == 0;
        self.icr |= bit;
        if rising && self.ims & bit != 0 {
            self.interrupts_for(bit, out);
        }
    }

    /// Queue `q`'s interrupt as (vector, destination x2APIC id); `None` for a vector below 16.
    pub fn irq_of(&self, q: u32) -> Option<(u8, u32)> {
        let v = self.queues.get(q as usize)?.irq;
        let vector = v as u8;
        (vector >= 16).then_some((vector, (v >> reg::IRQ_DEST_SHIFT) as u32))
    }

    /// The queue a frame to `dst` goes to, if any.
    pub fn steer(&self, dst: [u8; 6]) -> Option<u32> {
        if dst[0] & 1 != 0 {
            return Some(0);
        }
        let bits = reg::mac_bits(dst);
        self.filters
            .iter()
            .find(|&&f| f & reg::FILTER_VALID != 0 && f & reg::FILTER_MAC_MASK == bits)
            .map(|&f| ((f >> reg::FILTER_QUEUE_SHIFT) & 0x1F) as u32)
            .filter(|&q| (q as usize) < self.queues.len())
    }

    /// A frame has arrived from the wire at `t`: stores it into the next receive buffer of
    /// its queue (DMA) and returns the descriptor write-back and when it lands, or `None` if
    /// the frame was dropped.
    pub fn receive(&mut self, sys: &mut Sys, t: u64, frame: &[u8]) -> Option<(u64, Completion)> {
        let mut dst = [0u8; 6];
        dst.copy_from_slice(frame.get(..6)?);
        if !self.enabled() {
            self.stats.rx_no_desc += 1;
            return None;
        }
        let Some(qi) = self.steer(dst) else {
            self.stats.rx_no_match += 1;
            return None;
        };
        let q = &self.queues[qi as usize];
        if q.rx_size == 0 || q.rx_head == q.rx_tail {
            self.stats.rx_no_desc += 1;
            return None;
        }
        let (socket, pcie) = (self.socket, self.pcie);
        let desc_at = q.rx_base + q.rx_head * reg::DESC_SIZE;
        let start = t.max(self.rx_free);
        let mut d = [0u8; 16];
        if dma_read(sys, desc_at, &mut d).is_none() {
            // The ring itself is not in RAM: nothing can be reported.
            self.stats.rx_errors += 1;
            return None;
        }
        let d1 = dma_time(sys, socket, pcie, start, desc_at, 16, false);
        let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
        let cap = u16::from_le_bytes([d[8], d[9]]) as usize;
        let n = frame.len().min(cap);
        let (len, status, d2) = if dma_write(sys, addr, &frame[..n]).is_some() {
            let trunc = if n < frame.len() { reg::TRUNC } else { 0 };
            let d2 = dma_time(sys, socket, pcie, start + d1, addr, n as u64, true);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += n as u64;
            self.stats.dma_write_bytes += n as u64;
            (n as u16, reg::DD | reg::EOP | trunc, d2)
        } else {
            self.stats.rx_errors += 1;
            (0, reg::DD | reg::ERR, 0)
        };
        let d3 = dma_time(sys, socket, pcie, start + d1 + d2, desc_at, 16, true);
        self.stats.dma_read_bytes += 16;
        self.stats.dma_write_bytes += 16;
        let q = &mut self.queues[qi as usize];
        q.rx_head = (q.rx_head + 1) % q.rx_size;
        let done = start + d1 + d2 + d3;
        self.rx_free = start + d1 + d2;
        let mut desc = d;
        desc[8..10].copy_from_slice(&len.to_le_bytes());
        desc[12..14].copy_from_slice(&status.to_le_bytes());
        Some((
            done,
            Completion {
                generation: self.generation,
                queue: qi,
                tx: false,
                desc_at,
                desc,
            },
        ))
    }

    /// The doorbell of queue `qi` reached the NIC at `t`: fetches every descriptor up to the
    /// tail and its frame (DMA), in order.
    pub fn transmit(&mut self, sys: &mut Sys, t: u64, qi: u32) -> Vec<Sent> {
        let mut out = Vec::new();
        if !self.enabled() || qi as usize >= self.queues.len() {
            return out;
        }
        let (socket, pcie) = (self.socket, self.pcie);
        loop {
            let q = &self.queues[qi as usize];
            if q.tx_size == 0 || q.tx_head == q.tx_tail {
                break;
            }
            let desc_at = q.tx_base + q.tx_head * reg::DESC_SIZE;
            let start = t.max(self.tx_free);
            let mut d = [0u8; 16];
            if dma_read(sys, desc_at, &mut d).is_none() {
                self.stats.tx_errors += 1;
                break;
            }
            let d1 = dma_time(sys, socket, pcie, start, desc_at, 16, false);
            self.stats.dma_read_bytes += 16;
            let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
            let len = u16::from_le_bytes([d[8], d[9]]) as u64;
            let mut frame = vec![0u8; len as usize];
            let ok = (reg::MIN_FRAME..=reg::MAX_FRAME).contains(&len)
                && dma_read(sys, addr, &mut frame).is_some();
            let (d2, frame, status) = if ok {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += len;
                self.stats.dma_read_bytes += len;
                let d2 = dma_time(sys, socket, pcie, start + d1, addr, len, false);
                (d2, Some(frame), reg::DD)
            } else {
                self.stats.tx_errors += 1;
                (0, None, reg::DD | reg::ERR)
            };
            let sent = start + d1 + d2;
            self.tx_free = sent;
            let d3 = dma_time(sys, socket, pcie, sent, desc_at, 16, true);
            self.stats.dma_write_bytes += 16;
            let q = &mut self.queues[qi as usize];
            q.tx_head = (q.tx_head + 1) % q.tx_size;
            let mut desc = d;
            desc[12..14].copy_from_slice(&status.to_le_bytes());
            out.push(Sent {
                at: sent,
                frame,
                done: sent + d3,
                completion: Completion {
                    generation: self.generation,
                    queue: qi,
                    tx: true,
                    desc_at,
                    desc,
                },
            });
        }
        out
    }

    /// A completion is due: writes the descriptor back and raises the cause.
    pub fn complete(&mut self, sys: &mut Sys, c: &Completion, out: &mut Vec<Action>) {
        if c.generation != self.generation {
            return;
        }
        let _ = dma_write(sys, c.desc_at, &c.desc);
        let bit = if c.tx {
            reg::cause_tx(c.queue as u64)
        } else {
            reg::cause_rx(c.queue as u64)
        };
        self.raise(bit, out);
    }
}

//! A driver for the machine's NIC (`abi::nic`, whose "Driver steps" it follows): finding
//! the device, one queue's receive and transmit rings, and a UDP echo responder on a queue
//! (`abi::udp_rr`). Shared by the `udp-echo` image (which polls or sleeps on one queue) and
//! the mini kernel (which serves one queue per socket from interrupt handlers).
//!
//! Addresses are physical: the rings and buffers must be identity-mapped, as the loader's and
//! the kernel's page tables map RAM.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, compiler_fence};

use abi::nic::{self as reg, DD, DESC_SIZE, Desc};
use abi::udp_rr;

use crate::Boot;

/// The NIC's registers: its MMIO window.
#[derive(Clone, Copy, Debug)]
pub struct Nic {
    pub base: u64,
    /// The NIC's socket (the node of its MMIO range).
    pub node: u32,
}

impl Nic {
    /// The first MMIO range of BootInfo whose device id is the NIC's.
    pub fn find(boot: &Boot) -> Option<Nic> {
        boot.ranges()
            .iter()
            .filter(|r| r.kind == abi::boot::MEM_MMIO)
            .map(|r| Nic {
                base: r.base,
                node: r.node,
            })
            .find(|n| n.read(reg::ID) == reg::NIC_ID)
    }

    pub fn read(&self, off: u64) -> u64 {
        // SAFETY: `base` is the NIC's MMIO window, identity-mapped; the register file takes
        // 8-byte loads at 8-byte-aligned offsets and has no memory effects on RAM.
        unsafe { read_volatile((self.base + off) as *const u64) }
    }

    pub fn write(&self, off: u64, v: u64) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + off) as *mut u64, v) }
    }

    pub fn mac(&self) -> [u8; 6] {
        reg::mac_from_bits(self.read(reg::MAC))
    }

    /// Steers frames to `mac` into queue `q` with filter `i`.
    pub fn steer(&self, i: u64, mac: [u8; 6], q: u64) {
        let v = reg::FILTER_VALID | q << reg::FILTER_QUEUE_SHIFT | reg::mac_bits(mac);
        self.write(reg::filter(i), v);
    }

    /// Frames dropped for want of a descriptor or of a matching filter.
    pub fn dropped(&self) -> u64 {
        self.read(reg::RX_NO_DESC) + self.read(reg::RX_NO_MATCH)
    }
}

/// A ring of `n` descriptors at physical address `base`.
#[derive(Clone, Copy, Debug)]
struct Ring {
    base: u64,
    n: u64,
}

impl Ring {
    fn desc(&self, i: u64) -> *mut Desc {
        (self.base + (i % self.n) * DESC_SIZE) as *mut Desc
    }

    fn status(&self, i: u64) -> u16 {
        // SAFETY: `desc` points into a ring the driver owns; the NIC writes it by DMA, hence
        // the volatile read.
        unsafe { read_volatile(&raw const (*self.desc(i)).status) }
    }

    fn get(&self, i: u64) -> Desc {
        // SAFETY: as for `status`.
        unsafe { read_volatile(self.desc(i)) }
    }

    fn set(&self, i: u64, addr: u64, len: u16) {
        let d = Desc {
            addr,
            len,
            flags: 0,
            status: 0,
            reserved: 0,
        };
        // SAFETY: as for `status`.
        unsafe { write_volatile(self.desc(i), d) }
    }
}

/// Bytes per buffer: a 1514-byte frame fits.
pub const BUF: u64 = 2048;

/// Bytes [`EchoQueue::new`] needs for rings of `n` descriptors and their buffers.
pub const fn footprint(n: u64) -> u64 {
    2 * n * DESC_SIZE + 2 * n * BUF
}

/// What one [`EchoQueue::serve`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub answered: u64,
    pub ignored: u64,
    pub bye: bool,
}

/// A UDP echo responder on one NIC queue: the rings, buffers and indices of that queue.
#[derive(Debug)]
pub struct EchoQueue {
    nic: Nic,
    q: u64,
    rx: Ring,
    tx: Ring,
    rx_bufs: u64,
    tx_bufs: u64,
    rx_next: u64,
    tx_sent: u64,
    tx_done: u64,
    /// Transmit descriptors the NIC completed with `ERR`.
    pub tx_errors: u64,
}

impl EchoQueue {
    /// Sets queue `q` up (driver step 3) with rings of `n` descriptors and their buffers in
    /// the [`footprint`]`(n)` bytes at `mem` (page-aligned RAM the caller gives up for good),
    /// every receive descriptor given to the NIC. The NIC must have been reset and not yet
    /// enabled.
    pub fn new(nic: Nic, q: u64, n: u64, mem: u64) -> EchoQueue {
        let rx = Ring { base: mem, n };
        let tx = Ring {
            base: mem + n * DESC_SIZE,
            n,
        };
        let rx_bufs = mem + 2 * n * DESC_SIZE;
        let tx_bufs = rx_bufs + n * BUF;
        for i in 0..n {
            rx.set(i, rx_bufs + i * BUF, BUF as u16);
            tx.set(i, 0, 0);
        }
        let regs = reg::queue(q);
        nic.write(regs + reg::RX_BASE, rx.base);
        nic.write(regs + reg::RX_SIZE, n);
        nic.write(regs + reg::RX_TAIL, n - 1);
        nic.write(regs + reg::TX_BASE, tx.base);
        nic.write(regs + reg::TX_SIZE, n);
        EchoQueue {
            nic,
            q,
            rx,
            tx,
            rx_bufs,
            tx_bufs,
            rx_next: 0,
            tx_sent: 0,
            tx_done: 0,
            tx_errors: 0,
        }
    }

    /// Sends this queue's interrupt as `vector` to x2APIC id `apic_id` (driver step 8; the
    /// caller unmasks the causes in `IMS`).
    pub fn route_interrupt(&self, vector: u8, apic_id: u32) {
        let v = vector as u64 | (apic_id as u64) << reg::IRQ_DEST_SHIFT;
        self.nic.write(reg::queue(self.q) + reg::IRQ, v);
    }

    /// Clears this queue's receive and transmit causes in `ICR` (before looking at the
    /// ring, so that a frame from now on raises them again).
    pub fn acknowledge(&self) {
        self.nic
            .write(reg::ICR, reg::cause_rx(self.q) | reg::cause_tx(self.q));
    }

    /// Whether a received frame waits at the driver's next index.
    pub fn ready(&self) -> bool {
        self.rx.status(self.rx_next) & DD != 0
    }

    /// Answers every request waiting in the receive ring (driver steps 6–7): one doorbell
    /// for the batch, and its receive descriptors back to the NIC.
    pub fn serve(&mut self) -> Served {
        let mut s = Served::default();
        if !self.ready() {
            return s;
        }
        while self.ready() {
            compiler_fence(Ordering::Acquire);
            let d = self.rx.get(self.rx_next);
            // SAFETY: the descriptor is done, so the NIC has written `len` (<= BUF) bytes
            // into this buffer, which the driver owns until it gives the descriptor back.
            let frame = unsafe { core::slice::from_raw_parts(d.addr as *const u8, d.len as usize) };
            match udp_rr::classify(frame) {
                Some(udp_rr::KIND_REQUEST) => {
                    self.transmit(frame);
                    s.answered += 1;
                }
                Some(udp_rr::KIND_BYE) => s.bye = true,
                _ => s.ignored += 1,
            }
            self.rx.set(self.rx_next, d.addr, BUF as u16);
            self.rx_next += 1;
        }
        compiler_fence(Ordering::Release);
        let regs = reg::queue(self.q);
        self.nic
            .write(regs + reg::TX_TAIL, self.tx_sent % self.tx.n);
        self.nic
            .write(regs + reg::RX_TAIL, (self.rx_next - 1) % self.rx.n);
        s
    }

    /// Queues the response to `request` (no doorbell), waiting for a free descriptor.
    fn transmit(&mut self, request: &[u8]) {
        // At most n - 1 frames in flight.
        while self.tx_sent - self.tx_done >= self.tx.n - 1 {
            self.reap();
        }
        let buf = self.tx_bufs + (self.tx_sent % self.tx.n) * BUF;
        // SAFETY: the buffer of a transmit descriptor the NIC is done with (or never had).
        let out = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, request.len()) };
        out.copy_from_slice(request);
        udp_rr::make_response(out);
        self.tx.set(self.tx_sent, buf, request.len() as u16);
        self.tx_sent += 1;
    }

    /// Takes back the transmit descriptors the NIC has completed.
    fn reap(&mut self) {
        while self.tx_done < self.tx_sent {
            let st = self.tx.status(self.tx_done);
            if st & DD == 0 {
                break;
            }
            self.tx_errors += (st & reg::ERR != 0) as u64;
            self.tx_done += 1;
        }
    }

    /// Waits until the NIC has sent every queued response.
    pub fn drain(&mut self) {
        while self.tx_done < self.tx_sent {
            self.reap();
            core::hint::spin_loop();
        }
    }

    /// Frames queued for transmission so far.
    pub fn sent(&self) -> u64 {
        self.tx_sent
    }

    /// The receive buffers' physical address (where DMA lands).
    pub fn rx_buffers(&self) -> u64 {
        self.rx_bufs
    }
}

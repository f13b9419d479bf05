//! What the handlers saw: each expected exception, interrupt or system call leaves an
//! [`Event`] here, tagged with the id of the check it belongs to; the kernel's checks read
//! them after the ring-3 program has ended.

use baremetal::sync::SpinLock;

use super::idt::TrapFrame;

/// Ids tying an event to a check (and to the ring-3 program's fixup table entries).
pub mod id {
    pub const LAZY: u64 = 1;
    pub const HLT: u64 = 2;
    pub const CLI: u64 = 3;
    pub const WRMSR: u64 = 4;
    pub const MOV_CR3: u64 = 5;
    pub const OUT: u64 = 6;
    pub const LGDT: u64 = 7;
    pub const RO_WRITE: u64 = 8;
    pub const KERNEL_READ: u64 = 9;
    pub const NX: u64 = 10;
    pub const INT_USER: u64 = 11;
    pub const INT_KERNEL: u64 = 12;
    pub const BREAKPOINT: u64 = 13;
    pub const DIVIDE: u64 = 14;
    pub const UD2: u64 = 15;
    pub const MOVAPS: u64 = 16;
    pub const DOUBLE_FAULT: u64 = 17;
    pub const KERNEL_WP: u64 = 18;
    pub const RESERVED_BIT: u64 = 19;
    pub const NON_CANONICAL: u64 = 20;
    pub const SYSCALL_DISABLED: u64 = 21;
}

/// One handled event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    pub id: u64,
    pub vector: u8,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub ss: u64,
    pub cr2: u64,
    /// Where the frame sat: which stack the CPU switched to.
    pub frame: u64,
}

const CAPACITY: usize = 64;

struct Log {
    events: [Event; CAPACITY],
    len: usize,
}

static LOG: SpinLock<Log> = SpinLock::new(Log {
    events: [Event {
        id: 0,
        vector: 0,
        error: 0,
        rip: 0,
        cs: 0,
        ss: 0,
        cr2: 0,
        frame: 0,
    }; CAPACITY],
    len: 0,
});

/// Records an event for check `id` from the frame of an exception or interrupt.
pub fn record(id: u64, f: &TrapFrame, cr2: u64) {
    let mut log = LOG.lock();
    if log.len < CAPACITY {
        let at = log.len;
        log.events[at] = Event {
            id,
            vector: f.vector as u8,
            error: f.error,
            rip: f.rip,
            cs: f.cs,
            ss: f.ss,
            cr2,
            frame: f as *const TrapFrame as u64,
        };
        log.len += 1;
    }
}

/// The events recorded for `id`, oldest first (at most 4).
pub fn find(id: u64) -> ([Event; 4], usize) {
    let log = LOG.lock();
    let mut out = [Event::default(); 4];
    let mut n = 0;
    for e in log.events[..log.len].iter().filter(|e| e.id == id) {
        if n < out.len() {
            out[n] = *e;
        }
        n += 1;
    }
    (out, n)
}

/// The single event for `id`, if exactly one was recorded.
pub fn one(id: u64) -> Option<Event> {
    match find(id) {
        (e, 1) => Some(e[0]),
        _ => None,
    }
}

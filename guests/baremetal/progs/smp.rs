//! Atomics, a spinlock and a barrier across cores. Every core runs [`worker`] on one shared
//! [`Shared`]; then one caller prints [`report`]. The printed totals do not depend on how the
//! cores interleave, and each would come out wrong if the read-modify-write operations, the
//! lock or the barrier were not atomic.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::hint::spin_loop;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::*,
};

use super::util::{Fnv, Rng};
use crate::sync::{Barrier, SpinLock};

/// Operations per core in each phase.
pub const ITERS: u64 = 2000;
/// Laps of the token around the ring of cores.
pub const LAPS: u64 = 8;
/// Most cores the arrays below have room for.
pub const MAX_CORES: usize = 64;
/// Elements each core sorts in its own work phase.
const WORK: usize = 1500;

struct Locked {
    counter: u64,
    sum: u64,
}

/// State all cores share.
pub struct Shared {
    barrier: Barrier,
    added: AtomicU64,
    narrow8: AtomicU8,
    narrow16: AtomicU16,
    signed32: AtomicI32,
    cas: AtomicU64,
    cas32: AtomicU32,
    max: AtomicU64,
    min: AtomicU64,
    bits_or: AtomicU64,
    bits_and: AtomicU64,
    toggles: AtomicBool,
    slot: AtomicU64,
    swapped_sum: AtomicU64,
    swapped_xor: AtomicU64,
    locked: SpinLock<Locked>,
    turn: AtomicU64,
    token: AtomicU64,
    work: [AtomicU64; MAX_CORES],
}

impl Shared {
    pub const fn new() -> Shared {
        Shared {
            barrier: Barrier::new(),
            added: AtomicU64::new(0),
            narrow8: AtomicU8::new(0),
            narrow16: AtomicU16::new(0),
            signed32: AtomicI32::new(0),
            cas: AtomicU64::new(0),
            cas32: AtomicU32::new(0),
            max: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            bits_or: AtomicU64::new(0),
            bits_and: AtomicU64::new(u64::MAX),
            toggles: AtomicBool::new(false),
            slot: AtomicU64::new(0),
            swapped_sum: AtomicU64::new(0),
            swapped_xor: AtomicU64::new(0),
            locked: SpinLock::new(Locked { counter: 0, sum: 0 }),
            turn: AtomicU64::new(0),
            token: AtomicU64::new(0),
            work: [const { AtomicU64::new(0) }; MAX_CORES],
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// The value core `core` swaps in at step `i`: unique and non-zero.
fn swap_value(core: usize, i: u64) -> u64 {
    // Multiplying by an odd constant is a bijection, so values stay unique and look random.
    ((core as u64) << 32 | i)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(1)
}

/// The values each core feeds to `fetch_max`/`fetch_min`.
fn extremes_rng(core: usize) -> Rng {
    Rng::new(0xa70_0000 + core as u64)
}

/// Runs on every one of `ncores` cores (`core` is its index) at the same time; returns when
/// all of them are done.
pub fn worker(s: &Shared, core: usize, ncores: usize) {
    assert!(
        ncores <= MAX_CORES && core < ncores,
        "core {core} of {ncores} (at most {MAX_CORES})"
    );
    let parties = ncores as u32;
    let me = core as u64;

    // Phase 1: `lock xadd` and the `lock add/sub` forms, at every width.
    for _ in 0..ITERS {
        s.added.fetch_add(1, Relaxed);
        s.narrow8.fetch_add(me as u8 + 1, Relaxed);
        s.narrow16.fetch_sub(me as u16 * 3 + 1, Relaxed);
        s.signed32.fetch_add(-(core as i32) - 1, Relaxed);
        s.toggles.fetch_xor(true, Relaxed);
    }
    // One more toggle on every third core, so that the final value is not the initial one.
    if core.is_multiple_of(3) {
        s.toggles.fetch_xor(true, Relaxed);
    }
    s.bits_or.fetch_or(1 << core, Relaxed);
    s.bits_and.fetch_and(!(1 << core), Relaxed);
    s.barrier.wait(parties);

    // Phase 2: compare-and-swap loops (`lock cmpxchg`), strong and weak.
    let mut rng = extremes_rng(core);
    for _ in 0..ITERS {
        let mut cur = s.cas.load(Relaxed);
        while let Err(seen) = s.cas.compare_exchange_weak(cur, cur + 1, AcqRel, Relaxed) {
            cur = seen;
        }
        let mut cur = s.cas32.load(Relaxed);
        loop {
            match s
                .cas32
                .compare_exchange(cur, cur.wrapping_add(3), SeqCst, Relaxed)
            {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        let v = rng.next_u64() >> 4;
        s.max.fetch_max(v, Relaxed);
        s.min.fetch_min(v, Relaxed);
    }
    s.barrier.wait(parties);

    // Phase 3: a spinlock around a read, some work, and a write. Without mutual exclusion
    // two cores would read the same count and one increment would be lost.
    for i in 0..ITERS {
        let mut g = s.locked.lock();
        let before = g.counter;
        core::hint::black_box(Fnv::new().u64(before ^ i).finish());
        g.sum += me + 1;
        g.counter = before + 1;
    }
    s.barrier.wait(parties);

    // Phase 4: exchange (`xchg`). Every value swapped in comes out exactly once, either from a
    // later swap or as the final contents of the slot.
    let (mut sum, mut xor) = (0u64, 0u64);
    for i in 0..ITERS {
        let prev = s.slot.swap(swap_value(core, i), AcqRel);
        sum = sum.wrapping_add(prev);
        xor ^= prev;
    }
    s.swapped_sum.fetch_add(sum, Relaxed);
    s.swapped_xor.fetch_xor(xor, Relaxed);
    s.barrier.wait(parties);

    // Phase 5: a token passed around the ring with release/acquire hand-offs; the counter is
    // updated with a plain load and store, correct only because turns are exclusive.
    for lap in 0..LAPS {
        let my_turn = lap * ncores as u64 + me;
        while s.turn.load(Acquire) != my_turn {
            spin_loop();
        }
        let t = s.token.load(Relaxed);
        s.token.store(t * 3 % 1_000_003 + me, Relaxed);
        s.turn.store(my_turn + 1, Release);
    }

    // Phase 6: private work, published for the report.
    let mut rng = Rng::new(0x3000 + me);
    let mut data: Vec<u32> = (0..WORK).map(|_| rng.next_u32()).collect();
    data.sort_unstable();
    let mut h = Fnv::new();
    for &x in data.iter().step_by(7) {
        h.u64(u64::from(x));
    }
    s.work[core].store(h.finish(), Release);
    s.barrier.wait(parties);
}

/// Prints the results after [`worker`] has returned on all cores; returns whether every total
/// is what the logic implies.
pub fn report(out: &mut dyn Write, s: &Shared, ncores: usize) -> Result<bool, fmt::Error> {
    let n = ncores as u64;
    let mut ok = true;
    let mut check = |out: &mut dyn Write, name: &str, got: u64, want: u64| -> fmt::Result {
        ok &= got == want;
        writeln!(
            out,
            "{name}: {got} (expected {want}){}",
            if got == want { "" } else { " WRONG" }
        )
    };
    writeln!(
        out,
        "cores: {ncores}, {ITERS} operations per core per phase"
    )?;

    let tri = n * (n + 1) / 2;
    check(out, "fetch_add u64", s.added.load(Relaxed), n * ITERS)?;
    check(
        out,
        "fetch_add u8",
        u64::from(s.narrow8.load(Relaxed)),
        (tri * ITERS) % 256,
    )?;
    let sub16 = (3 * (n * (n - 1) / 2) + n) * ITERS;
    check(
        out,
        "fetch_sub u16",
        u64::from(s.narrow16.load(Relaxed)),
        sub16.wrapping_neg() % 65536,
    )?;
    check(
        out,
        "fetch_add i32 (as u32)",
        u64::from(s.signed32.load(Relaxed) as u32),
        (tri * ITERS).wrapping_neg() % (1 << 32),
    )?;
    check(
        out,
        "fetch_xor bool",
        u64::from(s.toggles.load(Relaxed)),
        (n * ITERS + n.div_ceil(3)) % 2,
    )?;
    let all = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    check(out, "fetch_or bits", s.bits_or.load(Relaxed), all)?;
    check(out, "fetch_and bits", s.bits_and.load(Relaxed), !all)?;

    check(
        out,
        "compare_exchange_weak u64",
        s.cas.load(Relaxed),
        n * ITERS,
    )?;
    check(
        out,
        "compare_exchange u32",
        u64::from(s.cas32.load(Relaxed)),
        (3 * n * ITERS) % (1 << 32),
    )?;
    let (mut max, mut min) = (0, u64::MAX);
    for core in 0..ncores {
        let mut rng = extremes_rng(core);
        for _ in 0..ITERS {
            let v = rng.next_u64() >> 4;
            max = max.max(v);
            min = min.min(v);
        }
    }
    check(out, "fetch_max", s.max.load(Relaxed), max)?;
    check(out, "fetch_min", s.min.load(Relaxed), min)?;

    let g = s.locked.lock();
    check(out, "spinlock counter", g.counter, n * ITERS)?;
    check(out, "spinlock sum", g.sum, tri * ITERS)?;
    drop(g);

    let (mut want_sum, mut want_xor) = (0u64, 0u64);
    for core in 0..ncores {
        for i in 0..ITERS {
            want_sum = want_sum.wrapping_add(swap_value(core, i));
            want_xor ^= swap_value(core, i);
        }
    }
    let last = s.slot.load(Relaxed);
    check(
        out,
        "swap: values out + last",
        s.swapped_sum.load(Relaxed).wrapping_add(last),
        want_sum,
    )?;
    check(
        out,
        "swap: xor out ^ last",
        s.swapped_xor.load(Relaxed) ^ last,
        want_xor,
    )?;

    let mut token = 0u64;
    for _ in 0..LAPS {
        for core in 0..n {
            token = token * 3 % 1_000_003 + core;
        }
    }
    check(out, "ring turns", s.turn.load(Acquire), LAPS * n)?;
    check(out, "ring token", s.token.load(Relaxed), token)?;

    let mut all_work = Fnv::new();
    for core in 0..ncores {
        let w = s.work[core].load(Acquire);
        writeln!(out, "core {core} work {w:016x}")?;
        all_work.u64(w);
    }
    writeln!(out, "work checksum {:016x}", all_work.finish())?;
    writeln!(out, "smp: {}", if ok { "ok" } else { "FAILED" })?;
    Ok(ok)
}

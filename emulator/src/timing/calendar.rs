//! Bandwidth servers that tolerate requests arriving out of time order.
//!
//! Cores run one at a time for a quantum, so a memory controller or a link sees requests
//! from a core that is "behind" after requests from one that ran ahead. A single
//! `busy_until` would make the late-comer queue behind traffic from its future. Parallel
//! simulators with lax synchronisation met the same problem: Graphite (Miller et al.,
//! "Graphite: A Distributed Parallel Simulator for Multicores", HPCA 2010) and Sniper after it
//! keep a "history list" queue model (`common/performance_model/queue_model_history_list.cc`
//! in both) that remembers the server's free intervals, so that a request is served in the
//! first free time at or after its own arrival; Sniper's `queue_model_windowed_mg1.cc` judges
//! contention from the traffic inside a time window rather than from one busy-until mark.
//!
//! [`Calendar`] is the coarse-grained form of the history model: simulated time is cut into
//! windows of [`WINDOW`] cycles, each with a capacity of `WINDOW` cycles of service. A request
//! is booked in the first window at or after its arrival that has capacity left (spilling
//! into the following windows if it does not fit); inside that window the work already booked
//! is taken as packed from the window's start, so its queueing delay is
//! `max(0, window start + booked work − arrival)`. Hence:
//! - an idle server adds no delay (the request's own transfer time is part of the unloaded
//!   latency the description gives, not added again);
//! - the work booked in any window never exceeds its capacity, so throughput flattens at the
//!   configured bandwidth and the excess becomes queueing delay that grows with the backlog;
//! - a request from the past is served by the windows of its own time, unaffected by what
//!   was booked later, as long as it lies within the ring (`RING × WINDOW` cycles, about 1 M
//!   cycles, far more than a quantum).
//!
//! Work is counted in fixed-point cycles ([`UNIT`] per cycle) so that fractional service times
//! add up exactly; everything is integer.

use serde::{Deserialize, Serialize};

/// Window length in cycles (log2).
pub(crate) const WINDOW_SHIFT: u32 = 8;
/// Window length in cycles.
pub(crate) const WINDOW: u64 = 1 << WINDOW_SHIFT;
/// Work units per cycle of service (log2).
pub(crate) const UNIT_SHIFT: u32 = 16;
/// Work units per cycle of service.
pub(crate) const UNIT: u64 = 1 << UNIT_SHIFT;
/// Windows remembered (a power of two).
const RING: usize = 4096;
/// Work a window can take.
const CAP: u64 = WINDOW * UNIT;
/// Times from here on (2^47 cycles: over 16 hours at 2.4 GHz) are served without queueing,
/// so that the fixed-point arithmetic cannot overflow.
const MAX_TIME: u64 = 1 << (63 - UNIT_SHIFT);

/// Service time of `bytes` at `gbs` (10^9 bytes/s) on a `mhz` clock, in work units.
pub(crate) fn work_units(bytes: u64, gbs: f64, mhz: u32) -> u64 {
    let cycles_per_byte = mhz as f64 * 1e6 / (gbs * 1e9);
    (bytes as f64 * cycles_per_byte * UNIT as f64)
        .round()
        .max(1.0) as u64
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Calendar {
    /// Per ring slot: the window it holds, plus one (0: never used).
    window: Vec<u64>,
    /// Per ring slot: work booked in that window.
    used: Vec<u64>,
    /// Windows `full.0 .. full.1` are known to be full: a hint that lets a request skip a
    /// long backlog in one step (a large DMA books thousands of lines at once).
    full: (u64, u64),
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            window: vec![0; RING],
            used: vec![0; RING],
            full: (0, 0),
        }
    }
}

impl Calendar {
    /// The ring slot of window `w`, recycled if it held an older window; `None` if `w` is
    /// older than everything the ring remembers.
    #[inline]
    fn slot(&mut self, w: u64) -> Option<usize> {
        let i = (w as usize) & (RING - 1);
        let tag = self.window[i];
        if tag == w + 1 {
            Some(i)
        } else if tag < w + 1 {
            self.window[i] = w + 1;
            self.used[i] = 0;
            Some(i)
        } else {
            None
        }
    }

    /// Books `work` units for a request arriving at cycle `t`; returns its queueing delay in
    /// cycles (rounded up).
    pub fn serve(&mut self, t: u64, work: u64) -> u64 {
        if t >= MAX_TIME {
            return 0;
        }
        let w0 = t >> WINDOW_SHIFT;
        let mut w = w0;
        if self.full.0 <= w && w < self.full.1 {
            w = self.full.1;
        }
        // Find the first window with room; every window passed is full.
        let mut i = loop {
            match self.slot(w) {
                None => return 0,
                Some(i) if self.used[i] < CAP => break i,
                Some(_) => w += 1,
            }
        };
        if w > w0 {
            self.note_full(w0, w);
        }
        let start = (w << WINDOW_SHIFT) * UNIT + self.used[i];
        let delay = start.saturating_sub(t * UNIT).div_ceil(UNIT);
        let mut rem = work;
        loop {
            let take = rem.min(CAP - self.used[i]);
            self.used[i] += take;
            rem -= take;
            if self.used[i] >= CAP {
                self.note_full(w, w + 1);
            }
            if rem == 0 {
                break;
            }
            w += 1;
            match self.slot(w) {
                Some(j) => i = j,
                None => break,
            }
        }
        delay
    }

    /// Records that windows `lo..hi` are full, merging with the known run when they touch.
    fn note_full(&mut self, lo: u64, hi: u64) {
        let (a, b) = self.full;
        if lo <= b && a <= hi && a < b {
            self.full = (a.min(lo), b.max(hi));
        } else if hi - lo >= b - a || hi > b {
            // Keep the more recent run: requests mostly arrive near the front of time.
            self.full = (lo, hi);
        }
    }
}

/// Time-weighted occupancy of a server (requests present, waiting or in service), per window:
/// the figure behind `queue_depth`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Occupancy {
    window: Vec<u64>,
    /// Request-cycles spent in the server during the window.
    sum: Vec<u64>,
}

impl Default for Occupancy {
    fn default() -> Self {
        Occupancy {
            window: vec![0; RING],
            sum: vec![0; RING],
        }
    }
}

impl Occupancy {
    /// A request present from cycle `from` to `to` (exclusive).
    pub fn add(&mut self, from: u64, to: u64) {
        let mut t = from;
        while t < to {
            let w = t >> WINDOW_SHIFT;
            let end = ((w + 1) << WINDOW_SHIFT).min(to);
            let i = (w as usize) & (RING - 1);
            if self.window[i] < w + 1 {
                self.window[i] = w + 1;
                self.sum[i] = 0;
            }
            if self.window[i] == w + 1 {
                self.sum[i] += end - t;
            }
            t = end;
        }
    }

    /// Mean number of requests present during the window holding cycle `t` (rounded).
    pub fn at(&self, t: u64) -> u32 {
        let w = t >> WINDOW_SHIFT;
        let i = (w as usize) & (RING - 1);
        if self.window[i] != w + 1 {
            return 0;
        }
        ((self.sum[i] + WINDOW / 2) / WINDOW).min(u32::MAX as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_server_adds_no_delay() {
        let mut c = Calendar::default();
        for k in 0..100 {
            assert_eq!(c.serve(k * 1000 + 17, 10 * UNIT), 0);
        }
    }

    #[test]
    fn throughput_is_capped_and_excess_becomes_delay() {
        let mut c = Calendar::default();
        // 100 requests of 10 cycles each, all arriving at 0: they take 1000 cycles.
        let delays: Vec<u64> = (0..100).map(|_| c.serve(0, 10 * UNIT)).collect();
        assert_eq!(delays[0], 0);
        assert_eq!(delays[1], 10);
        assert_eq!(delays[99], 990);
        assert!(delays.windows(2).all(|d| d[1] >= d[0]));
    }

    #[test]
    fn a_request_from_the_past_does_not_wait_for_the_future() {
        let mut c = Calendar::default();
        // One core ran ahead and saturated [10_000, 20_000).
        for k in 0..1000 {
            c.serve(10_000 + k * 10, 10 * UNIT);
        }
        // Another core, behind, at cycle 100: nothing booked then.
        assert_eq!(c.serve(100, 10 * UNIT), 0);
        // But at 15_000 it queues behind the backlog.
        assert!(c.serve(15_000, 10 * UNIT) > 1000);
    }

    #[test]
    fn full_run_hint_skips_backlog_consistently() {
        let mut a = Calendar::default();
        let mut total = 0;
        for _ in 0..10_000 {
            total = a.serve(5, 64 * UNIT);
        }
        // 10_000 × 64 cycles of work from cycle 0 (window start): the last starts at 639_936.
        assert_eq!(total, 639_936 - 5);
    }

    #[test]
    fn occupancy_is_time_weighted() {
        let mut o = Occupancy::default();
        o.add(0, 256);
        o.add(0, 128);
        assert_eq!(o.at(10), 2); // 384 / 256 = 1.5, rounded
        assert_eq!(o.at(300), 0);
    }
}

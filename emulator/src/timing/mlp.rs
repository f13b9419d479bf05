//! Memory-level parallelism of one core: its outstanding misses and its stride prefetcher.
//!
//! - [`Mshrs`]: a fixed number of miss entries (Kroft's MSHRs, "Lockup-free instruction
//!   fetch/prefetch cache organization", ISCA 1981; Intel's fill buffers and L2 superqueue).
//!   A demand miss, a posted store's fill or ownership request, and a prefetch each hold one
//!   from issue to completion. Entries are times in the core's own clock, so the skew between
//!   cores never matters here.
//! - [`Prefetcher`]: a stream/stride prefetcher trained on the core's L2 requests (L1 misses),
//!   as Intel's L2 streamer is (Intel 64 and IA-32 Architectures Optimization Reference
//!   Manual, "Data Prefetching"), with the stride detection of a reference prediction table
//!   (Chen & Baer, "Effective hardware-based data prefetching for high-performance
//!   processors", IEEE ToC 1995). The model gives it no instruction pointer, so streams are
//!   told apart by address: a miss within [`MATCH`] lines of a stream's last line belongs to
//!   it. After two equal strides in a row the stream runs up to `distance` strides ahead of the
//!   demand stream, each prefetch taking an MSHR; when none is free the prefetch is dropped
//!   (and re-issued on a later miss of the stream).

use serde::{Deserialize, Serialize};

/// Lines around a stream's last line that count as the same stream.
pub(crate) const MATCH: i64 = 16;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Entry {
    line: u64,
    /// Completion time; the entry is free once the core's clock reaches it.
    ready: u64,
    /// A posted store's fill or ownership request (what a fence waits for).
    store: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Mshrs {
    entries: Vec<Entry>,
    /// Latest completion time of any entry: when `now` has passed it, all are free (fast
    /// path for `in_flight`).
    horizon: u64,
}

impl Mshrs {
    pub fn new(n: u32) -> Self {
        Mshrs {
            entries: vec![Entry::default(); n.max(1) as usize],
            horizon: 0,
        }
    }

    /// Completion time of a fill of `line` still in flight at `now`.
    #[inline]
    pub fn in_flight(&self, line: u64, now: u64) -> Option<u64> {
        if now >= self.horizon {
            return None;
        }
        self.entries
            .iter()
            .find(|e| e.line == line && e.ready > now)
            .map(|e| e.ready)
    }

    /// An entry for a request made at `now`: a free one (available at `now`), else the one
    /// that frees first (available at its completion). Ties: lowest index.
    pub fn acquire(&mut self, now: u64) -> (usize, u64) {
        let mut best = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.ready <= now {
                return (i, now);
            }
            if e.ready < self.entries[best].ready {
                best = i;
            }
        }
        (best, self.entries[best].ready)
    }

    /// A free entry at `now`, if any.
    pub fn free(&self, now: u64) -> Option<usize> {
        self.entries.iter().position(|e| e.ready <= now)
    }

    pub fn set(&mut self, i: usize, line: u64, ready: u64, store: bool) {
        self.entries[i] = Entry { line, ready, store };
        self.horizon = self.horizon.max(ready);
    }

    /// When every posted store in flight at `now` has completed.
    pub fn stores_drained(&self, now: u64) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.store)
            .map(|e| e.ready)
            .max()
            .unwrap_or(0)
            .max(now)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Stream {
    last: u64,
    stride: i64,
    /// Equal strides seen in a row (saturating at 3).
    conf: u8,
    /// Next line to prefetch.
    next: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Prefetcher {
    /// Most recently used first.
    streams: Vec<Stream>,
    capacity: usize,
    distance: u32,
}

/// Prefetch candidates of one training step: `start`, `start + stride`, … while within
/// `limit` (inclusive, in the stride's direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u64,
    pub stride: i64,
    pub limit: u64,
}

impl Run {
    pub fn contains(&self, line: u64) -> bool {
        if self.stride > 0 {
            line <= self.limit
        } else {
            line >= self.limit
        }
    }
}

impl Prefetcher {
    pub fn new(streams: u32, distance: u32) -> Self {
        Prefetcher {
            streams: Vec::with_capacity(streams as usize),
            capacity: streams as usize,
            distance,
        }
    }

    /// Trains on an L2 request for `line`; returns the lines to prefetch, if the stream is
    /// confirmed. The caller issues them in order and reports how far it got with
    /// [`Prefetcher::issued_up_to`].
    pub fn train(&mut self, line: u64) -> Option<Run> {
        if self.capacity == 0 || self.distance == 0 {
            return None;
        }
        let pos = self
            .streams
            .iter()
            .position(|s| (line as i64).wrapping_sub(s.last as i64).abs() <= MATCH);
        let Some(pos) = pos else {
            if self.streams.len() == self.capacity {
                self.streams.pop();
            }
            self.streams.insert(
                0,
                Stream {
                    last: line,
                    stride: 0,
                    conf: 0,
                    next: line,
                },
            );
            return None;
        };
        let mut s = self.streams.remove(pos);
        let d = (line as i64).wrapping_sub(s.last as i64);
        let run = if d == 0 {
            None
        } else {
            if d == s.stride {
                s.conf = (s.conf + 1).min(3);
            } else {
                s.stride = d;
                s.conf = 1;
                s.next = line;
            }
            s.last = line;
            if s.conf >= 2 {
                // Never prefetch behind the demand stream.
                let behind = if d > 0 {
                    s.next <= line
                } else {
                    s.next >= line
                };
                if behind {
                    s.next = line.wrapping_add_signed(d);
                }
                let limit = line.wrapping_add_signed(d.saturating_mul(self.distance as i64));
                Some(Run {
                    start: s.next,
                    stride: d,
                    limit,
                })
            } else {
                None
            }
        };
        self.streams.insert(0, s);
        run
    }

    /// The most recently trained stream (the one `train` returned a run for) has issued
    /// everything before `next`.
    pub fn issued_up_to(&mut self, next: u64) {
        if let Some(s) = self.streams.first_mut() {
            s.next = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mshrs_bound_outstanding_requests() {
        let mut m = Mshrs::new(2);
        let (a, t) = m.acquire(0);
        assert_eq!(t, 0);
        m.set(a, 10, 100, true);
        let (b, t) = m.acquire(0);
        assert_eq!(t, 0);
        m.set(b, 11, 50, false);
        assert_eq!(m.free(10), None);
        // Full: the next request waits for the earliest completion.
        assert_eq!(m.acquire(10), (b, 50));
        assert_eq!(m.in_flight(10, 60), Some(100));
        assert_eq!(m.in_flight(11, 60), None);
        assert_eq!(m.stores_drained(0), 100);
        assert_eq!(m.stores_drained(200), 200);
    }

    #[test]
    fn streams_are_confirmed_after_two_equal_strides() {
        let mut p = Prefetcher::new(4, 8);
        assert_eq!(p.train(100), None);
        assert_eq!(p.train(101), None);
        let r = p.train(102).unwrap();
        assert_eq!((r.start, r.stride, r.limit), (103, 1, 110));
        p.issued_up_to(111);
        // Next miss: only the new line at the far end remains to prefetch.
        let r = p.train(103).unwrap();
        assert_eq!((r.start, r.limit), (111, 111));
        // Descending streams too.
        let mut p = Prefetcher::new(4, 4);
        p.train(500);
        p.train(498);
        let r = p.train(496).unwrap();
        assert_eq!((r.start, r.stride, r.limit), (494, -2, 488));
        assert!(r.contains(488) && !r.contains(487));
    }

    #[test]
    fn random_lines_do_not_train() {
        let mut p = Prefetcher::new(16, 16);
        let mut x = 12345u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(p.train(x % (1 << 22)), None);
        }
    }
}

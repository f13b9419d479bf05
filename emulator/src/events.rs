//! The device event queue (DESIGN.md §2.4): events ordered by simulated time, ties broken by
//! the order they were scheduled in (a sequence number), so that the order never depends on
//! anything but the simulation itself (moa's `core/src/system.rs` keeps its devices the same
//! way).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The latest time a checkpoint may hold for a device event or a device's own clock (2^62
/// cycles: 73 years at 2 GHz), and the most sequence numbers: restore refuses later ones,
/// which only a forged file holds and which would overflow time arithmetic.
pub const MAX_TIME: u64 = 1 << 62;

/// An event due at `time` (core cycles), the `seq`-th one scheduled.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry<E> {
    time: u64,
    seq: u64,
    event: E,
}

// `BinaryHeap` is a max-heap: the smallest (time, seq) compares greatest.
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}

/// A queue of timed events. Sequence numbers are unique, so the order in which events come
/// out is fully determined by (time, seq), whatever the heap's internal layout. Serialised
/// in that order (a canonical form: saving a restored queue gives the same bytes).
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
}

impl<E: Serialize> Serialize for EventQueue<E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<&Entry<E>> = self.heap.iter().collect();
        entries.sort_unstable_by_key(|e| (e.time, e.seq));
        (self.next_seq, entries).serialize(s)
    }
}

impl<'de, E: Deserialize<'de>> Deserialize<'de> for EventQueue<E> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (next_seq, entries): (u64, Vec<Entry<E>>) = Deserialize::deserialize(d)?;
        let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        seqs.sort_unstable();
        if seqs.windows(2).any(|w| w[0] == w[1]) || seqs.last().is_some_and(|&s| s >= next_seq) {
            return Err(serde::de::Error::custom(
                "event queue: sequence numbers must be unique and below the next one",
            ));
        }
        if next_seq > MAX_TIME || entries.iter().any(|e| e.time > MAX_TIME) {
            return Err(serde::de::Error::custom(format!(
                "event queue: times and sequence numbers must be at most {MAX_TIME}"
            )));
        }
        Ok(EventQueue {
            heap: entries.into(),
            next_seq,
        })
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: u64, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { time, seq, event });
    }

    /// When the next event is due.
    pub fn next_time(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time)
    }

    /// Removes and returns the next event if it is due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, E)> {
        if self.heap.peek()?.time <= now {
            self.heap.pop().map(|e| (e.time, e.event))
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Every pending event with its time, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &E)> {
        self.heap.iter().map(|e| (e.time, &e.event))
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        q.push(10, "a3");
        assert_eq!(q.next_time(), Some(10));
        let mut out = Vec::new();
        while let Some((t, e)) = q.pop_due(25) {
            out.push((t, e));
        }
        assert_eq!(out, [(10, "a1"), (10, "a2"), (10, "a3"), (20, "b")]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(29), None);
        assert_eq!(q.pop_due(30), Some((30, "c")));
        assert!(q.is_empty());
    }

    #[test]
    fn a_restored_queue_keeps_the_order() {
        let mut q = EventQueue::default();
        for (i, t) in [5u64, 1, 5, 3, 1, 5].into_iter().enumerate() {
            q.push(t, i);
        }
        let text = ron::to_string(&q).unwrap();
        let mut r: EventQueue<usize> = ron::from_str(&text).unwrap();
        assert_eq!(ron::to_string(&r).unwrap(), text, "canonical form");
        assert!(ron::from_str::<EventQueue<usize>>("(1, [(time: 0, seq: 1, event: 0)])").is_err());
        let drain = |q: &mut EventQueue<usize>| {
            std::iter::from_fn(|| q.pop_due(u64::MAX)).collect::<Vec<_>>()
        };
        assert_eq!(drain(&mut q), drain(&mut r));
        r.push(0, 99);
        assert_eq!(r.pop_due(0), Some((0, 99)));
    }
}

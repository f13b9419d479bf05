//! A set-associative cache of 64-byte lines with true LRU replacement.
//!
//! Each set is kept in recency order, most recently used first (the textbook LRU stack, Mattson
//! et al., "Evaluation techniques for storage hierarchies", IBM Systems Journal 1970): a hit
//! moves its way to the front, a fill goes to the front and pushes the last way out. Ways are
//! at most 64, so moving them is a short `copy_within`; no timestamps, nothing to wrap.
//! Invalid ways are kept at the back of their set, so the victim of a fill is an invalid way
//! whenever there is one.

use serde::{Deserialize, Serialize};

/// Entry flag: the way holds a line.
pub(crate) const V: u64 = 1;
/// Private caches: the core may write without asking (E or M). LLC: no other socket holds
/// the line (the socket's copy is exclusive).
pub(crate) const W: u64 = 2;
/// The copy is newer than the next level (M; for the LLC, newer than memory).
pub(crate) const D: u64 = 4;
const FLAG_BITS: u32 = 3;
const FLAGS: u64 = (1 << FLAG_BITS) - 1;

/// A line evicted by a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Victim {
    pub line: u64,
    pub flags: u64,
    pub aux: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Cache {
    ways: usize,
    sets: u64,
    /// `sets - 1` when `sets` is a power of two, else 0 (then the index is `line % sets`).
    mask: u64,
    /// `sets × ways` entries `line << 3 | flags`, 0 when invalid; each set in recency order.
    tags: Vec<u64>,
    /// One word per entry that moves with it (the LLC's core-valid bits); empty if unused.
    aux: Vec<u64>,
}

impl Cache {
    pub fn new(size_kib: u32, ways: u32, with_aux: bool) -> Self {
        let lines = size_kib as u64 * 1024 / 64;
        let ways = ways.max(1) as usize;
        let sets = (lines / ways as u64).max(1);
        let n = sets as usize * ways;
        Cache {
            ways,
            sets,
            mask: if sets.is_power_of_two() { sets - 1 } else { 0 },
            tags: vec![0; n],
            aux: if with_aux { vec![0; n] } else { Vec::new() },
        }
    }

    #[inline(always)]
    fn base(&self, line: u64) -> usize {
        let set = if self.mask != 0 || self.sets == 1 {
            line & self.mask
        } else {
            line % self.sets
        };
        set as usize * self.ways
    }

    /// Moves entry `b + i` of the set at `b` to the front, the ones before it back by one.
    #[inline(always)]
    fn promote(v: &mut [u64], b: usize, i: usize) {
        let set = &mut v[b..=b + i];
        let t = set[i];
        for j in (1..set.len()).rev() {
            set[j] = set[j - 1];
        }
        set[0] = t;
    }

    #[inline(always)]
    fn matches(tag: u64, line: u64) -> bool {
        tag & V != 0 && tag >> FLAG_BITS == line
    }

    /// The entry holding `line`, if any, without touching the recency order.
    #[inline]
    pub fn find(&self, line: u64) -> Option<usize> {
        let b = self.base(line);
        self.tags[b..b + self.ways]
            .iter()
            .position(|&t| Self::matches(t, line))
            .map(|i| b + i)
    }

    /// Looks `line` up; on a hit makes it the most recently used of its set and returns its
    /// (new) entry index.
    #[inline]
    pub fn touch(&mut self, line: u64) -> Option<usize> {
        let b = self.base(line);
        let i = self.tags[b..b + self.ways]
            .iter()
            .position(|&t| Self::matches(t, line))?;
        if i != 0 {
            Self::promote(&mut self.tags, b, i);
            if !self.aux.is_empty() {
                Self::promote(&mut self.aux, b, i);
            }
        }
        Some(b)
    }

    /// The flags of `line` if it is the most recently used line of its set (a hit there needs
    /// no change to the recency order: the fast path of an L1 hit).
    #[inline(always)]
    pub fn mru_flags(&self, line: u64) -> Option<u64> {
        let t = self.tags[self.base(line)];
        Self::matches(t, line).then_some(t & FLAGS)
    }

    /// Fills `line` (which must not be present) as the most recently used of its set;
    /// returns the line pushed out, if a valid one was. The new entry's index is
    /// [`Cache::find`]'s, i.e. the set's first.
    pub fn insert(&mut self, line: u64, flags: u64, aux: u64) -> Option<Victim> {
        debug_assert!(self.find(line).is_none());
        let b = self.base(line);
        let last = b + self.ways - 1;
        let old = self.tags[last];
        let old_aux = self.aux.get(last).copied().unwrap_or(0);
        self.tags[last] = line << FLAG_BITS | (flags & FLAGS) | V;
        Self::promote(&mut self.tags, b, self.ways - 1);
        if !self.aux.is_empty() {
            self.aux[last] = aux;
            Self::promote(&mut self.aux, b, self.ways - 1);
        }
        (old & V != 0).then_some(Victim {
            line: old >> FLAG_BITS,
            flags: old & FLAGS,
            aux: old_aux,
        })
    }

    /// Drops entry `i`; the ways behind it move up, the freed way goes to the back.
    pub fn remove(&mut self, i: usize) {
        let b = i - i % self.ways;
        let end = b + self.ways;
        for j in i..end - 1 {
            self.tags[j] = self.tags[j + 1];
        }
        self.tags[end - 1] = 0;
        if !self.aux.is_empty() {
            for j in i..end - 1 {
                self.aux[j] = self.aux[j + 1];
            }
            self.aux[end - 1] = 0;
        }
    }

    /// Every valid line with its flags and aux word (tests check invariants with it).
    #[cfg(test)]
    pub fn lines(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.tags
            .iter()
            .enumerate()
            .filter(|(_, t)| *t & V != 0)
            .map(|(i, &t)| {
                (
                    t >> FLAG_BITS,
                    t & FLAGS,
                    self.aux.get(i).copied().unwrap_or(0),
                )
            })
    }

    #[inline(always)]
    pub fn flags(&self, i: usize) -> u64 {
        self.tags[i] & FLAGS
    }

    #[inline(always)]
    pub fn set_flags(&mut self, i: usize, flags: u64) {
        self.tags[i] = self.tags[i] & !FLAGS | (flags & FLAGS) | V;
    }

    #[inline(always)]
    pub fn aux(&self, i: usize) -> u64 {
        self.aux[i]
    }

    #[inline(always)]
    pub fn set_aux(&mut self, i: usize, v: u64) {
        self.aux[i] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_order_hits_fills_and_removal() {
        // 4 lines, 2 ways, 2 sets: lines of the same parity share a set.
        let mut c = Cache::new(0, 2, true);
        assert_eq!(c.sets, 1);
        let mut c2 = Cache {
            ways: 2,
            sets: 2,
            mask: 1,
            tags: vec![0; 4],
            aux: vec![0; 4],
        };
        assert_eq!(c2.insert(0, W, 7), None);
        assert_eq!(c2.insert(2, 0, 8), None);
        assert_eq!(c2.mru_flags(2), Some(V));
        // Touching 0 makes 2 the LRU victim.
        let i = c2.touch(0).unwrap();
        assert_eq!(c2.aux(i), 7);
        assert_eq!(c2.flags(i), V | W);
        let v = c2.insert(4, D, 9).unwrap();
        assert_eq!(
            v,
            Victim {
                line: 2,
                flags: V,
                aux: 8
            }
        );
        // The other set is untouched.
        assert!(c2.find(1).is_none());
        let i = c2.find(0).unwrap();
        c2.remove(i);
        assert!(c2.find(0).is_none());
        // The freed way is the next victim: nothing valid is pushed out.
        assert_eq!(c2.insert(6, 0, 0), None);
        assert!(c2.find(4).is_some() && c2.find(6).is_some());
        // Line 0 is representable (flags keep it apart from an invalid way).
        assert_eq!(c.insert(0, 0, 0), None);
        assert!(c.find(0).is_some());
    }

    #[test]
    fn non_power_of_two_sets_index_by_modulo() {
        // 3 sets × 2 ways.
        let mut c = Cache::new(0, 2, false);
        c.sets = 3;
        c.mask = 0;
        c.tags = vec![0; 6];
        for l in 0..6 {
            assert_eq!(c.insert(l, 0, 0), None);
        }
        for l in 0..6 {
            assert!(c.find(l).is_some());
        }
        assert_eq!(c.insert(6, 0, 0).map(|v| v.line), Some(0));
    }
}

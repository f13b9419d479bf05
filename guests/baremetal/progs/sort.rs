//! Sorting and ordered collections from `core`/`alloc`: driftsort, ipnsort, keyed and cached
//! sorts, selection, binary search, `BinaryHeap`, `BTreeMap`, `VecDeque`.

use alloc::collections::{BTreeMap, BinaryHeap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::fmt::{self, Write};

use super::util::{Fnv, Rng};

/// Elements in the main arrays.
pub const N: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    key: u16,
    seq: u32,
    val: i64,
}

fn checksum<T: Copy, F: Fn(T) -> u64>(items: &[T], f: F) -> u64 {
    let mut h = Fnv::new();
    for &x in items {
        h.u64(f(x));
    }
    h.finish()
}

fn sorted_by<T, F: Fn(&T, &T) -> bool>(items: &[T], le: F) -> bool {
    items.windows(2).all(|w| le(&w[0], &w[1]))
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    let mut rng = Rng::new(0x5eed_0001);
    let base: Vec<u64> = (0..N).map(|_| rng.next_u64()).collect();
    writeln!(
        out,
        "input: {} u64, checksum {:016x}",
        base.len(),
        checksum(&base, |x| x)
    )?;

    let mut a = base.clone();
    a.sort_unstable();
    writeln!(
        out,
        "sort_unstable u64: sorted={} checksum={:016x} first={:016x} mid={:016x} last={:016x}",
        sorted_by(&a, |x, y| x <= y),
        checksum(&a, |x| x),
        a[0],
        a[N / 2],
        a[N - 1]
    )?;
    let mut b = base.clone();
    b.sort();
    writeln!(out, "sort u64 equals sort_unstable: {}", a == b)?;

    // Many equal keys: the stable sort must keep `seq` ascending within each key.
    let mut recs: Vec<Rec> = (0..N as u32)
        .map(|seq| Rec {
            key: rng.below(97) as u16,
            seq,
            val: rng.next_u64() as i64 >> 7,
        })
        .collect();
    recs.sort_by_key(|r| r.key);
    let stable = recs
        .windows(2)
        .all(|w| w[0].key < w[1].key || (w[0].key == w[1].key && w[0].seq < w[1].seq));
    writeln!(
        out,
        "sort_by_key(key): stable={} checksum={:016x} first={:?} last={:?}",
        stable,
        checksum(&recs, |r| (u64::from(r.key) << 32) | u64::from(r.seq)),
        recs[0],
        recs[N - 1]
    )?;
    recs.sort_unstable_by(|x, y| y.val.cmp(&x.val).then(x.seq.cmp(&y.seq)));
    writeln!(
        out,
        "sort_unstable_by(val desc): sorted={} checksum={:016x} top={} bottom={}",
        sorted_by(&recs, |x, y| x.val >= y.val),
        checksum(&recs, |r| r.val as u64),
        recs[0].val,
        recs[N - 1].val
    )?;
    recs.sort();
    writeln!(
        out,
        "sort(Ord derive): sorted={} first={:?}",
        sorted_by(&recs, |x, y| x <= y),
        recs[0]
    )?;

    // Floats by total order, NaNs and signed zeros included.
    let mut f: Vec<f64> = (0..N)
        .map(|i| match i % 50 {
            0 => f64::NAN,
            1 => -0.0,
            2 => 0.0,
            3 => f64::NEG_INFINITY,
            _ => (rng.next_u64() as i64 as f64) / 1.0e15,
        })
        .collect();
    f.sort_by(f64::total_cmp);
    writeln!(
        out,
        "sort_by(total_cmp) f64: checksum={:016x} first={} second={} last={}",
        checksum(&f, f64::to_bits),
        f[0],
        f[1],
        f[N - 1]
    )?;

    // Keys built by formatting (allocation-heavy comparisons).
    let mut words: Vec<u32> = (0..2000).map(|_| rng.next_u32() % 100_000).collect();
    words.sort_by_cached_key(|w| format!("{w}"));
    writeln!(
        out,
        "sort_by_cached_key(to string): first={} second={} last={} checksum={:016x}",
        words[0],
        words[1],
        words[words.len() - 1],
        checksum(&words, u64::from)
    )?;

    // Small and pre-ordered inputs take other paths inside the sorts.
    let mut small: Vec<i8> = (0..19).map(|_| rng.next_u32() as i8).collect();
    small.sort();
    writeln!(out, "small i8: {small:?}")?;
    let mut asc: Vec<u32> = (0..N as u32).collect();
    asc.sort();
    let mut desc: Vec<u32> = (0..N as u32).rev().collect();
    desc.sort_unstable();
    writeln!(
        out,
        "presorted ok: {} reversed ok: {}",
        asc == desc,
        desc[0] == 0 && desc[N - 1] == N as u32 - 1
    )?;
    let mut sawtooth: Vec<u16> = (0..N).map(|i| (i % 313) as u16).collect();
    sawtooth.sort();
    sawtooth.dedup();
    writeln!(
        out,
        "sawtooth dedup: len={} last={}",
        sawtooth.len(),
        sawtooth[sawtooth.len() - 1]
    )?;

    // Selection and search.
    let mut c = base.clone();
    let (_, median, _) = c.select_nth_unstable(N / 2);
    let median = *median;
    writeln!(
        out,
        "select_nth_unstable(N/2)={median:016x} equals sorted: {}",
        median == a[N / 2]
    )?;
    let hits = (0..1000)
        .filter(|i| a.binary_search(&base[i * 7]).is_ok())
        .count();
    let misses = (0..1000)
        .filter(|_| a.binary_search(&rng.next_u64()).is_ok())
        .count();
    writeln!(out, "binary_search: hits={hits} misses_found={misses}")?;
    let split = a.partition_point(|&x| x < u64::MAX / 3);
    writeln!(out, "partition_point(max/3)={split}")?;

    // Heap sort through BinaryHeap.
    let mut heap: BinaryHeap<Reverse<u64>> = base.iter().copied().map(Reverse).collect();
    let mut drained = Vec::with_capacity(N);
    while let Some(Reverse(x)) = heap.pop() {
        drained.push(x);
    }
    writeln!(out, "BinaryHeap drain equals sort: {}", drained == a)?;

    // Ordered map: insert, overwrite, remove, range.
    let mut map = BTreeMap::new();
    for (i, &x) in base.iter().enumerate() {
        *map.entry(x % 4096).or_insert(0u64) += i as u64;
    }
    let removed = (0..4096u64)
        .step_by(3)
        .filter(|k| map.remove(k).is_some())
        .count();
    let range_sum: u64 = map
        .range(1000..2000)
        .map(|(k, v)| k ^ v)
        .fold(0, u64::wrapping_add);
    writeln!(
        out,
        "BTreeMap: len={} removed={} first={:?} last={:?} range_sum={:016x}",
        map.len(),
        removed,
        map.first_key_value(),
        map.last_key_value(),
        range_sum
    )?;

    // Ring buffer rotation and a merge by hand.
    let mut dq: VecDeque<u64> = a.iter().take(1000).copied().collect();
    dq.rotate_left(377);
    dq.push_front(1);
    dq.push_back(2);
    let (front, back) = (dq.as_slices().0.len(), dq.as_slices().1.len());
    let sum = checksum(dq.make_contiguous(), |x| x);
    writeln!(
        out,
        "VecDeque: len={} slices={front}+{back} checksum={sum:016x}",
        dq.len()
    )?;

    let mut joined = String::new();
    for chunk in a.chunks(2500) {
        write!(joined, "{:04x}.", chunk[chunk.len() - 1] >> 48)?;
    }
    writeln!(out, "chunk maxima: {joined}")
}

//! A fixed, deterministic, CPU-bound workload for measuring emulated speed: integer-heavy
//! rounds of filling, sorting, CRC and SHA-256 hashing, an open-addressing hash table, a
//! bytecode interpreter and a pointer chase. Each round's result seeds the next, so the final
//! checksum covers every instruction.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use sha2::{Digest, Sha256};

use super::util::{Fnv, Rng};

/// Rounds of the full `bench` image: about 270 million instructions.
pub const ROUNDS_FULL: u32 = 120;
/// Rounds of `bench-small`, for tests: about 11 million instructions.
pub const ROUNDS_SMALL: u32 = 5;

const WORDS: usize = 16 * 1024;
const SORTED: usize = 4096;
const TABLE: usize = 8192;
const CHASE: usize = 1 << 14;

/// Instructions of a tiny stack machine.
#[derive(Clone, Copy)]
enum Op {
    Push(u32),
    Load(u8),
    Store(u8),
    Add,
    Mul,
    Xor,
    Shr(u8),
    /// Jump to the second operand while the register named by the first is non-zero.
    JumpIfNonZero(u8, u8),
    Dec(u8),
    Halt,
}

/// Sums a hash-like sequence in a loop of `n` iterations; returns the accumulator.
fn interpret(program: &[Op], n: u32) -> u32 {
    let mut stack = [0u32; 16];
    let mut sp = 0usize;
    let mut regs = [0u32, 0, n, 0x9e37_79b9];
    let mut pc = 0usize;
    loop {
        match program[pc] {
            Op::Push(v) => {
                stack[sp] = v;
                sp += 1;
            }
            Op::Load(r) => {
                stack[sp] = regs[usize::from(r)];
                sp += 1;
            }
            Op::Store(r) => {
                sp -= 1;
                regs[usize::from(r)] = stack[sp];
            }
            Op::Add => {
                sp -= 1;
                stack[sp - 1] = stack[sp - 1].wrapping_add(stack[sp]);
            }
            Op::Mul => {
                sp -= 1;
                stack[sp - 1] = stack[sp - 1].wrapping_mul(stack[sp]);
            }
            Op::Xor => {
                sp -= 1;
                stack[sp - 1] ^= stack[sp];
            }
            Op::Shr(k) => stack[sp - 1] >>= k,
            Op::Dec(r) => regs[usize::from(r)] = regs[usize::from(r)].wrapping_sub(1),
            Op::JumpIfNonZero(r, to) => {
                if regs[usize::from(r)] != 0 {
                    pc = usize::from(to);
                    continue;
                }
            }
            Op::Halt => return regs[0],
        }
        pc += 1;
    }
}

/// acc = (acc ^ (acc >> 13)) * k + i, looped by register 2.
const PROGRAM: [Op; 13] = [
    Op::Load(0),
    Op::Load(0),
    Op::Shr(13),
    Op::Xor,
    Op::Load(3),
    Op::Mul,
    Op::Load(2),
    Op::Add,
    Op::Store(0),
    Op::Dec(2),
    Op::JumpIfNonZero(2, 0),
    Op::Push(0),
    Op::Halt,
];

fn round(seed: u64, words: &mut [u32], table: &mut [u64], chase: &mut [u32]) -> u64 {
    let mut rng = Rng::new(seed);
    let mut h = Fnv::new();

    // Fill: stores and shifts.
    for w in words.iter_mut() {
        *w = rng.next_u32();
    }
    // Sort part of it: compares, branches, moves.
    words[..SORTED].sort_unstable();
    h.u64(u64::from(words[SORTED / 2]));

    // CRC over all of it: byte table lookups.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    h.u64(u64::from(crc32fast::hash(&bytes)));
    // SHA-256 over a slice: rotates, adds, big-endian loads.
    h.bytes(&Sha256::digest(&bytes[..4096]));

    // Open-addressing hash table with linear probing: multiplies and random access.
    table.fill(0);
    let mask = table.len() - 1;
    let mut collisions = 0u64;
    for &w in &words[SORTED..SORTED + TABLE / 2] {
        let key = u64::from(w) | 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 51) as usize & mask;
        while table[i] != 0 && table[i] != key {
            i = (i + 1) & mask;
            collisions += 1;
        }
        table[i] = key;
    }
    let mut found = 0u64;
    for &w in words[SORTED..].iter().step_by(3) {
        let key = u64::from(w) | 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 51) as usize & mask;
        while table[i] != 0 {
            if table[i] == key {
                found += 1;
                break;
            }
            i = (i + 1) & mask;
        }
    }
    h.u64(collisions).u64(found);

    // Bytecode interpreter: a dispatch-bound loop.
    h.u64(u64::from(interpret(&PROGRAM, 3000 + (seed % 64) as u32)));

    // Pointer chase through a random cyclic permutation (Sattolo): dependent loads.
    for (i, c) in chase.iter_mut().enumerate() {
        *c = i as u32;
    }
    for i in (1..chase.len()).rev() {
        let j = rng.below(i as u64) as usize;
        chase.swap(i, j);
    }
    let mut p = 0u32;
    for _ in 0..CHASE {
        p = chase[p as usize];
    }
    h.u64(u64::from(p));

    // Byte scanning: counting runs, branchy.
    let mut runs = 0u64;
    let mut prev = 0u8;
    for &b in &bytes[..8192] {
        let class = if b < 64 {
            0
        } else if b < 160 {
            1
        } else {
            2
        };
        runs += u64::from(class != prev);
        prev = class;
    }
    h.u64(runs);
    h.finish()
}

/// Runs `rounds` rounds and prints the checksum.
pub fn run(out: &mut dyn Write, rounds: u32) -> fmt::Result {
    let mut words = vec![0u32; WORDS];
    let mut table = vec![0u64; TABLE];
    let mut chase = vec![0u32; CHASE];
    let mut seed = 0xbe9c_0000_u64;
    for r in 0..rounds {
        seed = round(seed, &mut words, &mut table, &mut chase);
        if r % 32 == 31 {
            writeln!(out, "round {}: {seed:016x}", r + 1)?;
        }
    }
    writeln!(out, "bench rounds={rounds} checksum={seed:016x}")
}

//! 128-bit and bit-level integer arithmetic: `u128`/`i128` multiply, divide and remainder
//! (`compiler_builtins`' `__udivti3` and friends), shifts, checked and wrapping forms,
//! conversions to and from floats, formatting; and the 64-bit bit operations rustc lowers to
//! `bsf`/`bsr`/`tzcnt`, `bswap`, rotates, and wide multiplies.

use core::fmt::{self, Write};

use super::util::{Fnv, Rng};

fn edge_u128() -> [u128; 10] {
    [
        0,
        1,
        2,
        3,
        u64::MAX as u128,
        (u64::MAX as u128) + 1,
        u128::MAX,
        u128::MAX / 3,
        1 << 127,
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
    ]
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    let edges = edge_u128();
    writeln!(out, "-- u128 edge pairs")?;
    for &a in &edges {
        for &b in &edges {
            let (q, r) = (a.checked_div(b), a.checked_rem(b));
            writeln!(
                out,
                "{a:x} {b:x}: mul={:x} add={:?} sub={:?} div={:?} rem={:?} cmp={:?}",
                a.wrapping_mul(b),
                a.checked_add(b),
                a.overflowing_sub(b),
                q,
                r,
                a.cmp(&b)
            )?;
        }
    }

    writeln!(out, "-- i128 signed division")?;
    let signed: [i128; 8] = [
        0,
        1,
        -1,
        7,
        -7,
        i128::MAX,
        i128::MIN,
        -0x1_0000_0000_0000_0003,
    ];
    for &a in &signed {
        for &b in &signed {
            writeln!(
                out,
                "{a} / {b} = {:?} rem {:?} euclid {:?} {:?}",
                a.checked_div(b),
                a.checked_rem(b),
                a.checked_div_euclid(b),
                a.checked_rem_euclid(b)
            )?;
        }
    }

    writeln!(out, "-- random u128 and i128")?;
    let mut rng = Rng::new(0x128);
    let mut h = Fnv::new();
    for i in 0..300u32 {
        let a = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        // Divisors of every width, so each path of the division routine runs.
        let b = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) >> (i % 128);
        let s = i % 128;
        let q = a.checked_div(b).unwrap_or(0);
        let r = a.checked_rem(b).unwrap_or(0);
        // q * b + r == a must hold for every pair.
        let ok = b == 0 || q.wrapping_mul(b).wrapping_add(r) == a;
        let sa = a as i128;
        let sb = b as i128;
        let sq = sa.checked_div(sb).unwrap_or(0);
        for v in [
            a.wrapping_mul(b),
            q,
            r,
            a << s,
            a >> s,
            (sa >> s) as u128,
            sq as u128,
            a.rotate_left(s),
            a.swap_bytes(),
            a.reverse_bits(),
        ] {
            h.bytes(&v.to_le_bytes());
        }
        h.u64(u64::from(
            a.leading_zeros() + a.trailing_zeros() * 256 + a.count_ones() * 65536,
        ));
        if i % 30 == 0 {
            writeln!(
                out,
                "{a} {sa} /{b} = {q} r{r} ok={ok} isqrt={} ilog10={:?} {:#x}",
                a.isqrt(),
                b.checked_ilog10(),
                sa.wrapping_neg()
            )?;
        }
        if !ok {
            writeln!(out, "MISMATCH {a} {b}")?;
        }
    }
    writeln!(out, "u128 checksum {:016x}", h.finish())?;

    writeln!(out, "-- powers and factorials")?;
    let mut f: u128 = 1;
    for n in 1..=40u128 {
        match f.checked_mul(n) {
            Some(v) => f = v,
            None => {
                writeln!(out, "{n}! overflows u128")?;
                break;
            }
        }
        if n % 5 == 0 {
            writeln!(out, "{n}! = {f}")?;
        }
    }
    for e in [0u32, 1, 38, 39] {
        writeln!(
            out,
            "10^{e} = {:?}, 3^{e} = {}",
            10u128.checked_pow(e),
            3i128.pow(e)
        )?;
    }

    writeln!(out, "-- float conversions")?;
    for &a in &edges {
        let x = a as f64;
        let y = a as f32;
        writeln!(
            out,
            "{a} as f64 = {x:e}, as f32 = {y:e}, back {} {}",
            x as u128, y as u128
        )?;
    }
    for x in [
        0.0f64,
        -1.5,
        1.5,
        1e38,
        3.5e38,
        -1.7e38,
        1.8e19,
        1e30,
        f64::NAN,
        f64::INFINITY,
    ] {
        writeln!(
            out,
            "{x:e} as u128 = {}, as i128 = {}, as u64 = {}, as i64 = {}, as u32 = {}, as i32 = {}",
            x as u128, x as i128, x as u64, x as i64, x as u32, x as i32
        )?;
    }

    writeln!(out, "-- 64-bit bit operations")?;
    let mut h = Fnv::new();
    for i in 0..400u32 {
        let v = rng.next_u64() >> (i % 64);
        let w = rng.next_u64();
        let wide = u128::from(v) * u128::from(w);
        let hi = (wide >> 64) as u64;
        let lo = wide as u64;
        let iv = v as i64;
        let sw = (i128::from(iv) * i128::from(w as i64)) >> 64;
        for x in [
            u64::from(v.trailing_zeros()),
            u64::from(v.leading_zeros()),
            u64::from(v.count_ones()),
            u64::from((v as u32).trailing_zeros()),
            u64::from((v as u16).leading_zeros()),
            v.swap_bytes(),
            v.reverse_bits(),
            v.rotate_right(i),
            hi,
            lo,
            sw as u64,
            v.wrapping_div(w | 1),
            v % (w | 1),
            (iv >> (i % 64)) as u64,
            iv.wrapping_div((w as i64) | 1) as u64,
            iv.wrapping_rem((w as i64) | 1) as u64,
            u64::from((v as u32).wrapping_mul(w as u32)),
            u64::from((v as u32) / ((w as u32) | 1)),
            u64::from((v as u8).wrapping_mul(w as u8) / ((w as u8) | 1)),
            u64::from((v as i16).wrapping_mul(w as i16) as u16),
            v.abs_diff(w),
            v.saturating_sub(w),
            v.checked_next_power_of_two().unwrap_or(0),
            u64::from(v.is_power_of_two()),
            v.div_ceil(w | 1),
            (iv as i32).unsigned_abs().into(),
            u64::from(v > w) + 2 * u64::from(iv < w as i64),
        ] {
            h.u64(x);
        }
    }
    writeln!(out, "u64 checksum {:016x}", h.finish())?;
    writeln!(
        out,
        "{:?} {:?}",
        u64::MAX.checked_next_power_of_two(),
        0u64.checked_ilog2()
    )
}

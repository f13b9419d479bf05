//! Floating-point arithmetic as rustc compiles it for baseline x86-64 (scalar and packed
//! SSE/SSE2): IEEE operations and special values, conversions between every integer and float
//! width, `core` float methods, square roots through SSE2 intrinsics (`sqrt` itself needs
//! `std`), and numeric kernels the optimiser vectorises.

use alloc::vec::Vec;
use core::arch::x86_64::{
    _mm_cvtsd_f64, _mm_cvtss_f32, _mm_set_sd, _mm_set_ss, _mm_sqrt_sd, _mm_sqrt_ss,
};
use core::fmt::{self, Write};
use core::hint::black_box;

use super::util::{Fnv, Rng};

fn sqrt(x: f64) -> f64 {
    // SAFETY: SSE2 is part of the x86-64 baseline.
    unsafe { _mm_cvtsd_f64(_mm_sqrt_sd(_mm_set_sd(0.0), _mm_set_sd(x))) }
}

fn sqrtf(x: f32) -> f32 {
    // SAFETY: SSE is part of the x86-64 baseline.
    unsafe { _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))) }
}

const VALUES: [f64; 20] = [
    0.0,
    -0.0,
    1.0,
    -2.5,
    0.1,
    1e-310,
    -4.9e-324,
    1.797_693_134_862_315_7e308,
    2.5,
    3.5,
    -0.5,
    4_503_599_627_370_497.0,
    9.223_372_036_854_776e18,
    1.8446744073709552e19,
    -9.3e18,
    4_294_967_295.5,
    -2_147_483_648.9,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// One line with the exact bits of each result, so that no formatting hides a difference.
fn ops_line(out: &mut dyn Write, a: f64, b: f64) -> fmt::Result {
    let r = [
        a + b,
        a - b,
        a * b,
        a / b,
        a.min(b),
        a.max(b),
        sqrt(a),
        a.clamp(-1.0, 1.0),
    ];
    write!(out, "{a:e} {b:e}:")?;
    for x in r {
        write!(out, " {:016x}", x.to_bits())?;
    }
    writeln!(
        out,
        " {:?} {:?} {}{}{}",
        a.partial_cmp(&b),
        a.total_cmp(&b),
        u8::from(a < b),
        u8::from(a == b),
        u8::from(a >= b)
    )
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    writeln!(out, "-- f64 operations on special values")?;
    for &a in &VALUES {
        for &b in &[1.0, -0.0, 3.0, 1e-300, f64::NAN, f64::INFINITY] {
            ops_line(out, black_box(a), black_box(b))?;
        }
    }

    writeln!(out, "-- conversions")?;
    for &x in &VALUES {
        let f = x as f32;
        writeln!(
            out,
            "{x:e}: f32={:08x} i8={} u8={} i16={} u16={} i32={} u32={} i64={} u64={} back={:016x}",
            f.to_bits(),
            x as i8,
            x as u8,
            x as i16,
            x as u16,
            x as i32,
            x as u32,
            x as i64,
            x as u64,
            f64::from(f).to_bits()
        )?;
        writeln!(
            out,
            "   abs={:e} signum={:e} copysign={:e} recip={:e} degrees={:e} next_up={:016x} next_down={:016x} midpoint={:e} {:?} sub={}",
            x.abs(),
            x.signum(),
            1.5f64.copysign(x),
            x.recip(),
            x.to_degrees(),
            x.next_up().to_bits(),
            x.next_down().to_bits(),
            x.midpoint(-3.0),
            x.classify(),
            x.is_subnormal()
        )?;
    }
    let mut rng = Rng::new(0xf1_0a7);
    let mut h = Fnv::new();
    for i in 0..500u32 {
        let bits = rng.next_u64() >> (i % 64);
        let signed = bits as i64;
        let small = rng.next_u32() >> (i % 32);
        let conv = [
            (bits as f64).to_bits(),
            (signed as f64).to_bits(),
            u64::from((bits as f32).to_bits()),
            u64::from((signed as f32).to_bits()),
            (f64::from(small)).to_bits(),
            u64::from((small as f32).to_bits()),
            u64::from((small as i32 as f32).to_bits()),
            (small as i16 as f64).to_bits(),
            (f64::from_bits(bits) as f32).to_bits().into(),
            f64::from(f32::from_bits(small)).to_bits(),
            (f64::from_bits(bits) as i64) as u64,
            f64::from_bits(bits) as u64,
            u64::from(f32::from_bits(small) as u32),
            (f32::from_bits(small) as i64) as u64,
        ];
        for c in conv {
            h.u64(c);
        }
    }
    writeln!(out, "conversion checksum {:016x}", h.finish())?;

    writeln!(out, "-- f32")?;
    let mut h = Fnv::new();
    for _ in 0..300 {
        let a = f32::from_bits(rng.next_u32());
        let b = f32::from_bits(rng.next_u32() >> 1);
        for x in [
            a + b,
            a - b,
            a * b,
            a / b,
            sqrtf(b),
            a.min(b),
            a.max(b),
            a.abs(),
            -a,
            (a as f64 * b as f64) as f32,
        ] {
            h.u64(u64::from(x.to_bits()));
        }
        h.u64(u64::from(a < b) | (u64::from(a == b) << 1) | (u64::from(a.is_nan()) << 2));
    }
    writeln!(out, "f32 checksum {:016x}", h.finish())?;

    writeln!(out, "-- square roots")?;
    for x in [
        0.0,
        -0.0,
        1.0,
        2.0,
        0.25,
        1e-320,
        1e300,
        -1.0,
        f64::INFINITY,
        f64::NAN,
        1.0 / 3.0,
    ] {
        writeln!(
            out,
            "sqrt({x:e}) = {:e} [{:016x}] sqrtf = {:e}",
            sqrt(x),
            sqrt(x).to_bits(),
            sqrtf(x as f32)
        )?;
    }

    writeln!(out, "-- kernels")?;
    // Sums and dot products: loops the optimiser turns into packed arithmetic.
    let n = 4096;
    let xs: Vec<f64> = (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
        .collect();
    let ys: Vec<f64> = (0..n).map(|i| (i as f64 * 0.001).max(0.25)).collect();
    let fs: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
    let dot: f64 = xs.iter().zip(&ys).map(|(a, b)| a * b).sum();
    let mut sumf = [0f32; 8];
    for (i, &f) in fs.iter().enumerate() {
        sumf[i % 8] += f * f;
    }
    let mut scaled = fs.clone();
    for v in scaled.iter_mut() {
        *v = *v * 1.5 + 0.25;
    }
    // Kahan summation: compensation must not be optimised away (it is not, without fast-math).
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for &x in &xs {
        let y = x * 1e-3 - c;
        let t = s + y;
        c = (t - s) - y;
        s = t;
    }
    let maxabs = xs.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    writeln!(
        out,
        "dot={:016x} sumsq_f32={:08x?} scaled_sum={:08x} kahan={:016x} maxabs={:e}",
        dot.to_bits(),
        sumf.map(f32::to_bits),
        scaled.iter().sum::<f32>().to_bits(),
        s.to_bits(),
        maxabs
    )?;

    // Horner polynomial and Newton's method.
    let poly = [1.0, -0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0];
    for x in [0.0f64, 0.5, 1.0, 2.0, -3.25] {
        let cos_approx = poly.iter().rev().fold(0.0, |acc, &c| acc * x * x + c);
        let mut r = x.abs() + 1.0;
        for _ in 0..8 {
            r = 0.5 * (r + (x.abs() + 1.0) / r);
        }
        writeln!(
            out,
            "x={x}: cos~{cos_approx:.15} sqrt(|x|+1) newton={r:.17} sse={:.17}",
            sqrt(x.abs() + 1.0)
        )?;
    }

    // Mandelbrot escape counts: compares, branches and dependent multiplies.
    let mut rows = Vec::new();
    for py in 0..12 {
        let mut row = 0u64;
        for px in 0..24 {
            let (cx, cy) = (-2.2 + f64::from(px) * 0.125, -1.1 + f64::from(py) * 0.2);
            let (mut zx, mut zy, mut k) = (0.0f64, 0.0f64, 0u64);
            while k < 64 && zx * zx + zy * zy <= 4.0 {
                (zx, zy) = (zx * zx - zy * zy + cx, 2.0 * zx * zy + cy);
                k += 1;
            }
            row = row.wrapping_mul(31).wrapping_add(k);
        }
        rows.push(row);
    }
    writeln!(out, "mandelbrot rows {rows:x?}")?;

    // Float division and conversion in a loop: a simple numerical integration.
    let steps = 2000;
    let mut area = 0.0;
    for i in 0..steps {
        let x = (f64::from(i) + 0.5) / f64::from(steps);
        area += 4.0 / (1.0 + x * x);
    }
    writeln!(
        out,
        "pi~{:.15} [{:016x}]",
        area / f64::from(steps),
        (area / f64::from(steps)).to_bits()
    )
}

//! `core::fmt` and `core::str::parse` on floats and integers: shortest round-trip (Grisu with
//! Dragon fallback), exponent and fixed precision, padding and alignment, `Debug` of nested
//! data, and decimal-to-float parsing (Eisel-Lemire with fallbacks).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use super::util::{Fnv, Rng};

const SPECIAL_F64: [f64; 32] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    0.2,
    0.3,
    1.0 / 3.0,
    2.0 / 3.0,
    core::f64::consts::PI,
    core::f64::consts::E,
    core::f64::consts::SQRT_2,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    f64::EPSILON,
    5e-324,
    -5e-324,
    2.225_073_858_507_201e-308,
    1e21,
    1e22,
    1e23,
    123_456_789.0,
    9_007_199_254_740_993.0,
    1e-7,
    0.000_001,
    299_792_458.0,
    6.022_140_76e23,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -123.456e-300,
];

const SPECIAL_F32: [f32; 16] = [
    0.0,
    -0.0,
    1.0,
    0.1,
    1.0 / 3.0,
    16_777_217.0,
    f32::MAX,
    f32::MIN_POSITIVE,
    1e-45,
    f32::EPSILON,
    3.402_823_5e38,
    core::f32::consts::PI,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    -7.5e-39,
];

fn f64_line(out: &mut dyn Write, x: f64) -> fmt::Result {
    writeln!(
        out,
        "{x} | {x:e} | {x:.3} | {x:?} | {x:+.10e} | {x:>14.4} | {x:<12.1e}|"
    )
}

fn f32_line(out: &mut dyn Write, x: f32) -> fmt::Result {
    writeln!(out, "{x} | {x:e} | {x:.3} | {x:?} | {x:+.6E} | {x:^16.2}|")
}

/// Prints `s` parsed as `T`, or the error.
fn parse_line<T>(out: &mut dyn Write, s: &str) -> fmt::Result
where
    T: core::str::FromStr + fmt::Debug,
    T::Err: fmt::Display,
{
    match s.parse::<T>() {
        Ok(v) => writeln!(out, "parse {s:?} = {v:?}"),
        Err(e) => writeln!(out, "parse {s:?} failed: {e}"),
    }
}

/// `10^e` by repeated multiplication (`powi` is not in `core`).
fn pow10(e: i32) -> f64 {
    let mut r = 1.0;
    for _ in 0..e.unsigned_abs() {
        r = if e < 0 { r / 10.0 } else { r * 10.0 };
    }
    r
}

// Fields are read only through `Debug`, which dead-code analysis does not count.
#[allow(dead_code)]
#[derive(Debug)]
struct Sample<'a> {
    name: &'a str,
    ratio: f32,
    values: [i16; 3],
    tag: Option<char>,
    nested: (u8, Result<u64, &'a str>),
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    writeln!(out, "-- f64 special values")?;
    for &x in &SPECIAL_F64 {
        f64_line(out, x)?;
    }
    writeln!(out, "-- f32 special values")?;
    for &x in &SPECIAL_F32 {
        f32_line(out, x)?;
    }

    // Random bit patterns cover every exponent, subnormals and NaN payloads included; scaled
    // integers cover the fixed-precision paths.
    writeln!(out, "-- f64 random bits")?;
    let mut rng = Rng::new(0xf10a7);
    for _ in 0..120 {
        f64_line(out, f64::from_bits(rng.next_u64()))?;
    }
    writeln!(out, "-- f64 decimal-ish")?;
    for i in 0..60 {
        let x = (rng.next_u64() % 2_000_000) as f64 / 1000.0 - 1000.0;
        f64_line(out, x * pow10(i % 40 - 20))?;
    }
    writeln!(out, "-- f32 random bits")?;
    for _ in 0..80 {
        f32_line(out, f32::from_bits(rng.next_u32()))?;
    }

    // Shortest output must round-trip exactly.
    let mut round_trips = 0;
    let mut text = String::new();
    let mut h = Fnv::new();
    for _ in 0..400 {
        let x = f64::from_bits(rng.next_u64());
        if !x.is_finite() {
            continue;
        }
        text.clear();
        write!(text, "{x}")?;
        let back: f64 = text.parse().map_err(|_| fmt::Error)?;
        round_trips += usize::from(back.to_bits() == x.to_bits());
        h.bytes(text.as_bytes());
        text.clear();
        write!(text, "{x:e}")?;
        let back: f64 = text.parse().map_err(|_| fmt::Error)?;
        round_trips += usize::from(back.to_bits() == x.to_bits());
        h.bytes(text.as_bytes());
    }
    writeln!(
        out,
        "f64 round trips exact: {round_trips}, text checksum {:016x}",
        h.finish()
    )?;

    writeln!(out, "-- parsing")?;
    for s in [
        "3.14159",
        "-0",
        "1e308",
        "1e309",
        "2.2250738585072011e-308",
        "4.9e-324",
        "2e-324",
        "0.1e1",
        ".5",
        "5.",
        "inf",
        "-infinity",
        "NaN",
        "1_000",
        "",
        "0x10",
        "1.7976931348623157e308",
        "123456789012345678901234567890",
        "0.000000000000000000000000000000000001",
    ] {
        parse_line::<f64>(out, s)?;
    }
    for s in ["3.4028235e38", "3.4028236e38", "1e-46", "7e-46", "16777217"] {
        parse_line::<f32>(out, s)?;
    }
    for s in [
        "0",
        "-128",
        "127",
        "128",
        "+42",
        "-",
        "99999999999999999999",
        "18446744073709551615",
    ] {
        parse_line::<i8>(out, s)?;
        parse_line::<u64>(out, s)?;
    }
    parse_line::<i128>(out, "-170141183460469231731687303715884105728")?;
    parse_line::<u128>(out, "340282366920938463463374607431768211456")?;

    writeln!(out, "-- integers")?;
    let ints: [i64; 8] = [0, 1, -1, 255, -4096, i64::MAX, i64::MIN, 0x1234_5678_9abc];
    for v in ints {
        writeln!(
            out,
            "{v} {v:x} {v:#X} {v:o} {v:#b} {v:+} {v:>22} {v:<8}| {v:^9}| {v:020} {v:#018x} {v:e}"
        )?;
    }
    for v in [0u8, 7, 200, 255] {
        writeln!(out, "{v:08b} {v:3} {v:#04x} {:?}", v as i8)?;
    }
    for _ in 0..20 {
        let v = rng.next_u64() >> (rng.next_u32() % 64);
        writeln!(out, "{v} {v:x} {:e} {}", v as u32, v as i32)?;
    }

    writeln!(out, "-- Debug and width/precision from arguments")?;
    let sample = Sample {
        name: "cell \"7\"\n",
        ratio: 0.625,
        values: [-3, 0, i16::MAX],
        tag: Some('\u{e9}'),
        nested: (9, Err("nope")),
    };
    writeln!(out, "{sample:?}")?;
    writeln!(out, "{sample:#?}")?;
    let v: Vec<(f64, bool)> = (0..4).map(|i| (f64::from(i) / 8.0, i % 2 == 0)).collect();
    writeln!(out, "{v:?} {v:.2?}")?;
    for w in [0usize, 5, 12] {
        for p in [0usize, 2, 7] {
            writeln!(
                out,
                "[{:>w$.p$}] [{:<w$.p$e}] [{:^w$.p$}]",
                core::f64::consts::PI * 1e5,
                1.0f64 / 7.0,
                "abcdefgh"
            )?;
        }
    }
    writeln!(out, "{:?} {:?} {:?}", 'x', "tab\there", b"bytes\x00\xff")
}

//! SSE and SSE2 packed operations through `core::arch` intrinsics, integer and float: the
//! instructions the x86-64 baseline adds beyond scalar code. Each operation runs on edge-case
//! and random vectors; results are printed as raw lanes.

use core::arch::x86_64::*;
use core::fmt::{self, Write};
use core::hint::black_box;

use super::util::{Fnv, Rng};

/// Calls SSE/SSE2 intrinsics, which `core::arch` marks unsafe.
macro_rules! sse {
    ($e:expr) => {
        // SAFETY: SSE and SSE2 belong to the x86-64 baseline that images and hosts target.
        unsafe { $e }
    };
}

type IntOp = fn(__m128i, __m128i) -> __m128i;
type FloatOp = fn(__m128d, __m128d) -> __m128d;
type SingleOp = fn(__m128, __m128) -> __m128;

fn lanes(v: __m128i) -> [u32; 4] {
    // SAFETY: `__m128i` and `[u32; 4]` are both 16 plain bytes.
    unsafe { core::mem::transmute(v) }
}

fn from_lanes(l: [u32; 4]) -> __m128i {
    // SAFETY: as in `lanes`.
    unsafe { core::mem::transmute(l) }
}

fn pd_bits(v: __m128d) -> __m128i {
    sse!(_mm_castpd_si128(v))
}

fn ps_bits(v: __m128) -> __m128i {
    sse!(_mm_castps_si128(v))
}

const INT_OPS: [(&str, IntOp); 62] = [
    ("add_epi8", |a, b| sse!(_mm_add_epi8(a, b))),
    ("add_epi16", |a, b| sse!(_mm_add_epi16(a, b))),
    ("add_epi32", |a, b| sse!(_mm_add_epi32(a, b))),
    ("add_epi64", |a, b| sse!(_mm_add_epi64(a, b))),
    ("adds_epi8", |a, b| sse!(_mm_adds_epi8(a, b))),
    ("adds_epi16", |a, b| sse!(_mm_adds_epi16(a, b))),
    ("adds_epu8", |a, b| sse!(_mm_adds_epu8(a, b))),
    ("adds_epu16", |a, b| sse!(_mm_adds_epu16(a, b))),
    ("sub_epi8", |a, b| sse!(_mm_sub_epi8(a, b))),
    ("sub_epi16", |a, b| sse!(_mm_sub_epi16(a, b))),
    ("sub_epi32", |a, b| sse!(_mm_sub_epi32(a, b))),
    ("sub_epi64", |a, b| sse!(_mm_sub_epi64(a, b))),
    ("subs_epi8", |a, b| sse!(_mm_subs_epi8(a, b))),
    ("subs_epi16", |a, b| sse!(_mm_subs_epi16(a, b))),
    ("subs_epu8", |a, b| sse!(_mm_subs_epu8(a, b))),
    ("subs_epu16", |a, b| sse!(_mm_subs_epu16(a, b))),
    ("mullo_epi16", |a, b| sse!(_mm_mullo_epi16(a, b))),
    ("mulhi_epi16", |a, b| sse!(_mm_mulhi_epi16(a, b))),
    ("mulhi_epu16", |a, b| sse!(_mm_mulhi_epu16(a, b))),
    ("mul_epu32", |a, b| sse!(_mm_mul_epu32(a, b))),
    ("madd_epi16", |a, b| sse!(_mm_madd_epi16(a, b))),
    ("sad_epu8", |a, b| sse!(_mm_sad_epu8(a, b))),
    ("avg_epu8", |a, b| sse!(_mm_avg_epu8(a, b))),
    ("avg_epu16", |a, b| sse!(_mm_avg_epu16(a, b))),
    ("min_epi16", |a, b| sse!(_mm_min_epi16(a, b))),
    ("max_epi16", |a, b| sse!(_mm_max_epi16(a, b))),
    ("min_epu8", |a, b| sse!(_mm_min_epu8(a, b))),
    ("max_epu8", |a, b| sse!(_mm_max_epu8(a, b))),
    ("cmpeq_epi8", |a, b| sse!(_mm_cmpeq_epi8(a, b))),
    ("cmpeq_epi16", |a, b| sse!(_mm_cmpeq_epi16(a, b))),
    ("cmpeq_epi32", |a, b| sse!(_mm_cmpeq_epi32(a, b))),
    ("cmpgt_epi8", |a, b| sse!(_mm_cmpgt_epi8(a, b))),
    ("cmpgt_epi16", |a, b| sse!(_mm_cmpgt_epi16(a, b))),
    ("cmpgt_epi32", |a, b| sse!(_mm_cmpgt_epi32(a, b))),
    ("and", |a, b| sse!(_mm_and_si128(a, b))),
    ("andnot", |a, b| sse!(_mm_andnot_si128(a, b))),
    ("or", |a, b| sse!(_mm_or_si128(a, b))),
    ("xor", |a, b| sse!(_mm_xor_si128(a, b))),
    ("slli_epi16", |a, _| sse!(_mm_slli_epi16::<3>(a))),
    ("slli_epi32", |a, _| sse!(_mm_slli_epi32::<31>(a))),
    ("slli_epi64", |a, _| sse!(_mm_slli_epi64::<17>(a))),
    ("srli_epi16", |a, _| sse!(_mm_srli_epi16::<15>(a))),
    ("srli_epi32", |a, _| sse!(_mm_srli_epi32::<7>(a))),
    ("srli_epi64", |a, _| sse!(_mm_srli_epi64::<63>(a))),
    ("srai_epi16", |a, _| sse!(_mm_srai_epi16::<5>(a))),
    ("srai_epi32", |a, _| sse!(_mm_srai_epi32::<31>(a))),
    ("sll_epi32", |a, b| {
        sse!(_mm_sll_epi32(a, _mm_and_si128(b, _mm_set_epi64x(0, 0x27))))
    }),
    ("srl_epi64", |a, b| {
        sse!(_mm_srl_epi64(a, _mm_and_si128(b, _mm_set_epi64x(0, 0x7f))))
    }),
    ("sra_epi16", |a, b| {
        sse!(_mm_sra_epi16(a, _mm_and_si128(b, _mm_set_epi64x(0, 0x1f))))
    }),
    ("slli_si128", |a, _| sse!(_mm_slli_si128::<5>(a))),
    ("srli_si128", |a, _| sse!(_mm_srli_si128::<11>(a))),
    ("shuffle_epi32", |a, _| {
        sse!(_mm_shuffle_epi32::<0b01_11_00_10>(a))
    }),
    ("shufflelo_epi16", |a, _| {
        sse!(_mm_shufflelo_epi16::<0b00_01_10_11>(a))
    }),
    ("shufflehi_epi16", |a, _| {
        sse!(_mm_shufflehi_epi16::<0b11_11_00_01>(a))
    }),
    ("unpacklo_epi8", |a, b| sse!(_mm_unpacklo_epi8(a, b))),
    ("unpackhi_epi16", |a, b| sse!(_mm_unpackhi_epi16(a, b))),
    ("unpacklo_epi32", |a, b| sse!(_mm_unpacklo_epi32(a, b))),
    ("unpackhi_epi64", |a, b| sse!(_mm_unpackhi_epi64(a, b))),
    ("packs_epi16", |a, b| sse!(_mm_packs_epi16(a, b))),
    ("packs_epi32", |a, b| sse!(_mm_packs_epi32(a, b))),
    ("packus_epi16", |a, b| sse!(_mm_packus_epi16(a, b))),
    ("insert_extract", |a, b| {
        sse!(_mm_insert_epi16::<5>(a, _mm_extract_epi16::<2>(b)))
    }),
];

const PD_OPS: [(&str, FloatOp); 22] = [
    ("add_pd", |a, b| sse!(_mm_add_pd(a, b))),
    ("sub_pd", |a, b| sse!(_mm_sub_pd(a, b))),
    ("mul_pd", |a, b| sse!(_mm_mul_pd(a, b))),
    ("div_pd", |a, b| sse!(_mm_div_pd(a, b))),
    ("sqrt_pd", |a, _| sse!(_mm_sqrt_pd(a))),
    ("min_pd", |a, b| sse!(_mm_min_pd(a, b))),
    ("max_pd", |a, b| sse!(_mm_max_pd(a, b))),
    ("cmpeq_pd", |a, b| sse!(_mm_cmpeq_pd(a, b))),
    ("cmplt_pd", |a, b| sse!(_mm_cmplt_pd(a, b))),
    ("cmple_pd", |a, b| sse!(_mm_cmple_pd(a, b))),
    ("cmpunord_pd", |a, b| sse!(_mm_cmpunord_pd(a, b))),
    ("cmpnlt_pd", |a, b| sse!(_mm_cmpnlt_pd(a, b))),
    ("and_pd", |a, b| sse!(_mm_and_pd(a, b))),
    ("andnot_pd", |a, b| sse!(_mm_andnot_pd(a, b))),
    ("xor_pd", |a, b| sse!(_mm_xor_pd(a, b))),
    ("shuffle_pd", |a, b| sse!(_mm_shuffle_pd::<0b01>(a, b))),
    ("unpacklo_pd", |a, b| sse!(_mm_unpacklo_pd(a, b))),
    ("unpackhi_pd", |a, b| sse!(_mm_unpackhi_pd(a, b))),
    ("add_sd", |a, b| sse!(_mm_add_sd(a, b))),
    ("div_sd", |a, b| sse!(_mm_div_sd(a, b))),
    ("min_sd", |a, b| sse!(_mm_min_sd(a, b))),
    ("move_sd", |a, b| sse!(_mm_move_sd(a, b))),
];

const PS_OPS: [(&str, SingleOp); 20] = [
    ("add_ps", |a, b| sse!(_mm_add_ps(a, b))),
    ("sub_ps", |a, b| sse!(_mm_sub_ps(a, b))),
    ("mul_ps", |a, b| sse!(_mm_mul_ps(a, b))),
    ("div_ps", |a, b| sse!(_mm_div_ps(a, b))),
    ("sqrt_ps", |a, _| sse!(_mm_sqrt_ps(a))),
    ("min_ps", |a, b| sse!(_mm_min_ps(a, b))),
    ("max_ps", |a, b| sse!(_mm_max_ps(a, b))),
    ("cmplt_ps", |a, b| sse!(_mm_cmplt_ps(a, b))),
    ("cmpneq_ps", |a, b| sse!(_mm_cmpneq_ps(a, b))),
    ("cmpnle_ps", |a, b| sse!(_mm_cmpnle_ps(a, b))),
    ("cmpord_ps", |a, b| sse!(_mm_cmpord_ps(a, b))),
    ("or_ps", |a, b| sse!(_mm_or_ps(a, b))),
    ("shuffle_ps", |a, b| {
        sse!(_mm_shuffle_ps::<0b10_00_11_01>(a, b))
    }),
    ("unpacklo_ps", |a, b| sse!(_mm_unpacklo_ps(a, b))),
    ("unpackhi_ps", |a, b| sse!(_mm_unpackhi_ps(a, b))),
    ("movehl_ps", |a, b| sse!(_mm_movehl_ps(a, b))),
    ("movelh_ps", |a, b| sse!(_mm_movelh_ps(a, b))),
    ("add_ss", |a, b| sse!(_mm_add_ss(a, b))),
    ("max_ss", |a, b| sse!(_mm_max_ss(a, b))),
    ("move_ss", |a, b| sse!(_mm_move_ss(a, b))),
];

/// Vectors with lanes at the edges: zero, all ones, sign bits, saturating limits, and float
/// NaN, infinities, signed zeros and subnormals.
const EDGES: [[u32; 4]; 8] = [
    [0, 0, 0, 0],
    [u32::MAX; 4],
    [0x8000_0000, 0x7fff_ffff, 0x8000_7fff, 0x7f80_8001],
    [0x7ff8_0000, 0, 0x7f80_0000, 0xff80_0000],
    [0, 0x7ff0_0000, 0, 0xfff0_0000],
    [0x0000_0001, 0x8000_0000, 0x0000_0001, 0x0000_0000],
    [0x3f80_0000, 0xbf80_0000, 0x4b40_0000, 0xcf00_0000],
    [0x0102_0304, 0xfefd_fcfb, 0x00ff_ff00, 0x8081_7f7e],
];

fn vectors(rng: &mut Rng) -> [__m128i; 24] {
    let mut v = [from_lanes([0; 4]); 24];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = if i < EDGES.len() {
            from_lanes(EDGES[i])
        } else if i % 3 == 0 {
            // Plausible doubles in both lanes.
            let x = (rng.next_u64() >> 12) as f64 / 1e3 - 2e9;
            pd_bits(sse!(_mm_set_pd(x, -x / 7.0)))
        } else if i % 3 == 1 {
            let f = |r: &mut Rng| (r.next_u32() as i32 >> 8) as f32 / 64.0;
            let l = [f(rng), f(rng), f(rng), f(rng)];
            ps_bits(sse!(_mm_set_ps(l[0], l[1], l[2], l[3])))
        } else {
            from_lanes([
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
            ])
        };
    }
    v
}

fn report(
    out: &mut dyn Write,
    name: &str,
    vs: &[__m128i],
    op: &dyn Fn(__m128i, __m128i) -> __m128i,
) -> fmt::Result {
    let mut h = Fnv::new();
    for &a in vs {
        for &b in vs {
            for l in lanes(op(black_box(a), black_box(b))) {
                h.u64(u64::from(l));
            }
        }
    }
    let sample = lanes(op(vs[2], vs[EDGES.len() + 1]));
    writeln!(out, "{name:16} {sample:08x?} {:016x}", h.finish())
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    let mut rng = Rng::new(0x5_5e2);
    let vs = vectors(&mut rng);
    writeln!(out, "-- integer")?;
    for (name, op) in INT_OPS {
        report(out, name, &vs, &op)?;
    }
    writeln!(out, "-- double")?;
    for (name, op) in PD_OPS {
        report(out, name, &vs, &|a, b| {
            pd_bits(op(sse!(_mm_castsi128_pd(a)), sse!(_mm_castsi128_pd(b))))
        })?;
    }
    writeln!(out, "-- single")?;
    for (name, op) in PS_OPS {
        report(out, name, &vs, &|a, b| {
            ps_bits(op(sse!(_mm_castsi128_ps(a)), sse!(_mm_castsi128_ps(b))))
        })?;
    }

    writeln!(out, "-- conversions and masks")?;
    let mut h = Fnv::new();
    for &v in &vs {
        // SAFETY: SSE and SSE2 belong to the x86-64 baseline.
        let r = unsafe {
            let d = _mm_castsi128_pd(v);
            let s = _mm_castsi128_ps(v);
            [
                ps_bits(_mm_cvtepi32_ps(v)),
                _mm_cvtps_epi32(s),
                _mm_cvttps_epi32(s),
                _mm_cvtpd_epi32(d),
                _mm_cvttpd_epi32(d),
                pd_bits(_mm_cvtps_pd(s)),
                ps_bits(_mm_cvtpd_ps(d)),
                pd_bits(_mm_cvtepi32_pd(v)),
                _mm_cvtsi64_si128(_mm_cvtsd_si64(d)),
                _mm_cvtsi64_si128(_mm_cvttsd_si64(d)),
                _mm_cvtsi32_si128(_mm_cvtss_si32(s)),
                _mm_cvtsi32_si128(_mm_cvttss_si32(s)),
                pd_bits(_mm_cvtsi64_sd(d, _mm_cvtsi128_si64(v))),
                ps_bits(_mm_cvtsi32_ss(s, _mm_cvtsi128_si32(v))),
                pd_bits(_mm_cvtss_sd(d, s)),
                ps_bits(_mm_cvtsd_ss(s, d)),
                _mm_move_epi64(v),
                _mm_set_epi32(
                    _mm_movemask_epi8(v),
                    _mm_movemask_pd(d),
                    _mm_movemask_ps(s),
                    _mm_comilt_sd(d, _mm_set1_pd(0.5))
                        | (_mm_ucomieq_sd(d, d) << 1)
                        | (_mm_comige_ss(s, s) << 2)
                        | (_mm_ucomineq_ss(s, _mm_setzero_ps()) << 3),
                ),
            ]
        };
        for x in r {
            for l in lanes(x) {
                h.u64(u64::from(l));
            }
        }
    }
    writeln!(out, "conversions checksum {:016x}", h.finish())?;
    let v = vs[EDGES.len() + 3];
    writeln!(
        out,
        "cvtps_epi32 {:08x?} cvtpd_ps {:08x?} movemask_epi8 {:04x}",
        lanes(sse!(_mm_cvtps_epi32(_mm_castsi128_ps(v)))),
        lanes(ps_bits(sse!(_mm_cvtpd_ps(_mm_castsi128_pd(v))))),
        sse!(_mm_movemask_epi8(v))
    )?;

    writeln!(out, "-- memory")?;
    // Unaligned and aligned loads and stores, a non-temporal store, fences and a prefetch.
    #[repr(align(16))]
    struct Buf([u8; 64]);
    let mut buf = Buf([0; 64]);
    for (i, b) in buf.0.iter_mut().enumerate() {
        *b = (i * 37) as u8;
    }
    // SAFETY: every access stays inside `buf`, the aligned ones at 16-byte offsets of a
    // 16-byte-aligned buffer; SSE and SSE2 belong to the x86-64 baseline.
    let stored = unsafe {
        let p = buf.0.as_mut_ptr();
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        let u = _mm_loadu_si128(p.add(3) as *const __m128i);
        let a = _mm_load_si128(p.add(16) as *const __m128i);
        _mm_storeu_si128(p.add(33) as *mut __m128i, _mm_xor_si128(u, a));
        _mm_stream_si128(p.add(16) as *mut __m128i, _mm_add_epi8(u, a));
        _mm_sfence();
        let d = _mm_loadu_pd(p.add(7) as *const f64);
        _mm_storeu_pd(p.add(48) as *mut f64, _mm_add_pd(d, d));
        _mm_mfence();
        let l = _mm_loadl_epi64(p.add(1) as *const __m128i);
        _mm_storel_epi64(p as *mut __m128i, _mm_slli_epi64::<4>(l));
        _mm_lfence();
        buf.0
    };
    writeln!(out, "{:02x?}", stored)
}

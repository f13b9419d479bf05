//! UTF-8 and Unicode from `core`/`alloc`: validation (valid and invalid sequences), decoding,
//! case mapping and property tables, escapes, UTF-16, searching and splitting.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use super::util::Fnv;

const SAMPLES: [&[u8]; 20] = [
    b"plain ascii",
    "caf\u{e9} na\u{ef}ve \u{fb01}".as_bytes(),
    "\u{3b1}\u{3b2}\u{3b3} \u{416}\u{436} \u{5d0}".as_bytes(),
    "\u{65e5}\u{672c}\u{8a9e}\u{1F600}\u{1F1EB}\u{1F1F7}".as_bytes(),
    b"\xff",
    b"ab\xc3",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xe2\x28\xa1",
    b"\xf0\x90\x80",
    b"\xf0\x28\x8c\xbc",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"ok\x80then",
    b"\xef\xbb\xbfbom",
    b"\x00\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
    b"",
];

pub fn run(out: &mut dyn Write) -> fmt::Result {
    writeln!(out, "-- validation")?;
    for (i, bytes) in SAMPLES.iter().enumerate() {
        match core::str::from_utf8(bytes) {
            Ok(s) => {
                let chars = s.chars().count();
                let upper: String = s.chars().flat_map(char::to_uppercase).collect();
                writeln!(
                    out,
                    "{i}: ok {} bytes {chars} chars {:?} upper={upper:?} lower={:?}",
                    s.len(),
                    s,
                    s.to_lowercase()
                )?;
                writeln!(
                    out,
                    "   escape_debug={} escape_unicode={}",
                    s.escape_debug(),
                    s.escape_unicode()
                )?;
                let widths: Vec<usize> = s.chars().map(char::len_utf8).collect();
                let idx: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
                writeln!(
                    out,
                    "   widths={widths:?} starts={idx:?} rev={:?}",
                    s.chars().rev().collect::<String>()
                )?;
            }
            Err(e) => writeln!(
                out,
                "{i}: error {e} valid_up_to={} error_len={:?} lossy={:?}",
                e.valid_up_to(),
                e.error_len(),
                String::from_utf8_lossy(bytes)
            )?,
        }
    }

    // Long valid text takes the word-at-a-time ASCII fast path, with a late error.
    let mut long = Vec::new();
    for i in 0..3000u32 {
        match i % 7 {
            0 => long.extend_from_slice("\u{e9}".as_bytes()),
            1 => long.extend_from_slice("\u{20ac}".as_bytes()),
            2 => long.extend_from_slice("\u{10348}".as_bytes()),
            _ => long.push(b'a' + (i % 26) as u8),
        }
    }
    let ok = core::str::from_utf8(&long).map(|s| s.chars().count());
    long.insert(long.len() - 5, 0xbf);
    let err = core::str::from_utf8(&long).map_err(|e| (e.valid_up_to(), e.error_len()));
    writeln!(out, "long: {ok:?} then {err:?}")?;

    writeln!(out, "-- code points")?;
    let mut h = Fnv::new();
    let mut counts = [0u32; 8];
    // Every 211th scalar value: case tables, properties and encodings across all planes.
    for cp in (0..0x11_0000u32).step_by(211) {
        let Some(c) = char::from_u32(cp) else {
            counts[7] += 1;
            continue;
        };
        let flags = [
            c.is_alphabetic(),
            c.is_numeric(),
            c.is_whitespace(),
            c.is_uppercase(),
            c.is_lowercase(),
            c.is_control(),
            c.is_alphanumeric(),
        ];
        for (n, &f) in flags.iter().enumerate() {
            counts[n] += u32::from(f);
        }
        for u in c.to_uppercase().chain(c.to_lowercase()) {
            h.u64(u64::from(u32::from(u)));
        }
        let mut buf = [0u8; 4];
        h.bytes(c.encode_utf8(&mut buf).as_bytes());
        let mut wide = [0u16; 2];
        for w in c.encode_utf16(&mut wide) {
            h.u64(u64::from(*w));
        }
        h.u64(c.escape_debug().len() as u64);
    }
    writeln!(
        out,
        "alpha={} numeric={} space={} upper={} lower={} control={} alnum={} surrogates={} checksum={:016x}",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts[6],
        counts[7],
        h.finish()
    )?;
    for c in [
        '\u{df}',
        '\u{130}',
        '\u{1c5}',
        '\u{3a3}',
        '\u{fb03}',
        '\u{1e9e}',
        'i',
        '\u{2168}',
        '\u{10400}',
        '9',
        '\u{0}',
        '\u{200b}',
    ] {
        writeln!(
            out,
            "{c:?}: upper={} lower={} digit={:?} ascii={} {}",
            c.to_uppercase(),
            c.to_lowercase(),
            c.to_digit(36),
            c.is_ascii(),
            c.escape_default()
        )?;
    }

    writeln!(out, "-- utf-16")?;
    let text = "h\u{e9}llo \u{1F30D} w\u{f6}rld \u{10ffff}";
    let units: Vec<u16> = text.encode_utf16().collect();
    writeln!(out, "{units:04x?}")?;
    writeln!(out, "{:?}", String::from_utf16(&units))?;
    let bad = [0xd800u16, 0x61, 0xdc00];
    writeln!(
        out,
        "{:?} {:?}",
        String::from_utf16(&bad).is_err(),
        String::from_utf16_lossy(&bad)
    )?;
    let decoded: Vec<Result<char, u16>> = char::decode_utf16(bad)
        .map(|r| r.map_err(|e| e.unpaired_surrogate()))
        .collect();
    writeln!(out, "{decoded:?}")?;

    writeln!(out, "-- searching and splitting")?;
    let hay = "the quick \u{e9}l\u{e9}phant \u{2014} jumps over the lazy \u{1F415}, the end";
    writeln!(
        out,
        "{:?} {:?} {:?}",
        hay.find("the"),
        hay.rfind("the"),
        hay.find('\u{2014}')
    )?;
    writeln!(out, "{:?}", hay.split_whitespace().collect::<Vec<_>>())?;
    writeln!(
        out,
        "{:?}",
        hay.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::len)
            .collect::<Vec<_>>()
    )?;
    writeln!(out, "{:?}", hay.replace("the", "THE"))?;
    writeln!(
        out,
        "{:?} {:?}",
        hay.split_once('\u{2014}'),
        hay.char_indices().nth(12)
    )?;
    writeln!(out, "{:?}", hay.matches(char::is_lowercase).count())?;
    writeln!(
        out,
        "{} {} {}",
        hay.is_char_boundary(12),
        hay.is_char_boundary(13),
        hay.to_ascii_uppercase()
    )?;
    let mut s = String::from(hay);
    s.retain(|c| !c.is_whitespace());
    s.insert(3, '\u{2603}');
    s.truncate(20);
    writeln!(out, "{s:?} {}", s.len())
}

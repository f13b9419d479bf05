//! Hashing with crates from crates.io: SHA-224/256/384/512 (RustCrypto `sha2`) and CRC-32
//! (`crc32fast`), one-shot and streamed in uneven pieces; and `core::hash` through
//! `#[derive(Hash)]`.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::hash::Hash;

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::util::{Fnv, Rng};

fn hex(out: &mut dyn Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(out, "{b:02x}")?;
    }
    Ok(())
}

fn digests(out: &mut dyn Write, label: &str, data: &[u8]) -> fmt::Result {
    write!(out, "{label} crc32={:08x} sha256=", crc32fast::hash(data))?;
    hex(out, &Sha256::digest(data))?;
    write!(out, " sha512=")?;
    hex(out, &Sha512::digest(data))?;
    writeln!(out)
}

#[derive(Hash)]
struct Key<'a> {
    id: u32,
    name: &'a str,
    tags: [u8; 3],
    parent: Option<u64>,
    weight: i16,
}

pub fn run(out: &mut dyn Write) -> fmt::Result {
    // Published test vectors first, so a failure is easy to tell from a harness problem.
    digests(out, "\"\"", b"")?;
    digests(out, "\"abc\"", b"abc")?;
    write!(out, "sha224(abc)=")?;
    hex(out, &Sha224::digest(b"abc"))?;
    write!(out, " sha384(abc)=")?;
    hex(out, &Sha384::digest(b"abc"))?;
    writeln!(out)?;
    digests(
        out,
        "448-bit",
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    )?;
    writeln!(
        out,
        "crc32(123456789)={:08x}",
        crc32fast::hash(b"123456789")
    )?;

    let mut rng = Rng::new(0x4a54);
    let data: Vec<u8> = (0..12_000).map(|_| rng.next_u32() as u8).collect();
    // Lengths around the 64- and 128-byte block boundaries and the padding cut-offs.
    for len in [
        1usize, 55, 56, 57, 63, 64, 65, 111, 112, 119, 127, 128, 129, 1000, 4096, 10_007, 12_000,
    ] {
        digests(out, &alloc::format!("random[{len}]"), &data[..len])?;
    }

    // Streaming in uneven pieces must equal one-shot.
    let mut sha = Sha256::new();
    let mut sha512 = Sha512::new();
    let mut crc = crc32fast::Hasher::new();
    let mut at = 0;
    let mut piece = 1;
    while at < data.len() {
        let end = (at + piece).min(data.len());
        sha.update(&data[at..end]);
        sha512.update(&data[at..end]);
        crc.update(&data[at..end]);
        at = end;
        piece = piece * 3 % 977 + 1;
    }
    let streamed = sha.finalize();
    writeln!(
        out,
        "streamed equals one-shot: sha256={} sha512={} crc32={}",
        streamed == Sha256::digest(&data),
        sha512.finalize() == Sha512::digest(&data),
        crc.finalize() == crc32fast::hash(&data)
    )?;

    // Hash chains: each digest feeds the next.
    let mut chain = [0u8; 32];
    for _ in 0..200 {
        chain = Sha256::digest(chain).into();
    }
    write!(out, "sha256^200(0)=")?;
    hex(out, &chain)?;
    writeln!(out)?;
    let mut crc_chain = 0u32;
    for i in 0..2000u32 {
        crc_chain = crc32fast::hash(&(crc_chain ^ i).to_le_bytes());
    }
    writeln!(out, "crc32 chain={crc_chain:08x}")?;

    // `derive(Hash)` through a `Hasher`: the bytes fed depend on the field types.
    let mut h = Fnv::new();
    for i in 0..100u32 {
        let key = Key {
            id: i,
            name: ["alpha", "beta", "", "\u{1F600}"][i as usize % 4],
            tags: [i as u8, (i * 7) as u8, 3],
            parent: (i % 3 != 0).then_some(u64::from(i) << 40),
            weight: -(i as i16),
        };
        key.hash(&mut h);
        (i, "t", 'c', true, 1.5f32.to_bits()).hash(&mut h);
    }
    writeln!(out, "derive(Hash) via FNV: {:016x}", h.finish())
}

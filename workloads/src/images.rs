//! The bare-metal images, built from `guests/baremetal` by this crate's build script.
//!
//! `build.rs` runs `cargo build --release` on `guests/baremetal/Cargo.toml` with the images' own
//! flags and target directory (`target/images`, or `$CARGO_TARGET_DIR/images`), copies each
//! program `src/bin/NAME.rs` to `target/images/NAME.elf` — the file to hand to
//! `pvmlab exec` — and embeds it here, so code and tests need no paths:
//!
//! ```
//! let hello = workloads::images::get("hello").expect("hello is built");
//! assert_eq!(&hello[..4], b"\x7fELF");
//! assert!(workloads::images::names().any(|name| name == "smp"));
//! ```
//!
//! A change to the image sources or to `abi/` rebuilds them on the next cargo command; when
//! nothing changed the nested cargo is a no-op.

use std::path::Path;

// Generated: `IMAGES: &[(&str, &[u8], &str)]`, (name, contents, path of the `.elf` copy),
// sorted by name.
include!(concat!(env!("OUT_DIR"), "/images.rs"));

/// Names of all images, sorted.
pub fn names() -> impl ExactSizeIterator<Item = &'static str> + Clone {
    IMAGES.iter().map(|&(name, _, _)| name)
}

/// The ELF file of image `name`, embedded at build time.
pub fn get(name: &str) -> Option<&'static [u8]> {
    IMAGES
        .iter()
        .find(|&&(n, _, _)| n == name)
        .map(|&(_, elf, _)| elf)
}

/// Where the build left image `name` (`target/images/NAME.elf`), as an absolute path.
pub fn path(name: &str) -> Option<&'static Path> {
    IMAGES
        .iter()
        .find(|&&(n, _, _)| n == name)
        .map(|&(_, _, path)| Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_is_a_static_x86_64_executable_on_disk() {
        let names: Vec<_> = names().collect();
        for expected in ["hello", "smp", "bench", "bench-small", "faults", "sort"] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        for name in names {
            let elf = get(name).unwrap();
            assert_eq!(&elf[..4], b"\x7fELF", "{name}");
            assert_eq!(elf[4], 2, "{name}: ELFCLASS64");
            assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 2, "{name}: ET_EXEC");
            assert_eq!(
                u16::from_le_bytes([elf[18], elf[19]]),
                62,
                "{name}: EM_X86_64"
            );
            // Loadable segments sit at their physical addresses inside node 0's 1 MiB–64 MiB
            // (DESIGN.md §3.1).
            let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
            let (phoff, phnum) = (
                u64_at(0x20) as usize,
                u16::from_le_bytes([elf[0x38], elf[0x39]]),
            );
            let mut loads = 0;
            for i in 0..usize::from(phnum) {
                let ph = phoff + i * 56;
                if u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) != 1 {
                    continue;
                }
                loads += 1;
                let (vaddr, paddr, memsz) = (u64_at(ph + 16), u64_at(ph + 24), u64_at(ph + 40));
                assert_eq!(vaddr, paddr, "{name}: segment {i}");
                assert!(
                    paddr >= 1 << 20 && paddr + memsz <= 64 << 20,
                    "{name}: segment {i} at {paddr:#x}"
                );
            }
            assert!(loads > 0, "{name}: no PT_LOAD");
            let on_disk = std::fs::read(path(name).unwrap()).unwrap();
            assert!(
                on_disk == elf,
                "{name}: the .elf copy differs from the embedded image"
            );
        }
        assert!(get("no-such-image").is_none() && path("no-such-image").is_none());
    }
}

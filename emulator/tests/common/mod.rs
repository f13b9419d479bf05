//! Helpers shared by the emulator's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

/// A static ELF64 x86-64 executable with one RWX PT_LOAD segment per `(paddr, bytes)`, each
/// followed by `bss` zero bytes of memory beyond its file contents.
pub fn elf_segments(segs: &[(u64, Vec<u8>)], entry: u64, bss: u64) -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes()); // e_phnum
    for (i, (paddr, bytes)) in segs.iter().enumerate() {
        let offset = f.len() as u64;
        let ph = 0x40 + i * 56;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        f[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes()); // RWX
        f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes()); // p_vaddr
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes()); // p_paddr
        f[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&(bytes.len() as u64 + bss).to_le_bytes());
        f.extend_from_slice(bytes);
        f.resize(f.len().next_multiple_of(0x1000), 0);
    }
    f
}

/// One segment holding `code` at `paddr` (file offset 0x1000), with 0x100 bytes of .bss.
pub fn elf(code: &[u8], paddr: u64, entry: u64) -> Vec<u8> {
    elf_segments(&[(paddr, code.to_vec())], entry, 0x100)
}

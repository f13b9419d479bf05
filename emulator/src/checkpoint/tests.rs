//! Checkpoints: restored runs finish exactly as uninterrupted ones, the file format, and
//! restore's answer to bad input (an error, never a panic).
//!
//! The program here is small and touches what a checkpoint must carry: several cores on two
//! sockets, paging (the loader's tables, so TLB misses walk), memory traffic over a few pages
//! (caches, prefetcher, controller queues), a shared counter updated with `lock add`
//! (coherence across sockets), stores into its own code page (code-page invalidation) and
//! console output. `tests/tests/checkpoint` does the same with the real images.

use super::*;
use iced_x86::code_asm::*;

const BASE: u64 = 0x20_0000;
/// The shared counter, in node 0's RAM away from the image.
const SHARED: u64 = 0x30_0000;

/// A minimal static ELF64 x86-64 executable: one PT_LOAD segment holding `code` at `BASE`.
fn elf(code: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x78];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&BASE.to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = 0x40;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes()); // RWX: it writes its code page
    f[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes()); // p_offset
    f[ph + 16..ph + 24].copy_from_slice(&BASE.to_le_bytes()); // p_vaddr
    f[ph + 24..ph + 32].copy_from_slice(&BASE.to_le_bytes()); // p_paddr
    f[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    f[ph + 40..ph + 48].copy_from_slice(&(code.len() as u64 + 0x100).to_le_bytes());
    f.resize(0x1000, 0);
    f.extend_from_slice(code);
    f
}

/// Each core (index in rsi, its own stack in rsp) loops `iterations` times over 8 KiB below
/// its stack, adds to the shared counter, every 64th time stores into its code page, every
/// 256th prints its digit; then halts with interrupts off (the run ends once all have).
fn program(iterations: u32) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    let mut no_store = a.create_label();
    let mut no_print = a.create_label();
    let mut data = a.create_label();
    a.mov(ecx, iterations).unwrap();
    a.lea(r8d, dword_ptr(rsi + 0x30)).unwrap();
    a.mov(r9, SHARED).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(eax, ecx).unwrap();
    a.and(eax, 1023).unwrap();
    a.shl(eax, 3).unwrap();
    a.mov(rdx, rsp).unwrap();
    a.sub(rdx, 16384).unwrap();
    a.add(rdx, rax).unwrap();
    a.add(qword_ptr(rdx), rcx).unwrap();
    a.lock().add(qword_ptr(r9), 1).unwrap();
    a.test(ecx, 63).unwrap();
    a.jnz(no_store).unwrap();
    a.mov(dword_ptr(data), ecx).unwrap();
    a.set_label(&mut no_store).unwrap();
    a.test(ecx, 255).unwrap();
    a.jnz(no_print).unwrap();
    a.mov(eax, r8d).unwrap();
    a.out(0xE9, al).unwrap();
    a.set_label(&mut no_print).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut data).unwrap();
    a.dq(&[0]).unwrap();
    a.assemble(BASE).unwrap()
}

fn machine(preset: &str, timing: bool, iterations: u32) -> Machine {
    let mut m = Machine::new(&MachineDesc::load(preset).unwrap()).unwrap();
    if timing {
        m.enable_timing();
    }
    m.load_elf(&elf(&program(iterations)), false, "").unwrap();
    m
}

/// Asserts `a == b` without printing megabytes when they differ.
fn same_bytes(a: &[u8], b: &[u8], what: &str) {
    if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("{what}: differs at byte {at} of {}", a.len());
    }
    assert_eq!(a.len(), b.len(), "{what}: lengths");
}

/// What a finished run shows.
#[derive(Debug, PartialEq)]
struct Finish {
    console: Vec<u8>,
    end: RunEnd,
    instructions: u64,
    cycles: u64,
    state_hash: u64,
    report: crate::stats::Report,
    blocks: (u64, u64),
    samples: Vec<crate::stats::Sample>,
}

fn finish(m: &mut Machine, mut console: Vec<u8>) -> (Finish, Vec<u8>) {
    let end = m.run_for(u64::MAX, None).expect("the run ends");
    console.append(&mut m.sys.io.console);
    let f = Finish {
        console,
        end,
        instructions: m.instructions,
        cycles: m.cycles(),
        state_hash: m.state_hash(),
        report: m.report(0.0),
        blocks: (m.cache.decoded_blocks, m.cache.invalidated_blocks),
        samples: m.samples.samples.iter().cloned().collect(),
    };
    (f, m.checkpoint())
}

/// Checkpoints at several simulated times; each restored run must finish exactly as the
/// uninterrupted one, down to a byte-identical final checkpoint (the whole machine state).
fn restored_runs_continue_exactly(preset: &str, timing: bool) {
    let (reference, last) = finish(&mut machine(preset, timing, 3000), Vec::new());
    assert_eq!(reference.end, RunEnd::AllHalted);
    assert!(reference.console.len() > 10, "{:?}", reference.console);
    assert!(reference.blocks.1 > 0, "the program invalidates its code");
    let total = reference.cycles;
    for at in [
        0,
        1,
        total / 9,
        total / 3,
        total / 2,
        total * 7 / 8,
        total + 1,
    ] {
        let mut m = machine(preset, timing, 3000);
        m.run_until_cycle(at, None);
        assert!(m.now() >= at || m.end().is_some());
        let console = std::mem::take(&mut m.sys.io.console);
        let bytes = m.checkpoint();
        let mut r = Machine::restore(&bytes).unwrap_or_else(|e| panic!("restore at {at}: {e}"));
        same_bytes(
            &r.checkpoint(),
            &bytes,
            &format!("a restored machine's checkpoint ({at})"),
        );
        let (restored, restored_last) = finish(&mut r, console.clone());
        assert_eq!(
            restored, reference,
            "{preset}, timing {timing}, checkpoint at {at}"
        );
        same_bytes(&restored_last, &last, &format!("the final state ({at})"));
        // The machine checkpointed from goes on undisturbed.
        let (original, _) = finish(&mut m, console);
        assert_eq!(original, reference);
    }
}

#[test]
fn restored_runs_continue_exactly_functional() {
    restored_runs_continue_exactly("2s", false);
}

#[test]
fn restored_runs_continue_exactly_with_timing() {
    restored_runs_continue_exactly("2s", true);
    restored_runs_continue_exactly("1s", true);
}

#[test]
fn the_console_not_yet_taken_is_part_of_the_checkpoint() {
    let mut m = machine("1s", false, 3000);
    m.run_until_cycle(50_000, None);
    assert!(!m.sys.io.console.is_empty());
    let r = Machine::restore(&m.checkpoint()).unwrap();
    assert_eq!(r.sys.io.console, m.sys.io.console);
}

#[test]
fn run_until_cycle_stops_at_the_first_quantum_boundary_at_or_after() {
    let mut m = machine("2s", true, 3000);
    assert_eq!(m.run_until_cycle(40_000, None), None);
    let now = m.now();
    assert!(now >= 40_000, "{now}");
    assert!(now < 40_000 + crate::machine::QUANTUM_CYCLES * 2, "{now}");
    // Already there: no step.
    let instructions = m.instructions;
    m.run_until_cycle(40_000, None);
    assert_eq!(m.instructions, instructions);
}

#[test]
fn a_checkpoint_of_an_ended_run_restores_ended() {
    let mut m = machine("1s", false, 100);
    let end = m.run_for(u64::MAX, None).unwrap();
    let r = Machine::restore(&m.checkpoint()).unwrap();
    assert_eq!(r.end(), Some(&end));
    assert_eq!(r.state_hash(), m.state_hash());
}

// ---- format and bad input ------------------------------------------------------------------

/// A small machine: one core, 64 MiB, small caches.
const SMALL: &str = "MachineDesc(name: \"small\", frequency_mhz: 1000, sockets: [SocketDesc(cores: 1, \
     l1d: CacheDesc(size_kib: 4, ways: 2, latency: 2), l2: CacheDesc(size_kib: 8, ways: 2, \
     latency: 8), llc: CacheDesc(size_kib: 16, ways: 4, latency: 20), memory: MemoryDesc(\
     size_mib: 64, channels: 1, bandwidth_gbs: 10.0, latency_ns: 50.0))])";

/// A small checkpoint of a run in progress (timing on).
fn small() -> Vec<u8> {
    let desc = MachineDesc::parse(SMALL, "test").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.enable_timing();
    m.load_elf(&elf(&program(40)), false, "").unwrap();
    m.run_until_cycle(3000, None);
    assert!(m.end().is_none());
    m.checkpoint()
}

fn sections(bytes: &[u8]) -> (Header, &[u8], &[u8], &[u8]) {
    let h = Header::parse(bytes, bytes.len() as u64).unwrap();
    let (d, rest) = bytes[HEADER_LEN..].split_at(h.desc_len as usize);
    let (s, m) = rest.split_at(h.state_len as usize);
    (h, d, s, m)
}

/// A checkpoint of the given sections, with correct lengths and checksums.
fn assemble(ram_bytes: u64, desc: &[u8], state: &[u8], mem: &[u8]) -> Vec<u8> {
    let payload = [desc, state, mem].concat();
    let h = Header {
        ram_bytes,
        desc_len: desc.len() as u64,
        state_len: state.len() as u64,
        mem_len: mem.len() as u64,
        checksum: xxh3_64(&payload),
    };
    [&h.encode()[..], &payload].concat()
}

fn error(bytes: &[u8]) -> String {
    match Machine::restore(bytes) {
        Ok(_) => panic!("restored"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn checkpoints_round_trip_and_describe_their_sections() {
    let bytes = small();
    assert_eq!(&bytes[..8], b"PVMLABCK");
    let (h, desc, _, mem) = sections(&bytes);
    let small = MachineDesc::parse(SMALL, "test").unwrap();
    let ram: u64 = small.ram_layout().iter().map(|r| r.len).sum();
    assert_eq!(h.ram_bytes, ram);
    let desc = MachineDesc::parse(std::str::from_utf8(desc).unwrap(), "test").unwrap();
    assert_eq!(desc, MachineDesc::parse(SMALL, "test").unwrap());
    assert_eq!(mem.len() as u64 % RECORD_LEN, 0);
    assert!(!mem.is_empty());
    let m = Machine::restore(&bytes).unwrap();
    assert!(m.timing_enabled());
    same_bytes(&m.checkpoint(), &bytes, "round trip");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let good = small();
    assert_eq!(error(b""), "not a pvmlab checkpoint");
    assert_eq!(
        error(b"\x7fELF\x02\x01\x01\0\0\0\0\0"),
        "not a pvmlab checkpoint"
    );
    assert!(error(b"PVML").starts_with("truncated checkpoint: 4 bytes of 64"));

    let mut newer = good.clone();
    let other = FORMAT_VERSION + 1;
    newer[8..12].copy_from_slice(&other.to_le_bytes());
    assert_eq!(
        error(&newer),
        format!("checkpoint format v{other}, this pvmlab reads v{FORMAT_VERSION}")
    );

    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(error(&flipped), "corrupt checkpoint: checksum mismatch");
    let mut header = good.clone();
    header[30] ^= 4;
    assert_eq!(
        error(&header),
        "corrupt checkpoint: header checksum mismatch"
    );

    let cut = &good[..good.len() - 100];
    assert_eq!(
        error(cut),
        format!(
            "truncated checkpoint: {} bytes of {}",
            cut.len(),
            good.len()
        )
    );
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(error(&longer), "corrupt checkpoint: 1 bytes after the end");

    let (h, desc, state, mem) = sections(&good);
    // The header claims more than the machine's RAM + 1 GiB.
    let mut huge = h;
    huge.state_len = 2 << 30;
    let e = error(&huge.encode());
    assert!(
        e.starts_with("checkpoint of ") && e.contains("over the limit"),
        "{e}"
    );

    let bad_desc = SMALL.replace("frequency_mhz: 1000", "frequency_mhz: 0");
    let e = Machine::restore(&assemble(h.ram_bytes, bad_desc.as_bytes(), state, mem))
        .err()
        .expect("an error");
    assert_eq!(
        e.to_string(),
        "the checkpoint's machine description is invalid"
    );
    assert!(matches!(e, CheckpointError::Description(_)));
    let other = SMALL.replace("size_mib: 64", "size_mib: 128");
    let e = error(&assemble(h.ram_bytes, other.as_bytes(), state, mem));
    assert!(e.contains("the header says"), "{e}");

    let ranges = MachineDesc::parse(SMALL, "test").unwrap().ram_layout();
    let end = ranges.iter().map(|r| r.end()).max().unwrap();
    // Below RAM (the hole at 0), unaligned, at its end, at the top of the address space.
    for addr in [0u64, ranges[0].base + 0x10, end, !0xFFF] {
        let mut page = mem[..RECORD_LEN as usize].to_vec();
        page[..8].copy_from_slice(&addr.to_le_bytes());
        assert_eq!(
            error(&assemble(h.ram_bytes, desc, state, &page)),
            format!("the checkpoint holds a page at {addr:#x}, outside the machine's RAM")
        );
    }
    let twice = [&mem[..RECORD_LEN as usize], &mem[..RECORD_LEN as usize]].concat();
    assert_eq!(
        error(&assemble(h.ram_bytes, desc, state, &twice)),
        "corrupt checkpoint: memory pages out of order"
    );
    let e = error(&assemble(h.ram_bytes, desc, &state[..state.len() - 1], mem));
    assert!(
        e.starts_with("corrupt checkpoint: the state section"),
        "{e}"
    );
    // A state for another machine: the 2s preset's description with this one's state.
    let two = ron::to_string(&MachineDesc::load("2s").unwrap()).unwrap();
    let ram2: u64 = MachineDesc::load("2s")
        .unwrap()
        .ram_layout()
        .iter()
        .map(|r| r.len)
        .sum();
    let e = error(&assemble(ram2, two.as_bytes(), state, mem));
    assert!(
        e.starts_with("the checkpoint does not fit its machine"),
        "{e}"
    );
}

#[test]
fn files_round_trip_and_oversized_files_are_refused_before_reading() {
    let dir = std::env::temp_dir().join(format!("pvmlab-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let desc = MachineDesc::parse(SMALL, "test").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&elf(&program(40)), false, "").unwrap();
    m.run_until_cycle(2000, None);
    let path = dir.join("a.ck");
    m.save_checkpoint(&path).unwrap();
    assert!(!dir.join("a.ck.tmp").exists());
    let r = Machine::restore_file(&path).unwrap();
    same_bytes(&r.checkpoint(), &m.checkpoint(), "through a file");

    // A sparse file far over the limit, with a valid header: refused from its size alone.
    let big = dir.join("big.ck");
    let good = m.checkpoint();
    std::fs::write(&big, &good[..HEADER_LEN]).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len(8 << 30).unwrap();
    let e = Machine::restore_file(&big).err().expect("an error");
    assert!(
        matches!(e, CheckpointError::TooLarge { len, .. } if len == 8 << 30),
        "{e}"
    );

    let e = Machine::restore_file(&dir.join("missing.ck"))
        .err()
        .expect("an error");
    assert!(matches!(e, CheckpointError::Read(_)), "{e}");
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(
        Machine::restore_file(&path),
        Err(CheckpointError::NotACheckpoint)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// xorshift64*: a fixed, seeded sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn no_input_makes_restore_panic() {
    let good = small();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Random bytes, with and without the magic and version in front.
    for i in 0..2000 {
        let n = rng.below(200);
        let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if i % 2 == 1 && n >= 12 {
            b[..8].copy_from_slice(&MAGIC);
            b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        }
        assert!(Machine::restore(&b).is_err());
    }
    // Every truncation.
    for len in 0..good.len() {
        assert!(
            Machine::restore(&good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Bit flips: every bit of the header, and bits all over the sections.
    for bit in (0..HEADER_LEN * 8).chain((HEADER_LEN * 8..good.len() * 8).step_by(61)) {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(Machine::restore(&b).is_err(), "bit {bit} flipped");
    }
    // Damage behind a valid checksum (what a forged file could hold): sections edited and
    // the checksums made to match. Restore may accept some edits; it must never panic.
    let (h, desc, state, mem) = sections(&good);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut parts = [desc.to_vec(), state.to_vec(), mem.to_vec()];
        let which = match rng.below(10) {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        let part = &mut parts[which];
        for _ in 0..1 + rng.below(3) {
            if part.is_empty() {
                break;
            }
            let at = rng.below(part.len());
            match rng.below(4) {
                0 => part[at] ^= 1 << rng.below(8),
                1 => part[at] = rng.next() as u8,
                2 => part[at] = [0, 0x7F, 0x80, 0xFF][rng.below(4)],
                _ => part.truncate(at),
            }
        }
        let b = assemble(h.ram_bytes, &parts[0], &parts[1], &parts[2]);
        if Machine::restore(&b).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted < 3000, "some edits are caught");
}

/// postcard's encoding has no field names: a change to any saved type changes the format.
/// This pins the encoding of a fresh machine's state; when it changes, checkpoints of older
/// builds no longer read right, so bump `FORMAT_VERSION` if such files may exist, and update
/// the hash here.
#[test]
fn layout_is_pinned() {
    let desc = MachineDesc::parse(SMALL, "test").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.enable_timing();
    let bytes = m.checkpoint();
    let (_, _, state, _) = sections(&bytes);
    assert_eq!(
        (FORMAT_VERSION, xxh3_64(state)),
        (2, 0x71b1_cde0_7b79_1f32),
        "the checkpoint state layout changed: bump FORMAT_VERSION if checkpoints of \
         earlier builds must be refused, then update this hash"
    );
}

/// The same serde layout as `CodeCacheState` and `TlbState`, to forge them.
#[derive(Serialize)]
struct ForgedBlock {
    start: u64,
    phys: u64,
    phys_next: Option<u64>,
    len: u32,
    pages: Vec<u64>,
}

#[derive(Serialize)]
struct ForgedCache {
    blocks: Vec<Option<ForgedBlock>>,
    free: Vec<u32>,
    by_page: Vec<(u64, Vec<u32>)>,
    decoded_blocks: u64,
    invalidated_blocks: u64,
}

#[derive(Serialize)]
struct ForgedTlb {
    mode: u64,
    read: Vec<(u16, u64, u64)>,
    write: Vec<(u16, u64, u64)>,
}

/// Forged code-cache and TLB states (what a file with a matching checksum could hold) are
/// refused or rebuilt, never a panic: blocks outside RAM, empty or overlong, ids out of range,
/// TLB entries in the wrong slot or mapping no RAM.
#[test]
fn forged_caches_are_refused() {
    use crate::cpu::decode::CodeCacheState;
    use crate::cpu::tlb::{SoftTlb, TlbState};
    let desc = MachineDesc::parse(SMALL, "test").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    let code = program(10);
    m.sys.ram.write(BASE, &code).unwrap();
    let block = |start: u64, phys: u64, phys_next, len| {
        Some(ForgedBlock {
            start,
            phys,
            phys_next,
            len,
            pages: vec![phys / PAGE_SIZE],
        })
    };
    let cache = |blocks, free, by_page| ForgedCache {
        blocks,
        free,
        by_page,
        decoded_blocks: 1,
        invalidated_blocks: 0,
    };
    let ok = cache(
        vec![block(BASE, BASE, None, 3)],
        vec![],
        vec![(BASE / PAGE_SIZE, vec![0])],
    );
    let cases = [
        cache(vec![block(BASE, u64::MAX - 8, None, 3)], vec![], vec![]),
        cache(vec![block(BASE, BASE, Some(!0xFFFu64), 3)], vec![], vec![]),
        cache(vec![block(BASE, BASE, None, 0)], vec![], vec![]),
        cache(vec![block(BASE, BASE, None, 65)], vec![], vec![]),
        cache(vec![block(BASE, BASE, None, 10_000)], vec![], vec![]),
        cache(vec![block(BASE + 1, BASE, None, 3)], vec![], vec![]),
        cache(vec![block(BASE, BASE, None, 3)], vec![7], vec![]),
        cache(vec![block(BASE, BASE, None, 3)], vec![0], vec![]),
        cache(vec![None, None], vec![1, 1], vec![]),
        cache(vec![None], vec![], vec![]),
        cache(vec![block(BASE, BASE, None, 3)], vec![], vec![(1, vec![5])]),
        cache(
            vec![block(BASE, BASE, None, 3)],
            vec![],
            vec![(1, vec![]), (1, vec![])],
        ),
        cache(
            vec![block(BASE, BASE, None, 3), block(BASE, BASE, None, 3)],
            vec![],
            vec![],
        ),
    ];
    let state: CodeCacheState = postcard::from_bytes(&postcard::to_stdvec(&ok).unwrap()).unwrap();
    assert!(CodeCache::restore(&m.sys.ram, state).is_ok());
    for (i, c) in cases.iter().enumerate() {
        let state: CodeCacheState = postcard::from_bytes(&postcard::to_stdvec(c).unwrap()).unwrap();
        assert!(CodeCache::restore(&m.sys.ram, state).is_err(), "case {i}");
    }

    let tlb = |mode, read: Vec<(u16, u64, u64)>| ForgedTlb {
        mode,
        read,
        write: vec![],
    };
    let page = BASE / PAGE_SIZE;
    let slot = (page % 256) as u16;
    let state: TlbState =
        postcard::from_bytes(&postcard::to_stdvec(&tlb(0, vec![(slot, page, BASE)])).unwrap())
            .unwrap();
    assert!(SoftTlb::from_state(&state, &mut m.sys.ram).is_ok());
    for (i, t) in [
        tlb(5, vec![]),
        tlb(0, vec![(300, page, BASE)]),
        tlb(0, vec![(slot + 1, page, BASE)]),
        tlb(0, vec![(slot, page, BASE + 8)]),
        tlb(0, vec![(slot, page, 0)]),
        tlb(0, vec![(slot, page, !0xFFFu64)]),
        tlb(0, vec![(0, u64::MAX, BASE)]),
    ]
    .iter()
    .enumerate()
    {
        let state: TlbState = postcard::from_bytes(&postcard::to_stdvec(t).unwrap()).unwrap();
        assert!(
            SoftTlb::from_state(&state, &mut m.sys.ram).is_err(),
            "TLB case {i}"
        );
    }
}

/// Baselines that later counters are subtracted from — a core's counters when it last
/// announced a domain, the statistics ring's last sample — may not be ahead of the counters
/// they are subtracted from: a forged checkpoint holding one is refused, not run into an
/// underflow.
#[test]
fn counter_baselines_ahead_of_the_counters_are_refused() {
    let mut m = machine("2s", true, 2000);
    assert_eq!(m.run_for(50_000, None), None);
    assert!(Machine::restore(&m.checkpoint()).is_ok());

    let mut ahead = m.cores[0].domain_counters(&m.sys);
    ahead.instructions += 1;
    let mut d = m.checkpoint();
    let mut forged = Machine::restore(&d).unwrap();
    forged.sys.domains.switch(0, 1, 0, ahead);
    d = forged.checkpoint();
    let e = error(&d);
    assert!(e.contains("domain baseline is ahead"), "{e}");

    while m.run_for(u64::MAX, None).is_none() {}
    assert!(m.samples.next_epoch > 0, "the run sampled an epoch");
    let mut forged = Machine::restore(&m.checkpoint()).unwrap();
    forged.instructions = 0;
    let e = error(&forged.checkpoint());
    assert!(e.contains("statistics ring"), "{e}");
}

//! The bare-metal boot contract of DESIGN.md §3.1: where the image lands, what every core
//! sees at entry, BootInfo v1 byte for byte, and a clear error for every malformed image.

use abi::boot::{self, BootInfo, CoreInfo, MemRange};
use emulator::loader::{LoadError, STACK_SIZE};
use emulator::memory::Bytes;
use emulator::{Machine, MachineDesc, MachineError, RunConfig, RunEnd, run_image};

mod common;
use common::elf;

/// `mov eax, 7; out 0xF4, eax`
const EXIT7: &[u8] = &[0xB8, 7, 0, 0, 0, 0xE7, 0xF4];

fn read<T: Copy + Default>(m: &Machine, addr: u64) -> T {
    let mut buf = vec![0u8; size_of::<T>()];
    m.sys.ram.read(addr, &mut buf).expect("address in RAM");
    let mut v = T::default();
    // SAFETY: T is a plain repr(C) ABI struct or integer; any bytes are a valid value.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), &mut v as *mut T as *mut u8, buf.len()) };
    v
}

#[test]
fn every_core_starts_at_the_entry_with_bootinfo_and_its_own_stack() {
    let desc = MachineDesc::load("2s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&elf(EXIT7, 0x20_0000, 0x20_0000), false, "hello=1")
        .unwrap();
    let info_addr = m.cores[0].gpr[7];
    let ranges = desc.ram_layout();
    for (i, c) in m.cores.iter().enumerate() {
        assert_eq!(c.rip, 0x20_0000);
        assert_eq!(c.gpr[7], info_addr, "rdi = BootInfo");
        assert_eq!(c.gpr[6], i as u64, "rsi = core index");
        let top = c.gpr[4] + 8;
        assert_eq!(
            top % 16,
            0,
            "rsp + 8 is 16-byte aligned (SysV, as if called)"
        );
        let node = ranges.iter().find(|r| r.contains(c.gpr[4])).unwrap().node;
        assert_eq!(node, c.node, "core {i}'s stack is on its own node");
        for (k, &g) in c.gpr.iter().enumerate() {
            if ![4, 6, 7].contains(&k) {
                assert_eq!(g, 0, "core {i} register {k} is zero");
            }
        }
        assert_eq!(c.rflags & (1 << 9), 0, "interrupts off");
    }
    // Stacks are 64 KiB apart and do not overlap.
    let mut tops: Vec<u64> = m.cores.iter().map(|c| c.gpr[4] + 8).collect();
    tops.sort();
    for w in tops.windows(2) {
        assert!(
            w[1] - w[0] >= STACK_SIZE
                || ranges
                    .iter()
                    .any(|r| r.contains(w[0] - 1) != r.contains(w[1] - 1))
        );
    }

    let info: BootInfo = read(&m, info_addr);
    assert_eq!(info.magic, u64::from_le_bytes(*b"PVMLAB01"));
    assert_eq!(info.version, 1);
    assert_eq!(info.size, 0x58);
    assert_eq!(info.tsc_hz, desc.frequency_mhz as u64 * 1_000_000);
    assert_eq!((info.ncores, info.nnodes), (8, 2));
    for i in 0..8u64 {
        let ci: CoreInfo = read(&m, info.cores + i * 16);
        assert_eq!(ci.socket, i as u32 / 4);
        assert_eq!(ci.node, i as u32 / 4);
        assert_eq!(ci.apic_id, m.cores[i as usize].apic_id);
    }
    let mut cmd = vec![0u8; info.cmdline_len as usize];
    m.sys.ram.read(info.cmdline, &mut cmd).unwrap();
    assert_eq!(cmd, b"hello=1");
    let mut dist = [0u8; 4];
    m.sys.ram.read(info.distances, &mut dist).unwrap();
    assert_eq!(dist, [10, 21, 21, 10]);

    // The memory map covers both nodes' RAM exactly, in order, without overlap, and marks
    // the image, the loader's tables and the stacks as kind 2.
    let map: Vec<MemRange> = (0..info.nranges as u64)
        .map(|i| read(&m, info.ranges + i * 24))
        .collect();
    for w in map.windows(2) {
        assert!(w[0].base + w[0].len <= w[1].base);
    }
    for r in &ranges {
        let covered: u64 = map
            .iter()
            .filter(|x| x.node == r.node && x.kind != boot::MEM_MMIO)
            .map(|x| x.len)
            .sum();
        assert_eq!(covered, r.len, "node {} fully described", r.node);
    }
    let kind_at = |a: u64| {
        map.iter()
            .find(|x| a >= x.base && a < x.base + x.len)
            .map(|x| x.kind)
    };
    assert_eq!(kind_at(0x20_0000), Some(boot::MEM_LOADER), "the image");
    assert_eq!(kind_at(info_addr), Some(boot::MEM_LOADER), "BootInfo");
    assert_eq!(
        kind_at(m.cores[5].gpr[4]),
        Some(boot::MEM_LOADER),
        "a stack on node 1"
    );
    assert_eq!(kind_at(0x40_0000), Some(boot::MEM_USABLE));
    assert!(ranges[0].base <= 1 << 20 && ranges[0].end() >= 64 << 20);

    // Identity paging: CR3 points at a PML4 whose walk maps the entry address to itself.
    let cr3 = m.cores[0].cr3;
    let pml4e: u64 = read(&m, cr3);
    let pdpte: u64 = read(&m, pml4e & !0xFFF);
    let pde: u64 = read(&m, (pdpte & !0xFFF) + 8); // 0x20_0000 is PD entry 1
    assert_eq!(pde & 0x81, 0x81, "present 2 MiB page");
    assert_eq!(pde & !0xFFF & !0x80, 0x20_0000);
}

#[test]
fn image_runs_and_exits_through_the_exit_port() {
    let o = run_image(
        &elf(EXIT7, 0x20_0000, 0x20_0000),
        &RunConfig {
            bsp_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(o.end, RunEnd::Exit(7));
    assert_eq!(o.end.exit_status(), 7);
    assert_eq!(o.instructions, 2);
}

#[test]
fn bss_is_zero_and_the_memory_is_written_where_asked() {
    let desc = MachineDesc::load("1s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&elf(EXIT7, 0x30_0000, 0x30_0000), true, "")
        .unwrap();
    let mut b = [0u8; 7];
    m.sys
        .ram
        .bytes()
        .read_slice(&mut b, emulator::memory::GuestAddress(0x30_0000))
        .unwrap();
    assert_eq!(b, EXIT7);
    let bss: [u8; 16] = read(&m, 0x30_0000 + 7);
    assert_eq!(bss, [0; 16]);
}

fn load_err(image: &[u8]) -> LoadError {
    let mut m = Machine::new(&MachineDesc::load("1s").unwrap()).unwrap();
    match m.load_elf(image, false, "") {
        Err(MachineError::Load(e)) => e,
        other => panic!("expected a load error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn malformed_images_get_clear_errors() {
    let good = elf(EXIT7, 0x20_0000, 0x20_0000);
    assert!(matches!(load_err(b""), LoadError::Elf(_)));
    assert!(matches!(load_err(b"#!/bin/sh\n"), LoadError::Elf(_)));
    // Truncated anywhere: header, program headers, segment data.
    for len in [4, 20, 63, 0x50, 0x77, 0x1003] {
        let e = load_err(&good[..len]);
        assert!(!e.to_string().is_empty(), "{len}: {e}");
    }
    assert!(matches!(
        load_err(&good[..0x1003]),
        LoadError::Truncated { .. }
    ));
    let mut bad = good.clone();
    bad[4] = 1; // ELFCLASS32
    assert!(matches!(load_err(&bad), LoadError::NotX86_64(_)));
    let mut bad = good.clone();
    bad[18] = 40; // EM_ARM
    assert!(matches!(load_err(&bad), LoadError::NotX86_64(_)));
    let mut bad = good.clone();
    bad[16] = 3; // ET_DYN
    assert!(matches!(load_err(&bad), LoadError::NotStatic(_)));
    let mut bad = good.clone();
    bad[0x40] = 2; // PT_DYNAMIC: no loadable segment left
    assert!(matches!(load_err(&bad), LoadError::NoSegments));
    // Segments outside RAM, in the hole below 1 MiB, over the loader's area.
    assert!(matches!(
        load_err(&elf(EXIT7, 0x1000, 0x1000)),
        LoadError::OutsideRam { .. }
    ));
    assert!(matches!(
        load_err(&elf(EXIT7, 1 << 40, 1 << 40)),
        LoadError::OutsideRam { .. }
    ));
    assert!(matches!(
        load_err(&elf(EXIT7, u64::MAX - 3, u64::MAX - 3)),
        LoadError::OutsideRam { .. }
    ));
    let top = MachineDesc::load("1s").unwrap().ram_layout()[0].end();
    assert!(matches!(
        load_err(&elf(EXIT7, top - 0x1000, top - 0x1000)),
        LoadError::OverlapsLoader { .. }
    ));
    assert!(matches!(
        load_err(&elf(EXIT7, 0x20_0000, 0x10_0000)),
        LoadError::EntryOutside { .. }
    ));
    let mut bad = good.clone();
    bad[0x60..0x68].copy_from_slice(&u64::MAX.to_le_bytes()); // p_filesz > p_memsz
    assert!(matches!(load_err(&bad), LoadError::FileSizeTooLarge { .. }));
}

#[test]
fn faults_end_the_run_with_a_report() {
    // ud2
    let o = run_image(
        &elf(&[0x0F, 0x0B], 0x20_0000, 0x20_0000),
        &RunConfig::default(),
    )
    .unwrap();
    let RunEnd::Fault {
        vector,
        rip,
        report,
    } = &o.end
    else {
        panic!("{:?}", o.end)
    };
    assert_eq!((*vector, *rip), (6, 0x20_0000));
    assert!(
        report.contains("#UD") && report.contains("ud2") && report.contains("rax"),
        "{report}"
    );
    assert_eq!(
        o.end.exit_status(),
        emulator::machine::status::INVALID_OPCODE
    );
    // An x87 instruction is valid but not implemented: reported as such.
    let o = run_image(
        &elf(&[0xD9, 0xE8], 0x20_0000, 0x20_0000),
        &RunConfig::default(),
    )
    .unwrap();
    let RunEnd::Fault { report, .. } = &o.end else {
        panic!("{:?}", o.end)
    };
    assert!(
        report.contains("not implemented") && report.contains("fld1"),
        "{report}"
    );
    assert_eq!(
        o.end.exit_status(),
        emulator::machine::status::UNSUPPORTED_INSTRUCTION
    );
    // A load from the unmapped hole below 1 MiB: #PF with CR2.
    let o = run_image(
        &elf(
            &[0x48, 0x8B, 0x04, 0x25, 0x10, 0, 0, 0],
            0x20_0000,
            0x20_0000,
        ),
        &RunConfig::default(),
    )
    .unwrap();
    let RunEnd::Fault { vector, report, .. } = &o.end else {
        panic!("{:?}", o.end)
    };
    assert_eq!(*vector, 14);
    assert!(report.contains("cr2 0x0000000000000010"), "{report}");
    // Running off the end of RAM-backed code into zeroed bytes is fine; a jump to a
    // non-canonical address is a #GP.
    let o = run_image(
        &elf(
            &[0x48, 0xB8, 0, 0, 0, 0, 0, 0x80, 0, 0, 0xFF, 0xE0],
            0x20_0000,
            0x20_0000,
        ),
        &RunConfig::default(),
    )
    .unwrap();
    assert!(
        matches!(o.end, RunEnd::Fault { vector: 13, .. }),
        "{:?}",
        o.end
    );
}

#[test]
fn hlt_with_interrupts_off_stops_and_the_run_ends_when_all_have() {
    let o = run_image(
        &elf(&[0xF4], 0x20_0000, 0x20_0000),
        &RunConfig {
            machine: "2s".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(o.end, RunEnd::AllHalted);
    assert_eq!(o.instructions, 8, "every core ran its hlt");
}

#[test]
fn instruction_limit_ends_a_spinning_run() {
    // jmp $
    let o = run_image(
        &elf(&[0xEB, 0xFE], 0x20_0000, 0x20_0000),
        &RunConfig {
            machine: "2s".into(),
            max_instructions: Some(12_345),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(o.end, RunEnd::InstructionLimit);
    assert_eq!(o.instructions, 12_345);
}

#[test]
fn self_modifying_code_is_seen() {
    // mov byte [rip+1], 0x09 ; mov eax, 0x01 (patched to 0x09 before it runs) ; out 0xF4, eax
    // The store targets the immediate of the *next* instruction, in the same block.
    let code = [
        0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x09, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xE7, 0xF4,
    ];
    let o = run_image(
        &elf(&code, 0x20_0000, 0x20_0000),
        &RunConfig {
            bsp_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(o.end, RunEnd::Exit(9));
}

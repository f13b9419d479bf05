//! Bare-metal boot (DESIGN.md §3.1): places a static ELF64 image at its physical addresses,
//! builds identity page tables, a flat GDT, per-core stacks on each core's own node and
//! BootInfo v1, and sets every core at the entry point.

use crate::cpu::{Core, RDI, RSI, RSP, RunState, TableReg};
use crate::desc::MachineDesc;
use crate::memory::{PAGE_SIZE, Ram, RamRange};
use abi::boot::{self, BootInfo, CoreInfo, MemRange};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// Each core's stack.
pub const STACK_SIZE: u64 = 64 << 10;
/// Room for BootInfo, its arrays, the GDT and the page tables, at the top of node 0.
const MIB2: u64 = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid ELF file: {0}")]
    Elf(String),
    #[error("the ELF file is not a 64-bit little-endian x86-64 executable ({0})")]
    NotX86_64(&'static str),
    #[error("the ELF file is {0}, but pvmlab runs static executables (ET_EXEC)")]
    NotStatic(&'static str),
    #[error("the ELF file has no PT_LOAD segment")]
    NoSegments,
    #[error(
        "segment {index} ({len:#x} bytes at physical {paddr:#x}) is not inside node 0 RAM {ram_start:#x}..{ram_end:#x}"
    )]
    OutsideRam {
        index: usize,
        paddr: u64,
        len: u64,
        ram_start: u64,
        ram_end: u64,
    },
    #[error(
        "segment {index} ({len:#x} bytes at physical {paddr:#x}) overlaps the loader's area {area_start:#x}..{area_end:#x} at the top of node 0"
    )]
    OverlapsLoader {
        index: usize,
        paddr: u64,
        len: u64,
        area_start: u64,
        area_end: u64,
    },
    #[error("segment {index} and segment {other} overlap")]
    Overlap { index: usize, other: usize },
    #[error("segment {index} has file size {filesz:#x} larger than its memory size {memsz:#x}")]
    FileSizeTooLarge {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    #[error(
        "segment {index} claims file bytes {offset:#x}..{end:#x}, past the end of the file ({file_len:#x} bytes)"
    )]
    Truncated {
        index: usize,
        offset: u64,
        end: u64,
        file_len: u64,
    },
    #[error("the entry point {entry:#x} is not inside any loaded segment")]
    EntryOutside { entry: u64 },
    #[error("the command line is {0} bytes; at most 64 KiB fit")]
    CmdlineTooLong(usize),
    #[error("node {node} has {len:#x} bytes of RAM, too little for its {cores} cores' stacks")]
    NodeTooSmall { node: u32, len: u64, cores: u32 },
}

/// A validated PT_LOAD segment.
struct Segment<'a> {
    /// Index in the program header table, for error messages.
    index: usize,
    paddr: u64,
    memsz: u64,
    data: &'a [u8],
}

fn parse(image: &[u8]) -> Result<(u64, Vec<Segment<'_>>), LoadError> {
    if image.len() < 4 || &image[..4] != b"\x7fELF" {
        return Err(LoadError::Elf("missing ELF magic".into()));
    }
    if image.len() < 5 || image[4] != 2
    /* ELFCLASS64 */
    {
        return Err(LoadError::NotX86_64("not ELFCLASS64"));
    }
    let header = elf::FileHeader64::<object::LittleEndian>::parse(image)
        .map_err(|e| LoadError::Elf(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|_| LoadError::NotX86_64("not little-endian"))?;
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(LoadError::NotX86_64("e_machine is not EM_X86_64"));
    }
    match header.e_type(endian) {
        elf::ET_EXEC => {}
        elf::ET_DYN => return Err(LoadError::NotStatic("position-independent (ET_DYN)")),
        elf::ET_REL => return Err(LoadError::NotStatic("an object file (ET_REL)")),
        _ => return Err(LoadError::NotStatic("not an executable")),
    }
    let phdrs = header
        .program_headers(endian, image)
        .map_err(|e| LoadError::Elf(e.to_string()))?;
    let mut segs = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let (offset, filesz, memsz) =
            (ph.p_offset(endian), ph.p_filesz(endian), ph.p_memsz(endian));
        if filesz > memsz {
            return Err(LoadError::FileSizeTooLarge {
                index,
                filesz,
                memsz,
            });
        }
        let Some(end) = offset
            .checked_add(filesz)
            .filter(|&e| e <= image.len() as u64)
        else {
            return Err(LoadError::Truncated {
                index,
                offset,
                end: offset.saturating_add(filesz),
                file_len: image.len() as u64,
            });
        };
        let data = &image[offset as usize..end as usize];
        segs.push(Segment {
            index,
            paddr: ph.p_paddr(endian),
            memsz,
            data,
        });
    }
    if segs.is_empty() {
        return Err(LoadError::NoSegments);
    }
    for (i, a) in segs.iter().enumerate() {
        for b in &segs[i + 1..] {
            let (a_end, b_end) = (
                a.paddr.saturating_add(a.memsz),
                b.paddr.saturating_add(b.memsz),
            );
            if a.memsz > 0 && b.memsz > 0 && a.paddr < b_end && b.paddr < a_end {
                return Err(LoadError::Overlap {
                    index: a.index,
                    other: b.index,
                });
            }
        }
    }
    Ok((header.e_entry(endian), segs))
}

/// What the loader placed, for reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootLayout {
    pub entry: u64,
    pub boot_info: u64,
    pub pml4: u64,
    /// `[start, end)` of the loader's area at the top of node 0 (tables, BootInfo, GDT).
    pub loader_area: (u64, u64),
}

/// A bump allocator over the loader's area, page-aligned pieces.
struct Area {
    next: u64,
    end: u64,
}

impl Area {
    fn take(&mut self, len: u64, align: u64) -> u64 {
        let a = self.next.next_multiple_of(align);
        self.next = a + len;
        assert!(
            self.next <= self.end,
            "the loader area was sized for what it holds"
        );
        a
    }
}

/// Page-table entry bits (SDM Vol. 3A §4.5).
const PTE_P: u64 = 1;
const PTE_W: u64 = 2;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
const PTE_PS: u64 = 1 << 7;

/// Loads `image` into `ram` and prepares `cores` to start at its entry (DESIGN.md §3.1).
pub fn load(
    image: &[u8],
    desc: &MachineDesc,
    ram: &mut Ram,
    cores: &mut [Core],
    bsp_only: bool,
    cmdline: &str,
) -> Result<BootLayout, LoadError> {
    let (entry, segs) = parse(image)?;
    if cmdline.len() > 64 << 10 {
        return Err(LoadError::CmdlineTooLong(cmdline.len()));
    }
    let ranges: Vec<RamRange> = ram.ranges().to_vec();
    let node0 = ranges[0];

    // Stacks at the top of each node, 64 KiB per core of that node.
    let mut stack_tops = vec![0u64; cores.len()];
    let mut reserved_from = vec![0u64; ranges.len()];
    for (n, r) in ranges.iter().enumerate() {
        let here: Vec<usize> = (0..cores.len())
            .filter(|&i| cores[i].node == n as u32)
            .collect();
        let need = here.len() as u64 * STACK_SIZE;
        if need + MIB2 > r.len {
            return Err(LoadError::NodeTooSmall {
                node: n as u32,
                len: r.len,
                cores: here.len() as u32,
            });
        }
        for (k, &i) in here.iter().enumerate() {
            stack_tops[i] = r.end() - k as u64 * STACK_SIZE;
        }
        reserved_from[n] = r.end() - need;
    }

    // Page tables: one PD per GiB of physical space, 2 MiB pages, and a PT for the first
    // 2 MiB (RAM starts at 1 MiB there).
    let top = ranges.iter().map(|r| r.end()).max().unwrap_or(0);
    let gibs = top.div_ceil(1 << 30);
    let pdpts = gibs.div_ceil(512);
    // Device windows (abi::mmio): a PDPT, a PD and a PT per 2 MiB of windows.
    let devices = desc.devices.len() as u64;
    let mmio_tables = if devices > 0 {
        2 + devices.div_ceil(2)
    } else {
        0
    };
    let table_pages = 1 + pdpts + gibs + 1 + mmio_tables;
    let cmd_pages = (cmdline.len() as u64).div_ceil(PAGE_SIZE);
    let nn = ranges.len() as u64;
    let info_bytes = 0x58
        + cores.len() as u64 * 16
        + (4 * nn + 2 * segs.len() as u64 + 4 + devices) * 24
        + nn * nn
        + 64;
    let area_len =
        (table_pages + cmd_pages + 1) * PAGE_SIZE + info_bytes.next_multiple_of(PAGE_SIZE);
    let area_end = reserved_from[0];
    let area_start = (area_end - area_len) & !(PAGE_SIZE - 1);
    if area_start < node0.base + MIB2 / 2 {
        return Err(LoadError::NodeTooSmall {
            node: 0,
            len: node0.len,
            cores: cores.len() as u32,
        });
    }

    // Segments must sit in node 0 RAM, below the loader's area.
    for s in &segs {
        let end = s.paddr.checked_add(s.memsz);
        if s.paddr < node0.base || end.is_none_or(|e| e > node0.end()) {
            return Err(LoadError::OutsideRam {
                index: s.index,
                paddr: s.paddr,
                len: s.memsz,
                ram_start: node0.base,
                ram_end: node0.end(),
            });
        }
        if end.unwrap() > area_start {
            return Err(LoadError::OverlapsLoader {
                index: s.index,
                paddr: s.paddr,
                len: s.memsz,
                area_start,
                area_end: node0.end(),
            });
        }
    }
    if !segs
        .iter()
        .any(|s| entry >= s.paddr && entry - s.paddr < s.memsz)
    {
        return Err(LoadError::EntryOutside { entry });
    }
    for s in &segs {
        ram.write(s.paddr, s.data)
            .expect("segment checked inside RAM");
        // The rest of memsz is .bss: RAM starts zeroed.
    }

    let mut area = Area {
        next: area_start,
        end: area_end,
    };
    let put = |ram: &mut Ram, a: u64, bytes: &[u8]| {
        ram.write(a, bytes).expect("the loader area is RAM");
    };

    // Identity map.
    let pml4 = area.take(PAGE_SIZE, PAGE_SIZE);
    let pdpt_base = area.take(pdpts * PAGE_SIZE, PAGE_SIZE);
    let pd_base = area.take(gibs * PAGE_SIZE, PAGE_SIZE);
    let pt = area.take(PAGE_SIZE, PAGE_SIZE);
    let is_ram = |a: u64, len: u64| ranges.iter().any(|r| a >= r.base && a + len <= r.end());
    for p in 0..pdpts {
        put(
            ram,
            pml4 + p * 8,
            &((pdpt_base + p * PAGE_SIZE) | PTE_P | PTE_W).to_le_bytes(),
        );
    }
    for g in 0..gibs {
        put(
            ram,
            pdpt_base + g * 8,
            &((pd_base + g * PAGE_SIZE) | PTE_P | PTE_W).to_le_bytes(),
        );
        let mut pd = vec![0u8; PAGE_SIZE as usize];
        for e in 0..512u64 {
            let a = (g << 30) + (e << 21);
            let v = if a == 0 {
                pt | PTE_P | PTE_W
            } else if is_ram(a, MIB2) {
                a | PTE_P | PTE_W | PTE_PS
            } else {
                0
            };
            pd[e as usize * 8..e as usize * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        put(ram, pd_base + g * PAGE_SIZE, &pd);
    }
    let mut ptb = vec![0u8; PAGE_SIZE as usize];
    for e in 0..512u64 {
        let a = e << 12;
        let v = if is_ram(a, PAGE_SIZE) {
            a | PTE_P | PTE_W
        } else {
            0
        };
        ptb[e as usize * 8..e as usize * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    put(ram, pt, &ptb);

    // Device windows: 4 KiB pages marked uncached (PCD | PWT), in their own PDPT and PD
    // (the MMIO area lies far above RAM).
    if devices > 0 {
        use abi::mmio::{MMIO_BASE, window};
        const _: () = assert!(
            MMIO_BASE.is_multiple_of(1 << 30)
                && abi::mmio::MAX_DEVICES * abi::mmio::MMIO_WINDOW <= 1 << 30
                && MMIO_BASE >> 39 >= 128
        );
        let pdpt = area.take(PAGE_SIZE, PAGE_SIZE);
        let pd = area.take(PAGE_SIZE, PAGE_SIZE);
        let entry = |table: u64, addr: u64, shift: u32| table + ((addr >> shift) & 511) * 8;
        put(
            ram,
            entry(pml4, MMIO_BASE, 39),
            &(pdpt | PTE_P | PTE_W).to_le_bytes(),
        );
        put(
            ram,
            entry(pdpt, MMIO_BASE, 30),
            &(pd | PTE_P | PTE_W).to_le_bytes(),
        );
        for chunk in 0..devices.div_ceil(2) {
            let base = MMIO_BASE + chunk * MIB2;
            let table = area.take(PAGE_SIZE, PAGE_SIZE);
            put(
                ram,
                entry(pd, base, 21),
                &(table | PTE_P | PTE_W).to_le_bytes(),
            );
            let mut t = vec![0u8; PAGE_SIZE as usize];
            for e in 0..512u64 {
                let a = base + e * PAGE_SIZE;
                if a < window(devices) {
                    let v = a | PTE_P | PTE_W | PTE_PWT | PTE_PCD;
                    t[e as usize * 8..e as usize * 8 + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            put(ram, table, &t);
        }
    }

    // Flat GDT: null, 64-bit code (0x08), data (0x10).
    let gdt = area.take(24, 16);
    for (i, d) in [0u64, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF]
        .iter()
        .enumerate()
    {
        put(ram, gdt + i as u64 * 8, &d.to_le_bytes());
    }

    // BootInfo and its arrays.
    let info_addr = area.take(0x58, 64);
    let cores_addr = area.take(cores.len() as u64 * 16, 16);
    for (i, c) in cores.iter().enumerate() {
        let ci = CoreInfo {
            apic_id: c.apic_id,
            socket: c.socket,
            node: c.node,
            reserved: 0,
        };
        put(ram, cores_addr + i as u64 * 16, as_bytes(&ci));
    }
    let distances = desc.distances();
    let dist_addr = area.take(distances.len() as u64, 8);
    put(ram, dist_addr, &distances);
    let cmd_addr = area.take(cmdline.len() as u64, 8);
    put(ram, cmd_addr, cmdline.as_bytes());

    // Memory map: per node, usable RAM split around what the loader placed.
    let mut used: Vec<(u64, u64)> = segs
        .iter()
        .filter(|s| s.memsz > 0)
        .map(|s| {
            (
                s.paddr & !(PAGE_SIZE - 1),
                (s.paddr + s.memsz).next_multiple_of(PAGE_SIZE),
            )
        })
        .collect();
    used.push((area_start, node0.end()));
    for (n, r) in ranges.iter().enumerate().skip(1) {
        used.push((reserved_from[n], r.end()));
    }
    used.sort();
    let mut map = Vec::new();
    for r in &ranges {
        let mut at = r.base;
        for &(s, e) in used.iter().filter(|(s, _)| r.contains(*s)) {
            if s > at {
                map.push(MemRange {
                    base: at,
                    len: s - at,
                    node: r.node,
                    kind: boot::MEM_USABLE,
                });
            }
            let s = s.max(at);
            if e > s {
                map.push(MemRange {
                    base: s,
                    len: e - s,
                    node: r.node,
                    kind: boot::MEM_LOADER,
                });
            }
            at = at.max(e);
        }
        if at < r.end() {
            map.push(MemRange {
                base: at,
                len: r.end() - at,
                node: r.node,
                kind: boot::MEM_USABLE,
            });
        }
    }
    for (i, d) in desc.devices.iter().enumerate() {
        map.push(MemRange {
            base: abi::mmio::window(i as u64),
            len: abi::mmio::MMIO_WINDOW,
            node: d.socket(),
            kind: boot::MEM_MMIO,
        });
    }
    let ranges_addr = area.take(map.len() as u64 * 24, 16);
    for (i, m) in map.iter().enumerate() {
        put(ram, ranges_addr + i as u64 * 24, as_bytes(m));
    }
    let info = BootInfo {
        magic: boot::BOOT_MAGIC,
        version: boot::BOOT_VERSION,
        size: size_of::<BootInfo>() as u32,
        tsc_hz: desc.frequency_mhz as u64 * 1_000_000,
        ncores: cores.len() as u32,
        nnodes: ranges.len() as u32,
        cores: cores_addr,
        nranges: map.len() as u32,
        nmodules: 0,
        ranges: ranges_addr,
        modules: 0,
        cmdline: cmd_addr,
        cmdline_len: cmdline.len() as u64,
        distances: dist_addr,
    };
    put(ram, info_addr, as_bytes(&info));

    for (i, c) in cores.iter_mut().enumerate() {
        c.gpr = [0; 16];
        c.gpr[RDI] = info_addr;
        c.gpr[RSI] = i as u64;
        c.gpr[RSP] = stack_tops[i] - 8;
        c.rip = entry;
        c.cr3 = pml4;
        c.gdtr = TableReg {
            base: gdt,
            limit: 23,
        };
        c.idtr = TableReg { base: 0, limit: 0 };
        c.state = if bsp_only && i != 0 {
            RunState::Stopped
        } else {
            RunState::Running
        };
        // What a start-up IPI gives the core (abi::apic): this same state. Cores that do not
        // start now wait for one, as application processors do after reset.
        c.apic.startup = crate::apic::StartupState {
            boot_info: info_addr,
            rsp: stack_tops[i] - 8,
            cr3: pml4,
            gdt_base: gdt,
            gdt_limit: 23,
        };
        c.apic.wait_for_sipi = c.state == RunState::Stopped;
    }
    Ok(BootLayout {
        entry,
        boot_info: info_addr,
        pml4,
        loader_area: (area_start, node0.end()),
    })
}

/// The bytes of a plain `repr(C)` ABI struct.
fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: only used on the abi crate's `repr(C)` structs, which have no padding (their
    // layouts are asserted there) and no pointers, so every byte is initialised plain data.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

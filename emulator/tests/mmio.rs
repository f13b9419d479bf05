//! MMIO through the CPU's memory path (`abi::mmio`): the loader maps the NIC's window and lists
//! it in BootInfo; loads, stores and string stores reach the device's registers on every
//! access (nothing is cached); a load stalls the core for the round trip; a 16-byte access
//! raises #GP(0).

use abi::boot::{self, BootInfo, MemRange};
use abi::mmio::{MMIO_BASE, MMIO_WINDOW};
use abi::nic as reg;
use emulator::{Machine, MachineDesc, RunEnd};
use iced_x86::code_asm::*;

mod common;
use common::elf;

const CODE: u64 = 0x20_0000;

fn read<T: Copy + Default>(m: &Machine, addr: u64) -> T {
    let mut buf = vec![0u8; size_of::<T>()];
    m.sys.ram.read(addr, &mut buf).expect("address in RAM");
    let mut v = T::default();
    // SAFETY: T is a plain repr(C) ABI struct; any bytes are a valid value.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), &mut v as *mut T as *mut u8, buf.len()) };
    v
}

fn program() -> Vec<u8> {
    let filter = reg::FILTER_VALID | 1 << reg::FILTER_QUEUE_SHIFT | 0x0B_0000_0002;
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rax, MMIO_BASE).unwrap();
    a.mov(rbx, qword_ptr(rax + reg::ID)).unwrap();
    a.mov(r9d, dword_ptr(rax + 4)).unwrap();
    a.mov(rdx, 0x41u64).unwrap();
    a.mov(qword_ptr(rax + reg::queue(0) + reg::IRQ), rdx)
        .unwrap();
    // A 1-byte store into byte 4 of the same register (the destination's low byte).
    a.mov(byte_ptr(rax + reg::queue(0) + reg::IRQ + 4), 3)
        .unwrap();
    a.mov(rsi, qword_ptr(rax + reg::queue(0) + reg::IRQ))
        .unwrap();
    // `rep stosq` into two filters: element by element through the device.
    a.mov(rdi, MMIO_BASE + reg::filter(1)).unwrap();
    a.mov(rcx, 2u64).unwrap();
    a.mov(rax, filter).unwrap();
    a.rep().stosq().unwrap();
    a.mov(rax, MMIO_BASE).unwrap();
    a.mov(r8, qword_ptr(rax + reg::filter(2))).unwrap();
    a.rdtsc().unwrap();
    a.mov(r10, rax).unwrap();
    a.mov(rax, MMIO_BASE).unwrap();
    a.mov(r11, qword_ptr(rax + reg::QUEUES)).unwrap();
    a.rdtsc().unwrap();
    a.sub(rax, r10).unwrap();
    a.mov(r12, rax).unwrap();
    a.mov(rax, MMIO_BASE).unwrap();
    // 16 bytes: #GP(0) (no IDT: the run ends with a report).
    a.movdqu(xmm0, xmmword_ptr(rax)).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE).unwrap()
}

#[test]
fn the_nic_window_is_mapped_listed_and_reached_on_every_access() {
    let desc = MachineDesc::load("2s").unwrap();
    let mut m = Machine::new(&desc).unwrap();
    m.load_elf(&elf(&program(), CODE, CODE), true, "").unwrap();
    let info: BootInfo = read(&m, m.cores[0].gpr[7]);
    let ranges: Vec<MemRange> = (0..info.nranges as u64)
        .map(|i| read(&m, info.ranges + i * 24))
        .collect();
    let mmio: Vec<_> = ranges.iter().filter(|r| r.kind == boot::MEM_MMIO).collect();
    assert_eq!(mmio.len(), 1, "{ranges:?}");
    assert_eq!(
        (mmio[0].base, mmio[0].len, mmio[0].node),
        (MMIO_BASE, MMIO_WINDOW, 0)
    );

    let end = m.run_for(u64::MAX, Some(1000)).expect("the run ends");
    let c = &m.cores[0];
    assert!(matches!(&end, RunEnd::Fault { vector: 13, .. }), "{end:?}");
    assert_eq!(c.gpr[3], reg::NIC_ID, "rbx: ID");
    assert_eq!(c.gpr[9], reg::NIC_ID >> 32, "r9: upper half of ID");
    assert_eq!(c.gpr[6], 3 << 32 | 0x41, "rsi: IRQ after two stores");
    assert_eq!(
        c.gpr[8],
        reg::FILTER_VALID | 1 << reg::FILTER_QUEUE_SHIFT | 0x0B_0000_0002,
        "r8: filter 2 written by rep stosq"
    );
    assert_eq!(c.gpr[11], 4, "r11: QUEUES");
    // An MMIO load stalls for the PCIe round trip: 2 × 250 ns at 2.4 GHz.
    assert!(c.gpr[12] >= 1200, "r12: {} cycles", c.gpr[12]);
    assert_eq!(m.sys.bus.nics[0].queues[0].irq, 3 << 32 | 0x41);
}

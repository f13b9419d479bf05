//! Greets, then prints what the loader said about the machine (BootInfo, DESIGN.md §3.1).
#![no_std]
#![no_main]

use baremetal::{Boot, println};

baremetal::entry!(main);

fn main(boot: &Boot) -> u32 {
    let info = boot.info();
    println!("hello from pvmlab bare metal (core {})", boot.core());
    println!(
        "boot info v{} ({} bytes), tsc {} Hz",
        info.version, info.size, info.tsc_hz
    );
    println!("cores: {}, nodes: {}", boot.ncores(), boot.nnodes());
    for (i, c) in boot.cores().iter().enumerate() {
        println!(
            "  core {i}: apic {} socket {} node {}",
            c.apic_id, c.socket, c.node
        );
    }
    println!("memory ranges: {}", boot.ranges().len());
    for r in boot.ranges() {
        let kind = match r.kind {
            abi::boot::MEM_USABLE => "usable",
            abi::boot::MEM_LOADER => "loader",
            abi::boot::MEM_MMIO => "mmio",
            _ => "unknown",
        };
        println!(
            "  [{:#012x}, {:#012x}) node {} {kind} ({} KiB)",
            r.base,
            r.base.wrapping_add(r.len),
            r.node,
            r.len / 1024
        );
    }
    println!("distances:");
    for row in boot.distances().chunks(boot.nnodes().max(1)) {
        print_row(row);
    }
    for m in boot.modules() {
        let name = m.name.split(|&b| b == 0).next().unwrap_or(&[]);
        println!(
            "module {:?} at {:#x}, {} bytes",
            core::str::from_utf8(name).unwrap_or("?"),
            m.base,
            m.len
        );
    }
    println!("cmdline: {:?}", boot.cmdline());
    0
}

fn print_row(row: &[u8]) {
    baremetal::print!(" ");
    for d in row {
        baremetal::print!(" {d:3}");
    }
    println!();
}

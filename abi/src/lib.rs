//! The platform ABI of pvmlab: what the emulated machine promises the images it runs
//! (DESIGN.md §3). Pure data, no logic, `no_std`, so that both the host-side emulator and the
//! freestanding images use the same definitions.
#![no_std]

pub mod annotate;
pub mod apic;
pub mod boot;
pub mod cpu;
pub mod mmio;
pub mod nic;
pub mod ports;
pub mod udp_rr;

pub use boot::{BootInfo, CoreInfo, MemRange, Module};

//! The platform ABI of pvmlab: what the emulated machine promises the images it runs
//! (DESIGN.md §3). Pure data, no logic, `no_std`, so that both the host-side emulator and the
//! freestanding images use the same definitions.
#![no_std]

pub mod boot;
pub mod ports;

pub use boot::{BootInfo, CoreInfo, MemRange, Module};

//! The emulated multi-socket x86-64 machine of pvmlab (DESIGN.md §2). It knows nothing of
//! hypervisors: it runs whatever image it is given, instruction by instruction, deterministically.

pub mod cpu;
pub mod desc;
pub mod devices;
pub mod memory;

//! The mini kernel: see `src/kernel/mod.rs`. Kept as a module tree there, not in the runtime
//! library, because nothing else links it.
#![no_std]
#![no_main]

#[path = "../kernel/mod.rs"]
mod kernel;

baremetal::entry!(kernel::main);

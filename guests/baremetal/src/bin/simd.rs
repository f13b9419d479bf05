//! Runs [`baremetal::progs::simd`] on the console; tests/ compares the output with the host's.
#![no_std]
#![no_main]

baremetal::entry!(main);

fn main(_: &baremetal::Boot) -> u32 {
    baremetal::run_on_console(baremetal::progs::simd::run)
}

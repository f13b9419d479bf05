//! The emulator speed benchmark: [`baremetal::progs::bench`] at full size.
#![no_std]
#![no_main]

use baremetal::progs::bench;

baremetal::entry!(main);

fn main(_: &baremetal::Boot) -> u32 {
    baremetal::run_on_console(|out| bench::run(out, bench::ROUNDS_FULL))
}

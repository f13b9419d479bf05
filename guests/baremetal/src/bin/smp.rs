//! [`baremetal::progs::smp`] on every core; core 0 prints the report and exits 0 if every
//! total is right, 1 if not.
#![no_std]
#![no_main]

use baremetal::progs::smp::{self, Shared};
use baremetal::{Boot, Console};

baremetal::entry!(smp main);

static SHARED: Shared = Shared::new();

fn main(boot: &Boot) -> u32 {
    smp::worker(&SHARED, boot.core(), boot.ncores());
    if boot.core() != 0 {
        return 0;
    }
    match smp::report(&mut Console, &SHARED, boot.ncores()) {
        Ok(true) => 0,
        _ => 1,
    }
}

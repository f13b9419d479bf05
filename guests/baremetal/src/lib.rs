//! Bare-metal runtime for images run by `pvmlab exec` (DESIGN.md §3.1).
//!
//! A program is a `src/bin/*.rs` file that names its entry function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! baremetal::entry!(main);
//! fn main(boot: &baremetal::Boot) -> u32 {
//!     baremetal::println!("hello from core {}", boot.core());
//!     0 // exit status
//! }
//! ```
//!
//! The runtime supplies what a freestanding static binary lacks: the entry point, console and
//! exit ports, `mem*` functions, a global allocator (so `alloc` works), a panic handler, and
//! cross-core spinlock and barrier.
#![no_std]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod cpu;
mod heap;
mod mem;
pub mod nic;
pub mod progs;
mod rt;
pub mod sync;

pub use boot::Boot;
pub use console::Console;
pub use cpu::{exit, halt, rdtsc};

/// Exit status after a panic (the message goes to the console first).
pub const EXIT_PANIC: u32 = 101;
/// Exit status when the BootInfo at `rdi` is not one this runtime understands.
pub const EXIT_BAD_BOOT_INFO: u32 = 102;

#[doc(hidden)]
pub use rt::{Mode, start as __start};

/// Defines the image's `_start` and runs `main` on it.
///
/// `entry!(main)` runs `fn main(&Boot) -> u32` on core 0 and exits with its result; the other
/// cores stop at once. `entry!(smp main)` runs it on every core: core 0 exits with its result,
/// the others stop when theirs returns, so core 0 must wait for them first (a [`sync::Barrier`]).
#[macro_export]
macro_rules! entry {
    (smp $main:path) => {
        $crate::entry!(@define $crate::Mode::AllCores($main));
    };
    ($main:path) => {
        $crate::entry!(@define $crate::Mode::Bsp($main));
    };
    (@define $mode:expr) => {
        /// Entry for every core (DESIGN.md §3.1): `rdi` = BootInfo, `rsi` = core index, and
        /// `rsp` 8 bytes below a 16-byte boundary, as if called.
        #[unsafe(no_mangle)]
        pub extern "C" fn _start(boot_info: u64, core: u64) -> ! {
            $crate::__start(boot_info, core, $mode)
        }
    };
}

/// Prints to the console; lines from several cores do not interleave within one call.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console (see [`print!`]).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Runs program logic from [`progs`] with the console as its output. Returns the exit status:
/// 0, or 1 if the program gave up with a formatting error.
pub fn run_on_console(run: impl FnOnce(&mut dyn core::fmt::Write) -> core::fmt::Result) -> u32 {
    match run(&mut Console) {
        Ok(()) => 0,
        Err(core::fmt::Error) => {
            println!("\nprogram failed with a formatting error");
            1
        }
    }
}

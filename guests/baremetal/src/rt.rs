//! Entry, panic handling and the symbols a `-nostdlib` link of `core`/`alloc` expects.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::BootInfo;

use crate::boot::Boot;
use crate::console::Console;
use crate::cpu::{exit, halt};

/// Which cores run a program's `main`.
pub enum Mode {
    /// Core 0 only.
    Bsp(fn(&Boot) -> u32),
    /// Every core.
    AllCores(fn(&Boot) -> u32),
}

/// The BootInfo address, for the allocator (every core stores the same value).
pub(crate) static BOOT_INFO: AtomicU64 = AtomicU64::new(0);

pub fn start(boot_info: u64, core: u64, mode: Mode) -> ! {
    let info = boot_info as *const BootInfo;
    // SAFETY: the loader passes a BootInfo address in `rdi` (DESIGN.md §3.1); `magic` and
    // `version` sit in every version of it.
    let valid = unsafe { (*info).magic == abi::boot::BOOT_MAGIC && (*info).version >= 1 };
    if !valid {
        if core == 0 {
            let _ = writeln!(Console, "bad BootInfo at {boot_info:#x}");
            exit(crate::EXIT_BAD_BOOT_INFO);
        }
        halt();
    }
    BOOT_INFO.store(boot_info, Ordering::Release);
    // SAFETY: checked above; the loader keeps BootInfo in place for the whole run.
    let boot = unsafe { Boot::new(info, core as usize) };
    let main = match mode {
        Mode::Bsp(main) if core == 0 => main,
        Mode::Bsp(_) => halt(),
        Mode::AllCores(main) => main,
    };
    let code = main(&boot);
    if core == 0 {
        exit(code);
    }
    halt()
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // Bypass the console lock: the panic may have come from inside it. A panic while printing
    // a panic exits without a second message.
    if !PANICKING.swap(true, Ordering::AcqRel) {
        let _ = writeln!(Console, "\n{info}");
    }
    exit(crate::EXIT_PANIC)
}

// `core` and `alloc` for this target are built with unwinding, so linking them references
// these two symbols even though, with `panic = "abort"`, nothing ever calls them.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    exit(crate::EXIT_PANIC)
}

//! Debug console on port 0xE9: one `out` per byte (DESIGN.md §2.5).

use core::fmt::{self, Write};

use crate::cpu::console_byte;
use crate::sync::SpinLock;

/// Writes to the console. Unsynchronised: use [`print`](crate::print!) from several cores.
#[derive(Clone, Copy, Debug, Default)]
pub struct Console;

impl Console {
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            console_byte(b);
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

static LOCK: SpinLock<Console> = SpinLock::new(Console);

#[doc(hidden)]
pub fn print(args: fmt::Arguments<'_>) {
    // Console never fails.
    let _ = LOCK.lock().write_fmt(args);
}

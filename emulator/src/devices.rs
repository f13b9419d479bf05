//! Port-mapped platform devices (DESIGN.md §2.5): the debug console and the exit port.

use abi::ports;

pub mod nic;

/// What `in`/`out` reach.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// Bytes written to the debug console, in order.
    pub console: Vec<u8>,
}

/// The effect of an `out`.
pub enum OutEffect {
    None,
    Exit(u32),
}

impl Ports {
    /// `out port, value` of `size` bytes.
    pub fn out(&mut self, port: u16, value: u32, size: u32) -> OutEffect {
        match port {
            ports::CONSOLE => {
                self.console.push(value as u8);
                OutEffect::None
            }
            ports::EXIT if size == 4 => OutEffect::Exit(value),
            ports::EXIT => OutEffect::Exit(value & crate::cpu::flags::mask(size * 8) as u32),
            // Writes to ports with no device are dropped, as on a PC bus.
            _ => OutEffect::None,
        }
    }

    /// `in` of `size` bytes: no device answers yet, so the bus floats high.
    pub fn inp(&mut self, _port: u16, size: u32) -> u32 {
        crate::cpu::flags::mask(size * 8) as u32
    }
}

use crate::cpu::Handler;
use iced_x86::Instruction;

pub(super) fn resolve(_ins: &Instruction) -> Option<Handler> {
    None
}

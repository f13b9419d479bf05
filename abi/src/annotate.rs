//! The annotation port (DESIGN.md §2.5), gem5 "m5ops"-style: software tells the machine which
//! domain and vCPU a core now runs and names domains, so that statistics can be attributed to
//! domains. It has no architectural effect: images must never rely on it for correctness.
//!
//! Protocol: load the arguments, then `out 0xEA, eax` with the command in `eax`:
//!
//! | `eax` | command | arguments |
//! |---|---|---|
//! | [`NAME_DOMAIN`] | give domain `rdi` a name | `rsi` = address of UTF-8 bytes (linear, readable at the current privilege), `rdx` = length (at most [`MAX_NAME`]) |
//! | [`RUN`] | this core now runs domain `rdi`, vCPU `rsi` | — |
//!
//! Domain [`NO_DOMAIN`] means "nothing announced" (every core starts there). Unknown commands
//! and bad arguments (a name that is too long, unreadable or not UTF-8) are ignored and counted
//! in the run's statistics, never faulted on.

/// `eax` of a `NAME_DOMAIN` command.
pub const NAME_DOMAIN: u32 = 1;
/// `eax` of a `RUN` command.
pub const RUN: u32 = 2;
/// The domain a core runs before any announcement.
pub const NO_DOMAIN: u32 = u32::MAX;
/// Longest domain name, in bytes.
pub const MAX_NAME: u64 = 64;

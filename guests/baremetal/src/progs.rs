//! Program logic shared with the host: each module is `no_std` (with `alloc`) and writes its
//! results to a `core::fmt::Write`. An image runs it on the console; tests/ compiles this very
//! file natively and checks that both outputs are the same, byte for byte.
//!
//! Modules may use `crate::sync` and `alloc`, nothing else from the runtime.

#[path = "../progs/util.rs"]
pub mod util;

#[path = "../progs/bench.rs"]
pub mod bench;
#[path = "../progs/floats.rs"]
pub mod floats;
#[path = "../progs/fmt.rs"]
pub mod fmt;
#[path = "../progs/hash.rs"]
pub mod hash;
#[path = "../progs/int128.rs"]
pub mod int128;
#[path = "../progs/simd.rs"]
pub mod simd;
#[path = "../progs/smp.rs"]
pub mod smp;
#[path = "../progs/sort.rs"]
pub mod sort;
#[path = "../progs/utf8.rs"]
pub mod utf8;

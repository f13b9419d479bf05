//! Scenarios, load generators and experiments (DESIGN.md §1), and the machine images they run.
//!
//! The images are built by this crate's build script; see [`images`].

pub mod endpoints;
pub mod images;
pub mod udpgen;

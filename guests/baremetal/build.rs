//! Link setup for the images; it lives here so that any build of this crate gets it.

use std::env;

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    for arg in ["-nostartfiles", "-nostdlib", "-static"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");

    // Without a static relocation model rustc links a position-independent executable that
    // would need a dynamic loader to relocate it.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if !flags
        .split('\x1f')
        .any(|f| f == "relocation-model=static" || f == "-Crelocation-model=static")
    {
        panic!(
            "bare-metal images need `-C relocation-model=static`: build them through \
             `cargo build -p pvmlab-workloads`, or in guests/baremetal where .cargo/config.toml sets it"
        );
    }
}

//! Builds the bare-metal images (DESIGN.md §1): a nested `cargo build --release` on
//! `guests/baremetal` with the images' own flags and target directory, then copies each program
//! to `<target>/images/NAME.elf` and generates `$OUT_DIR/images.rs`, which embeds them.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Images are freestanding x86-64 executables whatever this crate is built for.
const IMAGE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// `-C relocation-model=static`, in `CARGO_ENCODED_RUSTFLAGS` form (0x1f-separated). The link
/// arguments live in `guests/baremetal/build.rs`, so a build by hand gets them too.
const IMAGE_RUSTFLAGS: &str = "-C\x1frelocation-model=static";

/// Variables of the outer build that must not reach the nested cargo: compiler wrappers
/// (`cargo clippy` sets `RUSTC_WORKSPACE_WRAPPER`), flags, the jobserver, and the build-script
/// environment. Every other `CARGO_*` variable is removed too, except these prefixes, which
/// only say how to reach registries and print.
const REMOVE: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "MAKEFLAGS",
    "MFLAGS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "RUSTC_LINKER",
];
const KEEP_CARGO: &[&str] = &[
    "CARGO_HOME",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("workloads/ sits in the workspace root")
        .to_path_buf();
    let guests = root.join("guests").join("baremetal");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    // A relative CARGO_TARGET_DIR is taken relative to the workspace root.
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
    let images_dir = target_dir.join("images");

    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "link.ld",
        ".cargo",
        "src",
        "progs",
    ] {
        println!("cargo:rerun-if-changed={}", guests.join(path).display());
    }
    for path in ["Cargo.toml", "src"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("abi").join(path).display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guests)
        .arg("build")
        .arg("--release")
        .arg("--bins")
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target")
        .arg(IMAGE_TARGET)
        .arg("--target-dir")
        .arg(&images_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_var = key.starts_with("CARGO_") && !KEEP_CARGO.iter().any(|k| key.starts_with(k));
        if cargo_var || key.starts_with("__CARGO") || REMOVE.contains(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", IMAGE_RUSTFLAGS);

    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the images: {e}"));
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "building the bare-metal images in {} failed ({}):\n{log}",
            guests.display(),
            output.status
        );
    }
    // Shown with `cargo build -vv`.
    eprint!("{log}");

    let built = images_dir.join(IMAGE_TARGET).join("release");
    let mut images = Vec::new();
    for name in bin_names(&guests.join("src").join("bin")) {
        let from = built.join(&name);
        let to = images_dir.join(format!("{name}.elf"));
        copy_if_changed(&from, &to);
        // Rebuilds the images when a copy goes missing (its mtime is checked, so an unchanged
        // copy does not trigger anything).
        println!("cargo:rerun-if-changed={}", to.display());
        images.push((name, to));
    }

    let mut code = String::from("static IMAGES: &[(&str, &[u8], &str)] = &[\n");
    for (name, path) in &images {
        let path = path.to_str().expect("image paths are UTF-8");
        writeln!(code, "    ({name:?}, include_bytes!({path:?}), {path:?}),").unwrap();
    }
    code.push_str("];\n");
    fs::write(out_dir.join("images.rs"), code).expect("write images.rs");
}

/// The binaries cargo discovers in `src/bin`: `NAME.rs` and `NAME/main.rs`, sorted.
fn bin_names(dir: &Path) -> Vec<String> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|e| e.expect("read src/bin").path())
        .filter_map(|p| {
            if p.extension() == Some(OsStr::new("rs")) {
                p.file_stem().and_then(OsStr::to_str).map(String::from)
            } else if p.join("main.rs").is_file() {
                p.file_name().and_then(OsStr::to_str).map(String::from)
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}

/// Copies through a temporary file and a rename, so a concurrent build never sees half a file;
/// an identical copy is left alone.
fn copy_if_changed(from: &Path, to: &Path) {
    let bytes =
        fs::read(from).unwrap_or_else(|e| panic!("image {} was not built: {e}", from.display()));
    if fs::read(to).is_ok_and(|old| old == bytes) {
        return;
    }
    let tmp = to.with_extension(format!("elf.{}.tmp", std::process::id()));
    fs::write(&tmp, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, to).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", to.display()));
}

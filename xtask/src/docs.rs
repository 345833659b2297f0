//! `cargo xtask docs`: the documentation of `ntpool` and `ntpool-sys` built with every warning an
//! error (broken links included), for the host and for each Windows target, as docs.rs builds it.
//!
//! * The host (the emulated kernel): `cargo doc -p ntpool -p ntpool-sys --no-deps --all-features` with
//!   `RUSTDOCFLAGS="-D warnings"`, on the toolchain running xtask.
//! * `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc` (the real kernel): rustup here has no
//!   Windows target, and rustdoc needs the target's `core`, so these run on the cross toolchain
//!   (Debian's `rustc` and `rustdoc`, [`crate::cross`]) with `-Zbuild-std`, into
//!   `target/cross-doc/`. Each target is documented twice: with the features docs.rs documents it
//!   with (`videoport`, see `[package.metadata.docs.rs]`), and with `--all-features`, which includes
//!   `emulated` (the emulated kernel on a Windows target, which needs `std` built too). Both with
//!   `--cfg docsrs`, as on docs.rs, which turns on the `doc(cfg)` badges.

use std::path::Path;

use crate::cross;
use crate::host::cargo::toolchain_cargo;
use crate::host::process::step;

/// The documented crates.
const CRATES: &[&str] = &["ntpool", "ntpool-sys"];

/// The features docs.rs documents the Windows targets with (`[package.metadata.docs.rs]`).
const DOCS_RS_FEATURES: &str = "ntpool/videoport,ntpool-sys/videoport";

/// Documents the crates for the host and both Windows targets; see the module documentation.
pub fn run(root: &Path) -> Result<(), String> {
    let mut host = toolchain_cargo(root, None);
    host.arg("doc");
    for name in CRATES {
        host.args(["-p", name]);
    }
    host.args(["--no-deps", "--all-features"]).env("RUSTDOCFLAGS", "-D warnings");
    step("cargo doc -p ntpool -p ntpool-sys --no-deps --all-features (host, -D warnings)", host)?;

    let toolchain = cross::provision(root)?;
    for target in [cross::TARGET, cross::ARM64_TARGET] {
        for (features, build_std) in
            [(&["--features", DOCS_RS_FEATURES][..], "core,alloc"), (&["--all-features"][..], "core,alloc,std")]
        {
            let mut doc = cross::cargo_for(root, &toolchain, target)?;
            doc.arg("doc");
            for name in CRATES {
                doc.args(["-p", name]);
            }
            doc.args(["--no-deps", "--locked", "--target", target])
                .arg(format!("-Zbuild-std={build_std}"))
                .args(features)
                .arg("--target-dir")
                .arg(root.join("target/cross-doc"))
                .env("RUSTDOCFLAGS", "-D warnings --cfg docsrs");
            let what = format!("cargo doc --target {target} {} (Debian's rustdoc, -D warnings)", features.join(" "));
            step(&what, doc)?;
        }
    }
    Ok(())
}

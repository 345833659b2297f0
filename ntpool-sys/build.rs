//! Chooses the kernel the crate talks to: the real one (ntoskrnl.exe) when the target is Windows,
//! the emulated one everywhere else, or on Windows with the `emulated` feature (host tests).
//!
//! The choice is this crate's alone: it is passed on to the crates built on it as the `links`
//! metadata `emulated` and `pages` (`DEP_NTPOOL_SYS_EMULATED`, `DEP_NTPOOL_SYS_PAGES` in their build
//! scripts), so that they set the same `cfg`s.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ntpool_emulated)");
    println!("cargo::rustc-check-cfg=cfg(ntpool_pages)");
    println!("cargo::rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let emulated_feature = std::env::var_os("CARGO_FEATURE_EMULATED").is_some();
    let emulated = target_os != "windows" || emulated_feature;
    // Special pool and Force IRQL Checking analyse page faults from the machine context.
    let target_arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let pages = emulated && target_os == "linux" && target_arch == "x86_64";
    if emulated {
        println!("cargo::rustc-cfg=ntpool_emulated");
    }
    if pages {
        println!("cargo::rustc-cfg=ntpool_pages");
    }
    println!("cargo::metadata=emulated={emulated}");
    println!("cargo::metadata=pages={pages}");
}

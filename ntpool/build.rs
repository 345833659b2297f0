//! Chooses the kernel ntpool talks to: the real one (ntoskrnl.exe) when the target is Windows,
//! the emulated one everywhere else, or on Windows with the `emulated` feature (host tests).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ntpool_emulated)");
    println!("cargo::rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let emulated_feature = std::env::var_os("CARGO_FEATURE_EMULATED").is_some();
    if target_os != "windows" || emulated_feature {
        println!("cargo::rustc-cfg=ntpool_emulated");
    }
}

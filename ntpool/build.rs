//! Chooses the kernel ntpool talks to: the real one (ntoskrnl.exe) when the target is Windows,
//! the emulated one everywhere else, or on Windows with the `emulated` feature (host tests).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ntpool_emulated)");
    println!("cargo::rustc-check-cfg=cfg(ntpool_pages)");
    println!("cargo::rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let emulated_feature = std::env::var_os("CARGO_FEATURE_EMULATED").is_some();
    if target_os != "windows" || emulated_feature {
        println!("cargo::rustc-cfg=ntpool_emulated");
        // Special pool and Force IRQL Checking analyse page faults from the machine context.
        let target_arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        if target_os == "linux" && target_arch == "x86_64" {
            println!("cargo::rustc-cfg=ntpool_pages");
        }
    }
}

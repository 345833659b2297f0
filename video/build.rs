//! Build script of the sample video miniport: kernel-mode driver link arguments for the Linux
//! cross build to `x86_64-pc-windows-msvc` (nothing to do for the host build).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "windows" || target_env != "msvc" {
        return;
    }
    // As the sample WDM driver's: a native-subsystem kernel image entered at DriverEntry, no C runtime,
    // the PE checksum written, reproducible.
    for arg in [
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        "/OPT:REF",
        "/RELEASE",
        "/Brepro",
        "/DEBUG:NONE",
    ] {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}

//! Build script of the client: the link arguments of the `ntpool-client` executable when the target
//! is `*-windows-msvc` (lld-link in the Linux cross build of `cargo xtask`, or MSVC's link.exe).
//! For any other target there is nothing to do.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");

    // The target, not the host this script runs on.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "windows" || target_env != "msvc" {
        return;
    }

    // Given for the executables only, so that `core` and `alloc` (which the cross build compiles
    // with `-Zbuild-std`) are not rebuilt when they change, and the library is unaffected.
    const EXE_LINK_ARGS: &[&str] = &[
        // A console program entered at `mainCRTStartup` (src/main.rs), without a C runtime:
        // only the kernel32.dll and ntdll.dll imports declared with `raw-dylib`.
        "/ENTRY:mainCRTStartup",
        "/SUBSYSTEM:CONSOLE",
        "/NODEFAULTLIB",
        "/OPT:REF",
        // A reproducible image: a content hash instead of the time stamp, and no PDB.
        "/Brepro",
        "/DEBUG:NONE",
    ];
    for arg in EXE_LINK_ARGS {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}

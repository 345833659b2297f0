//! Build script of the client: the link arguments of the `ntpool-client` executable (entered at
//! `mainCRTStartup` in src/main.rs) when the target is `*-windows-msvc` (lld-link in the Linux cross
//! build of `cargo xtask`, or MSVC's link.exe); see `ntpool-build-support`. For any other target
//! there is nothing to do.

fn main() {
    ntpool_build_support::console_exe();
}

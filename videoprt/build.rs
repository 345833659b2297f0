//! Build script of the `videoprt.sys` test fixture: the kernel-mode image's link arguments for a
//! `*-windows-msvc` target (see `ntpool-build-support`). Its exports are what the miniport imports.

fn main() {
    ntpool_build_support::kernel_image();
}

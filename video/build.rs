//! Build script of the sample video miniport: the kernel-mode image's link arguments for a
//! `*-windows-msvc` target (see `ntpool-build-support`).

fn main() {
    ntpool_build_support::kernel_image();
}

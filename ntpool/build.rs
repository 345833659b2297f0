//! ntpool talks to the kernel ntpool-sys chose (see its build script): the same `cfg`s,
//! `ntpool_emulated` and `ntpool_pages`, read from its `links` metadata.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ntpool_emulated)");
    println!("cargo::rustc-check-cfg=cfg(ntpool_pages)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DEP_NTPOOL_SYS_EMULATED");
    println!("cargo::rerun-if-env-changed=DEP_NTPOOL_SYS_PAGES");
    let chosen = |name: &str| std::env::var(format!("DEP_NTPOOL_SYS_{name}")).is_ok_and(|value| value == "true");
    if chosen("EMULATED") {
        println!("cargo::rustc-cfg=ntpool_emulated");
    }
    if chosen("PAGES") {
        println!("cargo::rustc-cfg=ntpool_pages");
    }
}

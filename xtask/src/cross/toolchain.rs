//! The cross toolchain under `target/cross-toolchain/`: Debian's `rustc-web`, its library sources
//! and `lld-link`, unpacked by [`provision`] (the packages chosen and fetched by [`super::debian`])
//! and described by [`Toolchain`], with the stamp that makes later calls return at once.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::debian::{COMPILER_PACKAGE, SOURCES_PACKAGE, apt_update, candidate, download, resolve, run, unpack};
use crate::host::apt::running_as_root;
use crate::host::files::{recreate_dir, remove_dir_if_present};

/// Where [`provision`] keeps the toolchain, relative to the workspace root.
const CACHE_DIR: &str = "target/cross-toolchain";
/// The unpacked packages, inside [`CACHE_DIR`]. Holds `usr/bin/rustc`, `usr/lib/rustlib/...`.
const TREE_DIR: &str = "tree";
/// Written last by [`provision`]: its presence means the tree is complete.
const STAMP_FILE: &str = "toolchain.stamp";
const STAMP_FORMAT: &str = "ntpool-cross-toolchain 1";

/// Where `rust-web-src` puts the library sources inside the tree. This is the place
/// `-Zbuild-std` looks for them, relative to the sysroot that `rustc --print sysroot` reports.
const RUST_SRC: &str = "usr/lib/rustlib/src/rust";

/// An unpacked cross toolchain, as returned by [`provision`].
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The folder the Debian packages were unpacked into (it contains `usr/`).
    pub tree: PathBuf,
    /// Debian's `rustc` (`<tree>/usr/bin/rustc`); its sysroot is `<tree>/usr`.
    pub rustc: PathBuf,
    /// Debian's `lld-link`, from the `lld-N` package built against the same LLVM as `rustc`.
    pub linker: PathBuf,
    /// The cargo that drives the build: the one running this xtask (rustup's), or
    /// `$NTPOOL_CROSS_CARGO` when set.
    pub cargo: PathBuf,
    /// Folders of the tree holding shared libraries (`librustc_driver`, `libLLVM`), for
    /// `LD_LIBRARY_PATH`.
    pub library_dirs: Vec<PathBuf>,
    /// `release` of `rustc -vV`, e.g. `1.96.0`.
    pub rust_release: String,
    /// `commit-hash` of `rustc -vV`.
    pub rust_commit: String,
    /// The Debian packages unpacked into the tree, as `(name, version)`.
    pub packages: Vec<(String, String)>,
}

impl Toolchain {
    /// The Rust library sources that `-Zbuild-std` compiles (`<tree>/usr/lib/rustlib/src/rust`).
    pub fn rust_src(&self) -> PathBuf {
        self.tree.join(RUST_SRC)
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rustc {} ({}): {}", self.rust_release, self.rust_commit, self.rustc.display())?;
        writeln!(f, "linker: {}", self.linker.display())?;
        writeln!(f, "cargo: {}", self.cargo.display())?;
        let packages: Vec<String> = self.packages.iter().map(|(name, version)| format!("{name} {version}")).collect();
        write!(f, "Debian packages: {}", packages.join(", "))
    }
}

/// Provides Debian's Rust compiler, its library sources and `lld-link` under
/// `<root>/target/cross-toolchain/`, and returns where they are.
///
/// The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`: this needs no
/// root, installs nothing system-wide and leaves rustup alone. Their versions are not fixed here:
/// `rustc-web` is taken at the version apt offers (so apt's package lists decide which Rust
/// release builds the driver), `rust-web-src` at exactly the same version,
/// then the libraries they need that the system lacks (`libstd-rust-web-*`, `libllvmN`, ...)
/// are followed from the packages' `Depends`, and `lld-N` is chosen to match that `libllvmN`.
///
/// A stamp file records the result: once it exists, later calls return at once without asking
/// apt anything. Delete `target/cross-toolchain/` (or run `cargo clean`) to provision anew, for
/// example after Debian published a newer `rustc-web`.
///
/// When apt knows no `rustc-web`, or a download fails (apt's package lists are older than the
/// archive), this runs `apt-get update` itself if it runs as root, and otherwise fails with a
/// message that asks for `apt-get update` as root.
pub fn provision(root: &Path) -> Result<Toolchain, String> {
    let cache = root.join(CACHE_DIR);
    if let Some(toolchain) = load_stamp(&cache) {
        return Ok(toolchain);
    }
    let as_root = running_as_root();

    let mut updated = false;
    if candidate(COMPILER_PACKAGE)?.is_none() {
        if !as_root {
            return Err(format!(
                "apt knows no `{COMPILER_PACKAGE}` package, so the cross toolchain cannot be provisioned.\n\
                 Run `apt-get update` as root (sudo apt-get update), then try again."
            ));
        }
        apt_update()?;
        updated = true;
    }

    let plan = resolve()?;
    let debs = cache.join("debs");
    recreate_dir(&debs)?;
    eprintln!("cross: downloading {} Debian packages into {}", plan.len(), debs.display());
    if let Err(error) = download(&plan, &debs, as_root) {
        if !as_root || updated {
            return Err(error);
        }
        // The lists may name versions the archive no longer has (the security archive keeps
        // only the newest): refresh them once and resolve again.
        eprintln!("cross: download failed, running `apt-get update` and trying again");
        apt_update()?;
        let plan = resolve()?;
        recreate_dir(&debs)?;
        download(&plan, &debs, as_root)?;
        return finish(&cache, &debs, &plan);
    }
    finish(&cache, &debs, &plan)
}

/// Unpacks the downloaded packages, checks the compiler runs and writes the stamp.
fn finish(cache: &Path, debs: &Path, plan: &[(String, String)]) -> Result<Toolchain, String> {
    let partial = cache.join(format!("{TREE_DIR}.partial"));
    let tree = cache.join(TREE_DIR);
    recreate_dir(&partial)?;
    unpack(debs, &partial)?;
    remove_dir_if_present(&tree)?;
    fs::rename(&partial, &tree)
        .map_err(|e| format!("cannot rename {} to {}: {e}", partial.display(), tree.display()))?;
    // The .deb files are no longer needed (about 140 MB).
    remove_dir_if_present(debs)?;

    let linker = find_lld_link(&tree)?;
    let rustc = tree.join("usr/bin/rustc");
    if !tree.join(RUST_SRC).join("library/core").is_dir() {
        return Err(format!(
            "{SOURCES_PACKAGE} did not provide {}: the Debian package layout changed; \
             look for `library/core` in the unpacked tree and adjust RUST_SRC in xtask/src/cross/toolchain.rs",
            tree.join(RUST_SRC).display()
        ));
    }
    let library_dirs = library_dirs(&tree);
    let (rust_release, rust_commit) = rustc_version(&rustc, &library_dirs)?;

    let mut stamp = format!("{STAMP_FORMAT}\n");
    stamp.push_str(&format!("rustc {}\n", relative(&rustc, &tree)?));
    stamp.push_str(&format!("linker {}\n", relative(&linker, &tree)?));
    stamp.push_str(&format!("release {rust_release}\n"));
    stamp.push_str(&format!("commit-hash {rust_commit}\n"));
    for (name, version) in plan {
        stamp.push_str(&format!("package {name} {version}\n"));
    }
    let stamp_path = cache.join(STAMP_FILE);
    fs::write(&stamp_path, stamp).map_err(|e| format!("cannot write {}: {e}", stamp_path.display()))?;

    let toolchain = Toolchain {
        tree,
        rustc,
        linker,
        cargo: host_cargo(),
        library_dirs,
        rust_release,
        rust_commit,
        packages: plan.to_vec(),
    };
    eprintln!("cross: toolchain ready\n{toolchain}");
    Ok(toolchain)
}

/// Reads the stamp of a finished [`provision`]; `None` when there is none or the tree it
/// describes is incomplete, in which case the toolchain is provisioned anew.
fn load_stamp(cache: &Path) -> Option<Toolchain> {
    let text = fs::read_to_string(cache.join(STAMP_FILE)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != STAMP_FORMAT {
        return None;
    }
    let tree = cache.join(TREE_DIR);
    let (mut rustc, mut linker, mut release, mut commit) = (None, None, None, None);
    let mut packages = Vec::new();
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        match key {
            "rustc" => rustc = Some(tree.join(value)),
            "linker" => linker = Some(tree.join(value)),
            "release" => release = Some(value.to_owned()),
            "commit-hash" => commit = Some(value.to_owned()),
            "package" => {
                let (name, version) = value.split_once(' ')?;
                packages.push((name.to_owned(), version.to_owned()));
            }
            _ => return None,
        }
    }
    let (rustc, linker) = (rustc?, linker?);
    if !rustc.is_file() || !linker.exists() || !tree.join(RUST_SRC).join("library/core").is_dir() {
        return None;
    }
    Some(Toolchain {
        library_dirs: library_dirs(&tree),
        tree,
        rustc,
        linker,
        cargo: host_cargo(),
        rust_release: release?,
        rust_commit: commit?,
        packages,
    })
}

/// The cargo to drive the build with: `$NTPOOL_CROSS_CARGO` if set (for example Debian's
/// `cargo-web` from the same release, should rustup's cargo ever stop working with Debian's
/// library sources), else the cargo running this xtask (`$CARGO`, set by `cargo run`), else
/// the cargo that built it.
fn host_cargo() -> PathBuf {
    for variable in ["NTPOOL_CROSS_CARGO", "CARGO"] {
        if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
    }
    PathBuf::from(env!("CARGO"))
}

/// `<tree>/usr/lib/llvm-N/bin/lld-link`. Debian also installs `usr/bin/lld-link-N`, but rustc
/// infers the linker flavour from the file name, and only `lld-link` reads as MSVC-style lld.
fn find_lld_link(tree: &Path) -> Result<PathBuf, String> {
    let lib = tree.join("usr/lib");
    let entries = fs::read_dir(&lib).map_err(|e| format!("cannot list {}: {e}", lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llvm-")))
        .map(|path| path.join("bin/lld-link"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!("no usr/lib/llvm-*/bin/lld-link in {}: the lld-N package changed layout", tree.display())
    })
}

/// Folders of the tree with shared libraries: the multiarch folder (`usr/lib/x86_64-linux-gnu`,
/// with `librustc_driver-*.so` and `libLLVM.so.N`) and `usr/lib/llvm-N/lib`.
fn library_dirs(tree: &Path) -> Vec<PathBuf> {
    let lib = tree.join("usr/lib");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            if name.contains("-linux-") {
                Some(path)
            } else if name.starts_with("llvm-") {
                Some(path.join("lib"))
            } else {
                None
            }
        })
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// `LD_LIBRARY_PATH` with the tree's library folders first.
pub(super) fn library_path(dirs: &[PathBuf]) -> Result<OsString, String> {
    let existing = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
    let all = dirs.iter().cloned().chain(std::env::split_paths(&existing));
    std::env::join_paths(all).map_err(|e| format!("cannot build LD_LIBRARY_PATH: {e}"))
}

/// `release` and `commit-hash` of `rustc -vV`.
fn rustc_version(rustc: &Path, library_dirs: &[PathBuf]) -> Result<(String, String), String> {
    let output = run(
        Command::new(rustc).arg("-vV").env("LD_LIBRARY_PATH", library_path(library_dirs)?),
        "rustc -vV (Debian's compiler)",
    )?;
    let field = |key: &str| output.lines().find_map(|line| line.strip_prefix(key)).map(|value| value.trim().to_owned());
    match (field("release:"), field("commit-hash:")) {
        (Some(release), Some(commit)) => Ok((release, commit)),
        _ => Err(format!("unexpected output of {} -vV:\n{output}", rustc.display())),
    }
}

fn relative(path: &Path, base: &Path) -> Result<String, String> {
    path.strip_prefix(base)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| format!("{} is not inside {}", path.display(), base.display()))
}

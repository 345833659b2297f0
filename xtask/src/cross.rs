//! Linux cross build of a Windows kernel driver (`x86_64-pc-windows-msvc`).
//!
//! rustup on the project's Linux machines has no Windows target and no `rust-src`, and cannot
//! download either. Debian's `rustc-web` (a compiler) and `rust-web-src` (the library sources of
//! exactly that compiler) can be had as ordinary packages, and Debian's `lld-N` provides
//! `lld-link`. With them, `-Zbuild-std=core,alloc` compiles `core` and `alloc` for the Windows
//! target and `lld-link` links the driver; kernel imports are declared with
//! `#[link(..., kind = "raw-dylib")]`, so no import library, WDK or MSVC is needed.
//!
//! [`provision`] unpacks those packages into `target/cross-toolchain/` without root and without
//! touching rustup. [`build_driver`] then runs the cargo that runs this xtask (rustup's) with
//! `RUSTC` pointing at Debian's compiler.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Rust target of the driver.
pub const TARGET: &str = "x86_64-pc-windows-msvc";

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

/// Debian's compiler, and its library sources. They come from one source package, `rustc-web`,
/// and are always taken at the same version: the library sources of one Rust release do not
/// compile with another release's compiler.
const COMPILER_PACKAGE: &str = "rustc-web";
const SOURCES_PACKAGE: &str = "rust-web-src";

/// Libraries that every Debian system has and that must never be unpacked into a private tree
/// (a second copy of libc on `LD_LIBRARY_PATH` would break every program started from it).
const SYSTEM_LIBRARIES: &[&str] = &["libc6", "libgcc-s1", "libstdc++6"];

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
             look for `library/core` in the unpacked tree and adjust RUST_SRC in xtask/src/cross.rs",
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

// ---------------------------------------------------------------------------------------------
// Resolving the packages
// ---------------------------------------------------------------------------------------------

/// Decides which packages to download, as `(name, version)`, sorted by name.
///
/// Starts from `rustc-web` at apt's candidate version and `rust-web-src` at the same version,
/// follows their `Depends` into libraries the system does not have, then adds the `lld-N` that
/// matches the `libllvmN` the compiler is built against (so that one LLVM serves both).
fn resolve() -> Result<Vec<(String, String)>, String> {
    let compiler_version = candidate(COMPILER_PACKAGE)?
        .ok_or_else(|| format!("apt knows no `{COMPILER_PACKAGE}` package: run `apt-get update` as root"))?;
    let compiler = show(COMPILER_PACKAGE, &compiler_version)?;
    let sources = show(SOURCES_PACKAGE, &compiler_version).map_err(|_| {
        format!(
            "`{SOURCES_PACKAGE}` is not available at version {compiler_version}, the version of \
             `{COMPILER_PACKAGE}`: the compiler and its library sources must come from the same \
             Debian release. Run `apt-get update` as root and try again."
        )
    })?;
    if compiler.source() != sources.source() {
        return Err(format!(
            "`{COMPILER_PACKAGE}` {compiler_version} is built from {:?} but `{SOURCES_PACKAGE}` from \
             {:?}: they must come from the same Debian source package",
            compiler.source(),
            sources.source()
        ));
    }

    let mut resolver = Resolver::default();
    resolver.add(COMPILER_PACKAGE, Some(&compiler_version))?;
    resolver.add(SOURCES_PACKAGE, Some(&compiler_version))?;

    // The compiler's LLVM, e.g. `libllvm22` -> `lld-22`.
    let llvm_major = resolver
        .seen
        .iter()
        .filter_map(|name| name.strip_prefix("libllvm"))
        .filter(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()))
        .max_by_key(|major| major.parse::<u32>().unwrap_or(0))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "cannot tell which LLVM `{COMPILER_PACKAGE}` {compiler_version} uses: no libllvmN \
                 among its dependencies (see `apt-cache depends libstd-rust-web-dev`)"
            )
        })?;
    let lld = format!("lld-{llvm_major}");
    if candidate(&lld)?.is_none() {
        return Err(format!(
            "the compiler uses LLVM {llvm_major}, but apt knows no `{lld}` package to link with: \
             run `apt-get update` as root and try again"
        ));
    }
    resolver.add(&lld, None)?;

    Ok(resolver.selected.into_iter().collect())
}

/// Walks package dependencies and collects what must be downloaded.
#[derive(Default)]
struct Resolver {
    /// Packages to download, name -> version.
    selected: BTreeMap<String, String>,
    /// Names whose version was fixed by an `(= version)` dependency.
    pinned: BTreeSet<String>,
    /// Every package name met, downloaded or not.
    seen: BTreeSet<String>,
}

impl Resolver {
    /// Adds `name` (at `exact` version, else apt's candidate) and what it needs.
    fn add(&mut self, name: &str, exact: Option<&str>) -> Result<(), String> {
        let mut queue = VecDeque::from([(name.to_owned(), exact.map(str::to_owned))]);
        while let Some((name, exact)) = queue.pop_front() {
            self.seen.insert(name.clone());
            if let Some(chosen) = self.selected.get(&name) {
                match &exact {
                    Some(version) if version != chosen => {
                        if self.pinned.contains(&name) {
                            return Err(format!(
                                "conflicting versions of `{name}` needed: {chosen} and {version}; \
                                 run `apt-get update` as root and try again"
                            ));
                        }
                        // An unversioned dependency picked the candidate; an exact one wins.
                        self.pinned.insert(name.clone());
                    }
                    _ => continue,
                }
            }
            if !always_unpacked(&name) && installed_satisfies(&name, exact.as_deref()) {
                continue;
            }
            let version = match exact.clone() {
                Some(version) => {
                    self.pinned.insert(name.clone());
                    version
                }
                None => candidate(&name)?
                    .ok_or_else(|| format!("apt knows no `{name}` package: run `apt-get update` as root"))?,
            };
            let stanza = show(&name, &version)?;
            self.selected.insert(name.clone(), version);
            for group in stanza.dependencies() {
                for alternative in &group {
                    self.seen.insert(alternative.name.clone());
                }
                let Some(first) = group.first() else { continue };
                // A group is satisfied when any alternative is installed; otherwise take the
                // first, as apt does.
                let satisfied =
                    !always_unpacked(&first.name) && group.iter().any(|alternative| is_installed(&alternative.name));
                if !satisfied && follows(&first.name) {
                    queue.push_back((first.name.clone(), first.exact.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Packages that always go into the tree even when installed system-wide: `rustc` finds its
/// sysroot (`libstd-rust-web-dev`'s rlibs, `rust-web-src`'s sources) relative to its own path.
fn always_unpacked(name: &str) -> bool {
    name == COMPILER_PACKAGE
        || name == SOURCES_PACKAGE
        || name.starts_with("libstd-rust-web")
        || name.starts_with("lld-")
}

/// Whether a dependency is worth unpacking privately: shared libraries the tools load at run
/// time. Not `gcc`, `binutils` or `libc-dev`, which `rustc-web` depends on to link Linux
/// programs: the driver build uses `lld-link`, and the host build scripts and proc macros use the
/// system's `cc`, which rustup's own toolchain needs as well.
fn follows(name: &str) -> bool {
    if SYSTEM_LIBRARIES.contains(&name) {
        return false;
    }
    always_unpacked(name) || (name.starts_with("lib") && !name.ends_with("-dev"))
}

/// One alternative of a `Depends` entry: a package name and an optional exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dependency {
    name: String,
    exact: Option<String>,
}

/// The fields of one `apt-cache show` stanza.
struct Stanza {
    fields: BTreeMap<String, String>,
}

impl Stanza {
    fn parse(text: &str) -> Stanza {
        let mut fields = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.is_empty() {
                // Only the first stanza: the same version may be listed once per archive.
                break;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation line of the previous field.
                if let Some(value) = current.as_ref().and_then(|key| fields.get_mut(key)) {
                    let value: &mut String = value;
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((key, value)) = line.split_once(':') {
                fields.insert(key.to_owned(), value.trim().to_owned());
                current = Some(key.to_owned());
            }
        }
        Stanza { fields }
    }

    /// The source package (name, and version if it differs from the binary's).
    fn source(&self) -> String {
        let version = self.fields.get("Version").cloned().unwrap_or_default();
        match self.fields.get("Source") {
            Some(source) if source.contains('(') => source.clone(),
            Some(source) => format!("{source} ({version})"),
            None => {
                let package = self.fields.get("Package").cloned().unwrap_or_default();
                format!("{package} ({version})")
            }
        }
    }

    /// `Pre-Depends` and `Depends`, as groups of alternatives.
    fn dependencies(&self) -> Vec<Vec<Dependency>> {
        ["Pre-Depends", "Depends"]
            .iter()
            .filter_map(|field| self.fields.get(*field))
            .flat_map(|value| parse_depends(value))
            .collect()
    }
}

/// Parses a Debian `Depends` value such as `libc6 (>= 2.34), libfoo (= 1.0) | libbar`.
fn parse_depends(value: &str) -> Vec<Vec<Dependency>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alternative| {
                    let alternative = alternative.trim();
                    let (name, constraint) = match alternative.split_once('(') {
                        Some((name, rest)) => (name.trim(), Some(rest.trim_end_matches(')').trim())),
                        None => (alternative, None),
                    };
                    // `name:any` and `name [amd64]` qualifiers.
                    let name = name.split([':', ' ', '[']).next().unwrap_or_default();
                    if name.is_empty() {
                        return None;
                    }
                    let exact = constraint.and_then(|c| c.strip_prefix('=')).map(|version| version.trim().to_owned());
                    Some(Dependency { name: name.to_owned(), exact })
                })
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// apt and dpkg
// ---------------------------------------------------------------------------------------------

/// apt's candidate version of `name`, `None` when apt does not know it.
fn candidate(name: &str) -> Result<Option<String>, String> {
    let output = run(Command::new("apt-cache").args(["policy", name]), "apt-cache policy")?;
    Ok(output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .find(|version| !version.is_empty() && *version != "(none)")
        .map(str::to_owned))
}

/// The `apt-cache show` stanza of one exact version.
fn show(name: &str, version: &str) -> Result<Stanza, String> {
    let output = run(Command::new("apt-cache").arg("show").arg(format!("{name}={version}")), "apt-cache show")?;
    if output.trim().is_empty() {
        return Err(format!("apt knows no `{name}` at version {version}: run `apt-get update` as root and try again"));
    }
    Ok(Stanza::parse(&output))
}

/// Whether `name` is installed (at `exact` version, when given).
fn installed_satisfies(name: &str, exact: Option<&str>) -> bool {
    match installed_version(name) {
        Some(installed) => exact.is_none_or(|version| version == installed),
        None => false,
    }
}

fn is_installed(name: &str) -> bool {
    installed_version(name).is_some()
}

fn installed_version(name: &str) -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${db:Status-Abbrev}|${Version}", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (status, version) = text.split_once('|')?;
    // "ii " = wanted install, currently installed, no error.
    (status.trim() == "ii").then(|| version.trim().to_owned())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt_update() -> Result<(), String> {
    eprintln!("cross: running `apt-get update`");
    run(Command::new("apt-get").args(["-q", "update"]), "apt-get update").map(drop)
}

/// `apt-get download` of exact versions into `dir` (needs no root).
fn download(plan: &[(String, String)], dir: &Path, as_root: bool) -> Result<(), String> {
    let mut command = Command::new("apt-get");
    command.current_dir(dir).args(["-q", "download"]);
    if as_root {
        // As root, apt drops to its `_apt` user to download, which cannot write into a folder
        // owned by root and then warns; there is nothing to protect here.
        command.args(["-o", "APT::Sandbox::User=root"]);
    }
    command.args(plan.iter().map(|(name, version)| format!("{name}={version}")));
    run(&mut command, "apt-get download").map_err(|error| {
        format!(
            "{error}\nThe Debian archive did not serve these packages: apt's package lists are \
             probably out of date. Run `apt-get update` as root (sudo apt-get update) and try again."
        )
    })?;
    Ok(())
}

/// `dpkg-deb -x` of every `.deb` in `debs` into `tree` (needs no root).
fn unpack(debs: &Path, tree: &Path) -> Result<(), String> {
    let mut files: Vec<PathBuf> = fs::read_dir(debs)
        .map_err(|e| format!("cannot list {}: {e}", debs.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "`apt-get download` left no .deb file in {}: run `apt-get update` as root and try again",
            debs.display()
        ));
    }
    eprintln!("cross: unpacking {} packages into {}", files.len(), tree.display());
    for file in &files {
        run(Command::new("dpkg-deb").arg("-x").arg(file).arg(tree), "dpkg-deb -x")?;
    }
    Ok(())
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
fn library_path(dirs: &[PathBuf]) -> Result<OsString, String> {
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

/// Runs a command to completion; its standard output on success, else a message naming `what`
/// with the command's error output.
fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "cannot run `{what}`: {e}. The cross toolchain is provisioned from Debian packages \
                 and needs apt-get, apt-cache and dpkg-deb (a Debian or Ubuntu host)."
            )
        } else {
            format!("cannot run `{what}`: {e}")
        }
    })?;
    if !output.status.success() {
        return Err(format!(
            "`{what}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn recreate_dir(dir: &Path) -> Result<(), String> {
    remove_dir_if_present(dir)?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

fn relative(path: &Path, base: &Path) -> Result<String, String> {
    path.strip_prefix(base)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| format!("{} is not inside {}", path.display(), base.display()))
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// Builds the library of workspace package `package` (a `cdylib` driver) of the workspace at
/// `root` for `x86_64-pc-windows-msvc` with the toolchain from [`provision`], copies the
/// resulting `<crate>.dll` to `<crate>.sys` next to it, and returns the path of the `.sys`.
///
/// `root` is the folder of the workspace's (or the package's) `Cargo.toml`; the build goes to
/// `<root>/target/cross/x86_64-pc-windows-msvc/{debug,release}/`. The package's build script must
/// give the kernel-driver link arguments (`/DRIVER /SUBSYSTEM:NATIVE /ENTRY:DriverEntry ...`) as
/// `cargo::rustc-cdylib-link-arg`s; passing them here in `RUSTFLAGS` would make every change to
/// them rebuild `core` and `alloc`.
///
/// How it builds: see [`build_artifact`], which this calls with [`Artifact::Cdylib`] and no
/// features. With the build script's `/Brepro /DEBUG:NONE`, two builds of the same sources give
/// the same bytes.
pub fn build_driver(root: &Path, tc: &Toolchain, package: &str, profile_release: bool) -> Result<PathBuf, String> {
    let dll = build_artifact(root, tc, package, Artifact::Cdylib, &[], profile_release, "target/cross")?;
    let sys = dll.with_extension("sys");
    fs::copy(&dll, &sys).map_err(|e| format!("cannot copy {} to {}: {e}", dll.display(), sys.display()))?;
    Ok(sys)
}

/// The workspace package of the user-mode client, its executable, and the feature that enables it.
const CLIENT_PACKAGE: &str = "ntpool-client";
const CLIENT_BIN: &str = "ntpool-client";
const CLIENT_FEATURE: &str = "windows-exe";

/// Builds the user-mode client of the sample driver (package `ntpool-client`, binary
/// `ntpool-client` with its feature `windows-exe`), release profile, for `x86_64-pc-windows-msvc`
/// with the toolchain from [`provision`], and returns the path of the `.exe`
/// (`<root>/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe`).
///
/// It uses the driver's target folder and flags, and does not touch the driver's files (cargo
/// compiles `core` and `alloc` once more for it: an executable with LTO takes them as bitcode).
/// The client's build script gives the executable's link arguments
/// (`/ENTRY:mainCRTStartup /SUBSYSTEM:CONSOLE /NODEFAULTLIB /Brepro ...`): two builds of the same
/// sources give the same bytes.
pub fn build_client(root: &Path, tc: &Toolchain) -> Result<PathBuf, String> {
    build_artifact(root, tc, CLIENT_PACKAGE, Artifact::Bin(CLIENT_BIN), &[CLIENT_FEATURE], true, "target/cross")
}

/// Checks that the driver build is reproducible: builds `package` again from scratch in a target
/// folder of its own (`target/cross-repro`, deleted first) and compares the image with `sys`, the
/// one [`build_driver`] made. Returns a line saying so, or an error giving both sizes and the first
/// differing offset.
pub fn check_reproducible(root: &Path, tc: &Toolchain, package: &str, sys: &Path) -> Result<String, String> {
    let again_dir = root.join("target/cross-repro");
    if again_dir.exists() {
        fs::remove_dir_all(&again_dir).map_err(|e| format!("cannot remove {}: {e}", again_dir.display()))?;
    }
    let dll = build_artifact(root, tc, package, Artifact::Cdylib, &[], true, "target/cross-repro")?;
    let first = fs::read(sys).map_err(|e| format!("cannot read {}: {e}", sys.display()))?;
    let second = fs::read(&dll).map_err(|e| format!("cannot read {}: {e}", dll.display()))?;
    if first != second {
        let differing = first.iter().zip(&second).position(|(a, b)| a != b).unwrap_or(first.len().min(second.len()));
        return Err(format!(
            "the driver build is not reproducible: {} ({} bytes) and a clean rebuild {} ({} bytes) differ from offset {differing:#x}",
            sys.display(),
            first.len(),
            dll.display(),
            second.len()
        ));
    }
    Ok(format!("reproducible: a clean rebuild in {} gave the same {} bytes", again_dir.display(), first.len()))
}

/// What [`build_artifact`] builds of a package, and which file it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact<'a> {
    /// The package's library (`--lib`), which must be a `cdylib`: the `.dll`.
    Cdylib,
    /// The binary target with this name (`--bin <name>`): the `.exe`.
    Bin(&'a str),
}

/// Builds `artifact` of workspace package `package` of the workspace at `root`, with `features`
/// of that package, for `x86_64-pc-windows-msvc` with the toolchain from [`provision`], and
/// returns the path of the file cargo produced (a `.dll` or an `.exe`).
///
/// `root` is the folder of the workspace's (or the package's) `Cargo.toml`; the build goes to
/// `<root>/target/cross/x86_64-pc-windows-msvc/{debug,release}/`. Link arguments come from the
/// package's build script (`cargo::rustc-cdylib-link-arg`, `cargo::rustc-link-arg-bins`), not
/// from here: in `RUSTFLAGS` they would make every change to them rebuild `core` and `alloc`.
///
/// How it builds:
/// * `RUSTC` is Debian's compiler, `RUSTC_BOOTSTRAP=1` allows the unstable `-Zbuild-std`, which
///   compiles `core` and `alloc` (with `compiler-builtins-mem`: the kernel has `memcpy`, but no
///   C runtime is linked) from Debian's matching library sources. Their few crates.io
///   dependencies are fetched by cargo like any other.
/// * `RUSTFLAGS` has `--cfg ntpool_linux_cross`, which keeps the WDK crates out of the build, and
///   `--remap-path-prefix` for the workspace, the toolchain and cargo's home, so that no local
///   path ends up in the image. They are the same whatever is built: the driver's and the
///   client's builds in one target folder never invalidate each other's `core` and `alloc`.
/// * `panic = "abort"` for both profiles; in the dev profile `compiler_builtins` is optimised
///   (unoptimised, it references `fma`/`fmaf`, which nothing provides).
/// * `--locked` when the workspace has a `Cargo.lock`.
///
/// `target_folder` is relative to `root`: `target/cross` for the usual builds.
pub fn build_artifact(
    root: &Path,
    tc: &Toolchain,
    package: &str,
    artifact: Artifact<'_>,
    features: &[&str],
    profile_release: bool,
    target_folder: &str,
) -> Result<PathBuf, String> {
    let root = &std::path::absolute(root).map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let manifest = root.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("no Cargo.toml in {}: pass the workspace root", root.display()));
    }
    let target_dir = root.join(target_folder);
    let profile = if profile_release { "release" } else { "dev" };
    let what = match artifact {
        Artifact::Cdylib => format!("`{package}`"),
        Artifact::Bin(name) => format!("`{package}` (binary `{name}`)"),
    };
    eprintln!("cross: building {what} ({profile}) for {TARGET} with rustc {} from Debian", tc.rust_release);

    let mut command = Command::new(&tc.cargo);
    command.current_dir(root).arg("build").arg("--manifest-path").arg(&manifest).args(["--package", package]);
    match artifact {
        Artifact::Cdylib => command.arg("--lib"),
        Artifact::Bin(name) => command.args(["--bin", name]),
    };
    command
        .args(["--target", TARGET])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--message-format=json-render-diagnostics")
        .args(["--config", "profile.dev.panic=\"abort\""])
        .args(["--config", "profile.release.panic=\"abort\""])
        .args(["--config", "profile.dev.package.compiler_builtins.opt-level=3"]);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    if profile_release {
        command.arg("--release");
    }
    if root.join("Cargo.lock").is_file() {
        command.arg("--locked");
    }

    // Settings from the caller's environment that would change what is built or with what.
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTDOC",
    ] {
        command.env_remove(variable);
    }
    command
        .env("RUSTC", &tc.rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("LD_LIBRARY_PATH", library_path(&tc.library_dirs)?)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER", &tc.linker)
        .env("CARGO_ENCODED_RUSTFLAGS", encoded_rustflags(root, tc)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());

    let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", tc.cargo.display()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("cargo's output was not captured".to_owned());
    };
    let mut outputs = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("cannot read cargo's output: {e}"))?;
        outputs.extend(artifact_outputs(&line, package, artifact));
    }
    let status = child.wait().map_err(|e| format!("cannot wait for cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of `{package}` for {TARGET} failed ({status}); see the errors above"));
    }

    match (outputs.as_slice(), artifact) {
        ([output], _) => Ok(output.clone()),
        ([], Artifact::Cdylib) => {
            Err(format!("cargo built no .dll for `{package}`: its [lib] needs crate-type = [\"cdylib\"]"))
        }
        ([], Artifact::Bin(name)) => Err(format!(
            "cargo built no .exe for binary `{name}` of `{package}`: is it a [[bin]] of the package, \
             and are its required-features among {features:?}?"
        )),
        (_, Artifact::Cdylib) => Err(format!("cargo built several .dll files for `{package}`: {outputs:?}")),
        (_, Artifact::Bin(name)) => {
            Err(format!("cargo built several .exe files for binary `{name}` of `{package}`: {outputs:?}"))
        }
    }
}

/// The `RUSTFLAGS` of the driver build, encoded for `CARGO_ENCODED_RUSTFLAGS` (separated by
/// 0x1f, so paths with spaces survive).
fn encoded_rustflags(root: &Path, tc: &Toolchain) -> Result<String, String> {
    let mut flags = vec!["--cfg".to_owned(), "ntpool_linux_cross".to_owned()];
    // When several prefixes match, rustc applies the last one given: the toolchain lives inside
    // the workspace (`target/cross-toolchain`), so it comes after the workspace.
    let mut remaps = vec![(root.to_path_buf(), "/build".to_owned())];
    if let Some(cargo_home) = cargo_home() {
        remaps.push((cargo_home, "/cargo".to_owned()));
    }
    // Where the official toolchains say their library sources were.
    remaps.push((tc.rust_src(), format!("/rustc/{}", tc.rust_commit)));
    for (from, to) in remaps {
        // Cargo passes paths as it found them, and `usr/lib/rustlib/src/rust` is a symlink
        // (to `usr/src/rustc-<version>`): remap both the given and the resolved form.
        let given = std::path::absolute(&from).map_err(|e| format!("cannot resolve {}: {e}", from.display()))?;
        let mut forms = vec![given.clone()];
        if let Ok(resolved) = fs::canonicalize(&given) {
            if resolved != given {
                forms.push(resolved);
            }
        }
        // Cargo names packages inside the workspace folder by relative paths, and the
        // toolchain is inside it (`target/cross-toolchain/...`).
        if let Ok(inside) = given.strip_prefix(root) {
            if !inside.as_os_str().is_empty() {
                forms.push(inside.to_path_buf());
            }
        }
        for form in forms {
            let form = form.to_str().ok_or_else(|| format!("path {} is not UTF-8", form.display()))?.to_owned();
            flags.push(format!("--remap-path-prefix={form}={to}"));
        }
    }
    Ok(flags.join("\u{1f}"))
}

/// Cargo's home (`$CARGO_HOME`, else `~/.cargo`), where the crates.io sources are unpacked.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// The files `artifact` of `package` that one `compiler-artifact` message of
/// `cargo --message-format=json` announces: the `.dll` of a `cdylib`, the `.exe` of a binary;
/// nothing for any other line.
fn artifact_outputs(line: &str, package: &str, artifact: Artifact<'_>) -> Vec<PathBuf> {
    let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    if message["reason"] != "compiler-artifact" {
        return Vec::new();
    }
    let (kind, extension) = match artifact {
        Artifact::Cdylib => ("cdylib", ".dll"),
        Artifact::Bin(_) => ("bin", ".exe"),
    };
    let is_kind = message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == kind));
    // The package id is `path+file:///...#name@version` (or `#version` when the folder is
    // named like the package), or in old cargo `name version (source)`.
    let package_id = message["package_id"].as_str().unwrap_or_default();
    let of_package = package_id.contains(&format!("#{package}@"))
        || package_id.starts_with(&format!("{package} "))
        || package_id.contains(&format!("/{package}#"));
    let ours = match artifact {
        Artifact::Cdylib => of_package || message["target"]["name"] == package.replace('-', "_").as_str(),
        // Binaries of other packages may have the same name: both must match.
        Artifact::Bin(name) => of_package && message["target"]["name"] == name,
    };
    if !is_kind || !ours {
        return Vec::new();
    }
    message["filenames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str())
        .filter(|name| name.ends_with(extension))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_depends() {
        let groups = parse_depends(
            "libc6 (>= 2.34), libstd-rust-web-dev (= 1.96.0+dfsg1-1~deb12u2), gcc | clang-14, \
             python3:any, libfoo [amd64]",
        );
        let names: Vec<Vec<&str>> =
            groups.iter().map(|group| group.iter().map(|d| d.name.as_str()).collect()).collect();
        assert_eq!(
            names,
            [vec!["libc6"], vec!["libstd-rust-web-dev"], vec!["gcc", "clang-14"], vec!["python3"], vec!["libfoo"]]
        );
        assert_eq!(groups[0][0].exact, None);
        assert_eq!(groups[1][0].exact.as_deref(), Some("1.96.0+dfsg1-1~deb12u2"));
    }

    #[test]
    fn stanza_reads_first_entry_and_source() {
        let stanza = Stanza::parse(
            "Package: rust-web-src\nSource: rustc-web\nVersion: 1.96.0+dfsg1-1~deb12u2\n\
             Depends: libc6 (>= 2.34),\n libllvm22\n\nPackage: rust-web-src\nVersion: 9\n",
        );
        assert_eq!(stanza.source(), "rustc-web (1.96.0+dfsg1-1~deb12u2)");
        let deps: Vec<String> = stanza.dependencies().into_iter().flatten().map(|d| d.name).collect();
        assert_eq!(deps, ["libc6", "libllvm22"]);

        let compiler = Stanza::parse("Package: rustc-web\nVersion: 1.96.0+dfsg1-1~deb12u2\n");
        assert_eq!(compiler.source(), stanza.source());
    }

    #[test]
    fn follows_only_private_libraries() {
        assert!(follows("libllvm22"));
        assert!(follows("libstd-rust-web-1.96"));
        assert!(follows("libstd-rust-web-dev"));
        assert!(follows("lld-22"));
        assert!(!follows("libc6"));
        assert!(!follows("libc6-dev"));
        assert!(!follows("gcc"));
        assert!(!follows("binutils"));
    }

    #[test]
    fn finds_the_cdylib_of_the_package() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w#ntpool-driver@0.1.0","target":{"kind":["cdylib","rlib"],"name":"ntpool_driver"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/ntpool_driver.dll","/w/target/cross/x86_64-pc-windows-msvc/release/libntpool_driver.rlib"]}"#;
        assert_eq!(
            artifact_outputs(line, "ntpool-driver", Artifact::Cdylib),
            [PathBuf::from("/w/target/cross/x86_64-pc-windows-msvc/release/ntpool_driver.dll")]
        );
        assert!(artifact_outputs(line, "other", Artifact::Cdylib).is_empty());
        assert!(artifact_outputs(line, "ntpool-driver", Artifact::Bin("ntpool-driver")).is_empty());
        assert!(artifact_outputs(r#"{"reason":"build-finished","success":true}"#, "x", Artifact::Cdylib).is_empty());
        assert!(artifact_outputs("not json", "x", Artifact::Cdylib).is_empty());
    }

    #[test]
    fn finds_the_executable_of_the_package() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/client#ntpool-client@0.1.0","target":{"kind":["bin"],"name":"ntpool-client"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe"],"executable":"/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe"}"#;
        let lib = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/client#ntpool-client@0.1.0","target":{"kind":["lib"],"name":"ntpool_client"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/libntpool_client.rlib"]}"#;
        let bin_of_other = bin.replace("#ntpool-client@", "#other@");
        assert_eq!(
            artifact_outputs(bin, "ntpool-client", Artifact::Bin("ntpool-client")),
            [PathBuf::from("/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe")]
        );
        assert!(artifact_outputs(lib, "ntpool-client", Artifact::Bin("ntpool-client")).is_empty());
        assert!(artifact_outputs(bin, "ntpool-client", Artifact::Bin("other")).is_empty());
        assert!(artifact_outputs(&bin_of_other, "ntpool-client", Artifact::Bin("ntpool-client")).is_empty());
        assert!(artifact_outputs(bin, "ntpool-client", Artifact::Cdylib).is_empty());
    }
}

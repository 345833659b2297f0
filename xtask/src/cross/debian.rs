//! Which Debian packages make the cross toolchain, and getting them: `rustc-web` and
//! `rust-web-src` at one version, the libraries they need that the system lacks, the matching
//! `lld-N` ([`resolve`]), fetched with `apt-get download` ([`download`]) and unpacked with
//! `dpkg-deb -x` ([`unpack`]), all without root.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::host::apt;

/// Debian's compiler, and its library sources. They come from one source package, `rustc-web`,
/// and are always taken at the same version: the library sources of one Rust release do not
/// compile with another release's compiler.
pub(super) const COMPILER_PACKAGE: &str = "rustc-web";
pub(super) const SOURCES_PACKAGE: &str = "rust-web-src";

/// Libraries that every Debian system has and that must never be unpacked into a private tree
/// (a second copy of libc on `LD_LIBRARY_PATH` would break every program started from it).
const SYSTEM_LIBRARIES: &[&str] = &["libc6", "libgcc-s1", "libstdc++6"];

// ---------------------------------------------------------------------------------------------
// Resolving the packages
// ---------------------------------------------------------------------------------------------

/// Decides which packages to download, as `(name, version)`, sorted by name.
///
/// Starts from `rustc-web` at apt's candidate version and `rust-web-src` at the same version,
/// follows their `Depends` into libraries the system does not have, then adds the `lld-N` that
/// matches the `libllvmN` the compiler is built against (so that one LLVM serves both).
pub(super) fn resolve() -> Result<Vec<(String, String)>, String> {
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
pub(super) fn candidate(name: &str) -> Result<Option<String>, String> {
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

pub(super) fn apt_update() -> Result<(), String> {
    eprintln!("cross: running `apt-get update`");
    run(&mut apt::update_command(), "apt-get update").map(drop)
}

/// `apt-get download` of exact versions into `dir` (needs no root).
pub(super) fn download(plan: &[(String, String)], dir: &Path, as_root: bool) -> Result<(), String> {
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
pub(super) fn unpack(debs: &Path, tree: &Path) -> Result<(), String> {
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

/// Runs a command to completion; its standard output on success, else a message naming `what`
/// with the command's error output.
pub(super) fn run(command: &mut Command, what: &str) -> Result<String, String> {
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
}

//! Files, folders and paths, each failure a message naming the path: reading, copying, making and
//! removing folders, absolute paths, and finding a program on `PATH`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The contents of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Copies `from` to `to`.
pub fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to).map(drop).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Creates (or truncates) the file `path`.
pub fn create_file(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Creates `dir` and its parents, when missing.
pub fn create_dir_all(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Deletes `dir` with what it holds, if it exists, and creates it empty.
pub fn recreate_dir(dir: &Path) -> Result<(), String> {
    remove_dir_if_present(dir)?;
    create_dir_all(dir)
}

/// Deletes `dir` with what it holds; nothing to do when it does not exist.
pub fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// `path` made absolute against the current folder (without resolving links).
pub fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))
}

/// Where `program` is on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

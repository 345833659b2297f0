//! Debian's apt on the host: whether this runs as root (apt installs need it), the `apt-get
//! install` and `apt-get update` commands, and [`tool`], which finds a tool or installs its package.

use std::fs;
use std::process::{Command, Stdio};

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    // The effective user id is the second field of `Uid:` in /proc/self/status.
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(uid) = status.lines().find_map(|line| line.strip_prefix("Uid:")) {
            return uid.split_whitespace().nth(1) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `apt-get install -y --no-install-recommends <packages>`, with no questions asked.
pub fn install_command(packages: &[&str]) -> Command {
    let mut command = Command::new("apt-get");
    command.args(["install", "-y", "--no-install-recommends"]).args(packages);
    command.env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
    command
}

/// `apt-get -q update`.
pub fn update_command() -> Command {
    let mut command = Command::new("apt-get");
    command.args(["-q", "update"]).stdin(Stdio::null());
    command
}

/// The first of `names` that runs; installs Debian package `package` first when none does and this
/// runs as root, else fails with the command to run.
pub fn tool(names: &[&str], package: &str) -> Result<String, String> {
    let runs =
        |name: &str| Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if let Some(name) = names.iter().find(|name| runs(name)) {
        return Ok((*name).to_owned());
    }
    if !running_as_root() {
        return Err(format!("{} is not installed: run `sudo apt-get install {package}`", names[0]));
    }
    println!("    installing {package} (apt-get install -y {package})");
    let status = install_command(&[package]).status().map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get install {package} failed ({status})"));
    }
    names
        .iter()
        .find(|name| runs(name))
        .map(|name| (*name).to_owned())
        .ok_or(format!("{package} installed no {names:?}"))
}

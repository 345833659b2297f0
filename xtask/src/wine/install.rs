//! Wine on the host: [`ensure_wine`] finds it, installs it with apt-get when it is missing and this
//! runs as root, and returns `wine --version`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::prefix::WINEDEBUG_QUIET;
use crate::host::apt::{self, running_as_root};
use crate::host::files::find_in_path;
use crate::host::process::run_bounded;

/// The bound on `apt-get update` and `apt-get install` (about 1.2 GB for Wine).
const APT_TIMEOUT: Duration = Duration::from_secs(1200);

/// Makes sure `wine`, its 64-bit loader and `wineserver` are installed (installing them with
/// apt-get as root), and returns `wine --version`.
pub(super) fn ensure_wine() -> Result<String, String> {
    if !wine_installed() {
        let install = "apt-get install -y --no-install-recommends wine wine64";
        if !running_as_root() {
            return Err(format!(
                "wine: Wine is not installed (`wine`, `wine64` and `wineserver` are needed). Install it as root:\n    \
                 sudo {install}\n(run `sudo apt-get update` first if apt does not know the packages)"
            ));
        }
        eprintln!("wine: installing Wine: {install}");
        let apt_install = || run_bounded(install, &mut apt::install_command(&["wine", "wine64"]), APT_TIMEOUT);
        let installed = apt_install().is_ok_and(|(status, _)| status.success());
        if !installed {
            eprintln!("wine: apt-get install failed; running apt-get update and trying again");
            let (status, _) = run_bounded("apt-get update", &mut apt::update_command(), APT_TIMEOUT)?;
            if !status.success() {
                return Err(format!("wine: `apt-get update` failed ({status})"));
            }
            let (status, _) = apt_install()?;
            if !status.success() {
                return Err(format!("wine: `{install}` failed ({status})"));
            }
        }
        if !wine_installed() {
            return Err(format!("wine: `{install}` succeeded but `wine`, `wine64` or `wineserver` is still missing"));
        }
    }
    let output = Command::new("wine")
        .arg("--version")
        .env("WINEDEBUG", WINEDEBUG_QUIET)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("wine: cannot run `wine --version`: {e}"))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || version.is_empty() {
        return Err(format!("wine: `wine --version` failed ({})", output.status));
    }
    Ok(version)
}

/// Whether `wine`, its 64-bit loader and `wineserver` are there.
fn wine_installed() -> bool {
    // Debian installs the 64-bit loader as /usr/lib/wine/wine64, which `wine` runs when there is no
    // 32-bit Wine; other distributions put `wine64` on PATH.
    let wine64 = find_in_path("wine64").is_some() || Path::new("/usr/lib/wine/wine64").is_file();
    find_in_path("wine").is_some() && find_in_path("wineserver").is_some() && wine64
}

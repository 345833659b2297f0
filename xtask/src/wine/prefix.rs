//! A fresh Wine prefix for a run: made with `wineboot -i` (no installer dialogs), with the
//! registry value that limits the relay trace to the routines the checks read ([`RELAY_INCLUDE`]),
//! the drivers of the run installed in its `system32\drivers` ([`RunFiles::fresh`]); and the
//! environment of every Wine command run in it ([`Wine::command`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::host::files;
use crate::host::process::run_bounded;

/// Every Wine command; the first one after `wineserver` starts also passes it on to
/// services.exe and winedevice.exe, which print the driver's lines.
pub(super) const WINEDEBUG: &str = "warn+debugstr,err+all,fixme-all,+relay";
/// Setting the prefix up: quiet.
pub(super) const WINEDEBUG_QUIET: &str = "-all";
/// The routines the relay trace shows (all `ntoskrnl.exe`). Not `KeDelayExecutionThread`: how often
/// the driver waits for a timer or a work item depends on timing, and every cycle must make the same
/// calls.
const RELAY_INCLUDE: &[&str] = &[
    "ExAllocatePool2",
    "ExAllocatePoolWithTag",
    "ExFreePoolWithTag",
    "ExFreePool",
    "ExAllocatePoolWithQuotaTag",
    "MmGetSystemRoutineAddress",
    "KeAcquireSpinLockRaiseToDpc",
    "KeReleaseSpinLock",
    "ExAcquireFastMutex",
    "ExReleaseFastMutex",
    "IoCreateDevice",
    "IoDeleteDevice",
    "IoCreateSymbolicLink",
    "IoDeleteSymbolicLink",
    "IoGetDeviceInterfaces",
    "ExInitializeLookasideListEx",
    "ExDeleteLookasideListEx",
    "ExInitializeNPagedLookasideList",
    "ExDeleteNPagedLookasideList",
    "ExInitializePagedLookasideList",
    "ExDeletePagedLookasideList",
    "PsCreateSystemThread",
    "PsTerminateSystemThread",
    "ObReferenceObjectByHandle",
    "ObfDereferenceObject",
    "KeWaitForSingleObject",
    "IoAllocateIrp",
    "IoFreeIrp",
    "IofCallDriver",
    "KeInitializeTimerEx",
    "KeSetTimerEx",
    "KeCancelTimer",
    "KeInitializeDpc",
    "KeRemoveQueueDpc",
    "KeFlushQueuedDpcs",
    "IoAllocateWorkItem",
    "IoQueueWorkItem",
    "IoFreeWorkItem",
];
/// The bound on each Wine command.
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The bound on `wineserver -k` and on the persistent server's exit.
pub(super) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A Wine prefix, and the environment of every command run in it.
pub(super) struct Wine {
    pub(super) prefix: PathBuf,
}

impl Wine {
    /// `program` with the prefix's environment, `WINEDEBUG` set to `debug`, and no standard input.
    pub(super) fn command(&self, program: &str, debug: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("WINEPREFIX", &self.prefix)
            .env("WINEARCH", "win64")
            .env("DISPLAY", "")
            .env("WINEDEBUG", debug)
            // No Mono or Gecko installer dialogs while the prefix is made.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
        command
    }

    /// `wineserver -k` on the prefix, ignoring the result (it fails when no server runs).
    pub(super) fn kill_server(&self) {
        let mut kill = self.command("wineserver", WINEDEBUG_QUIET);
        kill.arg("-k").stdout(Stdio::null()).stderr(Stdio::null());
        let _ = run_bounded("wineserver -k", kill, SHUTDOWN_TIMEOUT);
    }

    /// Deletes the old prefix (stopping a server left behind on it), makes a new one with
    /// `wineboot -i`, and sets `RelayInclude`. Output goes to `<dir>/setup.log`.
    fn create_prefix(&self, dir: &Path) -> Result<(), String> {
        let result = self.try_create_prefix(dir);
        if result.is_err() {
            // wineboot's server may still run (it lingers a few seconds after its last process).
            self.kill_server();
        }
        result
    }

    fn try_create_prefix(&self, dir: &Path) -> Result<(), String> {
        files::create_dir_all(dir)?;
        if self.prefix.exists() {
            self.kill_server();
            files::remove_dir_if_present(&self.prefix)?;
        }
        let setup_log = dir.join("setup.log");
        let log = files::create_file(&setup_log)?;
        let logged = |mut command: Command, what: &str| -> Result<(), String> {
            let out = log.try_clone().map_err(|e| format!("cannot share {}: {e}", setup_log.display()))?;
            let err = log.try_clone().map_err(|e| format!("cannot share {}: {e}", setup_log.display()))?;
            command.stdout(out).stderr(err);
            let (status, elapsed) = run_bounded(what, command, STEP_TIMEOUT)?;
            if !status.success() {
                return Err(format!("wine: `{what}` failed ({status}); see {}", setup_log.display()));
            }
            eprintln!("wine:   {what}: {:.1} s", elapsed.as_secs_f64());
            Ok(())
        };
        let mut boot = self.command("wine", WINEDEBUG_QUIET);
        boot.args(["wineboot", "-i"]);
        logged(boot, "wine wineboot -i")?;
        let mut wait = self.command("wineserver", WINEDEBUG_QUIET);
        wait.arg("-w");
        logged(wait, "wineserver -w")?;

        let value: Vec<String> = RELAY_INCLUDE.iter().map(|name| format!("ntoskrnl.exe.{name}")).collect();
        let value = value.join(";");
        let mut reg = self.command("wine", WINEDEBUG_QUIET);
        reg.args(["reg", "add", r"HKCU\Software\Wine\Debug", "/v", "RelayInclude", "/t", "REG_SZ", "/d"]);
        reg.arg(&value).arg("/f");
        logged(reg, r"wine reg add HKCU\Software\Wine\Debug /v RelayInclude")?;
        let mut wait = self.command("wineserver", WINEDEBUG_QUIET);
        wait.arg("-w");
        logged(wait, "wineserver -w")?;
        let user_reg = self.prefix.join("user.reg");
        let saved = files::read(&user_reg)?;
        if !String::from_utf8_lossy(&saved).contains(&format!("\"RelayInclude\"=\"{value}\"")) {
            return Err(format!("wine: RelayInclude is not in {} after `wine reg add`", user_reg.display()));
        }
        Ok(())
    }
}

/// Where one Wine run keeps its files, under `<root>/<folder>`: the prefix (`prefix/`), each
/// command's standard output (`out/`) and the log (`wine.log`).
pub(super) struct RunFiles {
    pub(super) wine: Wine,
    pub(super) out_dir: PathBuf,
    pub(super) log_path: PathBuf,
}

impl RunFiles {
    /// Makes a fresh prefix in `<root>/<folder>/prefix`, saying so with `wine_version`. Returns the
    /// files and the seconds the prefix took.
    pub(super) fn fresh(root: &Path, folder: &str, wine_version: &str) -> Result<(RunFiles, f64), String> {
        let dir = root.join(folder);
        let wine = Wine { prefix: dir.join("prefix") };
        let started = Instant::now();
        eprintln!("wine: {wine_version}; creating a fresh prefix in {}", wine.prefix.display());
        wine.create_prefix(&dir)?;
        let prefix_secs = started.elapsed().as_secs_f64();
        Ok((RunFiles { wine, out_dir: dir.join("out"), log_path: dir.join("wine.log") }, prefix_secs))
    }

    /// Installs `drivers` (each a file and the name it gets) in the prefix's `system32\drivers`.
    pub(super) fn install(&self, drivers: &[(&Path, &str)]) -> Result<(), String> {
        let installed = self.wine.prefix.join("drive_c/windows/system32/drivers");
        for (from, name) in drivers {
            files::copy(from, &installed.join(name))?;
        }
        Ok(())
    }
}

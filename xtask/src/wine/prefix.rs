//! A fresh Wine prefix for a run: made with `wineboot -i` (no installer dialogs), with the
//! registry value that limits the relay trace to the routines the checks read ([`RELAY_INCLUDE`]),
//! the drivers of the run installed in its `system32\drivers` ([`RunFiles::fresh`]); the
//! environment of every Wine command run in it ([`Wine::command`]), and the restart of a command
//! whose process Wine could not start ([`restart_unstarted`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
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

/// What Wine's loader prints, before any code of the command runs, when a new process cannot
/// reserve the shared user data page at 0x7ffe0000 because another mapping landed there
/// (`virtual_alloc_first_teb` in `dlls/ntdll/unix/virtual.c`, which then exits with 1): an
/// address-space collision at process start, which depends on where the host placed the process's
/// first mappings, not on the command.
const UNSTARTED: &str = "wine: failed to map the shared user data";
/// How many times a command is started in all when its process fails that way.
const START_ATTEMPTS: usize = 3;

/// Runs `attempt`, one Wine command whose standard error goes to the log `log_path`, and runs it
/// again when it failed without starting (the log gained [`UNSTARTED`] meanwhile), at most
/// [`START_ATTEMPTS`] times in all. Any other failure is returned as it is.
pub(super) fn restart_unstarted<T>(
    log_path: &Path,
    what: &str,
    mut attempt: impl FnMut() -> Result<(ExitStatus, T), String>,
) -> Result<(ExitStatus, T), String> {
    let mut attempts = 1;
    loop {
        let before = std::fs::metadata(log_path).map_err(|e| format!("cannot read {}: {e}", log_path.display()))?.len();
        let (status, value) = attempt()?;
        if status.success() || attempts == START_ATTEMPTS || !unstarted(&files::read(log_path)?, before) {
            return Ok((status, value));
        }
        eprintln!("wine: `{what}` did not start (Wine: \"{UNSTARTED}\"); starting it again");
        attempts += 1;
    }
}

/// Whether what `log` gained after its first `before` bytes, while a command ran, says the
/// command's process did not start.
fn unstarted(log: &[u8], before: u64) -> bool {
    let gained = usize::try_from(before).ok().and_then(|before| log.get(before..)).unwrap_or_default();
    String::from_utf8_lossy(gained).lines().any(|line| line.contains(UNSTARTED))
}

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
        let _ = run_bounded("wineserver -k", &mut kill, SHUTDOWN_TIMEOUT);
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
            let (status, elapsed) =
                restart_unstarted(&setup_log, what, || run_bounded(what, &mut command, STEP_TIMEOUT))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::process::ExitStatusExt as _;

    /// The loader's line as Wine 8.0 printed it in a run whose `sc start` never started.
    const LOADER_LINE: &str =
        "err:virtual:virtual_alloc_first_teb wine: failed to map the shared user data: c0000018\n";

    /// Runs `restart_unstarted` on a log that holds `before`, with an attempt that appends
    /// `logged(n)` to the log on its `n`th run and exits with `exit(n)`; the status and the number of
    /// runs.
    fn attempts(
        before: &str,
        logged: impl Fn(usize) -> &'static str,
        exit: impl Fn(usize) -> i32,
    ) -> (ExitStatus, usize) {
        let log = std::env::temp_dir().join(format!(
            "ntpool-xtask-unstarted-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&log, before).unwrap();
        let mut runs = 0;
        let (status, ()) = restart_unstarted(&log, "wine sc start ntpool", || {
            runs += 1;
            let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            file.write_all(logged(runs).as_bytes()).unwrap();
            Ok((ExitStatus::from_raw(exit(runs) << 8), ()))
        })
        .unwrap();
        std::fs::remove_file(&log).unwrap();
        (status, runs)
    }

    #[test]
    fn a_command_whose_process_did_not_start_runs_again() {
        let (status, runs) =
            attempts("", |n| if n == 1 { LOADER_LINE } else { "SERVICE_NAME: ntpool\n" }, |n| i32::from(n == 1));
        assert_eq!((status.success(), runs), (true, 2));
    }

    #[test]
    fn a_command_that_ran_and_failed_does_not_run_again() {
        let (status, runs) = attempts("", |_| "0050:err:ntoskrnl:something failed\n", |_| 1);
        assert_eq!((status.code(), runs), (Some(1), 1));
    }

    #[test]
    fn a_command_that_never_starts_is_run_at_most_start_attempts_times() {
        let (status, runs) = attempts("", |_| LOADER_LINE, |_| 1);
        assert_eq!((status.code(), runs), (Some(1), START_ATTEMPTS));
    }

    #[test]
    fn a_loader_line_from_before_the_command_is_not_its() {
        let (status, runs) = attempts(LOADER_LINE, |_| "", |_| 1);
        assert_eq!((status.code(), runs), (Some(1), 1));
    }
}

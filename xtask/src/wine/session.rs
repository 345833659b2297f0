//! A session of Wine commands on a prefix: one persistent `wineserver` (services.exe and
//! winedevice.exe must outlive each `wine sc` command), every command in its own process group and
//! bounded by a timeout, standard output kept in `out/`, standard error and this module's markers
//! in `wine.log`; the kernel driver service created, started and stopped with `sc`, and everything
//! shut down and the log read at the end ([`run_session`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::log::MARK;
use super::messages::indent_block;
use super::prefix::{RunFiles, SHUTDOWN_TIMEOUT, STEP_TIMEOUT, WINEDEBUG, Wine, restart_unstarted};
use crate::host::files;
use crate::host::process::{kill_group, run_bounded, spawn_group, wait_bounded};

/// A Wine command's result.
pub(super) struct Step {
    pub(super) status: ExitStatus,
    pub(super) secs: f64,
    pub(super) stdout: String,
}

/// The persistent `wineserver` and the commands run under it, all logging to `wine.log`.
pub(super) struct Session<'a> {
    wine: &'a Wine,
    log: File,
    log_path: PathBuf,
    out_dir: PathBuf,
    steps: usize,
    /// The persistent `wineserver -f -p`.
    server: Option<Child>,
    /// How long `sc create` took: the first command, which starts services.exe and Wine's own
    /// drivers.
    create_secs: f64,
    /// The process groups started (the persistent server's first).
    groups: Vec<u32>,
    timed_out: bool,
}

/// Cycles completed so far, with the error that stopped them.
pub(super) type Interrupted<T> = (String, T);

impl<'a> Session<'a> {
    /// A session on `wine`'s prefix: `out_dir` made empty, the log started at `log_path`.
    fn new(wine: &'a Wine, out_dir: PathBuf, log_path: &Path) -> Result<Self, String> {
        files::recreate_dir(&out_dir)?;
        let log = files::create_file(log_path)?;
        Ok(Session {
            wine,
            log,
            log_path: log_path.to_path_buf(),
            out_dir,
            steps: 0,
            server: None,
            create_secs: 0.0,
            groups: Vec::new(),
            timed_out: false,
        })
    }

    /// Writes `<MARK> <text>` into the log.
    pub(super) fn mark(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.log, "{MARK} {text}").map_err(|e| format!("cannot write to wine.log: {e}"))
    }

    /// Starts the persistent server and creates the kernel driver service `service` for
    /// `system32\drivers\<sys_name>`.
    pub(super) fn create_service(&mut self, service: &str, sys_name: &str) -> Result<(), String> {
        self.start_server()?;
        let bin_path = format!(r"C:\windows\system32\drivers\{sys_name}");
        let create = ["sc", "create", service, "type=", "kernel", "start=", "demand", "binPath=", &bin_path];
        self.mark("setup: sc create")?;
        self.create_secs = self.expect_success(&create)?.secs;
        Ok(())
    }

    /// `sc start` of `service` until it is RUNNING; the seconds it took.
    pub(super) fn start_service(&mut self, service: &str) -> Result<f64, String> {
        let started = Instant::now();
        let start = self.expect_success(&["sc", "start", service])?;
        self.wait_for_state(service, start.stdout, "RUNNING")?;
        Ok(started.elapsed().as_secs_f64())
    }

    /// `sc stop` of `service` until it is STOPPED (the driver's `DriverUnload` has returned); the
    /// seconds it took.
    pub(super) fn stop_service(&mut self, service: &str) -> Result<f64, String> {
        let stopped = Instant::now();
        let stop = self.expect_success(&["sc", "stop", service])?;
        self.wait_for_state(service, stop.stdout, "STOPPED")?;
        Ok(stopped.elapsed().as_secs_f64())
    }

    fn start_server(&mut self) -> Result<(), String> {
        self.mark("setup: wineserver -f -p")?;
        let mut server = self.wine.command("wineserver", WINEDEBUG);
        server.args(["-f", "-p"]).stdout(self.log_handle()?).stderr(self.log_handle()?);
        // Reaped in `shutdown`. A `wine` started before it listens finds the lock taken and waits
        // for the socket.
        let child = spawn_group("wineserver -f -p", &mut server)?;
        self.groups.push(child.id());
        self.server = Some(child);
        Ok(())
    }

    fn log_handle(&self) -> Result<File, String> {
        self.log.try_clone().map_err(|e| format!("cannot share wine.log: {e}"))
    }

    /// `wine <args>`: standard output into `out/`, standard error into the log; started again when
    /// Wine could not start its process ([`restart_unstarted`]).
    pub(super) fn wine(&mut self, args: &[&OsStr]) -> Result<Step, String> {
        let what = format!("wine {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        let log_path = self.log_path.clone();
        let (status, (secs, stdout)) = restart_unstarted(&log_path, &what, || self.wine_once(&what, args))?;
        Ok(Step { status, secs, stdout })
    }

    /// One run of `wine <args>` (`what`): its exit status, the seconds it took and its standard
    /// output, which is also copied into the log.
    fn wine_once(&mut self, what: &str, args: &[&OsStr]) -> Result<(ExitStatus, (f64, String)), String> {
        self.steps += 1;
        let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
        let out_path = self.out_dir.join(format!("{:02}-{name}.txt", self.steps));
        let out = files::create_file(&out_path)?;
        let mut command = self.wine.command("wine", WINEDEBUG);
        command.args(args).stdout(out).stderr(self.log_handle()?);
        let started = Instant::now();
        let mut child = spawn_group(what, &mut command)?;
        // The first command also starts services.exe and winedevice.exe, in its process group.
        self.groups.push(child.id());
        let status = wait_bounded(what, &mut child, STEP_TIMEOUT).inspect_err(|_| self.timed_out = true)?;
        let secs = started.elapsed().as_secs_f64();
        let stdout = files::read(&out_path)?;
        let stdout = String::from_utf8_lossy(&stdout).replace("\r\n", "\n");
        for line in stdout.lines() {
            writeln!(self.log, "{MARK} stdout: {line}").map_err(|e| format!("cannot write to wine.log: {e}"))?;
        }
        Ok((status, (secs, stdout)))
    }

    /// Polls `wine sc query` until `service` is in `state` (`sc start` and `sc stop` print the
    /// state they left it in, usually the final one already); `last` is what the last `sc` command
    /// printed.
    fn wait_for_state(&mut self, service: &str, mut last: String, state: &str) -> Result<(), String> {
        let started = Instant::now();
        while !service_state_is(&last, state) {
            if started.elapsed() >= STEP_TIMEOUT {
                return Err(format!(
                    "the {service} service did not reach {state} within {} s; `sc query` says{}",
                    STEP_TIMEOUT.as_secs(),
                    indent_block(&last)
                ));
            }
            thread::sleep(Duration::from_millis(100));
            last = self.expect_success(&["sc", "query", service])?.stdout;
        }
        Ok(())
    }

    fn expect_success(&mut self, args: &[&str]) -> Result<Step, String> {
        let os_args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let step = self.wine(&os_args)?;
        if !step.status.success() {
            return Err(format!("`wine {}` failed ({}){}", args.join(" "), step.status, indent_block(&step.stdout)));
        }
        Ok(step)
    }

    /// `wineserver -k`, then waits for the persistent server; after a timeout kills what is left of
    /// the process groups this session started.
    fn shutdown(&mut self) -> Result<(), String> {
        let _ = self.mark("shutdown: wineserver -k");
        let mut kill = self.wine.command("wineserver", WINEDEBUG);
        kill.arg("-k");
        match (self.log_handle(), self.log_handle()) {
            (Ok(out), Ok(err)) => {
                kill.stdout(out).stderr(err);
            }
            _ => {
                kill.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut result = match run_bounded("wineserver -k", &mut kill, SHUTDOWN_TIMEOUT) {
            Ok(_) => Ok(()),
            Err(error) => {
                self.timed_out = true;
                Err(error)
            }
        };
        if let Some(mut server) = self.server.take() {
            if let Err(error) = wait_bounded("wineserver -f -p (after wineserver -k)", &mut server, SHUTDOWN_TIMEOUT) {
                self.timed_out = true;
                result = result.and(Err(error));
            }
        }
        if self.timed_out {
            // Something hung: make sure nothing this session started survives it.
            for group in &self.groups {
                kill_group(*group);
            }
        }
        result
    }
}

/// Whether `sc` output shows `STATE : <n>  <state>`.
fn service_state_is(stdout: &str, state: &str) -> bool {
    stdout.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.first() == Some(&"STATE") && words.last() == Some(&state)
    })
}

/// What a session left: what its cycles returned, the errors that stopped them or the shutdown,
/// and the log.
pub(super) struct Ended<T> {
    pub(super) cycles: T,
    pub(super) problems: Vec<String>,
    pub(super) log: String,
    /// How long `sc create` took (see [`Session`]).
    pub(super) create_secs: f64,
}

/// Runs `cycles` in a new session on `files` (its `out/` made empty, its log started), shuts the
/// session down whatever happened, and reads the log. Fails only when the session cannot start or
/// the log cannot be read; the errors of the cycles and of the shutdown are in [`Ended::problems`].
pub(super) fn run_session<T>(
    files: &RunFiles,
    cycles: impl FnOnce(&mut Session<'_>) -> Result<T, Interrupted<T>>,
) -> Result<Ended<T>, String> {
    let mut session = Session::new(&files.wine, files.out_dir.clone(), &files.log_path)?;
    let outcome = cycles(&mut session);
    let shutdown = session.shutdown();
    let log = files::read(&files.log_path)?;
    let log = String::from_utf8_lossy(&log).into_owned();
    let mut problems = Vec::new();
    let cycles = outcome.unwrap_or_else(|(error, cycles)| {
        problems.push(error);
        cycles
    });
    if let Err(error) = shutdown {
        problems.push(error);
    }
    Ok(Ended { cycles, problems, log, create_secs: session.create_secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_states_are_read() {
        let running =
            "SERVICE_NAME: ntpool\n        TYPE               : 1  \n        STATE              : 4  RUNNING\n";
        assert!(service_state_is(running, "RUNNING") && !service_state_is(running, "STOPPED"));
    }
}

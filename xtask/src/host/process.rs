//! Running commands: a step of `cargo xtask test` echoed with its time ([`step`]), and commands in
//! a process group of their own, bounded by a timeout after which the whole group is killed
//! ([`run_bounded`], [`spawn_group`], [`wait_bounded`], [`kill_group`]).

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs a command, echoing it, and fails with its description if it fails.
pub fn step(what: &str, mut command: Command) -> Result<(), String> {
    println!("==> {what}");
    let started = Instant::now();
    let status = command.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    println!("<== {what}: ok in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `command` in a process group of its own; after `timeout` kills the whole group.
pub fn run_bounded(what: &str, command: &mut Command, timeout: Duration) -> Result<(ExitStatus, Duration), String> {
    let started = Instant::now();
    let mut child = spawn_group(what, command)?;
    let status = wait_bounded(what, &mut child, timeout)?;
    Ok((status, started.elapsed()))
}

/// Starts `command` as the leader of a new process group (whose id is the child's id).
pub fn spawn_group(what: &str, command: &mut Command) -> Result<Child, String> {
    command.process_group(0);
    command.spawn().map_err(|e| format!("`{what}`: cannot start: {e}"))
}

/// Waits for `child`, a process group leader from [`spawn_group`]; after `timeout` (or when it
/// cannot be waited for) kills its whole group.
pub fn wait_bounded(what: &str, child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let started = Instant::now();
    loop {
        let error = match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() < timeout => {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            Ok(None) => format!("`{what}` timed out after {} s; its process group was killed", timeout.as_secs()),
            Err(e) => format!("`{what}`: cannot wait for it ({e}); its process group was killed"),
        };
        kill_group(child.id());
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
}

/// SIGKILL to the process group `group` (one this xtask started).
pub fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

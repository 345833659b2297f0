//! `cargo xtask wine`: load the real cross-built `ntpool_driver.sys` under Wine, start and stop it
//! a few times (running the user-mode client in between when there is one), and check from Wine's
//! debug log what the driver did.
//!
//! Wine (8.0 here) runs kernel drivers inside `winedevice.exe` on its own `ntoskrnl.exe`. It checks
//! neither pool tags nor leaks nor IRQL, so the checks are made on its log instead:
//!
//! * the driver's `DbgPrint` lines (`warn:debugstr:` channel): the self-test passed, `DriverUnload`
//!   deleted the device and freed the state, once per cycle, and the allocator was the
//!   `ExAllocatePoolWithTag` fallback (Wine has no `ExAllocatePool2`);
//! * the relay trace of the pool routines (`+relay`, limited by the registry value
//!   `HKCU\Software\Wine\Debug\RelayInclude`): calls and returns are paired per thread, the calls
//!   made from the driver's image are kept, and every block must be freed once, with the tag it was
//!   allocated with, before the cycle's `sc stop` returns;
//! * no crash (`Unhandled page fault`), no call of an `unimplemented function`, no ` stub` line;
//! * every cycle the same per-tag counts.
//!
//! Everything runs against a fresh prefix in `<root>/target/wine/prefix`, under one persistent
//! `wineserver` (services.exe and winedevice.exe must outlive each `wine sc` command), every
//! command in its own process group and bounded by a timeout. The log is
//! `<root>/target/wine/wine.log`; each command's standard output is kept in
//! `<root>/target/wine/out/`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use object::read::pe::{ImageNtHeaders as _, ImageOptionalHeader as _, PeFile64};

mod video;
pub use video::run_video;

/// The service name, and the driver's file name in `system32\drivers`.
const SERVICE: &str = "ntpool";
const SYS_NAME: &str = "ntpool_driver.sys";
/// The prefix the driver's `DbgPrint` lines start with.
const DRIVER_PREFIX: &str = "ntpool-driver: ";

/// Every Wine command; the first one after `wineserver` starts also passes it on to
/// services.exe and winedevice.exe, which print the driver's lines.
const WINEDEBUG: &str = "warn+debugstr,err+all,fixme-all,+relay";
/// Setting the prefix up: quiet.
const WINEDEBUG_QUIET: &str = "-all";
/// The routines the relay trace shows (all `ntoskrnl.exe`).
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
];
/// Allocators with the arguments `(pool type or flags, size, tag)`.
const ALLOCATORS: &[&str] = &["ExAllocatePool2", "ExAllocatePoolWithTag", "ExAllocatePoolWithQuotaTag"];
/// Routines whose calls must come in pairs within a cycle: (acquire or create, release or delete).
const PAIRS: &[(&str, &str)] = &[
    ("KeAcquireSpinLockRaiseToDpc", "KeReleaseSpinLock"),
    ("ExAcquireFastMutex", "ExReleaseFastMutex"),
    ("IoCreateDevice", "IoDeleteDevice"),
    ("IoCreateSymbolicLink", "IoDeleteSymbolicLink"),
    ("ExInitializeLookasideListEx", "ExDeleteLookasideListEx"),
    ("ExInitializeNPagedLookasideList", "ExDeleteNPagedLookasideList"),
    ("ExInitializePagedLookasideList", "ExDeletePagedLookasideList"),
];
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: every `ExAllocatePoolWithQuotaTag` call of the driver must
/// carry it (ntpool never uses the raising form).
const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: u64 = 8;
/// Log lines that mean the driver (or Wine) went wrong, whatever the rest says.
const CRASH_PATTERNS: &[&str] = &["Unhandled page fault", "unimplemented function", " stub"];

/// The bound on each Wine command.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The bound on `wineserver -k` and on the persistent server's exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on `apt-get update` and `apt-get install` (about 1.2 GB for Wine).
const APT_TIMEOUT: Duration = Duration::from_secs(1200);
/// The markers this module writes into the log between commands.
const MARK: &str = "xtask-wine:";
/// How many log lines a failure shows at most, per kind.
const MAX_SHOWN: usize = 12;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What a successful run found, for a person to read (`Display`).
#[derive(Debug)]
pub struct Report {
    wine_version: String,
    log: PathBuf,
    prefix: PathBuf,
    prefix_secs: f64,
    /// `sc create`, the first command under the persistent server.
    session_secs: f64,
    cycles: Vec<CycleReport>,
    /// Per tag, all cycles together.
    tags: BTreeMap<u32, TagStats>,
    /// The driver's calls of each traced routine in one cycle (every cycle has the same).
    calls: BTreeMap<String, u64>,
    /// Pool calls in the trace made by Wine's own drivers, not checked.
    ignored: u64,
}

/// One start/stop cycle.
#[derive(Debug)]
struct CycleReport {
    number: u32,
    start_secs: f64,
    client_secs: Option<f64>,
    stop_secs: f64,
    self_test: String,
    allocations: u64,
    frees: u64,
    bytes: u64,
    client: Option<String>,
    /// The client's whole standard output.
    client_stdout: String,
}

/// Loads `sys` (a cross-built `ntpool_driver.sys`) under Wine `cycles` times in a fresh prefix
/// under `<root>/target/wine/`, runs `client` (the user-mode test client) while it is loaded when
/// given, and checks Wine's log (see the module documentation). Fails with a message that quotes
/// the relevant log lines.
pub fn run(root: &Path, sys: &Path, client: Option<&Path>, cycles: u32) -> Result<Report, String> {
    run_with_args(root, sys, client, &[], cycles)
}

/// [`run`], with `client_args` passed to the client on its command line.
pub fn run_with_args(
    root: &Path,
    sys: &Path,
    client: Option<&Path>,
    client_args: &[String],
    cycles: u32,
) -> Result<Report, String> {
    if cycles == 0 {
        return Err("wine: at least one load/unload cycle is needed".into());
    }
    let root = std::path::absolute(root).map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let layout = ImageLayout::read(sys)?;
    let client = match client {
        Some(path) => {
            if !path.is_file() {
                return Err(format!("wine: the client {} does not exist", path.display()));
            }
            Some(std::path::absolute(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?)
        }
        None => None,
    };
    let wine_version = ensure_wine()?;

    let dir = root.join("target/wine");
    let wine = Wine { prefix: dir.join("prefix") };
    let out_dir = dir.join("out");
    let log_path = dir.join("wine.log");
    let started = Instant::now();
    eprintln!("wine: {wine_version}; creating a fresh prefix in {}", wine.prefix.display());
    wine.create_prefix(&dir)?;
    let prefix_secs = started.elapsed().as_secs_f64();
    eprintln!("wine: prefix ready in {prefix_secs:.1} s");
    let installed = wine.prefix.join("drive_c/windows/system32/drivers").join(SYS_NAME);
    fs::copy(sys, &installed).map_err(|e| format!("cannot copy {} to {}: {e}", sys.display(), installed.display()))?;

    let mut session = Session::new(&wine, out_dir, &log_path)?;
    let outcome = session.run_cycles(client.as_deref(), client_args, cycles);
    let shutdown = session.shutdown();
    let session_secs = session.create_secs;

    let text = fs::read(&log_path).map_err(|e| format!("cannot read {}: {e}", log_path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let trace = Trace::parse(&text, layout, SERVICE);

    let mut problems = Vec::new();
    let timings = match outcome {
        Ok(timings) => timings,
        Err((error, timings)) => {
            problems.push(error);
            timings
        }
    };
    if let Err(error) = shutdown {
        problems.push(error);
    }
    problems.extend(check(&trace, &timings, cycles));
    // The client's scenario (no arguments) asks for quota-charged blocks; its soak mode does not.
    let scenario = client.is_some() && client_args.is_empty();
    for cycle in trace.cycles.iter().filter(|cycle| cycle.ended) {
        problems.extend(pool_surface_problems(cycle, scenario));
    }
    if !problems.is_empty() {
        return Err(problem_report(SYS_NAME, &problems, &log_path));
    }

    let mut tags: BTreeMap<u32, TagStats> = BTreeMap::new();
    for cycle in &trace.cycles {
        for (tag, stats) in &cycle.tags {
            tags.entry(*tag).or_default().add(stats);
        }
    }
    let cycle_reports = timings
        .iter()
        .zip(&trace.cycles)
        .map(|(timing, cycle)| CycleReport {
            number: timing.number,
            start_secs: timing.start_secs,
            client_secs: timing.client_secs,
            stop_secs: timing.stop_secs,
            self_test: cycle.debug_line("self-test passed").unwrap_or_default().to_string(),
            allocations: cycle.tags.values().map(|s| s.allocations).sum(),
            frees: cycle.tags.values().map(|s| s.frees).sum(),
            bytes: cycle.tags.values().map(|s| s.bytes).sum(),
            client: timing.client_summary.clone(),
            client_stdout: timing.client_stdout.clone(),
        })
        .collect();
    Ok(Report {
        wine_version,
        log: log_path,
        prefix: wine.prefix.clone(),
        prefix_secs,
        session_secs,
        cycles: cycle_reports,
        tags,
        calls: trace.cycles.first().map(|c| c.calls.clone()).unwrap_or_default(),
        ignored: trace.ignored,
    })
}

impl Report {
    /// The client's standard output in each cycle, in order (empty without a client).
    pub fn client_outputs(&self) -> impl Iterator<Item = &str> {
        self.cycles.iter().map(|cycle| cycle.client_stdout.as_str())
    }

    /// Allocations and frees the relay trace shows, all cycles together.
    pub fn pool_calls(&self) -> (u64, u64) {
        self.cycles
            .iter()
            .fold((0, 0), |(allocations, frees), cycle| (allocations + cycle.allocations, frees + cycle.frees))
    }

    /// How many load/unload cycles passed.
    pub fn cycle_count(&self) -> usize {
        self.cycles.len()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{SYS_NAME} under {}: {} load/unload cycle(s) passed (prefix {})",
            self.wine_version,
            self.cycles.len(),
            self.prefix.display()
        )?;
        writeln!(f, "  prefix created in {:.1} s", self.prefix_secs)?;
        writeln!(f, "  sc create (starts services.exe and Wine's own drivers) {:.2} s", self.session_secs)?;
        for cycle in &self.cycles {
            write!(f, "  cycle {}: sc start {:.2} s", cycle.number, cycle.start_secs)?;
            if let Some(secs) = cycle.client_secs {
                write!(f, ", client {secs:.2} s")?;
            }
            writeln!(
                f,
                ", sc stop {:.2} s: {}; {} allocations, {} frees, {} bytes, 0 outstanding",
                cycle.stop_secs, cycle.self_test, cycle.allocations, cycle.frees, cycle.bytes
            )?;
            if let Some(client) = &cycle.client {
                writeln!(f, "           client: {client}")?;
            }
        }
        writeln!(
            f,
            "\nPool use per tag, from the relay trace ({} cycles together; every cycle the same):",
            self.cycles.len()
        )?;
        writeln!(
            f,
            "  {:<6} {:<10} {:>11} {:>8} {:>7} {:>10}",
            "tag", "value", "allocations", "failed", "frees", "bytes"
        )?;
        let mut tags: Vec<(&u32, &TagStats)> = self.tags.iter().collect();
        tags.sort_by_key(|(tag, _)| Tag(**tag).to_string());
        for (tag, stats) in tags {
            writeln!(
                f,
                "  {:<6} {:<10} {:>11} {:>8} {:>7} {:>10}",
                Tag(*tag).to_string(),
                format!("{tag:#010x}"),
                stats.allocations,
                stats.failed,
                stats.frees,
                stats.bytes
            )?;
        }
        let calls: Vec<String> = self.calls.iter().map(|(name, count)| format!("{name} {count}")).collect();
        writeln!(f, "\nThe driver's traced kernel calls per cycle: {}", calls.join(", "))?;
        writeln!(
            f,
            "Checked: DbgPrint lines once per cycle, the ExAllocatePoolWithTag fallback (no ExAllocatePool2 call), \
             every block freed once with its own tag, nothing left after sc stop, pairs balanced, no crash or stub."
        )?;
        if self.ignored > 0 {
            writeln!(f, "Not counted: {} pool calls of Wine's own drivers.", self.ignored)?;
        }
        write!(f, "log: {}", self.log.display())
    }
}

// ---------------------------------------------------------------------------------------------
// Wine itself: presence, prefix, commands
// ---------------------------------------------------------------------------------------------

/// Makes sure `wine`, its 64-bit loader and `wineserver` are installed (installing them with
/// apt-get as root), and returns `wine --version`.
fn ensure_wine() -> Result<String, String> {
    if !wine_installed() {
        let install = "apt-get install -y --no-install-recommends wine wine64";
        if !running_as_root() {
            return Err(format!(
                "wine: Wine is not installed (`wine`, `wine64` and `wineserver` are needed). Install it as root:\n    \
                 sudo {install}\n(run `sudo apt-get update` first if apt does not know the packages)"
            ));
        }
        eprintln!("wine: installing Wine: {install}");
        let apt_install = || {
            let mut command = Command::new("apt-get");
            command.args(["install", "-y", "--no-install-recommends", "wine", "wine64"]);
            command.env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
            run_bounded(install, command, APT_TIMEOUT)
        };
        let installed = apt_install().is_ok_and(|(status, _)| status.success());
        if !installed {
            eprintln!("wine: apt-get install failed; running apt-get update and trying again");
            let mut update = Command::new("apt-get");
            update.args(["-q", "update"]).stdin(Stdio::null());
            let (status, _) = run_bounded("apt-get update", update, APT_TIMEOUT)?;
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

fn wine_installed() -> bool {
    // Debian installs the 64-bit loader as /usr/lib/wine/wine64, which `wine` runs when there is no
    // 32-bit Wine; other distributions put `wine64` on PATH.
    let wine64 = find_in_path("wine64").is_some() || Path::new("/usr/lib/wine/wine64").is_file();
    find_in_path("wine").is_some() && find_in_path("wineserver").is_some() && wine64
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

fn running_as_root() -> bool {
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

/// A Wine prefix, and the environment of every command run in it.
struct Wine {
    prefix: PathBuf,
}

impl Wine {
    fn command(&self, program: &str, debug: &str) -> Command {
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
    fn kill_server(&self) {
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
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if self.prefix.exists() {
            self.kill_server();
            fs::remove_dir_all(&self.prefix).map_err(|e| format!("cannot delete {}: {e}", self.prefix.display()))?;
        }
        let setup_log = dir.join("setup.log");
        let log = File::create(&setup_log).map_err(|e| format!("cannot create {}: {e}", setup_log.display()))?;
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
        let saved = fs::read(&user_reg).map_err(|e| format!("cannot read {}: {e}", user_reg.display()))?;
        if !String::from_utf8_lossy(&saved).contains(&format!("\"RelayInclude\"=\"{value}\"")) {
            return Err(format!("wine: RelayInclude is not in {} after `wine reg add`", user_reg.display()));
        }
        Ok(())
    }
}

/// Runs `command` in a process group of its own; after `timeout` kills the whole group.
fn run_bounded(what: &str, command: Command, timeout: Duration) -> Result<(ExitStatus, Duration), String> {
    let started = Instant::now();
    let mut child = spawn_group(what, command)?;
    let status = wait_bounded(what, &mut child, timeout)?;
    Ok((status, started.elapsed()))
}

/// Starts `command` as the leader of a new process group (whose id is the child's id).
fn spawn_group(what: &str, mut command: Command) -> Result<Child, String> {
    command.process_group(0);
    command.spawn().map_err(|e| format!("`{what}`: cannot start: {e}"))
}

/// Waits for `child`, a process group leader from [`spawn_group`]; after `timeout` (or when it
/// cannot be waited for) kills its whole group.
fn wait_bounded(what: &str, child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
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

/// SIGKILL to the process group `group` (one this module started).
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn recreate_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot delete {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Timings and client output of one cycle.
#[derive(Debug, Default)]
struct CycleTiming {
    number: u32,
    start_secs: f64,
    client_secs: Option<f64>,
    stop_secs: f64,
    client_summary: Option<String>,
    client_stdout: String,
}

/// A Wine command's result.
struct Step {
    status: ExitStatus,
    secs: f64,
    stdout: String,
}

/// The persistent `wineserver` and the commands run under it, all logging to `wine.log`.
struct Session<'a> {
    wine: &'a Wine,
    log: File,
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
type Interrupted = (String, Vec<CycleTiming>);

impl<'a> Session<'a> {
    /// A session on `wine`'s prefix: `out_dir` made empty, the log started at `log_path`.
    fn new(wine: &'a Wine, out_dir: PathBuf, log_path: &Path) -> Result<Self, String> {
        recreate_dir(&out_dir)?;
        let log = File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        Ok(Session {
            wine,
            log,
            out_dir,
            steps: 0,
            server: None,
            create_secs: 0.0,
            groups: Vec::new(),
            timed_out: false,
        })
    }

    fn mark(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.log, "{MARK} {text}").map_err(|e| format!("cannot write to wine.log: {e}"))
    }

    /// Starts the persistent server, creates the service and runs the cycles.
    fn run_cycles(
        &mut self,
        client: Option<&Path>,
        client_args: &[String],
        cycles: u32,
    ) -> Result<Vec<CycleTiming>, Interrupted> {
        let mut timings = Vec::new();
        if let Err(error) = self.start_server() {
            return Err((error, timings));
        }
        let bin_path = format!(r"C:\windows\system32\drivers\{SYS_NAME}");
        let create = ["sc", "create", SERVICE, "type=", "kernel", "start=", "demand", "binPath=", &bin_path];
        match self.mark("setup: sc create").and_then(|()| self.expect_success(&create)) {
            Ok(step) => self.create_secs = step.secs,
            Err(error) => return Err((error, timings)),
        }
        for number in 1..=cycles {
            let mut timing = CycleTiming { number, ..CycleTiming::default() };
            let result = self.cycle(&mut timing, client, client_args);
            match &result {
                Ok(()) => eprintln!(
                    "wine: cycle {number}: sc start {:.2} s{}, sc stop {:.2} s",
                    timing.start_secs,
                    timing.client_secs.map(|s| format!(", client {s:.2} s")).unwrap_or_default(),
                    timing.stop_secs
                ),
                Err(_) => eprintln!("wine: cycle {number}: failed"),
            }
            timings.push(timing);
            if let Err(error) = result {
                return Err((error, timings));
            }
        }
        Ok(timings)
    }

    fn cycle(&mut self, timing: &mut CycleTiming, client: Option<&Path>, client_args: &[String]) -> Result<(), String> {
        let n = timing.number;
        self.mark(&format!("cycle {n} start"))?;
        let started = Instant::now();
        let start = self.expect_success(&["sc", "start", SERVICE]).map_err(|e| format!("cycle {n}: {e}"))?;
        self.wait_for_state(&start, "RUNNING").map_err(|e| format!("cycle {n}: {e}"))?;
        timing.start_secs = started.elapsed().as_secs_f64();
        let mut client_error = None;
        if let Some(client) = client {
            self.mark(&format!("cycle {n} client"))?;
            let mut command = vec![client.as_os_str()];
            command.extend(client_args.iter().map(OsStr::new));
            let step = self.wine(&command)?;
            timing.client_secs = Some(step.secs);
            timing.client_stdout = step.stdout.clone();
            let summary = client_summary(&step.stdout);
            timing.client_summary = summary.map(|(line, _, _)| line.to_string());
            let passed = step.status.success() && summary.is_some_and(|(_, passed, failed)| passed > 0 && failed == 0);
            if !passed {
                client_error = Some(format!(
                    "cycle {n}: the client {} failed ({}; it must exit with 0 and print `N passed, 0 failed`); its output:\n{}",
                    client.display(),
                    step.status,
                    tail(&step.stdout, 30)
                ));
            }
        }
        self.mark(&format!("cycle {n} stop"))?;
        let stopped = Instant::now();
        let stop = self.expect_success(&["sc", "stop", SERVICE]).map_err(|e| format!("cycle {n}: {e}"))?;
        // DriverUnload has returned once the service is STOPPED: only then is a block still
        // allocated a leak.
        self.wait_for_state(&stop, "STOPPED").map_err(|e| format!("cycle {n}: {e}"))?;
        timing.stop_secs = stopped.elapsed().as_secs_f64();
        self.mark(&format!("cycle {n} end"))?;
        client_error.map_or(Ok(()), Err)
    }

    fn start_server(&mut self) -> Result<(), String> {
        self.mark("setup: wineserver -f -p")?;
        let mut server = self.wine.command("wineserver", WINEDEBUG);
        server.args(["-f", "-p"]).stdout(self.log_handle()?).stderr(self.log_handle()?);
        // Reaped in `shutdown`. A `wine` started before it listens finds the lock taken and waits
        // for the socket.
        let child = spawn_group("wineserver -f -p", server)?;
        self.groups.push(child.id());
        self.server = Some(child);
        Ok(())
    }

    fn log_handle(&self) -> Result<File, String> {
        self.log.try_clone().map_err(|e| format!("cannot share wine.log: {e}"))
    }

    /// `wine <args>`: standard output into `out/`, standard error into the log.
    fn wine(&mut self, args: &[&OsStr]) -> Result<Step, String> {
        let what = format!("wine {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        self.steps += 1;
        let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
        let out_path = self.out_dir.join(format!("{:02}-{name}.txt", self.steps));
        let out = File::create(&out_path).map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let mut command = self.wine.command("wine", WINEDEBUG);
        command.args(args).stdout(out).stderr(self.log_handle()?);
        let started = Instant::now();
        let mut child = spawn_group(&what, command)?;
        // The first command also starts services.exe and winedevice.exe, in its process group.
        self.groups.push(child.id());
        let status = wait_bounded(&what, &mut child, STEP_TIMEOUT).inspect_err(|_| self.timed_out = true)?;
        let secs = started.elapsed().as_secs_f64();
        let stdout = fs::read(&out_path).map_err(|e| format!("cannot read {}: {e}", out_path.display()))?;
        let stdout = String::from_utf8_lossy(&stdout).replace("\r\n", "\n");
        for line in stdout.lines() {
            writeln!(self.log, "{MARK} stdout: {line}").map_err(|e| format!("cannot write to wine.log: {e}"))?;
        }
        Ok(Step { status, secs, stdout })
    }

    /// Polls `wine sc query` until the service is in `state` (`sc start` and `sc stop` print the
    /// state they left it in, usually the final one already).
    fn wait_for_state(&mut self, step: &Step, state: &str) -> Result<(), String> {
        let started = Instant::now();
        let mut last = step.stdout.clone();
        while !service_state_is(&last, state) {
            if started.elapsed() >= STEP_TIMEOUT {
                return Err(format!(
                    "the {SERVICE} service did not reach {state} within {} s; `sc query` says{}",
                    STEP_TIMEOUT.as_secs(),
                    indent_block(&last)
                ));
            }
            thread::sleep(Duration::from_millis(100));
            last = self.expect_success(&["sc", "query", SERVICE])?.stdout;
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
        let mut result = match run_bounded("wineserver -k", kill, SHUTDOWN_TIMEOUT) {
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

/// The client's `N passed, M failed` line, with N and M.
fn client_summary(stdout: &str) -> Option<(&str, u64, u64)> {
    stdout.lines().rev().find_map(|line| {
        let line = line.trim();
        let (left, failed) = line.strip_suffix(" failed")?.rsplit_once(", ")?;
        let failed = failed.trim().parse().ok()?;
        let passed = left.strip_suffix(" passed")?.split_whitespace().last()?.parse().ok()?;
        Some((line, passed, failed))
    })
}

// ---------------------------------------------------------------------------------------------
// Checks on the parsed log
// ---------------------------------------------------------------------------------------------

/// Every problem the log shows, each with the lines that show it.
fn check(trace: &Trace, timings: &[CycleTiming], cycles: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if !trace.crashes.is_empty() {
        problems.push(format!(
            "the log has {} crash, unimplemented-function or stub line(s):\n{}",
            trace.crashes.len(),
            show_lines(&trace.crashes)
        ));
    }
    problems.extend(trace.outside.iter().cloned());
    if trace.cycles.len() < cycles as usize && timings.len() == cycles as usize {
        problems.push(format!("the log shows {} of {cycles} cycles (markers missing)", trace.cycles.len()));
    }
    for cycle in &trace.cycles {
        let n = cycle.number;
        if !cycle.ended {
            problems.push(format!(
                "cycle {n} did not complete; the driver's lines in it:\n{}\nWine's errors in it:\n{}",
                show_lines(&cycle.debug.iter().map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}"))).collect::<Vec<_>>()),
                show_lines(&cycle.errors)
            ));
            continue;
        }
        problems.extend(cycle.problems.iter().map(|p| format!("cycle {n}: {p}")));
        problems.extend(debug_problems(cycle));
        problems.extend(relay_problems(cycle));
    }
    if let Some(first) = trace.cycles.first().filter(|c| c.ended) {
        for cycle in trace.cycles.iter().skip(1).filter(|c| c.ended) {
            if cycle.tags != first.tags || cycle.calls != first.calls {
                problems.push(format!(
                    "cycle {} differs from cycle 1 (per tag: allocations/failed/frees/bytes):\n  cycle 1: {}\n  cycle {}: {}\n  \
                     calls in cycle 1: {:?}\n  calls in cycle {}: {:?}",
                    cycle.number,
                    tag_summary(&first.tags),
                    cycle.number,
                    tag_summary(&cycle.tags),
                    first.calls,
                    cycle.number,
                    cycle.calls
                ));
            }
        }
    }
    problems
}

/// The driver's `DbgPrint` lines in one cycle.
fn debug_problems(cycle: &CycleTrace) -> Vec<String> {
    let n = cycle.number;
    let mut problems = Vec::new();
    let shown =
        || show_lines(&cycle.debug.iter().map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}"))).collect::<Vec<_>>());
    let expected = [
        ("DriverEntry: allocating with ExAllocatePoolWithTag (ExAllocatePool2 is not exported)", true),
        ("self-test passed", false),
        ("DriverUnload: deleted the device", false),
        ("DriverUnload: freed the state", false),
    ];
    for (text, exact) in expected {
        let count =
            cycle.debug.iter().filter(|(_, line)| if exact { line == text } else { line.starts_with(text) }).count();
        if count != 1 {
            problems.push(format!(
                "cycle {n}: the driver printed `{DRIVER_PREFIX}{text}` {count} times instead of once; its lines:\n{}",
                shown()
            ));
        }
    }
    let bad: Vec<(usize, String)> = cycle
        .debug
        .iter()
        .filter(|(_, line)| {
            line.contains("FAILED")
                || line.contains("check failed")
                || line == "DriverEntry: allocating with ExAllocatePool2"
        })
        .map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}")))
        .collect();
    if !bad.is_empty() {
        problems.push(format!("cycle {n}: the driver reported failures:\n{}", show_lines(&bad)));
    }
    problems
}

/// The driver's kernel calls in one cycle: the allocation path, and the pairs.
fn relay_problems(cycle: &CycleTrace) -> Vec<String> {
    let n = cycle.number;
    let calls = |name: &str| cycle.calls.get(name).copied().unwrap_or(0);
    let mut problems = Vec::new();
    if !cycle.loaded {
        problems.push(format!("cycle {n}: the relay trace shows no `Call driver init` of the {SERVICE} service"));
    }
    if calls("MmGetSystemRoutineAddress") == 0 {
        problems.push(format!(
            "cycle {n}: the relay trace shows no MmGetSystemRoutineAddress call by the driver (the ExAllocatePool2 lookup)"
        ));
    }
    if calls("ExAllocatePoolWithTag") == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no ExAllocatePoolWithTag call by the driver"));
    }
    if !cycle.pool2_calls.is_empty() {
        problems.push(format!(
            "cycle {n}: the driver called ExAllocatePool2, which Wine does not export:\n{}",
            show_lines(&cycle.pool2_calls)
        ));
    }
    for (acquire, release) in PAIRS {
        // Creations count when they succeeded; acquisitions always.
        let made = cycle.succeeded.get(*acquire).copied().unwrap_or_else(|| calls(acquire));
        let undone = calls(release);
        if made != undone {
            problems.push(format!("cycle {n}: {made} successful {acquire} call(s) but {undone} {release} call(s)"));
        }
    }
    problems
}

fn tag_summary(tags: &BTreeMap<u32, TagStats>) -> String {
    let parts: Vec<String> = tags
        .iter()
        .map(|(tag, s)| format!("{} {}/{}/{}/{}", Tag(*tag), s.allocations, s.failed, s.frees, s.bytes))
        .collect();
    parts.join(", ")
}

fn show_lines(lines: &[(usize, String)]) -> String {
    let mut shown: Vec<String> = lines.iter().take(MAX_SHOWN).map(|(number, text)| log_line(*number, text)).collect();
    if lines.len() > MAX_SHOWN {
        shown.push(format!("    ... and {} more", lines.len() - MAX_SHOWN));
    }
    if shown.is_empty() {
        shown.push("    (none)".into());
    }
    shown.join("\n")
}

/// `    wine.log:<number>: <text>`, the text cut at 200 characters.
fn log_line(number: usize, text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let ellipsis = if cut.len() < text.len() { " ..." } else { "" };
    format!("    wine.log:{number}: {cut}{ellipsis}")
}

fn indent_block(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() { String::new() } else { format!(":\n{}", tail(text, 20)) }
}

/// The error a Wine run of `image` ends with: each of `problems`, then where the log is.
pub(crate) fn problem_report(image: &str, problems: &[String], log: &Path) -> String {
    let mut message = format!("wine: {} problem(s) with {image} under Wine:\n", problems.len());
    for problem in problems {
        message.push_str("\n* ");
        message.push_str(&indent_after_first(problem, "  "));
        message.push('\n');
    }
    message.push_str(&format!("\nlog: {}", log.display()));
    message
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|line| format!("    | {line}")).collect::<Vec<_>>().join("\n")
}

fn indent_after_first(text: &str, indent: &str) -> String {
    text.replace('\n', &format!("\n{indent}"))
}

// ---------------------------------------------------------------------------------------------
// The log parser
// ---------------------------------------------------------------------------------------------

/// A pool tag, shown as poolmon shows it: the value's little-endian bytes as characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag(u32);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.to_le_bytes() {
            let c = if byte.is_ascii_graphic() || byte == b' ' { char::from(byte) } else { '.' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// `'NpSt' (0x7453704e)`.
fn tag_name(tag: u32) -> String {
    format!("'{}' ({tag:#010x})", Tag(tag))
}

/// Where the driver's image lies once loaded: the entry point's RVA (to find the base from the
/// `Call driver init <entry>` line) and the image's size.
#[derive(Debug, Clone, Copy)]
struct ImageLayout {
    entry_rva: u64,
    size: u64,
}

impl ImageLayout {
    fn read(sys: &Path) -> Result<Self, String> {
        let data = fs::read(sys).map_err(|e| format!("cannot read {}: {e}", sys.display()))?;
        let image = PeFile64::parse(&*data).map_err(|e| format!("{} is not a PE32+ image: {e}", sys.display()))?;
        let optional = image.nt_headers().optional_header();
        Ok(ImageLayout {
            entry_rva: u64::from(optional.address_of_entry_point()),
            size: u64::from(optional.size_of_image()),
        })
    }
}

/// Per-tag counts from the trace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TagStats {
    /// Non-NULL allocations.
    allocations: u64,
    /// Allocations that returned NULL.
    failed: u64,
    /// Frees of blocks allocated with this tag.
    frees: u64,
    /// Bytes requested by the non-NULL allocations.
    bytes: u64,
}

impl TagStats {
    fn add(&mut self, other: &TagStats) {
        self.allocations += other.allocations;
        self.failed += other.failed;
        self.frees += other.frees;
        self.bytes += other.bytes;
    }
}

/// What the log shows of one start/stop cycle (between the `cycle N start` and `cycle N end`
/// markers).
#[derive(Debug, Default)]
struct CycleTrace {
    number: u32,
    /// `Call driver init` of the service was seen.
    loaded: bool,
    /// The `cycle N end` marker was seen (`sc stop` returned).
    ended: bool,
    tags: BTreeMap<u32, TagStats>,
    /// The driver's calls per traced routine.
    calls: BTreeMap<String, u64>,
    /// Successful calls of the routines that can fail (IoCreateDevice, IoCreateSymbolicLink).
    succeeded: BTreeMap<String, u64>,
    /// The driver's `DbgPrint` lines (after `ntpool-driver: `), with their line numbers.
    debug: Vec<(usize, String)>,
    pool2_calls: Vec<(usize, String)>,
    /// Wine's `err:` lines (shown when the cycle did not complete).
    errors: Vec<(usize, String)>,
    /// Pool discipline violations (wrong tag, double free, unknown free, leak).
    problems: Vec<String>,
    /// Lists `IoGetDeviceInterfaces` returned (allocated inside the kernel, so not in the trace) and
    /// the driver has not yet freed with `ExFreePool`.
    kernel_buffers: u64,
    /// `ExFreePool` calls that freed such a list.
    kernel_buffer_frees: u64,
}

impl CycleTrace {
    fn debug_line(&self, prefix: &str) -> Option<&str> {
        self.debug.iter().map(|(_, text)| text.as_str()).find(|text| text.starts_with(prefix))
    }
}

/// A block the driver allocated and has not freed.
#[derive(Debug)]
struct Block {
    tag: u32,
    size: u64,
    line: usize,
    text: String,
}

/// A block the driver freed (kept to tell a double free from a free of something never allocated).
#[derive(Debug)]
struct Freed {
    tag: u32,
    alloc_line: usize,
    free_line: usize,
}

/// A relay call not returned from yet, on one thread.
#[derive(Debug)]
enum Frame {
    Kernel { func: String, ret: u64, ours: bool, alloc: Option<(u32, u64, usize, String)> },
    Driver { kind: String, addr: u64, ours: bool },
}

/// The whole log, parsed.
#[derive(Debug, Default)]
struct Trace {
    cycles: Vec<CycleTrace>,
    /// Lines matching [`CRASH_PATTERNS`].
    crashes: Vec<(usize, String)>,
    /// Problems outside any cycle (the driver allocating or freeing while it should not be loaded).
    outside: Vec<String>,
    /// Pool calls of other drivers.
    ignored: u64,
}

/// One relay line.
#[derive(Debug)]
enum Relay<'a> {
    /// `Call ntoskrnl.exe.F(a,b,...) ret=R`.
    Call { func: &'a str, args: Vec<u64>, ret: u64 },
    /// `Ret  ntoskrnl.exe.F() retval=V ret=R`.
    Ret { func: &'a str, retval: u64, ret: u64 },
    /// `Call driver init|unload|dispatch ADDR (...)`.
    DriverCall { kind: &'a str, addr: u64, detail: &'a str },
    /// `Ret  driver init|unload|dispatch ADDR (...)`.
    DriverRet { kind: &'a str, addr: u64 },
}

fn hex(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.is_empty() { None } else { u64::from_str_radix(text, 16).ok() }
}

/// Splits `0024:Call ...` (or `pid:tid:...`, or with a timestamp first) into the thread id and the
/// rest.
fn split_thread(line: &str) -> Option<(u32, &str)> {
    let mut rest = line;
    let mut thread = None;
    while let Some((head, tail)) = rest.split_once(':') {
        let numeric = !head.is_empty() && head.len() <= 16 && head.chars().all(|c| c.is_ascii_hexdigit() || c == '.');
        if !numeric {
            break;
        }
        thread = u32::from_str_radix(head, 16).ok().or(thread);
        rest = tail;
    }
    thread.map(|thread| (thread, rest))
}

fn parse_relay(rest: &str) -> Option<Relay<'_>> {
    if let Some(call) = rest.strip_prefix("Call ntoskrnl.exe.") {
        let (func, tail) = call.split_once('(')?;
        let (args, ret) = tail.rsplit_once(") ret=")?;
        let args =
            if args.trim().is_empty() { Vec::new() } else { args.split(',').map(hex).collect::<Option<Vec<_>>>()? };
        return Some(Relay::Call { func, args, ret: hex(ret)? });
    }
    if let Some(ret) = rest.strip_prefix("Ret  ntoskrnl.exe.") {
        let (func, tail) = ret.split_once('(')?;
        let (_, values) = tail.split_once("retval=")?;
        let (retval, ret) = values.split_once(" ret=")?;
        return Some(Relay::Ret { func, retval: hex(retval)?, ret: hex(ret)? });
    }
    if let Some(call) = rest.strip_prefix("Call driver ") {
        let mut words = call.splitn(3, ' ');
        let kind = words.next()?;
        let addr = hex(words.next()?)?;
        return Some(Relay::DriverCall { kind, addr, detail: words.next().unwrap_or("") });
    }
    if let Some(ret) = rest.strip_prefix("Ret  driver ") {
        let mut words = ret.splitn(3, ' ');
        let kind = words.next()?;
        return Some(Relay::DriverRet { kind, addr: hex(words.next()?)? });
    }
    None
}

/// The parser's state while it reads the log.
struct Parser<'a> {
    layout: ImageLayout,
    service: &'a str,
    trace: Trace,
    current: Option<CycleTrace>,
    /// Where the driver's image was loaded (one range per load).
    images: Vec<(u64, u64)>,
    threads: HashMap<u32, Vec<Frame>>,
    live: HashMap<u64, Block>,
    freed: HashMap<u64, Freed>,
}

impl Trace {
    /// Parses a Wine log written with [`WINEDEBUG`] and this module's markers. `layout` is the
    /// driver's image, `service` its service name (to find its `Call driver init` line).
    fn parse(log: &str, layout: ImageLayout, service: &str) -> Trace {
        let mut parser = Parser {
            layout,
            service,
            trace: Trace::default(),
            current: None,
            images: Vec::new(),
            threads: HashMap::new(),
            live: HashMap::new(),
            freed: HashMap::new(),
        };
        for (index, line) in log.lines().enumerate() {
            parser.line(index + 1, line);
        }
        parser.finish_cycle(false);
        parser.trace
    }
}

impl Parser<'_> {
    fn line(&mut self, number: usize, line: &str) {
        if let Some(marker) = line.strip_prefix(MARK) {
            self.marker(marker.trim());
            return;
        }
        if CRASH_PATTERNS.iter().any(|pattern| line.contains(pattern)) {
            self.trace.crashes.push((number, line.to_string()));
        }
        let Some((thread, rest)) = split_thread(line) else { return };
        if rest.starts_with("err:") && !rest.starts_with("err:winediag:") && !rest.starts_with("err:systray:") {
            if let Some(cycle) = self.current.as_mut() {
                cycle.errors.push((number, line.to_string()));
            }
        }
        if rest.contains(":debugstr:") {
            if let (Some(cycle), Some((_, text))) = (self.current.as_mut(), rest.split_once(DRIVER_PREFIX)) {
                cycle.debug.push((number, text.trim_end().to_string()));
            }
            return;
        }
        match parse_relay(rest) {
            Some(Relay::DriverCall { kind, addr, detail }) => {
                if kind == "init" && self.is_service(detail) {
                    let base = addr.wrapping_sub(self.layout.entry_rva);
                    self.images.push((base, base.wrapping_add(self.layout.size)));
                    if let Some(cycle) = self.current.as_mut() {
                        cycle.loaded = true;
                    }
                }
                let ours = self.in_image(addr);
                self.threads.entry(thread).or_default().push(Frame::Driver { kind: kind.to_string(), addr, ours });
            }
            Some(Relay::DriverRet { kind, addr }) => {
                let stack = self.threads.entry(thread).or_default();
                if let Some(at) = stack.iter().rposition(
                    |frame| matches!(frame, Frame::Driver { kind: k, addr: a, .. } if k == kind && *a == addr),
                ) {
                    stack.truncate(at);
                }
            }
            Some(Relay::Call { func, args, ret }) => self.call(number, line, thread, func, &args, ret),
            Some(Relay::Ret { func, retval, ret }) => self.ret(number, thread, func, retval, ret),
            None => {}
        }
    }

    fn is_service(&self, detail: &str) -> bool {
        let detail = detail.replace("\\\\", "\\").to_ascii_lowercase();
        detail.contains(&format!("\\services\\{}\"", self.service.to_ascii_lowercase()))
    }

    fn in_image(&self, address: u64) -> bool {
        self.images.iter().any(|(start, end)| (*start..*end).contains(&address))
    }

    fn marker(&mut self, marker: &str) {
        let mut words = marker.split_whitespace();
        if words.next() != Some("cycle") {
            return;
        }
        let Some(number) = words.next().and_then(|n| n.parse::<u32>().ok()) else { return };
        match words.next() {
            Some("start") => {
                self.finish_cycle(false);
                self.current = Some(CycleTrace { number, ..CycleTrace::default() });
            }
            Some("end") => self.finish_cycle(true),
            _ => {}
        }
    }

    /// Closes the current cycle; when it ended (its `sc stop` returned) whatever is still
    /// allocated is a leak.
    fn finish_cycle(&mut self, ended: bool) {
        let Some(mut cycle) = self.current.take() else { return };
        cycle.ended = ended;
        if ended && cycle.kernel_buffers != 0 {
            cycle.problems.push(format!(
                "leak: {} list(s) that IoGetDeviceInterfaces returned were not freed with ExFreePool",
                cycle.kernel_buffers
            ));
        }
        if ended {
            let mut leaks: Vec<(u64, Block)> = self.live.drain().collect();
            leaks.sort_by_key(|(_, block)| block.line);
            for (address, block) in leaks {
                cycle.problems.push(format!(
                    "leak: a block with tag {}, {} bytes at {address:#x}, allocated at line {}, was still allocated \
                     after `sc stop` returned (DriverUnload did not free it):\n{}",
                    tag_name(block.tag),
                    block.size,
                    block.line,
                    log_line(block.line, &block.text)
                ));
            }
        }
        // Each load runs in a new winedevice.exe: addresses start over.
        self.live.clear();
        self.freed.clear();
        self.threads.clear();
        self.trace.cycles.push(cycle);
    }

    fn call(&mut self, number: usize, line: &str, thread: u32, func: &str, args: &[u64], ret: u64) {
        let inside_driver =
            matches!(self.threads.get(&thread).and_then(|s| s.last()), Some(Frame::Driver { ours: true, .. }));
        // The return address is in the driver's image; or a tail call from a routine the kernel
        // called in the driver (DriverEntry, DriverUnload, a dispatch routine) left the kernel's.
        let ours =
            self.in_image(ret) || inside_driver || freed_for_driver_lookaside_list(self.threads.get(&thread), func);
        let is_pool = ALLOCATORS.contains(&func) || func == "ExFreePoolWithTag" || func == "ExFreePool";
        let mut alloc = None;
        if ours {
            match self.current.as_mut() {
                None => self.trace.outside.push(format!(
                    "the driver called {func} outside any start/stop cycle:\n{}",
                    log_line(number, line)
                )),
                Some(cycle) => {
                    *cycle.calls.entry(func.to_string()).or_default() += 1;
                    if func == "ExAllocatePool2" {
                        cycle.pool2_calls.push((number, line.to_string()));
                    }
                }
            }
            if let Some(problem) = raising_quota_call(func, args) {
                self.problem(format!("{problem}:\n{}", log_line(number, line)));
            }
            if ALLOCATORS.contains(&func) {
                match args {
                    [_, size, tag, ..] => alloc = Some((*tag as u32, *size, number, line.to_string())),
                    _ => self.problem(format!("cannot read {func}'s arguments:\n{}", log_line(number, line))),
                }
            } else if func == "ExFreePoolWithTag" || func == "ExFreePool" {
                match args {
                    [address, rest @ ..] => {
                        let tag = if func == "ExFreePoolWithTag" { rest.first().map(|t| *t as u32) } else { None };
                        self.free(number, line, *address, tag);
                    }
                    [] => self.problem(format!("cannot read {func}'s arguments:\n{}", log_line(number, line))),
                }
            }
        } else if is_pool {
            self.trace.ignored += 1;
        }
        let frame = Frame::Kernel { func: func.to_string(), ret, ours, alloc };
        self.threads.entry(thread).or_default().push(frame);
    }

    fn ret(&mut self, number: usize, thread: u32, func: &str, retval: u64, ret: u64) {
        let stack = self.threads.entry(thread).or_default();
        let Some(at) = stack
            .iter()
            .rposition(|frame| matches!(frame, Frame::Kernel { func: f, ret: r, .. } if f == func && *r == ret))
        else {
            return;
        };
        let frame = stack.remove(at);
        stack.truncate(at);
        let Frame::Kernel { ours: true, alloc, .. } = frame else { return };
        let Some(cycle) = self.current.as_mut() else { return };
        kernel_buffer_returned(cycle, func, retval);
        if func == "IoCreateDevice" || func == "IoCreateSymbolicLink" {
            // NTSTATUS: success when the low 32 bits are not negative.
            if (retval as u32 as i32) >= 0 {
                *cycle.succeeded.entry(func.to_string()).or_default() += 1;
            }
        }
        let Some((tag, size, line, text)) = alloc else { return };
        let stats = cycle.tags.entry(tag).or_default();
        if retval == 0 {
            stats.failed += 1;
            return;
        }
        stats.allocations += 1;
        stats.bytes += size;
        if let Some(old) = self.live.get(&retval) {
            let message = format!(
                "{func} returned {retval:#x} for tag {} at line {number}, but the block allocated there at line {} with \
                 tag {} was never freed in the trace",
                tag_name(tag),
                old.line,
                tag_name(old.tag)
            );
            self.problem(message);
        }
        self.freed.remove(&retval);
        self.live.insert(retval, Block { tag, size, line, text });
    }

    fn free(&mut self, number: usize, line: &str, address: u64, tag: Option<u32>) {
        let named = match tag {
            Some(tag) => format!("ExFreePoolWithTag({address:#x}, {})", tag_name(tag)),
            None => format!("ExFreePool({address:#x})"),
        };
        if address == 0 {
            self.problem(format!("{named}: a free of NULL:\n{}", log_line(number, line)));
            return;
        }
        match self.live.remove(&address) {
            Some(block) => {
                if let Some(cycle) = self.current.as_mut() {
                    cycle.tags.entry(block.tag).or_default().frees += 1;
                }
                match tag {
                    Some(tag) if tag != block.tag => self.problem(format!(
                        "wrong tag: the block at {address:#x} allocated with tag {} at line {} was freed with tag {}:\n{}\n{}",
                        tag_name(block.tag),
                        block.line,
                        tag_name(tag),
                        log_line(block.line, &block.text),
                        log_line(number, line)
                    )),
                    None => self.problem(format!(
                        "the block at {address:#x} allocated with tag {} at line {} was freed with ExFreePool, without \
                         its tag:\n{}",
                        tag_name(block.tag),
                        block.line,
                        log_line(number, line)
                    )),
                    Some(_) => {}
                }
                self.freed.insert(address, Freed { tag: block.tag, alloc_line: block.line, free_line: number });
            }
            None if tag.is_none() && self.current.as_mut().is_some_and(kernel_buffer_freed) => {}
            None => match self.freed.get(&address) {
                Some(freed) => {
                    let message = format!(
                        "double free: {named} at line {number} frees the block with tag {} allocated at line {} and \
                         already freed at line {}:\n{}",
                        tag_name(freed.tag),
                        freed.alloc_line,
                        freed.free_line,
                        log_line(number, line)
                    );
                    self.problem(message);
                }
                None => self.problem(format!(
                    "{named} at line {number} frees a block the driver never allocated:\n{}",
                    log_line(number, line)
                )),
            },
        }
    }

    fn problem(&mut self, message: String) {
        match self.current.as_mut() {
            Some(cycle) => cycle.problems.push(message),
            None => self.trace.outside.push(message),
        }
    }
}

/// A free the kernel makes while deleting one of the driver's lookaside lists: Wine's
/// `ExDelete*LookasideList` frees the entries the list keeps with `ExFreePoolWithTag` and the list's
/// tag itself (Windows calls the list's free callback, which is the driver's). Either way the blocks
/// are the driver's and are accounted as its frees.
fn freed_for_driver_lookaside_list(stack: Option<&Vec<Frame>>, func: &str) -> bool {
    let deleting = |frame: &Frame| {
        matches!(frame, Frame::Kernel { func, ours: true, .. }
            if func.starts_with("ExDelete") && func.contains("LookasideList"))
    };
    func == "ExFreePoolWithTag" && stack.and_then(|stack| stack.last()).is_some_and(deleting)
}

/// A successful `IoGetDeviceInterfaces` call of the driver: the kernel allocated its list inside
/// itself (no relay line), and the driver owes one `ExFreePool` of it.
fn kernel_buffer_returned(cycle: &mut CycleTrace, func: &str, retval: u64) {
    if func == "IoGetDeviceInterfaces" && (retval as u32 as i32) >= 0 {
        cycle.kernel_buffers += 1;
        *cycle.succeeded.entry(func.to_string()).or_default() += 1;
    }
}

/// An `ExFreePool` of an address the driver never allocated: accepted once per list that
/// `IoGetDeviceInterfaces` returned and the driver has not freed yet, and nothing else.
fn kernel_buffer_freed(cycle: &mut CycleTrace) -> bool {
    if cycle.kernel_buffers == 0 {
        return false;
    }
    cycle.kernel_buffers -= 1;
    cycle.kernel_buffer_frees += 1;
    true
}

/// An `ExAllocatePoolWithQuotaTag` call without `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: the raising form,
/// which the driver must never use.
fn raising_quota_call(func: &str, args: &[u64]) -> Option<String> {
    let pool_type = *args.first()?;
    (func == "ExAllocatePoolWithQuotaTag" && pool_type & POOL_QUOTA_FAIL_INSTEAD_OF_RAISE == 0).then(|| {
        format!("ExAllocatePoolWithQuotaTag with pool type {pool_type:#x}: the raising form (no POOL_QUOTA_FAIL_INSTEAD_OF_RAISE)")
    })
}

/// What the driver must have done in every cycle besides the basics: a quota allocation through
/// the non-raising `ExAllocatePoolWithQuotaTag` (when the client ran its scenario), one `IoGetDeviceInterfaces`
/// list freed with `ExFreePool`, and a lookaside list initialized (and, by [`PAIRS`], deleted).
fn pool_surface_problems(cycle: &CycleTrace, client: bool) -> Vec<String> {
    let n = cycle.number;
    let calls = |name: &str| cycle.calls.get(name).copied().unwrap_or(0);
    let mut problems = Vec::new();
    if client && calls("ExAllocatePoolWithQuotaTag") == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no ExAllocatePoolWithQuotaTag call by the driver"));
    }
    // Wine 8's IoGetDeviceInterfaces is a stub (STATUS_NOT_IMPLEMENTED): then there is no list to
    // free. Either way, one call, and one ExFreePool per list returned.
    let listed = cycle.succeeded.get("IoGetDeviceInterfaces").copied().unwrap_or(0);
    if calls("IoGetDeviceInterfaces") != 1 || cycle.kernel_buffer_frees != listed {
        problems.push(format!(
            "cycle {n}: {} IoGetDeviceInterfaces call(s), {listed} successful, and {} ExFreePool of a list it returned",
            calls("IoGetDeviceInterfaces"),
            cycle.kernel_buffer_frees
        ));
    }
    let lists = calls("ExInitializeLookasideListEx")
        + calls("ExInitializeNPagedLookasideList")
        + calls("ExInitializePagedLookasideList");
    if lists == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no lookaside list initialized by the driver"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ImageLayout = ImageLayout { entry_rva: 0x1000, size: 0x10000 };

    /// `xtask-wine: cycle N start`, the driver's load, `body`, its unload, `cycle N end`.
    fn cycle(number: u32, entry: &[&str], unload: &[&str]) -> String {
        let mut log = vec![
            format!("{MARK} cycle {number} start"),
            // Another driver's pool call (Wine's own winehid.sys): not counted.
            "0094:Call ntoskrnl.exe.ExFreePool(014a0490) ret=332e42a98".into(),
            "0094:Ret  ntoskrnl.exe.ExFreePool() retval=00000001 ret=332e42a98".into(),
            r#"0114:Call driver init 0000000180001000 (obj=00000000003767E0,str=L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool")"#.into(),
            "0114:Call ntoskrnl.exe.MmGetSystemRoutineAddress(01a9f758) ret=1800053ea".into(),
            "0114:Ret  ntoskrnl.exe.MmGetSystemRoutineAddress() retval=00000000 ret=1800053ea".into(),
        ];
        log.extend(entry.iter().map(|line| line.to_string()));
        log.push(r#"0114:Ret  driver init 0000000180001000 (obj=00000000003767E0,str=L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool") retval=00000000"#.into());
        log.push(format!("{MARK} cycle {number} stop"));
        log.push("0114:Call driver unload 0000000180002D30 (obj=00000000003767E0)".into());
        log.extend(unload.iter().map(|line| line.to_string()));
        log.push("0114:Ret  driver unload 0000000180002D30 (obj=00000000003767E0)".into());
        log.push(format!("{MARK} cycle {number} end"));
        log.join("\n") + "\n"
    }

    fn alloc(thread: &str, size: u32, tag: u32, address: u32) -> [String; 2] {
        [
            format!("{thread}:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000200,{size:08x},{tag:08x}) ret=180005369"),
            format!("{thread}:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval={address:08x} ret=180005369"),
        ]
    }

    fn free(thread: &str, address: u32, tag: u32) -> [String; 2] {
        [
            format!("{thread}:Call ntoskrnl.exe.ExFreePoolWithTag({address:08x},{tag:08x}) ret=180004cab"),
            format!("{thread}:Ret  ntoskrnl.exe.ExFreePoolWithTag() retval=00000001 ret=180004cab"),
        ]
    }

    const NP_ST: u32 = 0x7453_704e; // "NpSt"
    const NP_RG: u32 = 0x6752_704e; // "NpRg"

    /// The pool checks alone (what `check` reports of the pool trace).
    fn check_pool(log: &str) -> Result<Trace, String> {
        let trace = Trace::parse(log, LAYOUT, "ntpool");
        let mut problems: Vec<String> = trace.outside.clone();
        for cycle in &trace.cycles {
            problems.extend(cycle.problems.iter().map(|p| format!("cycle {}: {p}", cycle.number)));
        }
        if problems.is_empty() { Ok(trace) } else { Err(problems.join("\n")) }
    }

    fn lines(parts: &[[String; 2]]) -> Vec<String> {
        parts.iter().flat_map(|pair| pair.iter().cloned()).collect()
    }

    fn balanced(number: u32) -> String {
        let entry = lines(&[alloc("0114", 0x74, NP_RG, 0x014a_0370), alloc("0114", 0x20, NP_ST, 0x014a_03f0)]);
        let unload = lines(&[free("0114", 0x014a_0370, NP_RG), free("0114", 0x014a_03f0, NP_ST)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        cycle(number, &entry, &unload)
    }

    fn device_interfaces(status: u32) -> [String; 2] {
        [
            "0114:Call ntoskrnl.exe.IoGetDeviceInterfaces(180010000,00000000,00000000,01a9f700) ret=180005400".into(),
            format!("0114:Ret  ntoskrnl.exe.IoGetDeviceInterfaces() retval={status:08x} ret=180005400"),
        ]
    }

    fn ex_free_pool(address: u32) -> [String; 2] {
        [
            format!("0114:Call ntoskrnl.exe.ExFreePool({address:08x}) ret=180005410"),
            "0114:Ret  ntoskrnl.exe.ExFreePool() retval=00000001 ret=180005410".into(),
        ]
    }

    fn one_cycle(entry: &[[String; 2]]) -> String {
        let entry = lines(entry);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        cycle(1, &entry, &[])
    }

    #[test]
    fn ex_free_pool_of_a_kernel_buffer_pairs_with_a_successful_io_get_device_interfaces() {
        let log = one_cycle(&[device_interfaces(0), ex_free_pool(0x0200_0000)]);
        let trace = check_pool(&log).expect("one list, freed once");
        assert!(pool_surface_problems(&trace.cycles[0], false).iter().all(|p| !p.contains("IoGetDeviceInterfaces")));
    }

    #[test]
    fn ex_free_pool_of_something_never_allocated_is_still_reported() {
        // No list was returned: nothing to free.
        let error = check_pool(&one_cycle(&[ex_free_pool(0x0200_0000)])).unwrap_err();
        assert!(error.contains("ExFreePool(0x2000000) at line") && error.contains("never allocated"), "{error}");
        // A failed call returns no list.
        let error = check_pool(&one_cycle(&[device_interfaces(0xC000_0001), ex_free_pool(0x0200_0000)])).unwrap_err();
        assert!(error.contains("never allocated"), "{error}");
        // One list, two frees.
        let log = one_cycle(&[device_interfaces(0), ex_free_pool(0x0200_0000), ex_free_pool(0x0300_0000)]);
        assert!(check_pool(&log).unwrap_err().contains("never allocated"));
    }

    #[test]
    fn a_device_interface_list_not_freed_is_a_leak() {
        let error = check_pool(&one_cycle(&[device_interfaces(0)])).unwrap_err();
        assert!(error.contains("1 list(s) that IoGetDeviceInterfaces returned were not freed"), "{error}");
    }

    #[test]
    fn the_raising_form_of_ex_allocate_pool_with_quota_tag_is_reported() {
        let quota = |pool_type: u32| {
            [
                format!(
                    "0114:Call ntoskrnl.exe.ExAllocatePoolWithQuotaTag({pool_type:08x},00000020,7453704e) ret=180005369"
                ),
                "0114:Ret  ntoskrnl.exe.ExAllocatePoolWithQuotaTag() retval=014a03f0 ret=180005369".to_string(),
            ]
        };
        let error = check_pool(&one_cycle(&[quota(0x1)])).unwrap_err();
        assert!(error.contains("the raising form"), "{error}");
        let error = check_pool(&one_cycle(&[quota(0x9)])).unwrap_err();
        assert!(!error.contains("the raising form") && error.contains("leak"), "{error}");
    }

    #[test]
    fn tags_read_as_poolmon_shows_them() {
        assert_eq!(Tag(NP_ST).to_string(), "NpSt");
        assert_eq!(Tag(0x3154_704e).to_string(), "NpT1");
        assert_eq!(tag_name(NP_RG), "'NpRg' (0x6752704e)");
        assert_eq!(Tag(0x0000_4142).to_string(), "BA..");
    }

    #[test]
    fn a_balanced_trace_passes() {
        let log = balanced(1) + &balanced(2);
        let trace = check_pool(&log).expect("balanced");
        assert_eq!(trace.cycles.len(), 2);
        assert_eq!(trace.ignored, 2, "winehid's ExFreePool calls are not the driver's");
        let first = &trace.cycles[0];
        assert!(first.loaded && first.ended);
        assert_eq!(first.tags[&NP_ST], TagStats { allocations: 1, failed: 0, frees: 1, bytes: 0x20 });
        assert_eq!(first.tags[&NP_RG], TagStats { allocations: 1, failed: 0, frees: 1, bytes: 0x74 });
        assert_eq!(first.calls["MmGetSystemRoutineAddress"], 1);
        assert_eq!(trace.cycles[1].tags, first.tags);
        assert!(check(&trace, &[], 2).iter().all(|p| !p.contains("differs")));
    }

    #[test]
    fn calls_and_returns_pair_per_thread() {
        // Two threads allocate at once; each Ret belongs to its own thread's Call.
        let entry = [
            "0114:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000200,00000020,7453704e) ret=180005369".to_string(),
            "0118:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000001,00000074,6752704e) ret=180005369".to_string(),
            "0118:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a0370 ret=180005369".to_string(),
            "0114:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a03f0 ret=180005369".to_string(),
        ];
        let unload = lines(&[free("0114", 0x014a_03f0, NP_ST), free("0118", 0x014a_0370, NP_RG)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let trace = check_pool(&cycle(1, &entry, &unload)).expect("paired per thread");
        assert_eq!(trace.cycles[0].tags[&NP_ST].bytes, 0x20);
        assert_eq!(trace.cycles[0].tags[&NP_RG].bytes, 0x74);
    }

    #[test]
    fn a_wrong_tag_fails_naming_both_tags() {
        let entry = lines(&[alloc("0114", 0x20, NP_ST, 0x014a_03f0)]);
        let unload = lines(&[free("0114", 0x014a_03f0, NP_RG)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let error = check_pool(&cycle(1, &entry, &unload)).expect_err("wrong tag");
        assert!(error.contains("wrong tag"), "{error}");
        assert!(error.contains("'NpSt' (0x7453704e)") && error.contains("'NpRg' (0x6752704e)"), "{error}");
        assert!(!error.contains("leak"), "the block counts as freed: {error}");
    }

    #[test]
    fn a_double_free_fails_naming_the_tag() {
        let entry = lines(&[alloc("0114", 0x20, NP_ST, 0x014a_03f0)]);
        let unload = lines(&[free("0114", 0x014a_03f0, NP_ST), free("0114", 0x014a_03f0, NP_ST)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let error = check_pool(&cycle(1, &entry, &unload)).expect_err("double free");
        assert!(error.contains("double free") && error.contains("'NpSt'"), "{error}");
    }

    #[test]
    fn a_leak_fails_naming_the_tag() {
        let entry = lines(&[alloc("0114", 0x74, NP_RG, 0x014a_0370), alloc("0114", 0x20, NP_ST, 0x014a_03f0)]);
        let unload = lines(&[free("0114", 0x014a_0370, NP_RG)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let error = check_pool(&cycle(1, &entry, &unload)).expect_err("leak");
        assert!(error.contains("leak") && error.contains("'NpSt'") && error.contains("32 bytes"), "{error}");
        assert!(!error.contains("'NpRg'"), "{error}");
    }

    #[test]
    fn a_free_of_a_block_never_allocated_fails_naming_the_tag() {
        let unload = lines(&[free("0114", 0x014a_0999, NP_ST)]);
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let error = check_pool(&cycle(1, &[], &unload)).expect_err("unknown block");
        assert!(error.contains("never allocated") && error.contains("'NpSt'"), "{error}");
    }

    #[test]
    fn cycles_with_different_counts_fail() {
        let entry = lines(&[alloc("0114", 0x20, NP_ST, 0x014a_03f0)]);
        let unload = lines(&[free("0114", 0x014a_03f0, NP_ST)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let log = balanced(1) + &cycle(2, &entry, &unload);
        let trace = check_pool(&log).expect("each cycle is balanced");
        let problems = check(&trace, &[], 2);
        assert!(problems.iter().any(|p| p.contains("cycle 2 differs from cycle 1")), "{problems:#?}");
    }

    #[test]
    fn crashes_and_the_client_summary_are_found() {
        let log = "wine: Call from 000000007B013D7E to unimplemented function ntoskrnl.exe.ObSetSecurityObjectByPointer, aborting\n";
        let trace = Trace::parse(log, LAYOUT, "ntpool");
        assert_eq!(trace.crashes.len(), 1);
        assert_eq!(
            client_summary("a\nIOCTL_NTPOOL_FREE ok\n41 passed, 0 failed\r\n").map(|s| (s.1, s.2)),
            Some((41, 0))
        );
        assert_eq!(client_summary("result: 40 passed, 1 failed").map(|s| (s.1, s.2)), Some((40, 1)));
        assert_eq!(client_summary("no summary"), None);
        let running =
            "SERVICE_NAME: ntpool\n        TYPE               : 1  \n        STATE              : 4  RUNNING\n";
        assert!(service_state_is(running, "RUNNING") && !service_state_is(running, "STOPPED"));
    }

    #[test]
    fn thread_ids_are_read_with_or_without_a_process_id() {
        assert_eq!(split_thread("0114:Call ntoskrnl.exe.X() ret=1").map(|t| t.0), Some(0x114));
        assert_eq!(split_thread("0020:0114:Call ntoskrnl.exe.X() ret=1").map(|t| t.0), Some(0x114));
        assert_eq!(split_thread("0114:warn:debugstr:x").map(|t| t.1), Some("warn:debugstr:x"));
        assert_eq!(split_thread("wine: Call from"), None);
    }
}

//! The sample driver's load/unload cycles in a session: its service created once, then in every
//! cycle `sc start`, the client (when there is one) while the driver is loaded, and `sc stop`.

use std::ffi::OsStr;
use std::path::Path;

use super::messages::tail;
use super::session::{Interrupted, Session};

/// The service name, and the driver's file name in `system32\drivers`.
pub(super) const SERVICE: &str = "ntpool";
pub(super) const SYS_NAME: &str = "ntpool_driver.sys";

/// Timings and client output of one cycle.
#[derive(Debug, Default)]
pub(super) struct CycleTiming {
    pub(super) number: u32,
    pub(super) start_secs: f64,
    pub(super) client_secs: Option<f64>,
    pub(super) stop_secs: f64,
    pub(super) client_summary: Option<String>,
    pub(super) client_stdout: String,
}

/// Creates the driver's service and runs the cycles.
pub(super) fn run_cycles(
    session: &mut Session<'_>,
    client: Option<&Path>,
    client_args: &[String],
    cycles: u32,
) -> Result<Vec<CycleTiming>, Interrupted<Vec<CycleTiming>>> {
    let mut timings = Vec::new();
    if let Err(error) = session.create_service(SERVICE, SYS_NAME) {
        return Err((error, timings));
    }
    for number in 1..=cycles {
        let mut timing = CycleTiming { number, ..CycleTiming::default() };
        let result = cycle(session, &mut timing, client, client_args);
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

fn cycle(
    session: &mut Session<'_>,
    timing: &mut CycleTiming,
    client: Option<&Path>,
    client_args: &[String],
) -> Result<(), String> {
    let n = timing.number;
    session.mark(&format!("cycle {n} start"))?;
    timing.start_secs = session.start_service(SERVICE).map_err(|e| format!("cycle {n}: {e}"))?;
    let mut client_error = None;
    if let Some(client) = client {
        session.mark(&format!("cycle {n} client"))?;
        let mut command = vec![client.as_os_str()];
        command.extend(client_args.iter().map(OsStr::new));
        let step = session.wine(&command)?;
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
    session.mark(&format!("cycle {n} stop"))?;
    // DriverUnload has returned once the service is STOPPED: only then is a block still
    // allocated a leak.
    timing.stop_secs = session.stop_service(SERVICE).map_err(|e| format!("cycle {n}: {e}"))?;
    session.mark(&format!("cycle {n} end"))?;
    client_error.map_or(Ok(()), Err)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_summary_is_found() {
        assert_eq!(
            client_summary("a\nIOCTL_NTPOOL_FREE ok\n41 passed, 0 failed\r\n").map(|s| (s.1, s.2)),
            Some((41, 0))
        );
        assert_eq!(client_summary("result: 40 passed, 1 failed").map(|s| (s.1, s.2)), Some((40, 1)));
        assert_eq!(client_summary("no summary"), None);
    }
}

//! The host tests under AddressSanitizer (with LeakSanitizer): nightly's `-Zsanitizer=address`, in
//! `target/asan/`, for the crate and its kernel interface (`ntpool-sys`, the emulated kernel), the
//! driver, its protocol and its client.
//!
//! `ASAN_OPTIONS`:
//! * `handle_segv=0`: the emulated kernel's special pool and Force IRQL Checking turn page faults
//!   into bug checks with their own `SIGSEGV` handler (in the child processes of
//!   `expect_stop_in_child`); AddressSanitizer must leave that signal to it. Its own checks
//!   (instrumented loads and stores, the allocator's redzones, use after free, leaks) do not use
//!   signals, so they all stay on.
//! * `detect_leaks=1`, `halt_on_error=1`, `abort_on_error=1`, `detect_stack_use_after_return=1`.
//!
//! The one test left out is the trybuild compile-fail run: it runs rustc on code that must not
//! compile, so no code of the project executes in it (and under these `RUSTFLAGS` it would rebuild
//! the crate for every case). Doc tests are left out too: rustdoc does not take the sanitizer flag.

use std::path::Path;
use std::process::Command;

use crate::host::cargo::{HOST_TRIPLE, toolchain_cargo};

/// The trybuild test, the one test not run under the sanitizer (nor timed by `cargo xtask bench
/// throughput`'s run of the host tests under special pool).
pub(crate) const COMPILE_FAIL: &str = "irql_tag_and_pool_rules_are_enforced_at_compile_time";

/// The host tests' packages and targets: the crate and its kernel interface (`ntpool-sys`, the
/// emulated kernel), the driver, its protocol and its client; unit and integration tests.
pub(crate) const HOST_TESTS: &[&str] = &[
    "-p",
    "ntpool-sys",
    "-p",
    "ntpool",
    "-p",
    "ntpool-driver",
    "-p",
    "ntpool-protocol",
    "-p",
    "ntpool-client",
    "--lib",
    "--tests",
];

/// `cargo test` of the host tests under AddressSanitizer; fails on any report.
pub fn command(root: &Path) -> Command {
    let mut command = toolchain_cargo(root, Some("nightly"));
    command.args(["test", "--locked", "--target", HOST_TRIPLE]);
    command.args(HOST_TESTS);
    command.args(["--", "--skip", COMPILE_FAIL]);
    command
        .env("CARGO_TARGET_DIR", root.join("target/asan"))
        .env("RUSTFLAGS", "-Zsanitizer=address -Cforce-frame-pointers=yes")
        .env(
            "ASAN_OPTIONS",
            "handle_segv=0:detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1",
        );
    command
}

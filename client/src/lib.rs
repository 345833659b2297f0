//! The user-mode client of the ntpool sample driver: a scenario that sends every IOCTL of
//! [`ntpool_protocol`] with good and bad input and checks each answer against the driver's rules.
//!
//! The scenario talks to the driver through the [`Device`] trait, so that it runs on Windows
//! against the real driver (the `ntpool-client` executable, `src/main.rs`) and in the unit tests
//! against the model of the driver's rules in `ntpool_protocol::model`. It needs no allocator and no
//! `std`.
//!
//! [`run_scenario`] prints one line per check, `ok   ...` or `FAIL ...: expected ..., got ...`, and
//! ends with the line `{passed} passed, {failed} failed`. It frees every block it allocated, and
//! checks at the end that nothing is outstanding and that the driver's counters moved by exactly
//! what its answers imply. It needs a driver that no other client uses while it runs: the limit
//! checks fill its handle up to the per-handle limits, and the counters are compared with the
//! scenario's own requests.
//!
//! The modules, each using only those listed before it: `device` (the [`Device`] trait and the
//! [`Summary`] of a run), `display` (how values are spelled in the lines), `checks` (what a check
//! compares and why it fails), `runner` (sending requests, tracking blocks, reporting checks),
//! `scenario` (the steps of [`run_scenario`]), [`hostile`] (the hostile-input table and its
//! runner) and [`soak`] (the soak worker).
#![no_std]

#[cfg(test)]
extern crate std;

mod checks;
mod device;
mod display;
pub mod hostile;
mod runner;
mod scenario;
pub mod soak;

pub use device::{Device, Summary};
pub use scenario::run_scenario;

#[cfg(test)]
mod tests;

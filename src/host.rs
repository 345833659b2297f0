//! Loading the driver on ntpool's emulated kernel (host builds only): what the I/O manager does
//! around `DriverEntry` and `DriverUnload`, for the host tests and `cargo xtask run`.

use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

use crate::kernel::{DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};

/// The registry path a service named `ntpool` gets.
pub const REGISTRY_PATH: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool";

/// A loaded driver: its driver object, kept until [`LoadedDriver::unload`].
pub struct LoadedDriver {
    driver: Box<DRIVER_OBJECT>,
}

/// What `DriverEntry` returned and printed.
pub struct LoadResult {
    /// `DriverEntry`'s status.
    pub status: NTSTATUS,
    /// The driver, if `DriverEntry` succeeded.
    pub driver: Option<LoadedDriver>,
    /// Its `DbgPrint` output.
    pub output: Vec<String>,
}

/// Calls `DriverEntry` as the I/O manager does, on the calling thread's emulated kernel, at
/// `PASSIVE_LEVEL`.
pub fn load() -> LoadResult {
    // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid (null pointers, `None`).
    let mut driver: Box<DRIVER_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    let mut path: Vec<u16> = REGISTRY_PATH.encode_utf16().collect();
    let bytes = (path.len() * 2) as u16;
    let registry_path = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: path.as_mut_ptr() };
    // SAFETY: a valid driver object and registry path, at PASSIVE_LEVEL.
    let status = unsafe { crate::DriverEntry(&mut *driver, &registry_path) };
    let output = crate::kernel::take_debug_output();
    let driver = (status >= 0).then_some(LoadedDriver { driver });
    LoadResult { status, driver, output }
}

impl LoadedDriver {
    /// Calls the driver's `DriverUnload` and returns what it printed.
    pub fn unload(mut self) -> Vec<String> {
        if let Some(unload) = self.driver.DriverUnload {
            // SAFETY: DriverEntry succeeded and set this routine; it runs once, at PASSIVE_LEVEL.
            unsafe { unload(&mut *self.driver) };
        }
        crate::kernel::take_debug_output()
    }
}

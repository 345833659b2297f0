//! The miniport on ntpool's emulated kernel (host builds only): the video port driver is the
//! `videoprt.sys` test fixture (its `VideoPortInitialize` calls the miniport's `HwFindAdapter` and
//! `HwInitialize`), and the emulated kernel's `DbgPrint` keeps its lines for the tests.

use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

use videoprt::DRIVER_OBJECT;

/// `VideoPortInitialize`: the `videoprt.sys` test fixture's.
pub use videoprt::VideoPortInitialize;

/// Everything the miniport printed since the last call (the emulated kernel's `DbgPrint` keeps it).
pub use ntpool_sys::emulated::io::take_debug_output;

/// A loaded miniport: its driver object, until [`Loaded::unload`].
pub struct Loaded {
    driver: Box<DRIVER_OBJECT>,
}

/// Calls the miniport's `DriverEntry` as the I/O manager does, on the calling thread's emulated
/// kernel at `PASSIVE_LEVEL`, and returns its status, the driver if it succeeded, and what it printed.
pub fn load() -> (u32, Option<Loaded>, Vec<String>) {
    // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid (null pointers, `None`).
    let mut driver: Box<DRIVER_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    let mut path: Vec<u16> =
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpoolvideo".encode_utf16().collect();
    // SAFETY: a valid driver object and a registry path buffer, at PASSIVE_LEVEL.
    let status = unsafe { crate::DriverEntry((&raw mut *driver).cast(), path.as_mut_ptr().cast()) };
    let output = take_debug_output();
    let loaded = ((status as i32) >= 0).then_some(Loaded { driver });
    (status, loaded, output)
}

impl Loaded {
    /// Calls the `DriverUnload` the video port driver set, and returns what was printed.
    pub fn unload(mut self) -> Vec<String> {
        if let Some(unload) = self.driver.DriverUnload {
            // SAFETY: set by a successful VideoPortInitialize; called once, at PASSIVE_LEVEL.
            unsafe { unload(&mut *self.driver) };
        }
        take_debug_output()
    }
}

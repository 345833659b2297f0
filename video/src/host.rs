//! The miniport on ntpool's emulated kernel (host builds only): the video port driver is the
//! `videoprt.sys` test fixture (its `VideoPortInitialize` calls the miniport's `HwFindAdapter` and
//! `HwInitialize`), and `DbgPrint` keeps its lines for the tests.

use std::boxed::Box;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

use videoprt::DRIVER_OBJECT;

static DEBUG_OUTPUT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The routines [`crate::videoprt`] declares, on the host.
#[allow(non_snake_case, clippy::missing_safety_doc)]
pub mod routines {
    use super::*;
    use crate::videoprt::ULONG;

    /// `VideoPortInitialize`: the fixture's.
    pub use videoprt::VideoPortInitialize;

    /// `DbgPrint`, called with `"%s"` and one NUL-terminated string: the line is kept for
    /// [`take_debug_output`](super::take_debug_output).
    pub unsafe fn DbgPrint(_format: *const u8, text: *const u8) -> ULONG {
        // SAFETY: the driver always passes a NUL-terminated string.
        let text = unsafe { core::ffi::CStr::from_ptr(text.cast()) };
        let line = String::from_utf8_lossy(text.to_bytes()).trim_end().into();
        DEBUG_OUTPUT.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        0
    }
}

/// Everything the miniport printed since the last call.
pub fn take_debug_output() -> Vec<String> {
    core::mem::take(&mut *DEBUG_OUTPUT.lock().unwrap_or_else(|p| p.into_inner()))
}

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

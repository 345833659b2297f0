//! The driver as the checks see it, [`Device`]: something that answers `IRP_MJ_DEVICE_CONTROL`
//! requests (the real driver through a handle, the driver's code on the emulated kernel, or a model
//! of it), and what a run of checks returns, [`Summary`].

use core::fmt;

/// The driver, as the scenario sees it: something that answers `IRP_MJ_DEVICE_CONTROL` requests.
pub trait Device {
    /// Sends the I/O control request `code` with the input buffer `input` and the output buffer
    /// `output` (its length is the output buffer length the driver sees), and returns the request's
    /// final NTSTATUS and the number of bytes the driver returned (`IoStatus.Information`).
    ///
    /// Only the first `information` bytes of `output` may change, as with `METHOD_BUFFERED` on
    /// Windows, where the I/O manager copies back only those (and nothing when the request fails).
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize);
}

impl<D: Device + ?Sized> Device for &mut D {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        (**self).control(code, input, output)
    }
}

/// How many checks of [`run_scenario`](crate::run_scenario) passed and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks whose answer was the expected one.
    pub passed: u32,
    /// Checks whose answer was not.
    pub failed: u32,
}

impl Summary {
    /// Whether every check passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

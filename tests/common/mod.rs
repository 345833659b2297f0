//! What the driver's host tests share: one loaded driver at a time, a kernel that knows the driver's
//! name, the leak check after unload, and the one adapter from the host I/O manager's handles to the
//! client's device interfaces ([`Emulated`], [`EmulatedHandles`]), which [`Watched`] lets a test
//! observe.
//!
//! Each test binary uses a part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use ntpool::emulated::{Kernel, KernelBuilder};
use ntpool_client::Device;
use ntpool_client::hostile::Devices;
use ntpool_driver::host::{Handle, LoadedDriver};

/// The driver keeps its state in a `static`, as a driver does: one load at a time.
static ONE_DRIVER: Mutex<()> = Mutex::new(());

/// Holds the driver for the calling test until the guard drops (a test that failed while holding it
/// does not keep the others from running).
pub fn one_driver() -> MutexGuard<'static, ()> {
    ONE_DRIVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// A kernel for the sample driver (`ntpool_driver.sys`), Driver Verifier's checks on.
pub fn driver_kernel() -> KernelBuilder {
    Kernel::builder().driver_name("ntpool_driver.sys")
}

/// Panics with the kernel's report if anything is left allocated after the driver unloaded.
pub fn assert_no_leak(kernel: &Kernel) {
    if let Err(leak) = kernel.verify_unload() {
        panic!("{leak}");
    }
}

/// One handle as the client's [`Device`]: each request goes to the driver through the host I/O
/// manager, and the bytes it returns (`Information` of them, nothing on failure) are copied into
/// the output buffer, as `METHOD_BUFFERED` does for user mode.
pub struct Emulated<'a, 'b>(pub &'a Handle<'b>);

impl Device for Emulated<'_, '_> {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let (status, reply) = self.0.device_control(code, input, output.len());
        output[..reply.len()].copy_from_slice(&reply);
        (status, reply.len())
    }
}

/// Handles to a loaded driver, by index, as the client's [`Devices`]: each is an [`Emulated`] handle.
pub struct EmulatedHandles<'a> {
    driver: &'a LoadedDriver,
    handles: Vec<Option<Handle<'a>>>,
}

impl<'a> EmulatedHandles<'a> {
    /// No handle open yet.
    pub fn new(driver: &'a LoadedDriver) -> Self {
        EmulatedHandles { driver, handles: Vec::new() }
    }
}

impl Devices for EmulatedHandles<'_> {
    fn open(&mut self) -> Option<usize> {
        let handle = self.driver.open().ok()?;
        self.handles.push(Some(handle));
        Some(self.handles.len() - 1)
    }

    fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let handle = self.handles[handle].as_ref().expect("an open handle");
        Emulated(handle).control(code, input, output)
    }

    fn close(&mut self, handle: usize) {
        self.handles[handle] = None;
    }
}

/// One request and its answer, as user mode saw it.
pub struct Exchange<'a> {
    /// The IOCTL code.
    pub code: u32,
    /// The input buffer.
    pub input: &'a [u8],
    /// The output buffer's length.
    pub output_length: usize,
    /// The final status.
    pub status: i32,
    /// The bytes returned (`Information` of them).
    pub returned: &'a [u8],
}

/// A [`Device`] or [`Devices`] whose every request and answer `watch` sees.
pub struct Watched<D, F> {
    inner: D,
    watch: F,
}

impl<D, F: FnMut(&Exchange<'_>)> Watched<D, F> {
    /// `inner`, each of its exchanges shown to `watch` once it is answered.
    pub fn new(inner: D, watch: F) -> Self {
        Watched { inner, watch }
    }

    /// Shows `watch` the answer `(status, information)` to a request; returns it.
    fn show(&mut self, code: u32, input: &[u8], output: &[u8], answer: (i32, usize)) -> (i32, usize) {
        let (status, information) = answer;
        let returned = &output[..information.min(output.len())];
        (self.watch)(&Exchange { code, input, output_length: output.len(), status, returned });
        answer
    }
}

impl<D: Device, F: FnMut(&Exchange<'_>)> Device for Watched<D, F> {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let answer = self.inner.control(code, input, output);
        self.show(code, input, output, answer)
    }
}

impl<D: Devices, F: FnMut(&Exchange<'_>)> Devices for Watched<D, F> {
    fn open(&mut self) -> Option<usize> {
        self.inner.open()
    }

    fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let answer = self.inner.control(handle, code, input, output);
        self.show(code, input, output, answer)
    }

    fn close(&mut self, handle: usize) {
        self.inner.close(handle);
    }
}

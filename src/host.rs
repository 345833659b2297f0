//! The driver on ntpool's emulated kernel (host builds only): what the I/O manager does around the
//! driver, `DriverEntry` and `DriverUnload`, opening the device, and `METHOD_BUFFERED`
//! device-control requests. The kernel routines the driver calls besides ntpool's are the emulated
//! kernel's ([`ntpool_sys::emulated::io`]), which this harness reads back. For the host tests and
//! `cargo xtask run`.

use std::boxed::Box;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

use ntpool_sys::emulated::io;

use crate::kernel::{
    DEVICE_OBJECT, DRIVER_OBJECT, IO_STACK_LOCATION, IRP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, NTSTATUS,
    PDEVICE_OBJECT, UNICODE_STRING,
};

/// The registry path a service named `ntpool` gets.
pub const REGISTRY_PATH: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool";

std::thread_local! {
    /// What the I/O manager fills the rest of a system buffer with, on this thread.
    static SYSTEM_BUFFER_FILL: core::cell::Cell<u8> = const { core::cell::Cell::new(0xCD) };
}

/// Sets what the I/O manager fills the part of a system buffer past the input with (0xCD by
/// default), for the requests sent from this thread: as uninitialized pool would be. A test that runs
/// the same requests with two fills sees whether any of those bytes reaches user mode.
pub fn set_system_buffer_fill(fill: u8) {
    SYSTEM_BUFFER_FILL.with(|cell| cell.set(fill));
}

/// A `FILE_OBJECT` (x64, 0xD8 bytes): the driver only compares its address.
type FileObject = [u64; 27];

/// Everything the driver printed with `DbgPrint` since the last call.
pub use io::take_debug_output;

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
/// `PASSIVE_LEVEL`. If it fails, checks that it left no device or link behind.
pub fn load() -> LoadResult {
    // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid (null pointers, `None`).
    let mut driver: Box<DRIVER_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    let mut path: Vec<u16> = REGISTRY_PATH.encode_utf16().collect();
    let bytes = (path.len() * 2) as u16;
    let registry_path = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: path.as_mut_ptr() };
    // SAFETY: a valid driver object and registry path, at PASSIVE_LEVEL.
    let status = unsafe { crate::DriverEntry(&mut *driver, &registry_path) };
    let output = take_debug_output();
    if status < 0 {
        assert!(driver.DeviceObject.is_null(), "DriverEntry failed but left a device behind");
        assert_eq!(io::named_objects().1, 0, "DriverEntry failed but left a symbolic link behind");
    }
    let driver = (status >= 0).then_some(LoadedDriver { driver });
    LoadResult { status, driver, output }
}

impl LoadedDriver {
    /// Calls the driver's `DriverUnload`, checks it deleted its device and link, and returns what it
    /// printed.
    pub fn unload(mut self) -> Vec<String> {
        if let Some(unload) = self.driver.DriverUnload {
            // SAFETY: DriverEntry succeeded and set this routine; it runs once, at PASSIVE_LEVEL.
            unsafe { unload(&mut *self.driver) };
        }
        assert!(self.driver.DeviceObject.is_null(), "DriverUnload left a device behind");
        assert_eq!(io::named_objects(), (0, 0), "DriverUnload left a name behind");
        assert_eq!(io::open_handles(), 0, "the driver left a kernel handle open");
        take_debug_output()
    }

    /// Opens `\\.\NtPool` as `CreateFileW` would: the symbolic link leads to the device, and the
    /// driver's `IRP_MJ_CREATE` routine answers.
    pub fn open(&self) -> Result<Handle<'_>, NTSTATUS> {
        let device = io::symbolic_link_device(ntpool_protocol::DOS_DEVICE_NAME).ok_or(0xC000_0034_u32 as i32)?;
        let handle = Handle { driver: self, device, file: Box::new([0; 27]) };
        let (status, _) = handle.send(IRP_MJ_CREATE, 0, &[], 0);
        if status < 0 { Err(status) } else { Ok(handle) }
    }

    /// The DACL the driver gave its device: `(SID, access mask)` per entry.
    pub fn device_dacl(&self) -> Vec<(Vec<u8>, u32)> {
        io::device_dacl(self.driver.DeviceObject)
    }

    /// The device object the driver created.
    pub fn device(&self) -> *const DEVICE_OBJECT {
        self.driver.DeviceObject
    }
}

/// An open handle to the device, with a file object of its own (which the driver sees in every
/// request's stack location, and which identifies the client).
pub struct Handle<'a> {
    driver: &'a LoadedDriver,
    device: PDEVICE_OBJECT,
    file: Box<FileObject>,
}

impl Handle<'_> {
    /// `DeviceIoControl` with a `METHOD_BUFFERED` code: the input is copied into a system buffer of
    /// `max(input, output)` bytes (the rest filled with a pattern, as uninitialized pool would be:
    /// see [`set_system_buffer_fill`]),
    /// the driver's routine runs, and the `Information` bytes it reports are copied back. Checks that
    /// the driver completed the IRP exactly once and never reported more output than there was room
    /// for.
    pub fn device_control(&self, code: u32, input: &[u8], output_length: usize) -> (NTSTATUS, Vec<u8>) {
        self.send(IRP_MJ_DEVICE_CONTROL, code, input, output_length)
    }

    fn send(&self, major: usize, code: u32, input: &[u8], output_length: usize) -> (NTSTATUS, Vec<u8>) {
        let fill = SYSTEM_BUFFER_FILL.with(core::cell::Cell::get);
        let mut system_buffer = std::vec![fill; input.len().max(output_length)];
        system_buffer[..input.len()].copy_from_slice(input);
        // SAFETY: IRP and IO_STACK_LOCATION are plain data for which all-zero bytes are valid.
        let mut irp: Box<IRP> = Box::new(unsafe { core::mem::zeroed() });
        // SAFETY: as above.
        let mut stack: Box<IO_STACK_LOCATION> = Box::new(unsafe { core::mem::zeroed() });
        stack.MajorFunction = major as u8;
        stack.DeviceObject = self.device;
        stack.FileObject = (&*self.file as *const FileObject).cast_mut().cast();
        stack.Parameters.DeviceIoControl.IoControlCode = code;
        stack.Parameters.DeviceIoControl.InputBufferLength = input.len() as u32;
        stack.Parameters.DeviceIoControl.OutputBufferLength = output_length as u32;
        irp.AssociatedIrp.SystemBuffer =
            if system_buffer.is_empty() { core::ptr::null_mut() } else { system_buffer.as_mut_ptr().cast() };
        irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation = &mut *stack;
        irp.RequestorMode = 1; // UserMode
        let routine = self.driver.driver.MajorFunction[major].expect("the driver handles this request");
        let irp_address: *const IRP = &*irp;
        // SAFETY: a valid device and IRP, at PASSIVE_LEVEL, as the I/O manager calls it.
        let returned = unsafe { routine(self.device, &mut *irp) };
        let completions = io::take_completions(irp_address);
        assert_eq!(completions, 1, "the IRP must be completed exactly once");
        // SAFETY: the driver set the status when it completed the IRP.
        let status = unsafe { irp.IoStatus.__bindgen_anon_1.Status };
        assert_eq!(returned, status, "the routine returns the status it completed the IRP with");
        let information = irp.IoStatus.Information as usize;
        assert!(
            information <= output_length,
            "the driver reported {information} bytes for a {output_length}-byte buffer"
        );
        (status, system_buffer[..information].to_vec())
    }
}

/// File objects of handles whose `IRP_MJ_CLOSE` never came ([`Handle::abandon`]): kept, as the I/O
/// manager keeps a file object until its close, so that no later handle gets the same address.
#[allow(clippy::vec_box)] // boxed: each file object keeps the address the driver saw
static ABANDONED: Mutex<Vec<Box<FileObject>>> = Mutex::new(Vec::new());

impl Handle<'_> {
    /// Lets the handle go without `IRP_MJ_CLOSE`, as if its close never came: the driver keeps the
    /// handle's blocks until `DriverUnload`. (The file object stays allocated, reachable, for the
    /// rest of the process.)
    pub fn abandon(self) {
        let handle = core::mem::ManuallyDrop::new(self);
        // SAFETY: `handle` is never dropped, so its file object is moved out of it once, here.
        let file = unsafe { core::ptr::read(&handle.file) };
        ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).push(file);
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        let (status, _) = self.send(IRP_MJ_CLOSE, 0, &[], 0);
        assert_eq!(status, 0, "IRP_MJ_CLOSE failed");
    }
}

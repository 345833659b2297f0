//! The kernel declarations the driver uses besides ntpool's: the WDM structures it reads and writes
//! and the routines it calls, with the names and types of `wdk-sys`.
//!
//! On a Windows host with the WDK, these would come from `wdk-sys`; the Linux cross build and the
//! host tests declare them here. On the host, the routines are emulated (`DbgPrint` is captured so
//! tests can read it).
#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use core::ffi::c_void;

pub use ntpool::sys::{NTSTATUS, PVOID, ULONG};

/// `CSHORT`.
pub type CSHORT = i16;
/// `USHORT`.
pub type USHORT = u16;

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `STATUS_UNSUCCESSFUL`.
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;

/// `IRP_MJ_MAXIMUM_FUNCTION`.
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1b;

/// `UNICODE_STRING`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: *mut u16,
}

/// `PDRIVER_UNLOAD`.
pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(DriverObject: *mut DRIVER_OBJECT)>;
/// `PDRIVER_DISPATCH`.
pub type PDRIVER_DISPATCH = Option<unsafe extern "system" fn(DeviceObject: *mut c_void, Irp: *mut c_void) -> NTSTATUS>;

/// `DRIVER_OBJECT` (x64 layout).
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: CSHORT,
    pub Size: CSHORT,
    pub DeviceObject: *mut c_void,
    pub Flags: ULONG,
    pub DriverStart: PVOID,
    pub DriverSize: ULONG,
    pub DriverSection: PVOID,
    pub DriverExtension: *mut c_void,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: PVOID,
    pub DriverStartIo: PVOID,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1],
}

#[cfg(windows)]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `DbgPrint` (variadic, C calling convention).
    pub fn DbgPrint(Format: *const u8, ...) -> ULONG;
}

/// Host stand-in for `DbgPrint`, called with `"%s"` and one NUL-terminated string: the line is kept
/// for [`take_debug_output`].
///
/// # Safety
/// `text` is a NUL-terminated string.
#[cfg(not(windows))]
pub unsafe fn DbgPrint(_format: *const u8, text: *const u8) -> ULONG {
    // SAFETY: the driver always passes a NUL-terminated string (see `debug_print`).
    let text = unsafe { core::ffi::CStr::from_ptr(text.cast()) };
    let line = std::string::String::from_utf8_lossy(text.to_bytes()).into_owned();
    DEBUG_OUTPUT.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    0
}

#[cfg(not(windows))]
static DEBUG_OUTPUT: std::sync::Mutex<std::vec::Vec<std::string::String>> = std::sync::Mutex::new(std::vec::Vec::new());

/// Everything the driver printed with `DbgPrint` since the last call (host builds).
#[cfg(not(windows))]
pub fn take_debug_output() -> std::vec::Vec<std::string::String> {
    core::mem::take(&mut *DEBUG_OUTPUT.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A line of debug output, formatted into a fixed stack buffer (no allocation) and printed with
/// `DbgPrint("%s", line)`. Longer lines are cut at 255 bytes.
pub struct DebugLine {
    buffer: [u8; 256],
    len: usize,
}

impl Default for DebugLine {
    fn default() -> Self {
        Self::new()
    }
}

impl DebugLine {
    pub const fn new() -> Self {
        DebugLine { buffer: [0; 256], len: 0 }
    }

    /// Prints the line.
    pub fn print(mut self) {
        let end = self.len.min(self.buffer.len() - 2);
        self.buffer[end] = b'\n';
        self.buffer[end + 1] = 0;
        #[cfg(not(windows))]
        {
            self.buffer[end] = 0;
        }
        // SAFETY: both strings are NUL-terminated and outlive the call; "%s" consumes one string.
        unsafe { DbgPrint(c"%s".as_ptr().cast(), self.buffer.as_ptr()) };
    }
}

impl core::fmt::Write for DebugLine {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buffer.len() - 2 - self.len.min(self.buffer.len() - 2);
        let take = s.len().min(room);
        self.buffer[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `DbgPrint` with Rust formatting: `debug_print!("allocated {} bytes", n)`.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let mut line = $crate::kernel::DebugLine::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("ntpool-driver: {}", format_args!($($arg)*)));
        line.print();
    }};
}

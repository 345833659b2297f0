//! The declarations of system threads and of waiting on them: `OBJECT_ATTRIBUTES`, the start
//! routine's type, and the constants `PsCreateSystemThread`, `ObReferenceObjectByHandle` and
//! `KeWaitForSingleObject` take, with the names and types of the WDK. Layouts are x64's, checked
//! against mingw-w64's DDK headers by the sample driver's `tests/declarations.rs`.
//!
//! The routines are at the crate root: imports from `ntoskrnl.exe` on Windows
//! (`ntoskrnl_deferred.rs`), the emulated kernel's `system_thread` module elsewhere.
#![allow(missing_docs)]

use crate::{HANDLE, PVOID, ULONG, UNICODE_STRING};

/// `PKSTART_ROUTINE`: a system thread's start routine, called at `PASSIVE_LEVEL` in the new thread.
pub type PKSTART_ROUTINE = Option<unsafe extern "system" fn(StartContext: PVOID)>;

/// `OBJECT_ATTRIBUTES` (x64, 48 bytes), as `InitializeObjectAttributes` fills it in.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::OBJECT_ATTRIBUTES>(), 48);
/// ```
#[repr(C)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: ULONG,
    pub RootDirectory: HANDLE,
    pub ObjectName: *mut UNICODE_STRING,
    pub Attributes: ULONG,
    pub SecurityDescriptor: PVOID,
    pub SecurityQualityOfService: PVOID,
}

impl OBJECT_ATTRIBUTES {
    /// `InitializeObjectAttributes(&attributes, NULL, Attributes, NULL, NULL)`: no name.
    ///
    /// ```
    /// let attributes = ntpool_sys::OBJECT_ATTRIBUTES::unnamed(ntpool_sys::OBJ_KERNEL_HANDLE);
    /// assert_eq!(attributes.Length, 48);
    /// ```
    pub const fn unnamed(Attributes: ULONG) -> Self {
        let null = core::ptr::null_mut();
        OBJECT_ATTRIBUTES {
            Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as ULONG,
            RootDirectory: null,
            ObjectName: null.cast(),
            Attributes,
            SecurityDescriptor: null,
            SecurityQualityOfService: null,
        }
    }
}

/// `THREAD_ALL_ACCESS` (Vista and later): `STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF`.
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
/// `SYNCHRONIZE`: the right to wait on an object.
pub const SYNCHRONIZE: u32 = 0x0010_0000;

/// `KWAIT_REASON`.
pub type KWAIT_REASON = i32;
/// `Executive`: the wait reason drivers use.
pub const Executive: KWAIT_REASON = 0;

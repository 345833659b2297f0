//! The kernel declarations the driver uses besides ntpool's typed API, all from `ntpool-sys`: the
//! WDM structures it reads and writes and the routines it calls, with the names and types of
//! `wdk-sys` (field paths included, down to bindgen's `__bindgen_anon_N` for the anonymous unions),
//! so that the driver code reads the same as a windows-drivers-rs driver's. On Windows targets the
//! routines are imports from `ntoskrnl.exe`; on the host, the emulated kernel's (its I/O manager,
//! `ntpool_sys::emulated::io`), so that the driver's own code runs in the host tests.
//!
//! Every size, offset and constant is checked against mingw-w64's DDK headers by
//! `tests/declarations.rs`. What is left here is the driver's own: a helper over
//! `IoGetDeviceInterfaces` and its `debug_print!`.

pub use ntpool_sys::wdm::*;
pub use ntpool_sys::{
    DbgPrint, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IoGetDeviceInterfaces,
    IofCompleteRequest, KIRQL, LIST_ENTRY, NTSTATUS, ObOpenObjectByPointer, PVOID, RtlAddAccessAllowedAce,
    RtlCreateAcl, RtlCreateSecurityDescriptor, RtlSetDaclSecurityDescriptor, ULONG, UNICODE_STRING, UnicodeLiteral,
    ZwClose, ZwSetSecurityObject, unicode, utf16,
};

/// The symbolic links of the enabled interfaces of class `class` (`IoGetDeviceInterfaces` with no
/// physical device object and no flags, at `PASSIVE_LEVEL`), as the multi-string list the routine
/// returns. The kernel allocates the list in paged pool and the caller frees it with `ExFreePool`:
/// the returned [`ExPoolBuffer`](ntpool::ExPoolBuffer) does so when dropped.
pub fn device_interfaces(
    passive: &ntpool::Passive,
    class: &GUID,
) -> Result<ntpool::ExPoolBuffer<[u16], ntpool::PagedPool>, NTSTATUS> {
    let mut list: *mut u16 = core::ptr::null_mut();
    // SAFETY: a valid GUID and out pointer, at PASSIVE_LEVEL (the token).
    let status = unsafe { IoGetDeviceInterfaces(class, core::ptr::null_mut(), 0, &mut list) };
    if status < 0 {
        return Err(status);
    }
    // SAFETY: on success the routine returns a multi-string list it allocated from paged pool, which
    // the caller frees with ExFreePool; nothing else owns it.
    unsafe { ntpool::ExPoolBuffer::from_multi_sz(passive, list) }.ok_or(STATUS_UNSUCCESSFUL)
}

/// `DbgPrint` with Rust formatting: `debug_print!("allocated {} bytes", n)`, each line prefixed
/// `ntpool-driver: ` (see `ntpool_kernel_support::debug_print!`).
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {
        ntpool_kernel_support::debug_print!($crate::kernel::DbgPrint, "ntpool-driver: ", $($arg)*)
    };
}

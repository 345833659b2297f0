//! The video port driver's interface as the miniport sees it (`video.h`): the structures it passes
//! and the routines it imports besides ntpool's pool routines, with the WDK's names. Layouts are x64's,
//! checked against mingw-w64's `<ddk/video.h>` by `tests/miniport.rs`.
//!
//! On Windows targets the routines are imports: `VideoPortInitialize` from `videoprt.sys`,
//! `DbgPrint` from `ntoskrnl.exe`. On the host they come from [`crate::host`]: the `videoprt.sys`
//! test fixture's `VideoPortInitialize` on ntpool's emulated kernel, and a `DbgPrint` that keeps
//! the lines for the tests.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, missing_docs)]

use ntpool::sys::PVOID;

pub type ULONG = u32;
pub type BOOLEAN = u8;
/// `VP_STATUS`: a Win32 error code.
pub type VP_STATUS = i32;

pub const NO_ERROR: VP_STATUS = 0;
pub const ERROR_INVALID_FUNCTION: VP_STATUS = 1;
pub const ERROR_NOT_ENOUGH_MEMORY: VP_STATUS = 8;
pub const ERROR_DEV_NOT_EXIST: VP_STATUS = 55;
pub const TRUE: BOOLEAN = 1;
pub const FALSE: BOOLEAN = 0;
/// `INTERFACE_TYPE::Internal`: a legacy adapter on no bus.
pub const Internal: i32 = 0;

/// `PVIDEO_HW_FIND_ADAPTER`.
pub type PVIDEO_HW_FIND_ADAPTER = Option<
    unsafe extern "system" fn(
        HwDeviceExtension: PVOID,
        HwContext: PVOID,
        ArgumentString: *mut u16,
        ConfigInfo: PVOID,
        Again: *mut u8,
    ) -> VP_STATUS,
>;
/// `PVIDEO_HW_INITIALIZE`.
pub type PVIDEO_HW_INITIALIZE = Option<unsafe extern "system" fn(HwDeviceExtension: PVOID) -> BOOLEAN>;
/// `PVIDEO_HW_START_IO`.
pub type PVIDEO_HW_START_IO =
    Option<unsafe extern "system" fn(HwDeviceExtension: PVOID, RequestPacket: *mut VIDEO_REQUEST_PACKET) -> BOOLEAN>;

/// `VIDEO_HW_INITIALIZATION_DATA`. Callbacks the miniport does not provide are plain pointers.
#[repr(C)]
pub struct VIDEO_HW_INITIALIZATION_DATA {
    pub HwInitDataSize: ULONG,
    pub AdapterInterfaceType: i32,
    pub HwFindAdapter: PVIDEO_HW_FIND_ADAPTER,
    pub HwInitialize: PVIDEO_HW_INITIALIZE,
    pub HwInterrupt: PVOID,
    pub HwStartIO: PVIDEO_HW_START_IO,
    pub HwDeviceExtensionSize: ULONG,
    pub StartingDeviceNumber: ULONG,
    pub HwResetHw: PVOID,
    pub HwTimer: PVOID,
    pub HwStartDma: PVOID,
    pub HwSetPowerState: PVOID,
    pub HwGetPowerState: PVOID,
    pub HwGetVideoChildDescriptor: PVOID,
    pub HwQueryInterface: PVOID,
    pub HwChildDeviceExtensionSize: ULONG,
    pub HwLegacyResourceList: PVOID,
    pub HwLegacyResourceCount: ULONG,
    pub HwGetLegacyResources: PVOID,
    pub AllowEarlyEnumeration: BOOLEAN,
    pub Reserved: ULONG,
}

/// `STATUS_BLOCK`.
#[repr(C)]
pub struct STATUS_BLOCK {
    /// `Status` (a `VP_STATUS`), in a union with `Pointer`.
    pub Status: usize,
    pub Information: usize,
}

/// `VIDEO_REQUEST_PACKET`.
#[repr(C)]
pub struct VIDEO_REQUEST_PACKET {
    pub IoControlCode: ULONG,
    pub StatusBlock: *mut STATUS_BLOCK,
    pub InputBuffer: PVOID,
    pub InputBufferLength: ULONG,
    pub OutputBuffer: PVOID,
    pub OutputBufferLength: ULONG,
}

#[cfg(windows)]
#[link(name = "videoprt.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    pub fn VideoPortInitialize(
        Argument1: PVOID,
        Argument2: PVOID,
        HwInitializationData: *const VIDEO_HW_INITIALIZATION_DATA,
        HwContext: PVOID,
    ) -> ULONG;
}

#[cfg(windows)]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    pub fn DbgPrint(Format: *const u8, ...) -> ULONG;
}

#[cfg(not(windows))]
pub use crate::host::routines::*;

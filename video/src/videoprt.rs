//! The video port driver's interface as the miniport sees it (`video.h`): the structures it passes
//! (ntpool's, [`ntpool::sys`], shared with the `videoprt.sys` test fixture) and the routine it
//! imports besides ntpool's pool routines, with the WDK's names.
//!
//! On Windows targets `VideoPortInitialize` is an import from `videoprt.sys` and `DbgPrint` one from
//! `ntoskrnl.exe`. On the host they come from [`crate::host`]: the `videoprt.sys` test fixture's
//! `VideoPortInitialize` on ntpool's emulated kernel, and a `DbgPrint` that keeps the lines for the
//! tests.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, missing_docs)]

#[cfg(windows)]
use ntpool::sys::PVOID;
pub use ntpool::sys::{
    ERROR_DEV_NOT_EXIST, ERROR_INVALID_FUNCTION, ERROR_NOT_ENOUGH_MEMORY, NO_ERROR, STATUS_BLOCK, ULONG,
    VIDEO_HW_INITIALIZATION_DATA, VIDEO_PORT_CONFIG_INFO, VIDEO_REQUEST_PACKET, VP_STATUS,
};

pub type BOOLEAN = u8;

pub const TRUE: BOOLEAN = 1;
pub const FALSE: BOOLEAN = 0;
/// `INTERFACE_TYPE::Internal`: a legacy adapter on no bus.
pub const Internal: i32 = 0;

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
pub use ntpool_kernel_support::DbgPrint;

#[cfg(not(windows))]
pub use crate::host::routines::*;

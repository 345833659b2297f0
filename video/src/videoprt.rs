//! The video port driver's interface as the miniport sees it (`video.h`): the structures it passes
//! and the routine it calls besides ntpool's pool routines, with the WDK's names, all from
//! `ntpool-sys` (shared with the `videoprt.sys` test fixture).
//!
//! On Windows targets `VideoPortInitialize` is an import from `videoprt.sys` and `DbgPrint` one from
//! `ntoskrnl.exe`. On the host, `VideoPortInitialize` is the `videoprt.sys` test fixture's (see
//! [`crate::host`]), on ntpool's emulated kernel, and `DbgPrint` the emulated kernel's, which keeps
//! the lines for the tests.

pub use ntpool_sys::{
    BOOLEAN, DbgPrint, ERROR_DEV_NOT_EXIST, ERROR_INVALID_FUNCTION, ERROR_NOT_ENOUGH_MEMORY, FALSE, Internal, NO_ERROR,
    STATUS_BLOCK, TRUE, ULONG, VIDEO_HW_INITIALIZATION_DATA, VIDEO_PORT_CONFIG_INFO, VIDEO_REQUEST_PACKET, VP_STATUS,
};

#[cfg(not(windows))]
pub use crate::host::VideoPortInitialize;
#[cfg(windows)]
pub use ntpool_sys::VideoPortInitialize;

//! The declarations of the WDK's `video.h` that a video miniport and the video port driver
//! (`videoprt.sys`) exchange, with the WDK's names (the `videoport-types` feature, which `videoport`
//! includes): the pool types of `VideoPortAllocatePool`, the structures of `VideoPortInitialize` and
//! `HwStartIO`, the miniport callbacks' types and their status codes.
//!
//! Types and constants only, with no import from `videoprt.sys`: both sides of the interface use
//! them, the sample miniport (`ntpool-video`, which imports the routines) and the `videoprt.sys` test
//! fixture (`ntpool-videoprt`, which exports them). Layouts are x64's, checked against mingw-w64's
//! `<ddk/video.h>` by the sample miniport's tests (`video/tests/miniport.rs`). `BOOLEAN` values are
//! `u8`.

use super::{PVOID, ULONG};

/// `VP_POOL_TYPE`, the pool parameter of `VideoPortAllocatePool` (an `enum` in `video.h`). Its
/// values are the `POOL_TYPE` values of the same pools, and `videoprt.sys` hands them on to
/// `ExAllocatePoolWithTag` as such.
///
/// ```
/// let pool: ntpool_sys::VP_POOL_TYPE = ntpool_sys::VpPagedPool;
/// assert_eq!(pool, ntpool_sys::PagedPool);
/// ```
pub type VP_POOL_TYPE = i32;

/// `VpNonPagedPool`: non-paged memory (`POOL_TYPE` `NonPagedPool`, which is executable).
///
/// ```
/// assert_eq!(ntpool_sys::VpNonPagedPool, 0);
/// ```
pub const VpNonPagedPool: VP_POOL_TYPE = 0;
/// `VpPagedPool`: paged memory.
///
/// ```
/// assert_eq!(ntpool_sys::VpPagedPool, 1);
/// ```
pub const VpPagedPool: VP_POOL_TYPE = 1;
/// `VpNonPagedPoolCacheAligned`: non-paged memory aligned on a processor cache line.
///
/// ```
/// assert_eq!(ntpool_sys::VpNonPagedPoolCacheAligned, 4);
/// ```
pub const VpNonPagedPoolCacheAligned: VP_POOL_TYPE = 4;
/// `VpPagedPoolCacheAligned`: paged memory aligned on a processor cache line.
///
/// ```
/// assert_eq!(ntpool_sys::VpPagedPoolCacheAligned, 5);
/// ```
pub const VpPagedPoolCacheAligned: VP_POOL_TYPE = 5;

/// `VP_STATUS`: what a miniport's callbacks return, a Win32 error code.
///
/// ```
/// let status: ntpool_sys::VP_STATUS = ntpool_sys::NO_ERROR;
/// assert_eq!(status, 0);
/// ```
pub type VP_STATUS = i32;

/// `NO_ERROR`: success.
///
/// ```
/// assert_eq!(ntpool_sys::NO_ERROR, 0);
/// ```
pub const NO_ERROR: VP_STATUS = 0;
/// `ERROR_INVALID_FUNCTION`: a request the miniport does not implement.
///
/// ```
/// assert_eq!(ntpool_sys::ERROR_INVALID_FUNCTION, 1);
/// ```
pub const ERROR_INVALID_FUNCTION: VP_STATUS = 1;
/// `ERROR_NOT_ENOUGH_MEMORY`: an allocation failed.
///
/// ```
/// assert_eq!(ntpool_sys::ERROR_NOT_ENOUGH_MEMORY, 8);
/// ```
pub const ERROR_NOT_ENOUGH_MEMORY: VP_STATUS = 8;
/// `ERROR_DEV_NOT_EXIST`: `HwFindAdapter` found no adapter.
///
/// ```
/// assert_eq!(ntpool_sys::ERROR_DEV_NOT_EXIST, 55);
/// ```
pub const ERROR_DEV_NOT_EXIST: VP_STATUS = 55;

/// `PVIDEO_HW_FIND_ADAPTER`: the miniport's `HwFindAdapter`, called at `PASSIVE_LEVEL` with its
/// device extension, its `HwContext`, an argument string, the configuration and `Again` (a `BOOLEAN`
/// the miniport sets to be called again).
///
/// ```
/// use ntpool_sys::{PVIDEO_HW_FIND_ADAPTER, PVOID, VIDEO_PORT_CONFIG_INFO, VP_STATUS, NO_ERROR};
/// unsafe extern "system" fn find(_: PVOID, _: PVOID, _: *mut u16, _: *mut VIDEO_PORT_CONFIG_INFO, _: *mut u8) -> VP_STATUS {
///     NO_ERROR
/// }
/// let callback: PVIDEO_HW_FIND_ADAPTER = Some(find);
/// assert!(callback.is_some());
/// ```
pub type PVIDEO_HW_FIND_ADAPTER = Option<
    unsafe extern "system" fn(
        HwDeviceExtension: PVOID,
        HwContext: PVOID,
        ArgumentString: *mut u16,
        ConfigInfo: *mut VIDEO_PORT_CONFIG_INFO,
        Again: *mut u8,
    ) -> VP_STATUS,
>;
/// `PVIDEO_HW_INITIALIZE`: the miniport's `HwInitialize`, called at `PASSIVE_LEVEL` after a
/// successful `HwFindAdapter`; returns a `BOOLEAN`.
///
/// ```
/// unsafe extern "system" fn initialize(_: ntpool_sys::PVOID) -> u8 {
///     1
/// }
/// let callback: ntpool_sys::PVIDEO_HW_INITIALIZE = Some(initialize);
/// assert!(callback.is_some());
/// ```
pub type PVIDEO_HW_INITIALIZE = Option<unsafe extern "system" fn(HwDeviceExtension: PVOID) -> u8>;
/// `PVIDEO_HW_START_IO`: the miniport's `HwStartIO`, which handles one video request packet and
/// returns a `BOOLEAN`.
///
/// ```
/// use ntpool_sys::{PVOID, VIDEO_REQUEST_PACKET};
/// unsafe extern "system" fn start_io(_: PVOID, _: *mut VIDEO_REQUEST_PACKET) -> u8 {
///     1
/// }
/// let callback: ntpool_sys::PVIDEO_HW_START_IO = Some(start_io);
/// assert!(callback.is_some());
/// ```
pub type PVIDEO_HW_START_IO =
    Option<unsafe extern "system" fn(HwDeviceExtension: PVOID, RequestPacket: *mut VIDEO_REQUEST_PACKET) -> u8>;

/// `VIDEO_HW_INITIALIZATION_DATA` (x64: 144 bytes): what a miniport's `DriverEntry` hands to
/// `VideoPortInitialize`. Callbacks that neither side here calls are plain pointers.
///
/// ```
/// use ntpool_sys::VIDEO_HW_INITIALIZATION_DATA;
/// assert_eq!(core::mem::size_of::<VIDEO_HW_INITIALIZATION_DATA>(), 144);
/// // SAFETY: plain data for which all-zero bytes are valid (null pointers, `None`).
/// let data: VIDEO_HW_INITIALIZATION_DATA = unsafe { core::mem::zeroed() };
/// assert!(data.HwFindAdapter.is_none());
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VIDEO_HW_INITIALIZATION_DATA {
    /// The size of the structure the miniport was built with.
    pub HwInitDataSize: ULONG,
    /// An `INTERFACE_TYPE`: the adapter's bus.
    pub AdapterInterfaceType: i32,
    /// `HwFindAdapter` (required).
    pub HwFindAdapter: PVIDEO_HW_FIND_ADAPTER,
    /// `HwInitialize` (required).
    pub HwInitialize: PVIDEO_HW_INITIALIZE,
    /// `HwInterrupt`.
    pub HwInterrupt: PVOID,
    /// `HwStartIO` (required).
    pub HwStartIO: PVIDEO_HW_START_IO,
    /// The bytes of the device extension the port driver allocates for each adapter.
    pub HwDeviceExtensionSize: ULONG,
    /// The number of the first device.
    pub StartingDeviceNumber: ULONG,
    /// `HwResetHw`.
    pub HwResetHw: PVOID,
    /// `HwTimer`.
    pub HwTimer: PVOID,
    /// `HwStartDma`.
    pub HwStartDma: PVOID,
    /// `HwSetPowerState`.
    pub HwSetPowerState: PVOID,
    /// `HwGetPowerState`.
    pub HwGetPowerState: PVOID,
    /// `HwGetVideoChildDescriptor`.
    pub HwGetVideoChildDescriptor: PVOID,
    /// `HwQueryInterface`.
    pub HwQueryInterface: PVOID,
    /// The bytes of each child device's extension.
    pub HwChildDeviceExtensionSize: ULONG,
    /// `HwLegacyResourceList`.
    pub HwLegacyResourceList: PVOID,
    /// The entries of `HwLegacyResourceList`.
    pub HwLegacyResourceCount: ULONG,
    /// `HwGetLegacyResources`.
    pub HwGetLegacyResources: PVOID,
    /// `AllowEarlyEnumeration`, a `BOOLEAN`.
    pub AllowEarlyEnumeration: u8,
    /// `Reserved`.
    pub Reserved: ULONG,
}

/// `SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA`: [`VIDEO_HW_INITIALIZATION_DATA`] up to `Reserved`,
/// the oldest size a video port driver of Windows 2000 or later accepts.
///
/// ```
/// assert_eq!(ntpool_sys::SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA, 140);
/// ```
pub const SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA: ULONG = 140;

/// `VIDEO_PORT_CONFIG_INFO` (x64: 128 bytes), the configuration `HwFindAdapter` receives; opaque
/// here but for `Length`.
///
/// ```
/// use ntpool_sys::VIDEO_PORT_CONFIG_INFO;
/// let config = VIDEO_PORT_CONFIG_INFO { Length: 128, Rest: [0; 124] };
/// assert_eq!(core::mem::size_of_val(&config), config.Length as usize);
/// ```
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct VIDEO_PORT_CONFIG_INFO {
    /// The size of the structure.
    pub Length: ULONG,
    /// Every other field, uninterpreted.
    pub Rest: [u8; 124],
}

/// `STATUS_BLOCK`: the outcome of a video request.
///
/// ```
/// use ntpool_sys::{ERROR_INVALID_FUNCTION, STATUS_BLOCK};
/// let status = STATUS_BLOCK { Status: ERROR_INVALID_FUNCTION as usize, Information: 0 };
/// assert_eq!(core::mem::size_of_val(&status), 16);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct STATUS_BLOCK {
    /// `Status` (a `VP_STATUS`), in a union with `Pointer`.
    pub Status: usize,
    /// The bytes returned.
    pub Information: usize,
}

/// `VIDEO_REQUEST_PACKET`: a video request, as `HwStartIO` receives it.
///
/// ```
/// use ntpool_sys::{STATUS_BLOCK, VIDEO_REQUEST_PACKET};
/// let mut status = STATUS_BLOCK { Status: 0, Information: 0 };
/// let packet = VIDEO_REQUEST_PACKET {
///     IoControlCode: 0x0023_0400,
///     StatusBlock: &mut status,
///     InputBuffer: core::ptr::null_mut(),
///     InputBufferLength: 0,
///     OutputBuffer: core::ptr::null_mut(),
///     OutputBufferLength: 0,
/// };
/// assert_eq!(core::mem::size_of_val(&packet), 48);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct VIDEO_REQUEST_PACKET {
    /// The `IOCTL_VIDEO_*` code.
    pub IoControlCode: ULONG,
    /// Where the outcome goes.
    pub StatusBlock: *mut STATUS_BLOCK,
    /// The input buffer.
    pub InputBuffer: PVOID,
    /// Its bytes.
    pub InputBufferLength: ULONG,
    /// The output buffer.
    pub OutputBuffer: PVOID,
    /// Its bytes.
    pub OutputBufferLength: ULONG,
}

/// `INTERFACE_TYPE::Internal`, the `AdapterInterfaceType` of a legacy adapter on no bus.
///
/// ```
/// assert_eq!(ntpool_sys::Internal, 0);
/// ```
pub const Internal: i32 = 0;

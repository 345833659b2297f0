//! A minimal `videoprt.sys`, **a test fixture**: Wine has no video port driver, so a video miniport
//! driver (which imports from `videoprt.sys`) cannot load under Wine without one. This one exports
//! the few routines the sample miniport (`ntpool-video`) imports, implemented the way the real video
//! port driver implements them, on `ntoskrnl.exe`:
//!
//! * [`VideoPortAllocatePool`]: `ExAllocatePoolWithTag` with the `VP_POOL_TYPE` as the `POOL_TYPE`
//!   (their values are the same pools'); the block is not zeroed.
//! * [`VideoPortFreePool`]: `ExFreePool` (there is no tag to pass).
//! * [`VideoPortInitialize`]: for one legacy (non-PnP) adapter, what the video port driver does
//!   around the miniport's callbacks: checks the `VIDEO_HW_INITIALIZATION_DATA`, allocates the
//!   device extension (non-paged, zeroed), calls `HwFindAdapter` and then `HwInitialize` at
//!   `PASSIVE_LEVEL`, and sets a `DriverUnload` that frees the device extension.
//!
//! It is not a video port driver: no device object, no PnP, no IOCTLs, no `HwStartIO` calls, no
//! hardware resources, one adapter per process. On the host, the same code runs on ntpool's
//! emulated kernel (through [`ntpool_sys`], the kernel interface alone) for the miniport's host
//! tests.
#![cfg_attr(windows, no_std)]
#![allow(non_snake_case, non_camel_case_types)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use ntpool_sys::{
    self as sys, NO_ERROR, NTSTATUS, PVOID, SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA, SIZE_T, ULONG,
    VIDEO_HW_INITIALIZATION_DATA, VIDEO_PORT_CONFIG_INFO, VP_POOL_TYPE,
};

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
/// `STATUS_REVISION_MISMATCH`.
pub const STATUS_REVISION_MISMATCH: NTSTATUS = 0xC000_0059_u32 as i32;
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
/// `STATUS_NO_SUCH_DEVICE`.
pub const STATUS_NO_SUCH_DEVICE: NTSTATUS = 0xC000_000E_u32 as i32;
/// `STATUS_DEVICE_ALREADY_ATTACHED`: a second adapter, which this fixture does not support.
pub const STATUS_DEVICE_ALREADY_ATTACHED: NTSTATUS = 0xC000_0038_u32 as i32;

/// The tag of the device extensions this fixture allocates (`VPdx`: `VP` for the video port).
pub const EXTENSION_TAG: ULONG = u32::from_le_bytes(*b"VPdx");

/// `DRIVER_OBJECT`, the WDM declaration (the fixture sets its `DriverUnload`).
pub use ntpool_sys::DRIVER_OBJECT;

/// One line of the fixture's own trace, `videoprt: ...`, printed with `DbgPrint` on Windows targets
/// (Wine's relay trace does not show calls into a native DLL such as this one, so `cargo xtask
/// video` reads these lines, beside the relay trace of the `ntoskrnl.exe` calls they make). Nothing
/// on the host.
macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(windows)]
        ntpool_kernel_support::debug_print!(ntpool_kernel_support::DbgPrint, "videoprt: ", $($arg)*);
        #[cfg(not(windows))]
        let _ = format_args!($($arg)*);
    }};
}

/// The adapter's device extension, from `VideoPortInitialize` until the driver unloads.
static EXTENSION: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
/// Its size, for nothing but the record.
static EXTENSION_SIZE: AtomicUsize = AtomicUsize::new(0);

/// `VideoPortAllocatePool`: `ExAllocatePoolWithTag(PoolType, NumberOfBytes, Tag)`.
///
/// # Safety
/// As for `VideoPortAllocatePool`: the IRQL allows the pool (below `DISPATCH_LEVEL` for a paged
/// type, at most `DISPATCH_LEVEL` otherwise).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn VideoPortAllocatePool(
    HwDeviceExtension: PVOID,
    PoolType: VP_POOL_TYPE,
    NumberOfBytes: SIZE_T,
    Tag: ULONG,
) -> PVOID {
    // SAFETY: the caller keeps VideoPortAllocatePool's IRQL rule, which is ExAllocatePoolWithTag's
    // for the pool type of the same value.
    let block = unsafe { sys::ExAllocatePoolWithTag(PoolType, NumberOfBytes, Tag) };
    trace!("VideoPortAllocatePool({HwDeviceExtension:p}, {PoolType}, {NumberOfBytes}, {Tag:#010x}) = {block:p}");
    block
}

/// `VideoPortFreePool`: `ExFreePool(Ptr)`.
///
/// # Safety
/// As for `VideoPortFreePool`: `Ptr` came from [`VideoPortAllocatePool`]; the IRQL allows its pool.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn VideoPortFreePool(HwDeviceExtension: PVOID, Ptr: PVOID) {
    trace!("VideoPortFreePool({HwDeviceExtension:p}, {Ptr:p})");
    // SAFETY: the caller's contract is ExFreePool's.
    unsafe { sys::ExFreePool(Ptr) }
}

/// `VideoPortInitialize` for one legacy adapter: see the crate documentation. Returns an
/// `NTSTATUS` (as a `ULONG`), which the miniport's `DriverEntry` returns.
///
/// # Safety
/// Called from the miniport's `DriverEntry` at `PASSIVE_LEVEL`, with the driver object and registry
/// path `DriverEntry` received and a valid `VIDEO_HW_INITIALIZATION_DATA`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn VideoPortInitialize(
    Argument1: PVOID,
    _Argument2: PVOID,
    HwInitializationData: *const VIDEO_HW_INITIALIZATION_DATA,
    HwContext: PVOID,
) -> ULONG {
    // SAFETY: forwarded contract.
    unsafe { initialize(Argument1.cast(), HwInitializationData, HwContext) as ULONG }
}

/// # Safety
/// As for [`VideoPortInitialize`].
unsafe fn initialize(
    driver: *mut DRIVER_OBJECT,
    data: *const VIDEO_HW_INITIALIZATION_DATA,
    context: PVOID,
) -> NTSTATUS {
    if driver.is_null() || data.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a valid structure, at least `HwInitDataSize` bytes (checked next).
    let size = unsafe { (*data).HwInitDataSize };
    if size < SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA {
        return STATUS_REVISION_MISMATCH;
    }
    if size as usize > core::mem::size_of::<VIDEO_HW_INITIALIZATION_DATA>() {
        return STATUS_REVISION_MISMATCH;
    }
    // SAFETY: as above; every field read is within the W2K size.
    let data = unsafe { &*data };
    let (Some(find_adapter), Some(hw_initialize), Some(_)) = (data.HwFindAdapter, data.HwInitialize, data.HwStartIO)
    else {
        return STATUS_INVALID_PARAMETER;
    };
    if !EXTENSION.load(Ordering::Acquire).is_null() {
        return STATUS_DEVICE_ALREADY_ATTACHED;
    }
    let extension_size = (data.HwDeviceExtensionSize as usize).max(1);
    // SAFETY: at PASSIVE_LEVEL (DriverEntry), non-paged pool, a size that is not zero.
    let extension = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, extension_size as SIZE_T, EXTENSION_TAG) };
    if extension.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: a fresh block of `extension_size` bytes; device extensions start zeroed.
    unsafe { extension.cast::<u8>().write_bytes(0, extension_size) };

    let mut config =
        VIDEO_PORT_CONFIG_INFO { Length: core::mem::size_of::<VIDEO_PORT_CONFIG_INFO>() as ULONG, Rest: [0; 124] };
    let mut again = 0u8;
    // SAFETY: the miniport's callback, called as the video port driver calls it: at PASSIVE_LEVEL,
    // with its zeroed device extension, its context, no argument string, a configuration and `Again`.
    let found = unsafe { find_adapter(extension, context, core::ptr::null_mut(), &mut config, &mut again) };
    // SAFETY: as above; HwInitialize follows a successful HwFindAdapter.
    if found != NO_ERROR || unsafe { hw_initialize(extension) } == 0 {
        // SAFETY: allocated above, not used again.
        unsafe { sys::ExFreePool(extension) };
        return STATUS_NO_SUCH_DEVICE;
    }
    trace!("VideoPortInitialize: device extension of {extension_size} bytes at {extension:p}");
    EXTENSION_SIZE.store(extension_size, Ordering::Relaxed);
    EXTENSION.store(extension, Ordering::Release);
    // SAFETY: the caller passes its valid driver object, which the port driver fills in.
    unsafe { (*driver).DriverUnload = Some(unload) };
    STATUS_SUCCESS
}

/// The `DriverUnload` [`VideoPortInitialize`] sets: frees the device extension.
///
/// # Safety
/// Called once by the I/O manager at `PASSIVE_LEVEL` after a successful `VideoPortInitialize`.
unsafe extern "system" fn unload(_driver: *mut DRIVER_OBJECT) {
    let extension = EXTENSION.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !extension.is_null() {
        trace!("DriverUnload: freeing the device extension at {extension:p}");
        // SAFETY: allocated by `initialize` with ExAllocatePoolWithTag, taken out of `EXTENSION`.
        unsafe { sys::ExFreePool(extension) };
    }
}

/// The fixture's own `DriverEntry` (`videoprt.sys` is a kernel-mode DLL that the loader maps for its
/// importers): nothing to set up.
///
/// # Safety
/// Called by the loader, if at all, at `PASSIVE_LEVEL`.
#[cfg(windows)]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(_driver: PVOID, _registry_path: PVOID) -> NTSTATUS {
    STATUS_SUCCESS
}

// The panic handler (a bug check) and `_fltused` of the kernel image.
#[cfg(windows)]
ntpool_kernel_support::kernel_image_runtime!();

//! The video port driver's routines (`videoprt.sys`, the `videoport` feature) that a miniport
//! imports: `VideoPortAllocatePool` and `VideoPortFreePool`, and `VideoPortInitialize`, with the
//! names and types of the WDK's `video.h` (`VP_POOL_TYPE` and its values are declared with the rest
//! of `video.h`'s types, under the `videoport-types` feature that `videoport` includes).
//!
//! On a Windows target they are `raw-dylib` imports from `videoprt.sys`, so a driver that uses them
//! is a video miniport driver and loads only where `videoprt.sys` is present. Everywhere else the
//! pool routines go to the [emulated kernel][emulated], which tracks and checks them like
//! every other pool call; `VideoPortInitialize` is the video port driver's own work, which a host
//! test takes from a stand-in for `videoprt.sys` (the workspace's `videoprt` test fixture).
//!
#![cfg_attr(ntpool_emulated, doc = "[emulated]: crate::emulated")]
#![cfg_attr(
    not(ntpool_emulated),
    doc = "[emulated]: https://docs.rs/ntpool-sys/latest/x86_64-unknown-linux-gnu/ntpool_sys/emulated/"
)]

use super::{PVOID, SIZE_T, ULONG, VP_POOL_TYPE};

#[cfg(not(ntpool_emulated))]
#[link(name = "videoprt.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// `VideoPortAllocatePool`: a block of `NumberOfBytes` from `PoolType`, tagged `Tag`, or NULL.
    /// The block is not zeroed. `VpNonPaged*` up to `DISPATCH_LEVEL`, `VpPaged*` below it.
    pub fn VideoPortAllocatePool(
        HwDeviceExtension: PVOID,
        PoolType: VP_POOL_TYPE,
        NumberOfBytes: SIZE_T,
        Tag: ULONG,
    ) -> PVOID;
    /// `VideoPortFreePool`: frees a block `VideoPortAllocatePool` returned. Up to `DISPATCH_LEVEL`
    /// for a `VpNonPaged*` block, below it for a `VpPaged*` one.
    pub fn VideoPortFreePool(HwDeviceExtension: PVOID, Ptr: PVOID);
    /// `VideoPortInitialize`: registers the miniport's callbacks (`HwInitializationData`) with the
    /// video port driver, which finds and initializes the adapter. Called from `DriverEntry` with
    /// its two arguments.
    pub fn VideoPortInitialize(
        Argument1: PVOID,
        Argument2: PVOID,
        HwInitializationData: *const super::VIDEO_HW_INITIALIZATION_DATA,
        HwContext: PVOID,
    ) -> ULONG;
}

/// `VideoPortAllocatePool`: on the emulated kernel, what `videoprt.sys` does, an
/// `ExAllocatePoolWithTag` of the same pool type, size and tag, recorded under the routine name
/// `VideoPortAllocatePool` and checked as Driver Verifier checks it (IRQL, zero size, tag).
///
/// # Safety
/// As for `VideoPortAllocatePool`: `HwDeviceExtension` is the miniport's device extension; the
/// IRQL is below `DISPATCH_LEVEL`, or at it for a `VpNonPaged*` type.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// let mut extension = [0u64; 8];
/// kernel.run(|| {
///     let device = extension.as_mut_ptr().cast();
///     let tag = u32::from_le_bytes(*b"DvDc");
///     // SAFETY: at PASSIVE_LEVEL, with a device extension; freed below.
///     let p = unsafe { sys::VideoPortAllocatePool(device, sys::VpPagedPool, 32, tag) };
///     assert!(!p.is_null());
///     assert_eq!(kernel.outstanding()[0].routine, "VideoPortAllocatePool");
///     // SAFETY: `p` came from VideoPortAllocatePool and is not used afterwards.
///     unsafe { sys::VideoPortFreePool(device, p) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[cfg(ntpool_emulated)]
#[track_caller]
#[inline(always)]
pub unsafe fn VideoPortAllocatePool(
    HwDeviceExtension: PVOID,
    PoolType: VP_POOL_TYPE,
    NumberOfBytes: SIZE_T,
    Tag: ULONG,
) -> PVOID {
    let _ = HwDeviceExtension;
    crate::emulated::pool::videoport_allocate_pool(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

/// `VideoPortFreePool`: on the emulated kernel, what `videoprt.sys` does, an `ExFreePool` of the
/// block, with its checks: a `VpPaged*` block freed at `DISPATCH_LEVEL` or above is bug check
/// 0xC4 / 0x11 (0xC2 / 0x09 without Driver Verifier), any block above `DISPATCH_LEVEL` 0xC4 / 0x12.
///
/// # Safety
/// As for `VideoPortFreePool`.
///
/// ```
/// use ntpool_sys::emulated::{catch_bug_check, Kernel};
/// use ntpool_sys as sys;
/// let mut extension = [0u64; 8];
/// let device: sys::PVOID = extension.as_mut_ptr().cast();
/// let bug_check = Kernel::new().run(|| {
///     // SAFETY: at PASSIVE_LEVEL, with a device extension.
///     let p = unsafe { sys::VideoPortAllocatePool(device, sys::VpPagedPool, 32, u32::from_le_bytes(*b"DvDc")) };
///     catch_bug_check(|| {
///         // SAFETY: a deliberate violation, reported by the emulated kernel: paged, at DISPATCH_LEVEL.
///         let _old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
///         // SAFETY: as above.
///         unsafe { sys::VideoPortFreePool(device, p) };
///     })
///     .unwrap_err()
/// });
/// assert_eq!((bug_check.code, bug_check.parameters[0]), (sys::DRIVER_VERIFIER_DETECTED_VIOLATION, 0x11));
/// ```
#[cfg(ntpool_emulated)]
pub unsafe fn VideoPortFreePool(HwDeviceExtension: PVOID, Ptr: PVOID) {
    let _ = HwDeviceExtension;
    crate::emulated::pool::free_pool(Ptr, None);
}

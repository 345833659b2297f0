//! Where ntpool's API meets `wdk-sys`'s types: the conversions a windows-drivers-rs driver needs, for
//! `PVOID`, `POOL_FLAGS`, `KSPIN_LOCK`, `NTSTATUS`, tags and `UNICODE_STRING`.
//!
//! `wdk-sys` (bindgen over the WDK's headers) and `ntpool::sys` declare these as the same `type`
//! aliases (`*mut c_void`, `u64`, `u64`, `i32`, `u32`), so each conversion is an identity that the
//! compiler checks: if either crate ever declared one differently, this module would stop compiling
//! instead of casting. Structures (`DRIVER_OBJECT`, `IRP`, ...) are distinct types in the two crates
//! and are not converted: a windows-drivers-rs driver uses `wdk-sys`'s, and hands ntpool only what
//! its API takes.
//!
//! `super::wdk_types` is `wdk-sys` in the driver; the ntpool workspace's `tests/wdk_driver_example.rs`
//! compiles this file on Linux with a stand-in that declares the same aliases as `wdk-sys` does.

use ntpool::{AllocError, ExPoolBuffer, PoolBox, PoolTag, PoolType, Tag, TagSource, UnknownPool, sys};

use super::wdk_types::{KSPIN_LOCK, NTSTATUS, PCUNICODE_STRING, POOL_FLAGS, PVOID, ULONG};

// The aliases are the same types: these coercions compile only if they are.
const _: fn(sys::PVOID) -> PVOID = |p| p;
const _: fn(sys::POOL_FLAGS) -> POOL_FLAGS = |f| f;
const _: fn(*mut sys::KSPIN_LOCK) -> *mut KSPIN_LOCK = |l| l;
const _: fn(sys::NTSTATUS) -> NTSTATUS = |s| s;
const _: fn(sys::ULONG) -> ULONG = |t| t;

/// The `POOL_FLAGS` ntpool passes to `ExAllocatePool2` for pool `P`, for a `wdk-sys` call that takes
/// them (`ExAllocatePool2`, `ExAllocatePool3`) on memory ntpool does not own.
pub const fn pool_flags<P: PoolType>() -> POOL_FLAGS {
    P::FLAGS
}

/// A tag as `wdk-sys`'s routines take it (`ExFreePoolWithTag(P, Tag)`, `ExAllocatePool2(.., Tag)`).
pub const fn tag_of<G: Tag>() -> ULONG {
    G::TAG.to_ulong()
}

/// A tag a `wdk-sys` structure or routine carries, as ntpool's run-time tag (`None` if it is not a
/// valid pool tag: not printable ASCII, a default tag, or no letter or digit).
pub fn pool_tag(tag: ULONG) -> Option<PoolTag> {
    PoolTag::from_raw(tag).ok()
}

/// The `NTSTATUS` for an ntpool allocation's result: `STATUS_SUCCESS`, or
/// `STATUS_INSUFFICIENT_RESOURCES` for [`AllocError`].
pub const fn status(result: Result<(), AllocError>) -> NTSTATUS {
    match result {
        Ok(()) => sys::STATUS_SUCCESS,
        Err(AllocError) => sys::STATUS_INSUFFICIENT_RESOURCES,
    }
}

/// A box's block as the `PVOID` a `wdk-sys` routine takes when it frees the block itself (with
/// `ExFreePoolWithTag(block, tag)`, `tag` from [`PoolBox::tag`]): the box gives it up.
///
/// `T` is of non-zero size and aligned on at most 16 bytes (else this is a compile error; see
/// `PoolBox::try_into_kernel_block`).
pub fn kernel_block<T, G: TagSource, P: PoolType>(b: PoolBox<T, G, P>) -> PVOID {
    PoolBox::into_kernel_block(b).cast()
}

/// A buffer a `wdk-sys` routine returned, to be freed with `ExFreePool` (its documentation says so),
/// adopted by ntpool, which frees it at a legal IRQL; `None` for NULL. Its pool is not documented, so
/// it is treated as paged.
///
/// # Safety
/// `buffer` is NULL or points to `len` valid `T`s at the start of a pool block that the caller is to
/// free with `ExFreePool`, and that nothing else owns or frees.
pub unsafe fn adopt_ex_pool_buffer<T>(buffer: PVOID, len: usize) -> Option<ExPoolBuffer<[T], UnknownPool>> {
    // SAFETY: the caller's contract.
    unsafe { ExPoolBuffer::<[T], UnknownPool>::from_raw_parts(buffer.cast(), len) }
}

/// The `KSPIN_LOCK` of a `wdk-sys` structure (`KDEVICE_QUEUE::Lock`, say) as ntpool's raw routines
/// take it (`ntpool::sys::KeAcquireSpinLockRaiseToDpc`, ...). ntpool's own `SpinLock<T>` owns its
/// lock and its data together; this is for a lock that a kernel structure owns.
pub fn spin_lock(lock: &mut KSPIN_LOCK) -> *mut sys::KSPIN_LOCK {
    lock
}

/// The UTF-16 units of a `wdk-sys` `UNICODE_STRING` (the registry path `DriverEntry` receives), for
/// ntpool's slice constructors.
///
/// # Safety
/// `string` is NULL or points to a valid `UNICODE_STRING` whose buffer holds `Length` bytes and lives
/// as long as the returned slice is used.
pub unsafe fn unicode_string_units<'a>(string: PCUNICODE_STRING) -> &'a [u16] {
    // SAFETY: the caller's contract.
    let Some(string) = (unsafe { string.as_ref() }) else { return &[] };
    if string.Buffer.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract: `Length` bytes of UTF-16 at `Buffer`.
    unsafe { core::slice::from_raw_parts(string.Buffer, usize::from(string.Length) / 2) }
}

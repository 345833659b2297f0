//! [`ExPoolBuffer`]: memory that a system routine allocated and documents to be freed with
//! `ExFreePool`, owned and freed at a legal IRQL.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::boxed::PoolBox;
use crate::irql::Allows;
use crate::pool::{PoolType, SystemPool, UnknownPool};
use crate::release::{Release, sealed};
use crate::sys;

/// An owning pointer to a `T` that a system routine allocated in pool `P`, freed on drop with
/// `ExFreePool` (the routine's documentation says so; the block's tag is the kernel's, not the
/// driver's).
///
/// Examples: the symbolic link list of `IoGetDeviceInterfaces` (paged pool), the names that
/// `IoVolumeDeviceToDosName` and `SeLocateProcessImageName` return, legacy untagged allocations.
/// Adopting one is `unsafe` ([`ExPoolBuffer::from_raw`]): the caller vouches that the pointer is
/// such a buffer and that it comes from pool `P`. When the documentation does not say
/// which pool, use [`UnknownPool`] (the default), which is treated as paged.
///
/// The IRQL rules are [`PoolBox`](crate::PoolBox)'s: a buffer of a non-paged pool dereferences and is
/// [`DispatchSafe`](crate::DispatchSafe), so it may be used and dropped at `DISPATCH_LEVEL`; a buffer of paged or unknown
/// pool is reached only through a `Passive` or `Apc` token ([`ExPoolBuffer::get`]) and is not
/// `DispatchSafe`: it cannot enter a region at `DISPATCH_LEVEL`, so it is never freed there.
///
/// ```
/// use ntpool::{ExPoolBuffer, Passive, UnknownPool, sys};
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// // A routine hands back a buffer that the caller frees with ExFreePool (here: made up on the spot).
/// // SAFETY: a plain allocation at PASSIVE_LEVEL.
/// let raw = unsafe { sys::ExAllocatePoolWithTag(sys::PagedPool, 8, u32::from_le_bytes(*b"Sys1")) };
/// // SAFETY: `raw` is an 8-byte block that ExFreePool frees, and nothing else owns it.
/// let mut buffer = unsafe { ExPoolBuffer::<[u8; 8], UnknownPool>::from_raw(raw.cast()) }.unwrap();
/// *buffer.get_mut(&passive) = *b"abcdefgh";
/// assert_eq!(buffer.get(&passive), b"abcdefgh");
/// # }); // freed with ExFreePool here
/// ```
///
/// It is a [`PoolBox`] whose owner is [`ExFreePoolOwner`] and whose pool is [`SystemPool<P>`] (`P`'s
/// rules): the box's invariant, with a block of pool `P` that `ExFreePool` frees (not one tagged
/// with `PROTECTED_POOL`) and whose start holds the `T`.
pub type ExPoolBuffer<T, P = UnknownPool> = PoolBox<T, ExFreePoolOwner, SystemPool<P>>;

/// The owner of an [`ExPoolBuffer`]: the block goes back with `ExFreePool`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExFreePoolOwner;

impl sealed::Sealed for ExFreePoolOwner {}

// SAFETY: `ExFreePool` gives back exactly the block it is handed, which starts with the content
// (`ExPoolBuffer`'s invariant), whatever its size; the owner is zero-sized and owns nothing.
unsafe impl<P: PoolType> Release<SystemPool<P>> for ExFreePoolOwner {
    unsafe fn release(self, data: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller's contract: the block, which ExFreePool frees, is not used again and the
        // IRQL allows pool `P`.
        unsafe { sys::ExFreePool(data.as_ptr().cast()) }
    }
}

impl<T, P: PoolType> PoolBox<T, ExFreePoolOwner, SystemPool<P>> {
    /// Adopts a buffer a system routine returned; `None` for a null pointer.
    ///
    /// # Safety
    /// `raw` is null, or it points to a valid `T` at the start of a block of pool `P` (any pool
    /// when `P` is [`UnknownPool`]) that the routine's documentation says the caller frees with
    /// `ExFreePool`, and nothing else owns or frees it.
    ///
    /// ```
    /// use ntpool::{ExPoolBuffer, NonPagedPool, sys};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: a plain allocation at PASSIVE_LEVEL.
    /// let raw = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, 4, u32::from_le_bytes(*b"Sys1")) };
    /// // SAFETY: `raw` is a non-paged block of 4 bytes, freed with ExFreePool; nobody else owns it.
    /// let mut value = unsafe { ExPoolBuffer::<u32, NonPagedPool>::from_raw(raw.cast()) }.unwrap();
    /// *value = 7; // non-paged: dereferences
    /// // SAFETY: null is allowed.
    /// assert!(unsafe { ExPoolBuffer::<u32, NonPagedPool>::from_raw(core::ptr::null_mut()) }.is_none());
    /// # });
    /// ```
    pub unsafe fn from_raw(raw: *mut T) -> Option<Self> {
        // SAFETY: the caller guarantees what a non-null `raw` points to.
        NonNull::new(raw).map(|ptr| unsafe { PoolBox::from_parts(ptr, ExFreePoolOwner) })
    }
}

impl<T, P: PoolType> PoolBox<[T], ExFreePoolOwner, SystemPool<P>> {
    /// Adopts a buffer of `len` `T`s; `None` for a null pointer.
    ///
    /// # Safety
    /// As for [`ExPoolBuffer::from_raw`], for `len` valid `T`s.
    ///
    /// ```
    /// use ntpool::{ExPoolBuffer, Passive, PagedPool, sys};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// // SAFETY: a plain allocation at PASSIVE_LEVEL.
    /// let raw = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 6, u32::from_le_bytes(*b"Sys1")) };
    /// // SAFETY: 6 zeroed bytes of paged pool, freed with ExFreePool; nobody else owns them.
    /// let bytes = unsafe { ExPoolBuffer::<[u8], PagedPool>::from_raw_parts(raw.cast(), 6) }.unwrap();
    /// assert_eq!(bytes.get(&passive), &[0; 6]);
    /// # });
    /// ```
    pub unsafe fn from_raw_parts(raw: *mut T, len: usize) -> Option<Self> {
        let ptr = NonNull::new(raw)?;
        // SAFETY: the caller guarantees `len` valid `T`s at `raw`, in a block ExFreePool frees.
        Some(unsafe { PoolBox::from_parts(NonNull::slice_from_raw_parts(ptr, len), ExFreePoolOwner) })
    }
}

impl<P: PoolType> PoolBox<[u16], ExFreePoolOwner, SystemPool<P>> {
    /// Adopts a `REG_MULTI_SZ`-style list of UTF-16 strings (`PZZWSTR`: each string ends with a NUL,
    /// the list with an empty string) that a routine such as `IoGetDeviceInterfaces` returned. The
    /// buffer covers the strings and the final NUL; `None` for a null pointer. Reading the list to find
    /// its end needs a token for pool `P`.
    ///
    /// # Safety
    /// As for [`ExPoolBuffer::from_raw`]: `raw` is null or points to a well-formed multi-string list
    /// (its end is within the block) at the start of a block of pool `P` that `ExFreePool` frees.
    ///
    /// ```
    /// use ntpool::{ExPoolBuffer, Passive, PagedPool, sys};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let list: [u16; 6] = [b'a' as u16, 0, b'b' as u16, b'c' as u16, 0, 0];
    /// // SAFETY: a plain allocation at PASSIVE_LEVEL, filled in below.
    /// let raw = unsafe { sys::ExAllocatePoolWithTag(sys::PagedPool, 12, u32::from_le_bytes(*b"Sys1")) }.cast::<u16>();
    /// // SAFETY: 12 bytes were allocated.
    /// unsafe { raw.copy_from_nonoverlapping(list.as_ptr(), 6) };
    /// // SAFETY: a well-formed list in a paged block freed with ExFreePool, owned by nobody else.
    /// let strings = unsafe { ExPoolBuffer::<[u16], PagedPool>::from_multi_sz(&passive, raw) }.unwrap();
    /// let found: Vec<&[u16]> = strings.multi_sz(&passive).collect();
    /// assert_eq!(found, [&[b'a' as u16][..], &[b'b' as u16, b'c' as u16][..]]);
    /// # });
    /// ```
    pub unsafe fn from_multi_sz(_token: &impl Allows<SystemPool<P>>, raw: *mut u16) -> Option<Self> {
        if raw.is_null() {
            return None;
        }
        let mut len = 0;
        loop {
            // SAFETY: the list is well formed (caller): every index up to its final NUL is inside it,
            // and `len` is not past the final NUL (the loop ends there).
            let c = unsafe { raw.wrapping_add(len).read() };
            len += 1;
            // SAFETY: as above; `len - 2` was read in the previous round.
            if c == 0 && (len == 1 || unsafe { raw.wrapping_add(len - 2).read() } == 0) {
                break;
            }
        }
        // SAFETY: `len` elements up to and including the final NUL; forwarded contract.
        unsafe { ExPoolBuffer::from_raw_parts(raw, len) }
    }

    /// The strings of a multi-string list (without their NULs), read with a token for pool `P`.
    ///
    /// ```
    /// use ntpool::{ExPoolBuffer, Passive, PagedPool, sys};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// // SAFETY: a plain allocation at PASSIVE_LEVEL (zeroed: an empty list).
    /// let raw = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 2, u32::from_le_bytes(*b"Sys1")) };
    /// // SAFETY: an empty list in a paged block freed with ExFreePool, owned by nobody else.
    /// let empty = unsafe { ExPoolBuffer::<[u16], PagedPool>::from_multi_sz(&passive, raw.cast()) }.unwrap();
    /// assert_eq!(empty.multi_sz(&passive).count(), 0);
    /// # });
    /// ```
    pub fn multi_sz<'a, I: Allows<SystemPool<P>>>(&'a self, token: &'a I) -> impl Iterator<Item = &'a [u16]> + 'a {
        let list = self.get(token);
        let list = list.strip_suffix(&[0]).unwrap_or(list);
        list.split(|&c| c == 0).filter(|s| !s.is_empty())
    }
}

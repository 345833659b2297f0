//! [`Release`]: who gives a [`PoolBox`]'s block back, and how; and the traits every box gets from
//! it, written once for every owner: the drop (the run-time backstop, then the owner gives the block
//! back), dispatch safety (only for a non-paged pool), dereferencing (only for a non-paged pool).

use core::alloc::Layout;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::alloc;
use crate::boxed::PoolBox;
use crate::pool::{NonPagedPoolType, PoolType};
use crate::safe::DispatchSafe;
use crate::tag::TagSource;

/// Who gives a [`PoolBox`]'s block back, and how. Sealed: the owners are ntpool's own: every
/// [`TagSource`](crate::TagSource) (`ExFreePoolWithTag` with the tag), `VideoPortFreePool` with the
/// device extension (`videoport::VpBox` (feature `videoport`)), `ExFreePool`
/// ([`ExPoolBuffer`](crate::ExPoolBuffer)), and a lookaside list ([`LookasideBox`](crate::LookasideBox)).
///
/// # Safety
/// `release` gives back exactly the block it is handed, the way its allocation requires, and
/// nothing else. An owner of a block of a non-paged pool may be moved to, used and dropped at
/// `DISPATCH_LEVEL` (the box is then [`DispatchSafe`]), and it owns nothing paged.
pub unsafe trait Release<P: PoolType>: Copy + sealed::Sealed {
    /// Gives back the block of `layout` whose content is at `data`.
    ///
    /// # Safety
    /// `data` and `layout` are a block this owner's box held, whose content was dropped or moved
    /// out; it is not used afterwards; the IRQL allows freeing pool `P` (the backstop has run).
    #[doc(hidden)]
    unsafe fn release(self, data: NonNull<u8>, layout: Layout);
}

pub(crate) mod sealed {
    /// Keeps [`Release`](super::Release) to ntpool's own owners.
    pub trait Sealed {}
}

impl<G: TagSource> sealed::Sealed for G {}

// SAFETY: `alloc::free` gives back exactly the block `alloc::allocate` made for this layout, pool and
// tag; a tag is `Copy` data that owns nothing and may be used at any IRQL.
unsafe impl<G: TagSource, P: PoolType> Release<P> for G {
    #[inline(always)]
    unsafe fn release(self, data: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract: a block `alloc::allocate::<P>` made for `layout` and this tag.
        unsafe { alloc::free(data, layout, self.tag()) }
    }
}

// SAFETY: the box owns its `T` like `Box<T>` does, and its owner; the pool block has no thread
// affinity.
unsafe impl<T: ?Sized + Send, G: Release<P> + Send, P: PoolType> Send for PoolBox<T, G, P> {}
// SAFETY: as above; `&PoolBox` only gives `&T` (and `&G`).
unsafe impl<T: ?Sized + Sync, G: Release<P> + Sync, P: PoolType> Sync for PoolBox<T, G, P> {}

// SAFETY: a box of a non-paged pool owns only non-paged memory, its content is `DispatchSafe`, and
// its owner may be used at DISPATCH_LEVEL (`Release`'s contract).
unsafe impl<T: ?Sized + DispatchSafe, G: Release<P>, P: NonPagedPoolType> DispatchSafe for PoolBox<T, G, P> {}

impl<T: ?Sized, G: Release<P>, P: NonPagedPoolType> Deref for PoolBox<T, G, P> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box owns a valid `T` (invariant) in non-paged memory, which may be touched at
        // any IRQL.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized, G: Release<P>, P: NonPagedPoolType> DerefMut for PoolBox<T, G, P> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized, G: Release<P>, P: PoolType> Drop for PoolBox<T, G, P> {
    fn drop(&mut self) {
        // SAFETY: the box owns a valid `T` (invariant); the reference only serves to compute the
        // layout.
        let layout = Layout::for_value(unsafe { self.ptr.as_ref() });
        alloc::check_free_irql::<P>(self.ptr.as_ptr().cast());
        // SAFETY: the value is valid and owned, and dropped exactly once, here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: the block the owner gives back for this layout (invariant), its content dropped; it is
        // not used again. The IRQL allows pool `P`: a paged box never reaches DISPATCH_LEVEL (not
        // `DispatchSafe`), and the backstop above checks it.
        unsafe { self.owner.release(self.ptr.cast(), layout) };
    }
}

impl<T: ?Sized + fmt::Debug, G: Release<P>, P: NonPagedPoolType> fmt::Debug for PoolBox<T, G, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

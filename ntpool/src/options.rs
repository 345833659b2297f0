//! [`Alloc`]: how a block is allocated (its tag, known at compile time or at run time; zeroed or
//! not; charged to the current process's quota or not), so that any block is one call:
//! [`PoolBox::try_alloc`] for a value, [`PoolBox::try_alloc_slice`] for a slice. The named
//! constructors (`try_new_zeroed`, `try_new_uninit_slice`, `try_new_zeroed_slice_with_tag_and_quota`,
//! ...) are each one of these calls.
//!
//! ```
//! use ntpool::{Alloc, PagedBox, Passive, PoolTag};
//! ntpool::pool_tag!(struct Doc = b"Doc1");
//! # ntpool::emulated::Kernel::new().run(|| {
//! // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
//! let passive = unsafe { Passive::assume() };
//! let tag = PoolTag::new(*b"Req7"); // say, from a request
//! let charged = true; // say, from the request too
//! let block = PagedBox::<[u8], PoolTag>::try_alloc_slice(&passive, Alloc::with_tag(tag).quota_if(charged), 64)?;
//! // SAFETY: the block was zeroed.
//! let block = unsafe { block.assume_init() };
//! assert_eq!((block.get(&passive).len(), block.tag()), (64, tag));
//! let scratch = PagedBox::<u64, Doc>::try_alloc(&passive, Alloc::new().uninit())?.write(7);
//! assert_eq!(*scratch.get(&passive), 7);
//! # Ok::<(), ntpool::AllocError>(())
//! # }).unwrap();
//! ```

use core::marker::PhantomData;

use crate::irql::BelowDispatch;
use crate::sys::{self, POOL_FLAGS};
use crate::tag::{PoolTag, Tag, TagSource};

/// How a block is allocated: with tag `G` (a [`Tag`] type, or a run-time [`PoolTag`]), zeroed unless
/// [`Alloc::uninit`] says otherwise, and charged to the current process's quota when `Q` is
/// [`Quota`] ([`Alloc::quota`], [`Alloc::quota_if`]), which then needs a token below
/// `DISPATCH_LEVEL`.
#[derive(Clone, Copy, Debug)]
#[must_use = "an `Alloc` only describes an allocation: pass it to `PoolBox::try_alloc`"]
pub struct Alloc<G: TagSource, Q = NoQuota> {
    tag: G,
    zeroed: bool,
    charged: bool,
    _quota: PhantomData<Q>,
}

/// An [`Alloc`] that charges no quota: any token that allows the pool will do.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoQuota;

/// An [`Alloc`] that may charge the current process's quota: only a token below `DISPATCH_LEVEL`
/// will do, since at `DISPATCH_LEVEL` the current process is whichever one was interrupted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quota;

mod sealed {
    pub trait Sealed {}
}
impl sealed::Sealed for NoQuota {}
impl sealed::Sealed for Quota {}

/// What an [`Alloc`]'s quota choice needs of the token `I`: nothing for [`NoQuota`], an IRQL below
/// `DISPATCH_LEVEL` ([`BelowDispatch`]) for [`Quota`]. Sealed.
pub trait Charge<I>: sealed::Sealed {}
impl<I> Charge<I> for NoQuota {}
impl<I: BelowDispatch> Charge<I> for Quota {}

impl<G: Tag> Alloc<G> {
    /// Zeroed, tagged with `G`, no quota.
    pub fn new() -> Self {
        Alloc { tag: G::default(), zeroed: true, charged: false, _quota: PhantomData }
    }
}

impl<G: Tag> Default for Alloc<G> {
    fn default() -> Self {
        Self::new()
    }
}

impl Alloc<PoolTag> {
    /// Zeroed, tagged with `tag` (known only at run time), no quota. The box stores the tag.
    pub const fn with_tag(tag: PoolTag) -> Self {
        Alloc { tag, zeroed: true, charged: false, _quota: PhantomData }
    }
}

impl<G: TagSource, Q> Alloc<G, Q> {
    /// Left uninitialized (`POOL_FLAG_UNINITIALIZED`): the box holds `MaybeUninit`, to be written.
    pub const fn uninit(self) -> Self {
        Alloc { zeroed: false, ..self }
    }

    /// Charged to the current process's pool quota (`POOL_FLAG_USE_QUOTA`, or the non-raising
    /// `ExAllocatePoolWithQuotaTag` where `ExAllocatePool2` is missing).
    pub const fn quota(self) -> Alloc<G, Quota> {
        self.quota_if(true)
    }

    /// Charged to the current process's quota when `charged` is true (decided at run time; the
    /// token must be below `DISPATCH_LEVEL` either way).
    pub const fn quota_if(self, charged: bool) -> Alloc<G, Quota> {
        Alloc { tag: self.tag, zeroed: self.zeroed, charged, _quota: PhantomData }
    }

    /// The tag.
    pub(crate) const fn tag(&self) -> G {
        self.tag
    }

    /// The flags besides the pool's.
    pub(crate) const fn flags(&self) -> POOL_FLAGS {
        (if self.zeroed { 0 } else { sys::POOL_FLAG_UNINITIALIZED })
            | if self.charged { sys::POOL_FLAG_USE_QUOTA } else { 0 }
    }
}

//! Quota allocations: pool blocks charged to the current process (`POOL_FLAG_USE_QUOTA`), for memory
//! a driver holds on behalf of a user-mode request, so that one process cannot exhaust the pool for
//! everyone.
//!
//! A charged block is an ordinary [`PoolBox`]: freed with `ExFreePoolWithTag` and its tag, which
//! returns the charge. Where the kernel lacks `ExAllocatePool2` (before Windows 10 2004, Wine), the
//! request goes to `ExAllocatePoolWithQuotaTag` with `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`, never to
//! its raising form: failure is an [`AllocError`], as everywhere in ntpool.
//!
//! The "current process" is only meaningful in the context of a thread that runs for a process: at
//! `DISPATCH_LEVEL` (in a DPC, say) it is whatever process the processor happened to interrupt. So
//! every constructor here takes a token that is [`BelowDispatch`] (`Passive` or `Apc`), whatever the
//! pool; a `Dispatch` token does not compile.

use core::mem::MaybeUninit;

use crate::alloc::AllocError;
use crate::boxed::PoolBox;
use crate::irql::{Allows, BelowDispatch};
use crate::options::Alloc;
use crate::pool::PoolType;
use crate::tag::{PoolTag, Tag};

impl<T, G: Tag, P: PoolType> PoolBox<T, G, P> {
    /// Allocates a zeroed block charged to the current process's pool quota and moves `value`
    /// into it. Needs a `Passive` or `Apc` token, even for non-paged pool.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let request = NonPagedBox::<[u8; 40], Doc>::try_new_with_quota(&passive, [1; 40])?;
    ///     assert_eq!(kernel.quota_charges()[0].non_paged, 40);
    ///     drop(request); // the charge goes back with the block
    ///     assert_eq!(kernel.quota_charges()[0].non_paged, 0);
    ///     Ok::<(), ntpool::AllocError>(())
    /// })?;
    /// # Ok::<(), ntpool::AllocError>(())
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_quota<I: Allows<P> + BelowDispatch>(token: &I, value: T) -> Result<Self, AllocError> {
        Ok(PoolBox::try_alloc(token, Alloc::new().quota())?.write(value))
    }
}

impl<T, G: Tag, P: PoolType> PoolBox<[T], G, P> {
    /// Allocates a zeroed block for `len` `T`s charged to the current process's pool quota.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let b = PagedBox::<[u32], Doc>::try_new_zeroed_slice_with_quota(&passive, 4).unwrap();
    /// // SAFETY: zero is a valid u32.
    /// assert_eq!(unsafe { b.assume_init() }.get(&passive), &[0; 4]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice_with_quota<I: Allows<P> + BelowDispatch>(
        token: &I,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], G, P>, AllocError> {
        PoolBox::try_alloc_slice(token, Alloc::new().quota(), len)
    }
}

impl<T, P: PoolType> PoolBox<[T], PoolTag, P> {
    /// Allocates a zeroed block for `len` `T`s with a run-time tag, charged to the current process's
    /// pool quota: memory a driver keeps for a user-mode client, with the tag the request chose.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive, PoolTag};
    /// let kernel = ntpool::emulated::Kernel::builder().ex_allocate_pool2(false).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let tag = PoolTag::new(*b"Clnt");
    ///     let b = NonPagedBox::<[u8], PoolTag>::try_new_zeroed_slice_with_tag_and_quota(&passive, tag, 8).unwrap();
    ///     // Without ExAllocatePool2, the non-raising ExAllocatePoolWithQuotaTag served it.
    ///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePoolWithQuotaTag");
    ///     assert_eq!(b.tag(), tag);
    /// });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice_with_tag_and_quota<I: Allows<P> + BelowDispatch>(
        token: &I,
        tag: PoolTag,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], PoolTag, P>, AllocError> {
        PoolBox::try_alloc_slice(token, Alloc::with_tag(tag).quota(), len)
    }
}

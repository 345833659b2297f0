//! Pools as types: which pool a block comes from is part of the type of everything that owns it, so
//! the compiler knows at every free whether the memory is paged.
//!
//! | type | `ExAllocatePool2` flags | fallback `POOL_TYPE` | usable up to |
//! |---|---|---|---|
//! | [`NonPagedPool`] (the default) | `POOL_FLAG_NON_PAGED` | `NonPagedPoolNx` | `DISPATCH_LEVEL` |
//! | [`NonPagedPoolExecute`] | `POOL_FLAG_NON_PAGED_EXECUTE` | `NonPagedPool` | `DISPATCH_LEVEL` |
//! | [`PagedPool`] | `POOL_FLAG_PAGED` | `PagedPool` | `APC_LEVEL` |
//! | [`CacheAligned<P>`] | `P`'s, plus `POOL_FLAG_CACHE_ALIGNED` | `P`'s cache-aligned type | as `P` |
//! | [`UnknownPool`] | (treated as `PagedPool`) | `PagedPool` | `APC_LEVEL` |

use core::marker::PhantomData;

use crate::sys::{self, POOL_FLAGS};

pub(crate) mod sealed {
    /// Keeps [`PoolType`](super::PoolType) to ntpool's own pools.
    pub trait Sealed {}
}

/// A kind of pool. Implemented by [`PagedPool`], [`NonPagedPool`], [`NonPagedPoolExecute`],
/// [`CacheAligned`], [`UnknownPool`], [`SystemPool`] and the VideoPort pools
/// (`ntpool::videoport::VpPoolType`); sealed, because the IRQL rules depend on knowing every pool.
///
/// ```
/// use ntpool::{NonPagedPool, PagedPool, PoolType};
/// assert!(PagedPool::PAGED && !NonPagedPool::PAGED);
/// ```
pub trait PoolType: sealed::Sealed + 'static {
    /// The `ExAllocatePool2` flags that select this pool.
    const FLAGS: POOL_FLAGS;
    /// Whether the pool is pageable: then it may only be touched, allocated and freed at or below
    /// `APC_LEVEL`.
    const PAGED: bool;
    /// The alignment the kernel promises for every block of this pool: 16 bytes on x64, a cache line
    /// for [`CacheAligned`] pools (blocks of a page or more are page-aligned in any pool). ntpool
    /// itself relies only on the 16 bytes every kernel gives, and arranges any stricter alignment a
    /// type needs.
    const ALIGN: usize;
    /// The pool's name, as in the documentation.
    const NAME: &'static str;
}

/// A pool that is never paged out: usable at `DISPATCH_LEVEL`.
///
/// ```
/// fn needs_non_paged<P: ntpool::NonPagedPoolType>() {}
/// needs_non_paged::<ntpool::NonPagedPool>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL",
    label = "this needs memory that can be used at DISPATCH_LEVEL",
    note = "keep paged memory out of spin-locked regions, DISPATCH_LEVEL callbacks and their contexts, or allocate it from `NonPagedPool`"
)]
pub trait NonPagedPoolType: PoolType {}

/// Paged pool: may be paged out, so it may only be touched, allocated and freed at or below
/// `APC_LEVEL`.
///
/// ```
/// use ntpool::PoolType;
/// assert_eq!(ntpool::PagedPool::FLAGS, ntpool::sys::POOL_FLAG_PAGED);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PagedPool;

/// Non-paged, no-execute pool (`POOL_FLAG_NON_PAGED`, `NonPagedPoolNx`): the default.
///
/// ```
/// use ntpool::PoolType;
/// assert_eq!(ntpool::NonPagedPool::FLAGS, ntpool::sys::POOL_FLAG_NON_PAGED);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NonPagedPool;

/// Non-paged, executable pool (`POOL_FLAG_NON_PAGED_EXECUTE`). Only for code that must run from
/// pool memory; everything else belongs in [`NonPagedPool`].
///
/// ```
/// use ntpool::PoolType;
/// assert_eq!(ntpool::NonPagedPoolExecute::FLAGS, ntpool::sys::POOL_FLAG_NON_PAGED_EXECUTE);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NonPagedPoolExecute;

/// The pool `P`, with every block aligned on a processor cache line (`POOL_FLAG_CACHE_ALIGNED`).
///
/// ```
/// use ntpool::{CacheAligned, NonPagedPool, PoolType};
/// assert_eq!(CacheAligned::<NonPagedPool>::ALIGN, 64);
/// ```
pub struct CacheAligned<P>(PhantomData<P>);

impl sealed::Sealed for PagedPool {}
impl PoolType for PagedPool {
    const FLAGS: POOL_FLAGS = sys::POOL_FLAG_PAGED;
    const PAGED: bool = true;
    const ALIGN: usize = 16;
    const NAME: &'static str = "PagedPool";
}

impl sealed::Sealed for NonPagedPool {}
impl PoolType for NonPagedPool {
    const FLAGS: POOL_FLAGS = sys::POOL_FLAG_NON_PAGED;
    const PAGED: bool = false;
    const ALIGN: usize = 16;
    const NAME: &'static str = "NonPagedPoolNx";
}
impl NonPagedPoolType for NonPagedPool {}

impl sealed::Sealed for NonPagedPoolExecute {}
impl PoolType for NonPagedPoolExecute {
    const FLAGS: POOL_FLAGS = sys::POOL_FLAG_NON_PAGED_EXECUTE;
    const PAGED: bool = false;
    const ALIGN: usize = 16;
    const NAME: &'static str = "NonPagedPoolExecute";
}
impl NonPagedPoolType for NonPagedPoolExecute {}

impl<P: PoolType> sealed::Sealed for CacheAligned<P> {}
impl<P: PoolType> PoolType for CacheAligned<P> {
    const FLAGS: POOL_FLAGS = P::FLAGS | sys::POOL_FLAG_CACHE_ALIGNED;
    const PAGED: bool = P::PAGED;
    const ALIGN: usize = 64;
    const NAME: &'static str = P::NAME;
}
impl<P: NonPagedPoolType> NonPagedPoolType for CacheAligned<P> {}

/// A block whose pool is not known: a buffer a system routine allocated without saying from which
/// pool, or a legacy untagged allocation. It is treated as paged pool, the stricter rule: touched and
/// freed at or below `APC_LEVEL` only. Used with [`ExPoolBuffer`](crate::ExPoolBuffer); allocating
/// from it (a `PoolBox<_, _, UnknownPool>`) allocates paged pool.
///
/// ```
/// use ntpool::{PoolType, UnknownPool};
/// assert!(UnknownPool::PAGED);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnknownPool;

impl sealed::Sealed for UnknownPool {}
impl PoolType for UnknownPool {
    const FLAGS: POOL_FLAGS = sys::POOL_FLAG_PAGED;
    const PAGED: bool = true;
    const ALIGN: usize = 16;
    const NAME: &'static str = "UnknownPool";
}

/// Pool `P` as a system routine allocated it: the pool of an [`ExPoolBuffer`](crate::ExPoolBuffer),
/// whose block the routine's documentation says the caller frees with `ExFreePool`. Its rules are
/// `P`'s.
///
/// ```
/// use ntpool::{NonPagedPool, PoolType, SystemPool, UnknownPool};
/// assert!(SystemPool::<UnknownPool>::PAGED && !SystemPool::<NonPagedPool>::PAGED);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SystemPool<P>(PhantomData<P>);

impl<P: PoolType> sealed::Sealed for SystemPool<P> {}
impl<P: PoolType> PoolType for SystemPool<P> {
    const FLAGS: POOL_FLAGS = P::FLAGS;
    const PAGED: bool = P::PAGED;
    const ALIGN: usize = P::ALIGN;
    const NAME: &'static str = P::NAME;
}
impl<P: NonPagedPoolType> NonPagedPoolType for SystemPool<P> {}

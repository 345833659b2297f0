//! IRQL tokens: zero-sized proofs of the interrupt request level the current thread runs at.
//!
//! | token | IRQL | may use |
//! |---|---|---|
//! | [`Passive`] | `PASSIVE_LEVEL` | every pool |
//! | [`Apc`] | `APC_LEVEL` | every pool |
//! | [`Dispatch`] | `DISPATCH_LEVEL` | non-paged pools only |
//! | [`High`] | above `DISPATCH_LEVEL` | no allocation or free at all |
//!
//! A token is obtained once per entry point (`unsafe`: the caller vouches for the IRQL), or from a
//! region that this crate runs at a known IRQL: [`Passive::raise_to_apc`],
//! [`Passive::raise_to_dispatch`], [`SpinLock::with`](crate::SpinLock::with),
//! [`Dispatch::raise_above_dispatch`]. A region takes the token it raises from by `&mut`, so that
//! token, and everything borrowed from it, cannot be used until the region has ended and the IRQL
//! is back where it was. A region that runs at `DISPATCH_LEVEL` or above takes a plain function
//! (a closure that captures nothing) and one explicit context value, which must be
//! [`DispatchSafe`](crate::DispatchSafe) (or [`HighSafe`](crate::HighSafe) above `DISPATCH_LEVEL`):
//! that is how nothing that owns or reaches paged memory gets in. The crate documentation explains
//! the whole argument.
//!
//! Tokens are `!Send` and `!Sync`: the IRQL belongs to one processor and one thread.

use core::marker::PhantomData;

use crate::pool::{NonPagedPoolType, PoolType};
use crate::safe::{DispatchSafe, HighSafe};
use crate::sys::{self, APC_LEVEL, DISPATCH_LEVEL, KIRQL, PASSIVE_LEVEL};

/// Makes a type `!Send` and `!Sync`.
type NotSend = PhantomData<*mut ()>;

mod sealed {
    pub trait Sealed {}
}

/// An IRQL token. Sealed: only this crate's four tokens are proofs.
///
/// ```
/// use ntpool::{Dispatch, Irql, Passive};
/// assert_eq!(Passive::MAX, ntpool::sys::PASSIVE_LEVEL);
/// assert_eq!(Dispatch::MAX, ntpool::sys::DISPATCH_LEVEL);
/// ```
pub trait Irql: sealed::Sealed {
    /// The highest IRQL the token stands for.
    const MAX: KIRQL;
}

/// The token's IRQL allows allocating, touching and freeing memory of pool `P`: any pool at or below
/// `APC_LEVEL`, non-paged pools at `DISPATCH_LEVEL`, nothing above.
///
/// ```
/// fn allocates<P: ntpool::PoolType, I: ntpool::Allows<P>>(_: &I) {}
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { ntpool::Passive::assume() };
/// allocates::<ntpool::PagedPool, _>(&passive);
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{P}` cannot be allocated, touched or freed with a `{Self}` token",
    label = "the IRQL this token proves is too high for `{P}`",
    note = "paged pool needs IRQL <= APC_LEVEL (a `Passive` or `Apc` token); non-paged pool needs IRQL <= DISPATCH_LEVEL; nothing may be allocated or freed above DISPATCH_LEVEL"
)]
pub trait Allows<P: PoolType>: Irql {}

/// The token's IRQL is below `DISPATCH_LEVEL` (`Passive` or `Apc`).
///
/// ```
/// fn may_wait<I: ntpool::BelowDispatch>(_: &I) {}
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// may_wait(&unsafe { ntpool::Passive::assume() });
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not prove an IRQL below DISPATCH_LEVEL",
    label = "this needs a `Passive` or `Apc` token"
)]
pub trait BelowDispatch: Irql {}

/// The token's IRQL is at most `DISPATCH_LEVEL` (`Passive`, `Apc` or `Dispatch`): spin locks can be
/// acquired.
///
/// ```
/// fn may_lock<I: ntpool::AtMostDispatch>(_: &I) {}
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// may_lock(&unsafe { ntpool::Passive::assume() });
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not prove an IRQL at or below DISPATCH_LEVEL",
    label = "this needs a `Passive`, `Apc` or `Dispatch` token"
)]
pub trait AtMostDispatch: Irql {
    /// Acquires `lock`: raising to `DISPATCH_LEVEL` from below it, or as is at `DISPATCH_LEVEL`.
    /// Returns the IRQL to restore.
    ///
    /// # Safety
    /// `lock` is an initialized spin lock that stays valid until released with
    /// [`AtMostDispatch::release`] and the returned value.
    #[doc(hidden)]
    unsafe fn acquire(lock: *mut sys::KSPIN_LOCK) -> KIRQL;

    /// Releases what [`AtMostDispatch::acquire`] acquired.
    ///
    /// # Safety
    /// `lock` is held by this thread through `acquire`, and `old` is what it returned.
    #[doc(hidden)]
    unsafe fn release(lock: *mut sys::KSPIN_LOCK, old: KIRQL);
}

macro_rules! token {
    ($(#[$doc:meta])* $name:ident, $level:expr, $what:literal, $check:expr, $variant:ident) => {
        $(#[$doc])*
        pub struct $name {
            _not_send: NotSend,
        }

        impl sealed::Sealed for $name {}

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($name))
            }
        }

        impl $name {
            /// Vouches that the current IRQL is
            #[doc = $what]
            /// and makes the token for an entry point.
            ///
            /// # Safety
            /// * The current IRQL is
            #[doc = $what]
            /// and stays there while the token lives, except inside this crate's regions.
            /// * No other token of this crate is in use on this thread while it lives: a token
            ///   passed down from a caller must be passed on, not assumed anew. (Two tokens would
            ///   let a reference to paged memory borrowed from one outlive a raise made with the
            ///   other.)
            ///
            /// The emulated kernel checks the IRQL and panics if it is wrong; debug builds of a
            /// driver check it too.
            ///
            /// ```
            /// # ntpool::emulated::Kernel::new().run(|| {
            /// # // SAFETY: sets the level this example assumes a token for.
            /// # unsafe { ntpool::emulated::__set_irql(
            #[doc = stringify!($level)]
            /// # ) };
            /// // SAFETY: the IRQL is as documented for this entry point, and no other token exists.
            #[doc = concat!("let token = unsafe { ntpool::", stringify!($name), "::assume() };")]
            /// # drop(token);
            /// # // SAFETY: back to where the example started.
            /// # unsafe { ntpool::emulated::__set_irql(0) };
            /// # });
            /// ```
            #[track_caller]
            pub unsafe fn assume() -> Self {
                let check: fn(KIRQL) -> bool = $check;
                #[cfg(ntpool_emulated)]
                {
                    let irql = sys::KeGetCurrentIrql();
                    assert!(check(irql), concat!("ntpool: ", stringify!($name), "::assume() at IRQL {}"), irql);
                }
                // Only debug builds read the IRQL: the read of CR8 is an `asm!` block, which the
                // compiler keeps even when its result is unused, and a token must cost nothing.
                #[cfg(not(ntpool_emulated))]
                debug_assert!(check(sys::KeGetCurrentIrql()));
                Self::new()
            }

            /// The token, without a check; for the crate's regions.
            pub(crate) const fn new() -> Self {
                $name { _not_send: PhantomData }
            }

            /// The token for an entry point of this crate's (a trampoline the kernel calls), with
            /// the check [`assume`](Self::assume) makes: on the emulated kernel always, in debug
            /// builds of a driver too.
            #[inline(always)]
            #[allow(dead_code)]
            pub(crate) fn entry() -> Self {
                let check: fn(KIRQL) -> bool = $check;
                #[cfg(ntpool_emulated)]
                {
                    let irql = sys::KeGetCurrentIrql();
                    assert!(check(irql), concat!("ntpool: a routine given a ", stringify!($name), " token runs at IRQL {}"), irql);
                }
                #[cfg(not(ntpool_emulated))]
                debug_assert!(check(sys::KeGetCurrentIrql()));
                Self::new()
            }

            /// [`entry`](Self::entry)'s token, checked the same way, as a mutable reference that
            /// points at no stack slot: a trampoline hands it to its routine without a frame for
            /// it, and can jump to the routine when that is its last call.
            #[inline(always)]
            #[allow(dead_code)]
            pub(crate) fn entry_mut<'a>() -> &'a mut Self {
                const { assert!(size_of::<Self>() == 0, "a token is zero-sized") };
                let _checked = Self::entry();
                // SAFETY: the token is zero-sized, so a dangling (non-null, aligned) pointer is
                // valid for it; it stands for the token just checked.
                unsafe { core::ptr::NonNull::dangling().as_mut() }
            }

            /// This token as an [`AnyIrql`], for a helper that reads the IRQL at run time
            /// ([`AnyIrql::current`]). Borrows the token, so that it stays the thread's only one.
            ///
            /// ```
            /// # ntpool::emulated::Kernel::new().run(|| {
            /// # // SAFETY: sets the level this example assumes a token for.
            /// # unsafe { ntpool::emulated::__set_irql(
            #[doc = stringify!($level)]
            /// # ) };
            /// // SAFETY: the IRQL is as documented for this entry point, and no other token exists.
            #[doc = concat!("let mut token = unsafe { ntpool::", stringify!($name), "::assume() };")]
            #[doc = concat!("assert!(matches!(token.as_any_irql().current(), ntpool::CurrentIrql::", stringify!($variant), "(_)));")]
            /// # // SAFETY: back to where the example started.
            /// # unsafe { ntpool::emulated::__set_irql(0) };
            /// # });
            /// ```
            #[inline(always)]
            pub fn as_any_irql(&mut self) -> &mut AnyIrql {
                AnyIrql::borrowed()
            }
        }
    };
}

token!(
    /// Proof that the current thread runs at `PASSIVE_LEVEL`: every pool can be allocated, touched
    /// and freed. Driver entry points such as `DriverEntry`, `DriverUnload` and most dispatch
    /// routines for `IRP_MJ_CREATE` and `IRP_MJ_DEVICE_CONTROL` run at this level.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let settings = PagedBox::<u32, Doc>::try_new(&passive, 1).unwrap();
    /// assert_eq!(*settings.get(&passive), 1);
    /// # });
    /// ```
    Passive, 0, "`PASSIVE_LEVEL`", |irql| irql == PASSIVE_LEVEL, Passive
);
token!(
    /// Proof that the current thread runs at `APC_LEVEL` (for example while it holds a fast mutex):
    /// every pool can still be allocated, touched and freed.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let value = passive.raise_to_apc(|apc| {
    ///     assert_eq!(ntpool::sys::KeGetCurrentIrql(), ntpool::sys::APC_LEVEL);
    ///     PagedBox::<u32, Doc>::try_new(apc, 2).unwrap().into_inner(apc)
    /// });
    /// assert_eq!(value, 2);
    /// # });
    /// ```
    Apc, 1, "`APC_LEVEL`", |irql| irql == APC_LEVEL, Apc
);
token!(
    /// Proof that the current thread runs at `DISPATCH_LEVEL` (holding a spin lock, in a DPC):
    /// only non-paged pools can be allocated, touched and freed.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let value = passive.raise_to_dispatch((), |dispatch, ()| {
    ///     NonPagedBox::<u32, Doc>::try_new(dispatch, 3).map(|block| *block)
    /// });
    /// assert_eq!(value, Ok(3));
    /// # });
    /// ```
    Dispatch, 2, "`DISPATCH_LEVEL`", |irql| irql == DISPATCH_LEVEL, Dispatch
);
token!(
    /// Proof that the current thread runs above `DISPATCH_LEVEL` (a device IRQL, or up to
    /// `HIGH_LEVEL`): no pool can be allocated or freed.
    ///
    /// ```
    /// use ntpool::{HighIrql, NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let counter = NonPagedBox::<u32, Doc>::try_new(&passive, 5).unwrap();
    /// // Non-paged memory may still be read through a reference; nothing is allocated or freed.
    /// let read = passive.raise_above_dispatch(HighIrql::HIGH, &*counter, |_high, counter| *counter + 1);
    /// assert_eq!(read, 6);
    /// # });
    /// ```
    High, 15, "above `DISPATCH_LEVEL`", |irql| irql > DISPATCH_LEVEL, High
);

token!(
    /// Proof that the current thread runs at `DISPATCH_LEVEL` or below, without knowing which: what
    /// an IRP completion routine ([`IoRequest`](crate::IoRequest)) is promised. Only non-paged
    /// pools can be allocated, touched and freed, as with [`Dispatch`]; spin locks are acquired by
    /// raising (`KeAcquireSpinLockRaiseToDpc`, valid at any IRQL up to `DISPATCH_LEVEL`), and
    /// [`UpToDispatch::as_any_irql`] tells the level at run time.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, SpinLock};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut token = unsafe { ntpool::UpToDispatch::assume() };
    /// let lock = SpinLock::new(0u32);
    /// let block = NonPagedBox::<u32, Doc>::try_new(&token, 4).unwrap();
    /// lock.with(&mut token, block, |_dispatch, total, block| *total += *block);
    /// # });
    /// ```
    UpToDispatch, 2, "at most `DISPATCH_LEVEL`", |irql| irql <= DISPATCH_LEVEL, Dispatch
);

impl Irql for Passive {
    const MAX: KIRQL = PASSIVE_LEVEL;
}
impl Irql for Apc {
    const MAX: KIRQL = APC_LEVEL;
}
impl Irql for Dispatch {
    const MAX: KIRQL = DISPATCH_LEVEL;
}
impl Irql for UpToDispatch {
    const MAX: KIRQL = DISPATCH_LEVEL;
}
impl Irql for High {
    const MAX: KIRQL = sys::HIGH_LEVEL;
}

impl<P: PoolType> Allows<P> for Passive {}
impl<P: PoolType> Allows<P> for Apc {}
impl<P: NonPagedPoolType> Allows<P> for Dispatch {}
impl<P: NonPagedPoolType> Allows<P> for UpToDispatch {}

impl BelowDispatch for Passive {}
impl BelowDispatch for Apc {}

macro_rules! acquire_by_raising {
    ($($name:ident),*) => {$(
        impl AtMostDispatch for $name {
            #[inline(always)]
            unsafe fn acquire(lock: *mut sys::KSPIN_LOCK) -> KIRQL {
                // SAFETY: the IRQL is at most DISPATCH_LEVEL (token); the caller guarantees the lock.
                unsafe { sys::KeAcquireSpinLockRaiseToDpc(lock) }
            }
            #[inline(always)]
            unsafe fn release(lock: *mut sys::KSPIN_LOCK, old: KIRQL) {
                // SAFETY: the caller acquired the lock with `acquire`, which returned `old`.
                unsafe { sys::KeReleaseSpinLock(lock, old) }
            }
        }
    )*};
}
acquire_by_raising!(Passive, Apc, UpToDispatch);

impl AtMostDispatch for Dispatch {
    #[inline(always)]
    unsafe fn acquire(lock: *mut sys::KSPIN_LOCK) -> KIRQL {
        // SAFETY: the IRQL is DISPATCH_LEVEL (token); the caller guarantees the lock.
        unsafe { sys::KeAcquireSpinLockAtDpcLevel(lock) };
        DISPATCH_LEVEL
    }
    #[inline(always)]
    unsafe fn release(lock: *mut sys::KSPIN_LOCK, _old: KIRQL) {
        // SAFETY: the caller acquired the lock at DISPATCH_LEVEL with `acquire`.
        unsafe { sys::KeReleaseSpinLockFromDpcLevel(lock) }
    }
}

/// Lowers the IRQL back when a region ends, also when it unwinds (on the emulated kernel, after a
/// bug check that a test caught).
struct LowerOnExit(KIRQL);

impl Drop for LowerOnExit {
    fn drop(&mut self) {
        // SAFETY: `self.0` is what the matching raise returned, and the region that raised is over.
        unsafe { sys::KeLowerIrql(self.0) }
    }
}

/// Runs `f` with the IRQL raised to `level`.
///
/// # Safety
/// `level` is not below the current IRQL.
#[inline(always)]
unsafe fn raised<R>(level: KIRQL, f: impl FnOnce() -> R) -> R {
    // SAFETY: the caller guarantees `level` is a raise; `LowerOnExit` restores the old IRQL.
    let _lower = LowerOnExit(unsafe { sys::KfRaiseIrql(level) });
    f()
}

/// An IRQL above `DISPATCH_LEVEL`, for [`Dispatch::raise_above_dispatch`] and its siblings.
///
/// ```
/// use ntpool::HighIrql;
/// assert_eq!(HighIrql::new(5).map(HighIrql::get), Some(5));
/// assert!(HighIrql::new(2).is_none());
/// assert_eq!(HighIrql::HIGH.get(), ntpool::sys::HIGH_LEVEL);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HighIrql(KIRQL);

crate::safe::plain!(HighIrql);

impl HighIrql {
    /// `PROFILE_LEVEL`.
    ///
    /// ```
    /// assert_eq!(ntpool::HighIrql::PROFILE.get(), ntpool::sys::PROFILE_LEVEL);
    /// ```
    pub const PROFILE: HighIrql = HighIrql(sys::PROFILE_LEVEL);
    /// `CLOCK_LEVEL`.
    ///
    /// ```
    /// assert_eq!(ntpool::HighIrql::CLOCK.get(), ntpool::sys::CLOCK_LEVEL);
    /// ```
    pub const CLOCK: HighIrql = HighIrql(sys::CLOCK_LEVEL);
    /// `HIGH_LEVEL`.
    ///
    /// ```
    /// assert_eq!(ntpool::HighIrql::HIGH.get(), ntpool::sys::HIGH_LEVEL);
    /// ```
    pub const HIGH: HighIrql = HighIrql(sys::HIGH_LEVEL);

    /// `level`, if it is above `DISPATCH_LEVEL` and at most `HIGH_LEVEL`.
    ///
    /// ```
    /// use ntpool::HighIrql;
    /// assert_eq!(HighIrql::new(ntpool::sys::CLOCK_LEVEL), Some(HighIrql::CLOCK));
    /// assert_eq!(HighIrql::new(ntpool::sys::DISPATCH_LEVEL), None);
    /// assert_eq!(HighIrql::new(32), None);
    /// ```
    pub const fn new(level: KIRQL) -> Option<HighIrql> {
        if level > DISPATCH_LEVEL && level <= sys::HIGH_LEVEL { Some(HighIrql(level)) } else { None }
    }

    /// The level.
    ///
    /// ```
    /// assert_eq!(ntpool::HighIrql::new(12).unwrap().get(), 12);
    /// ```
    pub const fn get(self) -> KIRQL {
        self.0
    }
}

/// Raising from `Passive` or `Apc` to `DISPATCH_LEVEL`.
macro_rules! raise_to_dispatch {
    ($($name:ident),*) => {$(
        impl $name {
            /// Raises the IRQL to `DISPATCH_LEVEL` (`KeRaiseIrql`), runs `f` with a [`Dispatch`] token and
            /// the context `context`, and lowers it again (`KeLowerIrql`).
            ///
            /// `f` is a plain function: a closure that captures nothing coerces to it. Everything it
            /// works on comes in through `context`, which must be [`DispatchSafe`]: it cannot own or
            /// reach paged memory. While the region runs, `self` is borrowed, so this token cannot
            /// be used at the raised IRQL. If a call does not compile, [the
            /// errors](crate#the-errors-and-what-each-means) say which rule it broke and the fix.
            ///
            /// ```
            /// use ntpool::{NonPagedBox, Passive};
            /// ntpool::pool_tag!(struct Doc = b"Doc1");
            /// # ntpool::emulated::Kernel::new().run(|| {
            /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            /// let mut token = unsafe { Passive::assume() };
            /// let mut counter = NonPagedBox::<u32, Doc>::try_new(&token, 0).unwrap();
            /// let irql = token.raise_to_dispatch(&mut counter, |_dispatch, counter| {
            ///     **counter += 1;
            ///     ntpool::sys::KeGetCurrentIrql()
            /// });
            /// assert_eq!((irql, *counter), (ntpool::sys::DISPATCH_LEVEL, 1));
            /// # });
            /// ```
            #[inline(always)]
            pub fn raise_to_dispatch<C: DispatchSafe, R>(&mut self, context: C, f: fn(&mut Dispatch, C) -> R) -> R {
                // SAFETY: the token proves the IRQL is at most DISPATCH_LEVEL, so this is not a lowering.
                unsafe { raised(DISPATCH_LEVEL, || f(&mut Dispatch::new(), context)) }
            }

            /// Raises the IRQL above `DISPATCH_LEVEL` to `level`, runs `f` with a [`High`] token and the
            /// context, and lowers it again. Nothing can be allocated or freed in there; `context`
            /// must be [`HighSafe`]. If a call does not compile, [the
            /// errors](crate#the-errors-and-what-each-means) say which rule it broke and the fix.
            ///
            /// ```
            /// # ntpool::emulated::Kernel::new().run(|| {
            /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            /// let mut passive = unsafe { ntpool::Passive::assume() };
            /// let irql = passive.raise_above_dispatch(ntpool::HighIrql::CLOCK, (), |_high, ()| ntpool::sys::KeGetCurrentIrql());
            /// assert_eq!(irql, ntpool::sys::CLOCK_LEVEL);
            /// # });
            /// ```
            #[inline(always)]
            pub fn raise_above_dispatch<C: HighSafe, R>(&mut self, level: HighIrql, context: C, f: fn(&mut High, C) -> R) -> R {
                // SAFETY: the token proves the IRQL is at most DISPATCH_LEVEL, below `level`.
                unsafe { raised(level.get(), || f(&mut High::new(), context)) }
            }
        }
    )*};
}
raise_to_dispatch!(Passive, Apc, UpToDispatch);

impl Passive {
    /// Raises the IRQL to `APC_LEVEL`, runs `f` with an [`Apc`] token, and lowers it again.
    ///
    /// Paged memory stays usable at `APC_LEVEL`, so `f` may be any closure; `self` is borrowed for the
    /// region, so everything it touches in paged memory goes through the `Apc` token.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let mut settings = PagedBox::<u32, Doc>::try_new(&passive, 1).unwrap();
    /// passive.raise_to_apc(|apc| *settings.get_mut(apc) += 1);
    /// assert_eq!(*settings.get(&passive), 2);
    /// # });
    /// ```
    #[inline(always)]
    pub fn raise_to_apc<R>(&mut self, f: impl FnOnce(&mut Apc) -> R) -> R {
        // SAFETY: the token proves the IRQL is PASSIVE_LEVEL, so this is a raise.
        unsafe { raised(APC_LEVEL, || f(&mut Apc::new())) }
    }
}

impl Dispatch {
    /// Raises the IRQL above `DISPATCH_LEVEL` to `level`, runs `f` with a [`High`] token and the
    /// context, and lowers it again. `context` must be [`HighSafe`].
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let irql = passive.raise_to_dispatch((), |dispatch, ()| {
    ///     dispatch.raise_above_dispatch(ntpool::HighIrql::HIGH, (), |_high, ()| ntpool::sys::KeGetCurrentIrql())
    /// });
    /// assert_eq!(irql, ntpool::sys::HIGH_LEVEL);
    /// # });
    /// ```
    #[inline(always)]
    pub fn raise_above_dispatch<C: HighSafe, R>(&mut self, level: HighIrql, context: C, f: fn(&mut High, C) -> R) -> R {
        // SAFETY: the token proves the IRQL is DISPATCH_LEVEL, below `level`.
        unsafe { raised(level.get(), || f(&mut High::new(), context)) }
    }
}

/// A token for code whose IRQL is only known at run time: an entry point documented as "IRQL <=
/// DISPATCH_LEVEL", or a helper called from several places. [`AnyIrql::current`] reads the IRQL and
/// hands out the matching token.
///
/// ```
/// use ntpool::{AnyIrql, CurrentIrql, NonPagedBox};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: an entry point that holds no other token; the IRQL is checked below.
/// let mut any = unsafe { AnyIrql::assume() };
/// match any.current() {
///     CurrentIrql::Passive(passive) => drop(NonPagedBox::<u8, Doc>::try_new(&*passive, 1)),
///     CurrentIrql::Apc(apc) => drop(NonPagedBox::<u8, Doc>::try_new(&*apc, 1)),
///     CurrentIrql::Dispatch(dispatch) => drop(NonPagedBox::<u8, Doc>::try_new(&*dispatch, 1)),
///     CurrentIrql::High(_) => {}
/// }
/// # });
/// ```
pub struct AnyIrql {
    passive: Passive,
    apc: Apc,
    dispatch: Dispatch,
    high: High,
}

/// The token [`AnyIrql::current`] found, borrowed from the `AnyIrql`.
///
/// ```
/// use ntpool::{AnyIrql, CurrentIrql};
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: an entry point that holds no other token.
/// let mut any = unsafe { AnyIrql::assume() };
/// let level = match any.current() {
///     CurrentIrql::Passive(_) => "PASSIVE_LEVEL",
///     CurrentIrql::Apc(_) => "APC_LEVEL",
///     CurrentIrql::Dispatch(_) => "DISPATCH_LEVEL",
///     CurrentIrql::High(_) => "above DISPATCH_LEVEL",
/// };
/// assert_eq!(level, "PASSIVE_LEVEL");
/// # });
/// ```
#[derive(Debug)]
pub enum CurrentIrql<'a> {
    /// The IRQL is `PASSIVE_LEVEL`.
    Passive(&'a mut Passive),
    /// The IRQL is `APC_LEVEL`.
    Apc(&'a mut Apc),
    /// The IRQL is `DISPATCH_LEVEL`.
    Dispatch(&'a mut Dispatch),
    /// The IRQL is above `DISPATCH_LEVEL`.
    High(&'a mut High),
}

impl core::fmt::Debug for AnyIrql {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AnyIrql")
    }
}

impl AnyIrql {
    /// Makes the token for an entry point whose IRQL is only known at run time.
    ///
    /// # Safety
    /// No other token of this crate is in use on this thread while it lives, and the IRQL changes
    /// only through this crate's regions while it lives (see [`Passive::assume`]).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: an entry point that holds no other token.
    /// let mut any = unsafe { ntpool::AnyIrql::assume() };
    /// assert!(matches!(any.current(), ntpool::CurrentIrql::Passive(_)));
    /// # });
    /// ```
    pub unsafe fn assume() -> Self {
        Self::entry()
    }

    /// The token for an entry point of this crate's whose IRQL is only known at run time.
    pub(crate) const fn entry() -> Self {
        AnyIrql { passive: Passive::new(), apc: Apc::new(), dispatch: Dispatch::new(), high: High::new() }
    }

    /// An `AnyIrql` borrowed for as long as the token it stands for ([`Passive::as_any_irql`] and
    /// its siblings): that token cannot be used while it lives, so it is still the only one.
    #[inline(always)]
    fn borrowed<'a>() -> &'a mut AnyIrql {
        const { assert!(core::mem::size_of::<AnyIrql>() == 0) };
        // SAFETY: `AnyIrql` is zero-sized (checked above), so a dangling, aligned, non-null pointer
        // is valid for reads and writes of it, and no two such references can overlap any memory.
        unsafe { core::ptr::NonNull::<AnyIrql>::dangling().as_mut() }
    }

    /// Reads the current IRQL (`KeGetCurrentIrql`) and returns the matching token, borrowed from
    /// `self` so that only one token is in use at a time.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: an entry point that holds no other token.
    /// let mut any = unsafe { ntpool::AnyIrql::assume() };
    /// if let ntpool::CurrentIrql::Passive(passive) = any.current() {
    ///     let at_dispatch = passive.raise_to_dispatch((), |_, ()| ntpool::sys::KeGetCurrentIrql());
    ///     assert_eq!(at_dispatch, ntpool::sys::DISPATCH_LEVEL);
    /// }
    /// # });
    /// ```
    pub fn current(&mut self) -> CurrentIrql<'_> {
        match sys::KeGetCurrentIrql() {
            PASSIVE_LEVEL => CurrentIrql::Passive(&mut self.passive),
            APC_LEVEL => CurrentIrql::Apc(&mut self.apc),
            DISPATCH_LEVEL => CurrentIrql::Dispatch(&mut self.dispatch),
            _ => CurrentIrql::High(&mut self.high),
        }
    }
}

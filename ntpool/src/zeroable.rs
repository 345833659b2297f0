//! [`Zeroable`]: types for which all-zero bytes are a valid value, so that a zeroed block holds one
//! without `unsafe` ([`PoolBox::try_alloc_zeroed`], [`PoolBox::try_alloc_zeroed_slice`]).
//!
//! [`PoolBox::try_alloc_zeroed`]: crate::PoolBox::try_alloc_zeroed
//! [`PoolBox::try_alloc_zeroed_slice`]: crate::PoolBox::try_alloc_zeroed_slice

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::alloc::AllocError;
use crate::boxed::PoolBox;
use crate::irql::Allows;
use crate::options::{Alloc, Charge};
use crate::pool::PoolType;
use crate::tag::TagSource;
use core::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicPtr, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

/// All-zero bytes are a valid value of the type: integers, floats, `bool` (`false`), `char`
/// (`'\0'`), raw pointers and `Option<NonNull<T>>` (null), atomics, `MaybeUninit<T>`, and arrays
/// and tuples of such types. `#[derive(Zeroable)]` implements it for a struct whose every field is
/// `Zeroable` (not for enums, whose discriminant zero may be no variant, nor for unions).
///
/// ```
/// use ntpool::{Alloc, NonPagedBox, Passive, Zeroable};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// #[derive(Zeroable)]
/// struct Counters {
///     hits: u64,
///     misses: [u32; 4],
/// }
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let counters = NonPagedBox::<Counters, Doc>::try_alloc_zeroed(&passive, Alloc::new())?;
/// assert_eq!((counters.hits, counters.misses), (0, [0; 4]));
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Safety
/// An all-zero bit pattern of `size_of::<Self>()` bytes is a valid `Self`.
#[diagnostic::on_unimplemented(
    message = "all-zero bytes may not be a valid `{Self}`, so it cannot be made from a zeroed block",
    label = "not `Zeroable`",
    note = "allocate it with `try_new` (or `try_alloc` and `write`), or derive `Zeroable` if every field is"
)]
pub unsafe trait Zeroable {}

macro_rules! zeroable {
    ($($type:ty),* $(,)?) => {
        $(
            // SAFETY: all-zero bytes are a valid value of this type (0, 0.0, false, '\0', null).
            unsafe impl Zeroable for $type {}
        )*
    };
}

zeroable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, ());
zeroable!(AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize);
zeroable!(AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize);

// SAFETY: a null pointer (to a sized type: no metadata).
unsafe impl<T> Zeroable for *const T {}
// SAFETY: as above.
unsafe impl<T> Zeroable for *mut T {}
// SAFETY: a null pointer.
unsafe impl<T> Zeroable for AtomicPtr<T> {}
// SAFETY: `None` (the null pointer).
unsafe impl<T> Zeroable for Option<NonNull<T>> {}
// SAFETY: any bytes are a valid `MaybeUninit`.
unsafe impl<T> Zeroable for MaybeUninit<T> {}
// SAFETY: each element is all-zero bytes, a valid `T`.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

macro_rules! zeroable_tuples {
    ($(($($name:ident),+)),* $(,)?) => {
        $(
            // SAFETY: each field is all-zero bytes, a valid value of its type; padding may hold any.
            unsafe impl<$($name: Zeroable),+> Zeroable for ($($name,)+) {}
        )*
    };
}

zeroable_tuples!((A), (A, B), (A, B, C), (A, B, C, D));

impl<T: Zeroable, G: TagSource, P: PoolType> PoolBox<T, G, P> {
    /// A `T` of all-zero bytes, in a block allocated as `alloc` says (tag, quota, priority, NUMA
    /// node), zeroed whatever `alloc` says about zeroing: [`PoolBox::try_alloc`] without the
    /// `MaybeUninit`. Made in place, never on the stack, so a large `T` costs no stack.
    ///
    /// ```
    /// use ntpool::{Alloc, PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let table = PagedBox::<[u64; 512], Doc>::try_alloc_zeroed(&passive, Alloc::new().quota())?;
    /// assert!(table.get(&passive).iter().all(|&word| word == 0));
    /// # Ok::<(), ntpool::AllocError>(())
    /// # }).unwrap();
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_alloc_zeroed<I: Allows<P>, Q: Charge<I>>(token: &I, alloc: Alloc<G, Q>) -> Result<Self, AllocError> {
        let block = PoolBox::try_alloc(token, alloc.zeroed())?;
        // SAFETY: the kernel zeroed the block (no POOL_FLAG_UNINITIALIZED), and all-zero bytes are a
        // valid `T` (`Zeroable`).
        Ok(unsafe { block.assume_init() })
    }
}

impl<T: Zeroable, G: TagSource, P: PoolType> PoolBox<[T], G, P> {
    /// `len` `T`s of all-zero bytes, in a block allocated as `alloc` says, zeroed whatever `alloc`
    /// says about zeroing: [`PoolBox::try_alloc_slice`] without the `MaybeUninit`.
    ///
    /// ```
    /// use ntpool::{Alloc, NonPagedBox, Passive, PoolTag};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let tag = PoolTag::new(*b"Req7"); // say, from a request
    /// let buffer = NonPagedBox::<[u8], PoolTag>::try_alloc_zeroed_slice(&passive, Alloc::with_tag(tag), 100)?;
    /// assert_eq!((buffer.len(), buffer.iter().sum::<u8>()), (100, 0));
    /// # Ok::<(), ntpool::AllocError>(())
    /// # }).unwrap();
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_alloc_zeroed_slice<I: Allows<P>, Q: Charge<I>>(
        token: &I,
        alloc: Alloc<G, Q>,
        len: usize,
    ) -> Result<Self, AllocError> {
        let block = PoolBox::try_alloc_slice(token, alloc.zeroed(), len)?;
        // SAFETY: the kernel zeroed the block (no POOL_FLAG_UNINITIALIZED), and all-zero bytes are
        // valid `T`s (`Zeroable`).
        Ok(unsafe { block.assume_init() })
    }
}

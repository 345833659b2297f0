//! What may enter code that runs at `DISPATCH_LEVEL` or above.
//!
//! A region that raises the IRQL ([`Passive::raise_to_dispatch`](crate::Passive::raise_to_dispatch),
//! [`SpinLock::with`](crate::SpinLock::with), ...) takes a plain function and one explicit context
//! value. The function captures nothing, so the context is all it can reach (besides `static`s), and
//! the context must implement [`DispatchSafe`]: it can neither own nor reach paged memory. Above
//! `DISPATCH_LEVEL` the context must be [`HighSafe`]: it cannot own pool memory at all, since nothing
//! may be freed there.
//!
//! Both traits are implemented for primitives, references to and containers of implementing types,
//! and the non-paged types of this crate; never for a paged box. A struct gets them through
//! `#[derive(DispatchSafe)]` / `#[derive(HighSafe)]`, which require every field to implement them:
//!
//! ```
//! use ntpool::{DispatchSafe, NonPagedBox};
//! ntpool::pool_tag!(struct Doc = b"Doc1");
//!
//! #[derive(DispatchSafe)]
//! struct Queue<'a> {
//!     pending: &'a mut NonPagedBox<[u32], Doc>,
//!     count: usize,
//! }
//! ```
//!
//! ```compile_fail
//! use ntpool::{DispatchSafe, PagedBox};
//! ntpool::pool_tag!(struct Doc = b"Doc1");
//!
//! #[derive(DispatchSafe)]
//! struct Settings {
//!     values: PagedBox<[u32], Doc>, // paged: cannot be DispatchSafe
//! }
//! ```

use core::cell::{Cell, UnsafeCell};
use core::cmp::Reverse;
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::num::{NonZero, Wrapping};
use core::ptr::NonNull;
use core::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicPtr, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

/// The type neither owns nor reaches paged memory, so it may be used, moved and dropped at
/// `DISPATCH_LEVEL`.
///
/// # Safety
/// Implement it only for types none of whose values owns paged memory or lets safe code reach it
/// (through a reference, a field, interior mutability, or a method). The derive checks this field
/// by field.
///
/// ```
/// use ntpool::{DispatchSafe, NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// fn may_enter_dispatch<C: DispatchSafe>(_: &C) {}
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let mut queue = NonPagedBox::<[u32; 4], Doc>::try_new(&passive, [0; 4]).unwrap();
/// may_enter_dispatch(&(&mut queue, 1_u32, Some('x')));
/// // A non-paged box is `DispatchSafe`, so it may be the context of a DISPATCH_LEVEL region.
/// passive.raise_to_dispatch(&mut queue, |_dispatch, queue| queue[0] = 7);
/// assert_eq!(queue[0], 7);
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may own or reach paged memory, so it cannot enter code that runs at DISPATCH_LEVEL",
    label = "not `DispatchSafe`",
    note = "paged memory must not be touched or freed at DISPATCH_LEVEL; keep it outside the region, or move the data to a non-paged pool"
)]
pub unsafe trait DispatchSafe {}

/// The type neither owns pool memory nor reaches paged memory, so it may be used, moved and dropped
/// above `DISPATCH_LEVEL`, where nothing may be allocated or freed. References to non-paged memory
/// are fine; owning boxes are not.
///
/// # Safety
/// As for [`DispatchSafe`], and no value may own pool memory or let safe code free or allocate any.
///
/// ```
/// use ntpool::{HighIrql, HighSafe, NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// fn may_enter_high<C: HighSafe>(_: &C) {}
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let mut samples = NonPagedBox::<[u32; 2], Doc>::try_new(&passive, [0; 2]).unwrap();
/// // A reference to non-paged memory is `HighSafe`; the owning box itself is not.
/// may_enter_high(&&mut *samples);
/// passive.raise_above_dispatch(HighIrql::CLOCK, &mut *samples, |_high, samples| samples[1] = 9);
/// assert_eq!(*samples, [0, 9]);
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may own pool memory or reach paged memory, so it cannot enter code that runs above DISPATCH_LEVEL",
    label = "not `HighSafe`",
    note = "nothing may be allocated or freed above DISPATCH_LEVEL; pass references to non-paged data instead of owners"
)]
pub unsafe trait HighSafe: DispatchSafe {}

/// Both traits for types whose values own and reach no memory (also used next to ntpool's own
/// plain types: tags, errors, IRQLs).
macro_rules! plain {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: a plain value owns and reaches no memory.
        unsafe impl $crate::safe::DispatchSafe for $t {}
        // SAFETY: as above.
        unsafe impl $crate::safe::HighSafe for $t {}
    )*};
}
pub(crate) use plain;

plain!(
    (),
    bool,
    char,
    str,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    NonZero<u8>,
    NonZero<u16>,
    NonZero<u32>,
    NonZero<u64>,
    NonZero<u128>,
    NonZero<usize>,
    NonZero<i8>,
    NonZero<i16>,
    NonZero<i32>,
    NonZero<i64>,
    NonZero<i128>,
    NonZero<isize>,
    AtomicBool,
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
    core::time::Duration,
    core::cmp::Ordering,
);

macro_rules! wrapper {
    ($($t:ident),* $(,)?) => {$(
        // SAFETY: the wrapper owns and reaches exactly what its content does.
        unsafe impl<T: DispatchSafe> DispatchSafe for $t<T> {}
        // SAFETY: as above.
        unsafe impl<T: HighSafe> HighSafe for $t<T> {}
    )*};
}

wrapper!(Option, Cell, MaybeUninit, ManuallyDrop, Wrapping, Reverse);

// SAFETY: the content is what is owned and reached.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for UnsafeCell<T> {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for UnsafeCell<T> {}

// SAFETY: a reference reaches what its target reaches.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for &T {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for &T {}
// SAFETY: as above; through `&mut` the target can also be replaced or taken, which drops only
// `DispatchSafe` (resp. `HighSafe`) values.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for &mut T {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for &mut T {}

// SAFETY: elements are what is owned and reached.
unsafe impl<T: DispatchSafe> DispatchSafe for [T] {}
// SAFETY: as above.
unsafe impl<T: HighSafe> HighSafe for [T] {}
// SAFETY: as above.
unsafe impl<T: DispatchSafe, const N: usize> DispatchSafe for [T; N] {}
// SAFETY: as above.
unsafe impl<T: HighSafe, const N: usize> HighSafe for [T; N] {}

// SAFETY: owns and reaches what either variant holds.
unsafe impl<T: DispatchSafe, E: DispatchSafe> DispatchSafe for Result<T, E> {}
// SAFETY: as above.
unsafe impl<T: HighSafe, E: HighSafe> HighSafe for Result<T, E> {}

// SAFETY: owns nothing itself; as a marker it stands for a `T` that a type may own (as `PoolBox`'s
// does), so it is `DispatchSafe` only when `T` is, as auto traits treat `PhantomData`.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for PhantomData<T> {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for PhantomData<T> {}

// Raw pointers: dereferencing one is `unsafe`, but a type built on one may own its target (a
// hand-written box), and a derive would then make it `DispatchSafe` for any target, paged boxes
// included. So a pointer is `DispatchSafe` only when its target is, as `Send` and `Sync` are not
// given to raw pointers at all; a type that owns through a pointer to anything else opts in with an
// `unsafe impl` of its own.
// SAFETY: the target is `DispatchSafe`, so whatever owns it through this pointer owns only that.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for *const T {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for *const T {}
// SAFETY: as above.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for *mut T {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for *mut T {}
// SAFETY: as above.
unsafe impl<T: DispatchSafe + ?Sized> DispatchSafe for NonNull<T> {}
// SAFETY: as above.
unsafe impl<T: HighSafe + ?Sized> HighSafe for NonNull<T> {}
// SAFETY: as above.
unsafe impl<T: DispatchSafe> DispatchSafe for AtomicPtr<T> {}
// SAFETY: as above.
unsafe impl<T: HighSafe> HighSafe for AtomicPtr<T> {}

macro_rules! ranges {
    ($($t:ident),* $(,)?) => {$(
        // SAFETY: a range owns and reaches what its bounds do.
        unsafe impl<T: DispatchSafe> DispatchSafe for core::ops::$t<T> {}
        // SAFETY: as above.
        unsafe impl<T: HighSafe> HighSafe for core::ops::$t<T> {}
    )*};
}

ranges!(Range, RangeInclusive, RangeFrom, RangeTo, RangeToInclusive);
plain!(core::ops::RangeFull);

macro_rules! functions {
    ($(($($arg:ident),*)),* $(,)?) => {$(
        // SAFETY: a function pointer owns nothing and captures nothing: what the function reaches is
        // what any code reaches (its arguments, and `static`s, which the types do not cover).
        unsafe impl<R, $($arg),*> DispatchSafe for fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> HighSafe for fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> DispatchSafe for unsafe fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> HighSafe for unsafe fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> DispatchSafe for extern "system" fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> HighSafe for extern "system" fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> DispatchSafe for unsafe extern "system" fn($($arg),*) -> R {}
        // SAFETY: as above.
        unsafe impl<R, $($arg),*> HighSafe for unsafe extern "system" fn($($arg),*) -> R {}
    )*};
}

functions!((), (A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F));

macro_rules! tuples {
    ($(($($name:ident),+)),* $(,)?) => {$(
        // SAFETY: a tuple owns and reaches what its elements do.
        unsafe impl<$($name: DispatchSafe),+> DispatchSafe for ($($name,)+) {}
        // SAFETY: as above.
        unsafe impl<$($name: HighSafe),+> HighSafe for ($($name,)+) {}
    )*};
}

tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
);

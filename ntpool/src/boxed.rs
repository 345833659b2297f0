//! [`PoolBox`]: the one owner of pool memory. Whatever gave the block out and takes it back (a tag
//! and `ExFreePoolWithTag`, `VideoPortFreePool` and the device extension, `ExFreePool`, a lookaside
//! list), the IRQL rule is written here once: the content of a paged block is reached only through a
//! token, a box is [`DispatchSafe`] only when its pool is non-paged, and a drop runs the run-time
//! backstop before the owner gives the block back.
//!
//! This file holds the type and everything done with one; boxes owned by a tag are made here too.
//! Who gives a block back ([`Release`]) and the trait impls that follow from it (drop, dispatch
//! safety, dereference) are in `release.rs`; the other owners are made in `videoport.rs`
//! (`videoport::VpBox` (feature `videoport`)), `ex_pool.rs` ([`ExPoolBuffer`](crate::ExPoolBuffer)) and
//! `lookaside.rs` ([`LookasideBox`](crate::LookasideBox)).

use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::alloc::{self, AllocError};
use crate::irql::Allows;
use crate::options::{Alloc, Charge};
use crate::pool::{NonPagedPool, NonPagedPoolType, PagedPool, PoolType};
pub use crate::release::Release;
use crate::tag::{PoolTag, Tag, TagSource};

/// An owning pointer to a `T` in pool `P`, given back on drop by its owner `G`: for a tag (a
/// [`Tag`](crate::Tag) type, or a run-time [`PoolTag`](crate::PoolTag)), `ExFreePoolWithTag(block,
/// tag)`. `videoport::VpBox` (feature `videoport`), [`ExPoolBuffer`](crate::ExPoolBuffer) and
/// [`LookasideBox`](crate::LookasideBox) are the same type with other owners.
///
/// * Fallible: every constructor returns `Result<_, AllocError>`; nothing panics or bug-checks when
///   the pool is exhausted.
/// * Zeroed: the block is zeroed before the value is written, unless you ask for
///   [`MaybeUninit`] memory with [`PoolBox::try_new_uninit`].
/// * Aligned for `T`, whatever its alignment and whatever alignment the kernel really gives (see
///   "Aligned on every kernel" in the crate docs); zero-sized values allocate nothing.
/// * One pointer wide for a sized `T`, and so is `Option<PoolBox<T, ..>>`.
/// * IRQL-checked at compile time: making one needs a token that [`Allows`] pool `P`. A box of a
///   non-paged pool dereferences like `Box`; a box of paged pool does not: its contents are reached
///   with [`PoolBox::get`] / [`PoolBox::get_mut`] and a `Passive` or `Apc` token, and it is not
///   [`DispatchSafe`](crate::DispatchSafe), so it can be neither touched nor dropped at `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::{NonPagedBox, PagedBox, Passive};
/// ntpool::pool_tag!(struct Requests = b"NpRq");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
///
/// let mut request = NonPagedBox::<[u8; 16], Requests>::try_new(&passive, [0; 16])?;
/// request[0] = 1; // non-paged: plain dereference
///
/// let mut log = PagedBox::<u64, Requests>::try_new(&passive, 0)?;
/// *log.get_mut(&passive) += 1; // paged: through a token
/// assert_eq!(*log.get(&passive), 1);
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Invariants
/// `ptr` points to a valid `T` that this box owns, in a block of pool `P` that `owner` gives back
/// with [`Release::release`] for `Layout::for_value(&*ptr)` (for a tag: a block that
/// `alloc::allocate::<P>` returned for that layout and the tag, dangling and aligned when the
/// layout's size is zero).
pub struct PoolBox<T: ?Sized, G: Release<P>, P: PoolType = NonPagedPool> {
    // Reached by `release.rs` (the traits every box gets); made elsewhere only through `from_parts`.
    pub(crate) ptr: NonNull<T>,
    /// Who gives the block back: zero-sized for a [`Tag`](crate::Tag) type; the tag itself for a
    /// run-time [`PoolTag`](crate::PoolTag); the device extension, or the list, for the others.
    pub(crate) owner: G,
    _owns: PhantomData<T>,
    _pool: PhantomData<P>,
}

/// A box in non-paged, no-execute pool, usable up to `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let mut counter = NonPagedBox::<u32, Doc>::try_new(&passive, 0).unwrap();
/// *counter += 1; // dereferences like `Box`
/// passive.raise_to_dispatch(&mut counter, |_dispatch, counter| **counter += 1);
/// assert_eq!(*counter, 2);
/// # });
/// ```
pub type NonPagedBox<T, G> = PoolBox<T, G, NonPagedPool>;
/// A box in paged pool, usable up to `APC_LEVEL`.
///
/// ```
/// use ntpool::{PagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut name = PagedBox::<[u8], Doc>::try_from_slice(&passive, b"device0").unwrap();
/// name.get_mut(&passive)[6] = b'1'; // only through a `Passive` or `Apc` token
/// assert_eq!(name.get(&passive), b"device1");
/// # });
/// ```
pub type PagedBox<T, G> = PoolBox<T, G, PagedPool>;

impl<T: ?Sized, G: Release<P>, P: PoolType> PoolBox<T, G, P> {
    /// A box of the content at `ptr`, given back by `owner`.
    ///
    /// # Safety
    /// `ptr` and `owner` meet the type's invariant (the content may be `MaybeUninit`).
    pub(crate) unsafe fn from_parts(ptr: NonNull<T>, owner: G) -> Self {
        // INVARIANT: the caller's guarantee.
        PoolBox { ptr, owner, _owns: PhantomData, _pool: PhantomData }
    }

    /// The content's address and the owner, given up: the block is no longer given back on drop.
    pub(crate) fn into_parts(b: Self) -> (NonNull<T>, G) {
        let b = core::mem::ManuallyDrop::new(b);
        (b.ptr, b.owner)
    }

    /// The owner.
    pub(crate) fn owner(&self) -> G {
        self.owner
    }

    /// The layout of the content, which is the block's.
    pub(crate) fn layout(&self) -> Layout {
        // SAFETY: the box owns a valid `T` (invariant); the reference only serves to compute the
        // layout.
        Layout::for_value(unsafe { self.ptr.as_ref() })
    }

    /// The content's address.
    pub(crate) fn data(&self) -> NonNull<u8> {
        self.ptr.cast()
    }
    /// The content, reached with a token that allows the pool. For a paged box this is the only
    /// way in; the reference borrows the token, so the IRQL cannot be raised while it lives.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::PagedBox::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// assert_eq!(*b.get(&passive), 4);
    /// # });
    /// ```
    pub fn get<'a, I: Allows<P>>(&'a self, _token: &'a I) -> &'a T {
        // SAFETY: the box owns a valid `T` (invariant), and the token proves the IRQL allows
        // touching pool `P`.
        unsafe { self.ptr.as_ref() }
    }

    /// The content, mutably; see [`PoolBox::get`].
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let mut b = ntpool::PagedBox::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// *b.get_mut(&passive) = 5;
    /// assert_eq!(*b.get(&passive), 5);
    /// # });
    /// ```
    pub fn get_mut<'a, I: Allows<P>>(&'a mut self, _token: &'a I) -> &'a mut T {
        // SAFETY: as in `get`, and `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }

    /// The address of the content, for FFI; reading through it is `unsafe` and subject to the
    /// pool's IRQL rules.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u64, Doc>::try_new(&passive, 1).unwrap();
    /// assert_eq!(b.as_ptr() as usize % 8, 0);
    /// # });
    /// ```
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
}

impl<T, G: Release<P>, P: PoolType> PoolBox<T, G, P> {
    /// Moves the value out and frees the block; needs a token, since it frees.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::PagedBox::<u32, Doc>::try_new(&passive, 3).unwrap();
    /// assert_eq!(b.into_inner(&passive), 3);
    /// # });
    /// ```
    pub fn into_inner(self, _token: &impl Allows<P>) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        alloc::check_free_irql::<P>(this.ptr.as_ptr().cast());
        // SAFETY: the box owns a valid `T` (invariant); it is read once, and the block is freed
        // without dropping it again.
        let value = unsafe { this.ptr.read() };
        // SAFETY: the block the owner gives back for this layout (invariant), its content moved out;
        // the token allows pool `P`, and the backstop above checks it.
        unsafe { this.owner.release(this.ptr.cast(), Layout::new::<T>()) };
        value
    }
}

impl<T, G: Release<P>, P: PoolType> PoolBox<MaybeUninit<T>, G, P> {
    /// Writes `value` and returns the initialized box.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u32, Doc>::try_new_uninit(&passive).unwrap().write(1);
    /// assert_eq!(*b, 1);
    /// # });
    /// ```
    pub fn write(self, value: T) -> PoolBox<T, G, P> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the block is valid and aligned for a `T` (invariant).
        unsafe { this.ptr.cast::<T>().write(value) };
        // INVARIANT: the block now holds a valid `T`, and its layout is `T`'s.
        PoolBox { ptr: this.ptr.cast(), owner: this.owner, _owns: PhantomData, _pool: PhantomData }
    }

    /// The initialized box.
    ///
    /// # Safety
    /// The content is a valid `T`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u8, Doc>::try_new_zeroed(&passive).unwrap();
    /// // SAFETY: zero is a valid u8.
    /// assert_eq!(*unsafe { b.assume_init() }, 0);
    /// # });
    /// ```
    pub unsafe fn assume_init(self) -> PoolBox<T, G, P> {
        let this = core::mem::ManuallyDrop::new(self);
        // INVARIANT: the caller guarantees the content is a valid `T`; the layout is `T`'s.
        PoolBox { ptr: this.ptr.cast(), owner: this.owner, _owns: PhantomData, _pool: PhantomData }
    }
}

impl<T, G: Release<P>, P: PoolType> PoolBox<[MaybeUninit<T>], G, P> {
    /// The initialized slice.
    ///
    /// # Safety
    /// Every element is a valid `T`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<[u8], Doc>::try_new_zeroed_slice(&passive, 3).unwrap();
    /// // SAFETY: zero is a valid u8.
    /// assert_eq!(unsafe { b.assume_init() }.len(), 3);
    /// # });
    /// ```
    pub unsafe fn assume_init(self) -> PoolBox<[T], G, P> {
        let this = core::mem::ManuallyDrop::new(self);
        let ptr = NonNull::slice_from_raw_parts(this.ptr.cast::<T>(), this.ptr.len());
        // INVARIANT: the caller guarantees every element is valid; the layout is unchanged.
        PoolBox { ptr, owner: this.owner, _owns: PhantomData, _pool: PhantomData }
    }
}

impl<T, G: Release<P>, P: PoolType> PoolBox<[MaybeUninit<T>], G, P> {
    /// Writes element `i` as `f(i)`, in order, and returns the initialized slice. If `f` unwinds, the
    /// elements written so far are dropped and the box gives its block back.
    pub(crate) fn fill(mut self, mut f: impl FnMut(usize) -> T) -> PoolBox<[T], G, P> {
        /// Drops the elements written so far if `f` unwinds (the box then gives the block back).
        struct Written<'a, T> {
            slice: &'a mut [MaybeUninit<T>],
            count: usize,
        }
        impl<T> Drop for Written<'_, T> {
            fn drop(&mut self) {
                for element in &mut self.slice[..self.count] {
                    // SAFETY: the first `count` elements were initialized.
                    unsafe { element.assume_init_drop() };
                }
            }
        }
        let len = self.ptr.len();
        // SAFETY: the box owns `len` elements (invariant); the mutable borrow ends before the box is
        // used again.
        let elements = unsafe { self.ptr.as_mut() };
        let mut written = Written { slice: elements, count: 0 };
        while written.count < len {
            written.slice[written.count].write(f(written.count));
            written.count += 1;
        }
        core::mem::forget(written);
        // SAFETY: all `len` elements were written above.
        unsafe { self.assume_init() }
    }
}

impl<T, G: Tag, P: PoolType> PoolBox<T, G, P> {
    /// Allocates a zeroed block, moves `value` into it.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u32, Doc>::try_new(&passive, 5).unwrap();
    /// assert_eq!(*b, 5);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new(token: &impl Allows<P>, value: T) -> Result<Self, AllocError> {
        PoolBox::try_new_in(token, G::default(), value)
    }

    /// Allocates a block for a `T` and leaves it uninitialized (`POOL_FLAG_UNINITIALIZED`).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u32, Doc>::try_new_uninit(&passive).unwrap();
    /// assert_eq!(*b.write(9), 9);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_uninit(token: &impl Allows<P>) -> Result<PoolBox<MaybeUninit<T>, G, P>, AllocError> {
        PoolBox::try_alloc(token, Alloc::new().uninit())
    }

    /// Allocates a zeroed block for a `T`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<u64, Doc>::try_new_zeroed(&passive).unwrap();
    /// // SAFETY: all-zero bytes are a valid u64.
    /// assert_eq!(*unsafe { b.assume_init() }, 0);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed(token: &impl Allows<P>) -> Result<PoolBox<MaybeUninit<T>, G, P>, AllocError> {
        PoolBox::try_alloc(token, Alloc::new())
    }
}

impl<T, G: TagSource, P: PoolType> PoolBox<T, G, P> {
    /// Allocates a block for a `T` as `alloc` says (tag, zeroed or not, quota or not; see
    /// [`Alloc`]): the one call behind every value constructor.
    ///
    /// ```
    /// use ntpool::{Alloc, NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let b = NonPagedBox::<u32, Doc>::try_alloc(&passive, Alloc::new().uninit().quota())?.write(3);
    /// assert_eq!(*b, 3);
    /// # Ok::<(), ntpool::AllocError>(())
    /// # }).unwrap();
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_alloc<I: Allows<P>, Q: Charge<I>>(
        _token: &I,
        alloc: Alloc<G, Q>,
    ) -> Result<PoolBox<MaybeUninit<T>, G, P>, AllocError> {
        let block =
            alloc::allocate_with_flags::<P>(Layout::new::<T>(), alloc.flags(), alloc.extended(), alloc.tag().tag())?;
        // SAFETY: a block for `Layout::new::<T>()`, which is `MaybeUninit<T>`'s layout, with the tag.
        Ok(unsafe { PoolBox::from_parts(block.cast(), alloc.tag()) })
    }

    /// Allocates a zeroed block tagged with `tag` and moves `value` into it: [`PoolBox::try_new`]
    /// and [`PoolBox::try_new_with_tag`], and the constructors of the types that keep their kernel
    /// objects in a box, whichever source of tag they were given.
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub(crate) fn try_new_in(token: &impl Allows<P>, tag: G, value: T) -> Result<Self, AllocError> {
        Ok(PoolBox::try_alloc(token, Alloc::tagged(tag))?.write(value))
    }
}

impl<T, G: TagSource, P: PoolType> PoolBox<T, G, P> {
    /// Gives up ownership of the kernel's block itself: the address to hand to a routine that frees
    /// the block with `ExFreePoolWithTag(block, tag)` (with the box's [`tag`](PoolBox::tag)) or
    /// `ExFreePool`, or to free it so yourself.
    ///
    /// Only for a `T` of non-zero size aligned on at most 16 bytes, whose content always starts the
    /// kernel's block; for any other type this is a compile error (use
    /// [`PoolBox::try_into_kernel_block`], which decides at run time).
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive, sys};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let request = NonPagedBox::<[u64; 4], Doc>::try_new(&passive, [1; 4]).unwrap();
    ///     let tag = request.tag().to_ulong();
    ///     let block = NonPagedBox::into_kernel_block(request);
    ///     // ... handed to a routine that frees it with ExFreePoolWithTag(block, tag):
    ///     // SAFETY: the start of the kernel's block, allocated with `tag`, given up by its box.
    ///     unsafe { sys::ExFreePoolWithTag(block.cast(), tag) };
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // freed once, with its own address and tag
    /// ```
    pub fn into_kernel_block(b: Self) -> *mut T {
        const {
            assert!(
                size_of::<T>() != 0 && matches!(alloc::Placement::of(Layout::new::<T>()), alloc::Placement::Start),
                "into_kernel_block: this type is zero-sized or aligned on more than 16 bytes, so its content \
                 does not always start the kernel's block; use try_into_kernel_block"
            )
        };
        PoolBox::into_raw(b)
    }
}

impl<T, P: PoolType> PoolBox<T, PoolTag, P> {
    /// Allocates a zeroed block tagged with `tag`, a tag known only at run time, and moves `value`
    /// into it. The box stores the tag (it is two words wide) and frees with it.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::{NonPagedBox, PoolTag};
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    /// let b = NonPagedBox::<u32, PoolTag>::try_new_with_tag(&passive, tag, 5).unwrap();
    /// assert_eq!((*b, b.tag().to_string().as_str()), (5, "Req7"));
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_tag(token: &impl Allows<P>, tag: PoolTag, value: T) -> Result<Self, AllocError> {
        PoolBox::try_new_in(token, tag, value)
    }
}

impl<T, G: Tag, P: PoolType> PoolBox<[T], G, P> {
    /// Allocates a zeroed slice of `len` elements, each left as `MaybeUninit`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<[u16], Doc>::try_new_zeroed_slice(&passive, 4).unwrap();
    /// // SAFETY: all-zero bytes are valid u16 values.
    /// assert_eq!(&*unsafe { b.assume_init() }, &[0, 0, 0, 0]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice(
        token: &impl Allows<P>,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], G, P>, AllocError> {
        PoolBox::try_alloc_slice(token, Alloc::new(), len)
    }

    /// Allocates an uninitialized slice of `len` elements (`POOL_FLAG_UNINITIALIZED`).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let mut b = ntpool::NonPagedBox::<[u8], Doc>::try_new_uninit_slice(&passive, 2).unwrap();
    /// b[0].write(1);
    /// b[1].write(2);
    /// // SAFETY: every element was written.
    /// assert_eq!(&*unsafe { b.assume_init() }, &[1, 2]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_uninit_slice(
        token: &impl Allows<P>,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], G, P>, AllocError> {
        PoolBox::try_alloc_slice(token, Alloc::new().uninit(), len)
    }

    /// Allocates a slice of `len` elements, element `i` being `f(i)`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let squares = ntpool::NonPagedBox::<[u32], Doc>::try_from_fn(&passive, 4, |i| (i * i) as u32).unwrap();
    /// assert_eq!(&*squares, &[0, 1, 4, 9]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_from_fn(token: &impl Allows<P>, len: usize, f: impl FnMut(usize) -> T) -> Result<Self, AllocError> {
        Ok(PoolBox::<[T], G, P>::try_alloc_slice(token, Alloc::new(), len)?.fill(f))
    }

    /// Allocates a slice holding a copy of `source`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::NonPagedBox::<[u8], Doc>::try_from_slice(&passive, b"abc").unwrap();
    /// assert_eq!(&*b, b"abc");
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_from_slice(token: &impl Allows<P>, source: &[T]) -> Result<Self, AllocError>
    where
        T: Clone,
    {
        Ok(PoolBox::<[T], G, P>::try_alloc_slice(token, Alloc::new(), source.len())?.fill(|i| source[i].clone()))
    }
}

impl<T, P: PoolType> PoolBox<[T], PoolTag, P> {
    /// Allocates a zeroed slice of `len` elements, each left as `MaybeUninit`, tagged with a tag known
    /// only at run time.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::{PagedBox, PoolTag};
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let tag = PoolTag::new(*b"Dyn1");
    /// let b = PagedBox::<[u8], PoolTag>::try_new_zeroed_slice_with_tag(&passive, tag, 8).unwrap();
    /// // SAFETY: zero bytes are valid `u8`s.
    /// let b = unsafe { b.assume_init() };
    /// assert_eq!(b.get(&passive), &[0; 8]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice_with_tag(
        token: &impl Allows<P>,
        tag: PoolTag,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], PoolTag, P>, AllocError> {
        PoolBox::try_alloc_slice(token, Alloc::with_tag(tag), len)
    }
}

impl<T, G: TagSource, P: PoolType> PoolBox<[T], G, P> {
    /// Allocates a block for `len` `T`s as `alloc` says (see [`Alloc`]): the one call behind every
    /// slice constructor.
    ///
    /// ```
    /// use ntpool::{Alloc, NonPagedBox, Passive, PoolTag};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let alloc = Alloc::with_tag(PoolTag::new(*b"Dyn1"));
    /// let b = NonPagedBox::<[u16], PoolTag>::try_alloc_slice(&passive, alloc, 3)?;
    /// // SAFETY: zeroed `u16`s are valid.
    /// assert_eq!(&*unsafe { b.assume_init() }, &[0; 3]);
    /// # Ok::<(), ntpool::AllocError>(())
    /// # }).unwrap();
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_alloc_slice<I: Allows<P>, Q: Charge<I>>(
        _token: &I,
        alloc: Alloc<G, Q>,
        len: usize,
    ) -> Result<PoolBox<[MaybeUninit<T>], G, P>, AllocError> {
        let layout = Layout::array::<T>(len).map_err(|_| AllocError)?;
        let block = alloc::allocate_with_flags::<P>(layout, alloc.flags(), alloc.extended(), alloc.tag().tag())?;
        let ptr = NonNull::slice_from_raw_parts(block.cast::<MaybeUninit<T>>(), len);
        // SAFETY: a block for `Layout::array::<T>(len)`, which is the slice's layout, with the tag.
        Ok(unsafe { PoolBox::from_parts(ptr, alloc.tag()) })
    }
}

impl<T: ?Sized, G: TagSource, P: PoolType> PoolBox<T, G, P> {
    /// Gives up ownership: the block is no longer freed on drop. Rebuild the box with
    /// [`PoolBox::from_raw`] to free it.
    ///
    /// The pointer is the content's address, which is not always the start of the kernel's block: a
    /// type aligned on more than 16 bytes may sit inside a larger block (see "Aligned on every
    /// kernel" in the crate docs). So never give it to a routine that frees the block, nor to `ExFreePoolWithTag`
    /// yourself: that is bug check 0xC4 / 0x10 under Driver Verifier. To hand the block itself to the
    /// kernel, use [`PoolBox::into_kernel_block`] or [`PoolBox::try_into_kernel_block`].
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let raw = ntpool::NonPagedBox::<u32, Doc>::into_raw(ntpool::NonPagedBox::try_new(&passive, 1).unwrap());
    /// // SAFETY: `raw` came from `into_raw` with the same type, tag and pool.
    /// let b = unsafe { ntpool::NonPagedBox::<u32, Doc>::from_raw(raw) };
    /// assert_eq!(*b, 1);
    /// # });
    /// ```
    pub fn into_raw(b: Self) -> *mut T {
        PoolBox::into_parts(b).0.as_ptr()
    }

    /// Gives up ownership of the kernel's block itself, if the content starts it (else gives the box
    /// back): the address to hand to a routine that frees the block with `ExFreePoolWithTag(block,
    /// tag)` (with the box's [`tag`](PoolBox::tag)) or `ExFreePool`, or to free it so yourself.
    ///
    /// The content starts the kernel's block when its alignment is at most 16 bytes (then
    /// [`PoolBox::into_kernel_block`] says so at compile time), and for a block of a page or more
    /// aligned on less than a page when the kernel started it on a page, as Windows does. It never
    /// does for zero-sized content, which has no block.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// #[repr(C, align(64))]
    /// struct Line([u8; 64]);
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let line = NonPagedBox::<Line, Doc>::try_new(&passive, Line([0; 64])).unwrap();
    /// // Below a page, a 64-byte alignment needs a larger block with the line inside it.
    /// let line = NonPagedBox::try_into_kernel_block(line).unwrap_err();
    /// let pages = NonPagedBox::<[Line], Doc>::try_new_zeroed_slice(&passive, 64).unwrap();
    /// // SAFETY: 64 zeroed lines are valid.
    /// let pages = unsafe { pages.assume_init() };
    /// let tag = pages.tag().to_ulong();
    /// // A page or more: the kernel started the block on a page, and the lines start there.
    /// let block = NonPagedBox::try_into_kernel_block(pages).ok().unwrap();
    /// // SAFETY: the start of the kernel's block, allocated with `tag`, given up by its box.
    /// unsafe { ntpool::sys::ExFreePoolWithTag(block.cast(), tag) };
    /// # drop(line);
    /// # });
    /// ```
    pub fn try_into_kernel_block(b: Self) -> Result<*mut T, Self> {
        if alloc::starts_kernel_block(b.data(), b.layout()) { Ok(PoolBox::into_raw(b)) } else { Err(b) }
    }

    /// The tag the block was allocated with, and will be freed with.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = ntpool::PagedBox::<u8, Doc>::try_new(&passive, 0).unwrap();
    /// assert_eq!(b.tag().to_string(), "Doc1");
    /// # });
    /// ```
    pub fn tag(&self) -> PoolTag {
        self.owner().tag()
    }
}

impl<T: ?Sized, G: Tag, P: PoolType> PoolBox<T, G, P> {
    /// Takes ownership of a block that [`PoolBox::into_raw`] gave up.
    ///
    /// # Safety
    /// `raw` came from `PoolBox::<T, G, P>::into_raw` (the same `T`, tag and pool), and nothing else
    /// owns it.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let raw: *mut u32 = NonPagedBox::into_raw(NonPagedBox::<u32, Doc>::try_new(&passive, 1).unwrap());
    ///     // SAFETY: `raw` points to the live, non-paged `u32` that `into_raw` gave up.
    ///     unsafe { raw.write(2) };
    ///     // SAFETY: `raw` came from `into_raw` with the same type, tag and pool, and nothing else owns it.
    ///     let block = unsafe { NonPagedBox::<u32, Doc>::from_raw(raw) };
    ///     assert_eq!(*block, 2);
    /// }); // `block` was dropped, and freed with its tag
    /// assert!(kernel.verify_unload().is_ok());
    /// ```
    pub unsafe fn from_raw(raw: *mut T) -> Self {
        // SAFETY: `into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(raw) };
        // SAFETY: the caller guarantees `raw` came from a box of this type.
        unsafe { PoolBox::from_parts(ptr, G::default()) }
    }
}

impl<T: ?Sized, P: PoolType> PoolBox<T, PoolTag, P> {
    /// Takes ownership of a block that [`PoolBox::into_raw`] gave up, with the run-time tag it was
    /// allocated with.
    ///
    /// # Safety
    /// `raw` came from `PoolBox::<T, PoolTag, P>::into_raw` of a box whose tag was `tag`, and nothing
    /// else owns it.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::{NonPagedBox, PoolTag};
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = NonPagedBox::<u8, PoolTag>::try_new_with_tag(&passive, PoolTag::new(*b"Dyn2"), 3).unwrap();
    /// let tag = b.tag();
    /// let raw = NonPagedBox::into_raw(b);
    /// // SAFETY: `raw` came from `into_raw` of a box tagged `tag`.
    /// assert_eq!(*unsafe { NonPagedBox::<u8, PoolTag>::from_raw_with_tag(raw, tag) }, 3);
    /// # });
    /// ```
    pub unsafe fn from_raw_with_tag(raw: *mut T, tag: PoolTag) -> Self {
        // SAFETY: `into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(raw) };
        // SAFETY: the caller guarantees `raw` came from a box of this type with this tag.
        unsafe { PoolBox::from_parts(ptr, tag) }
    }
}

impl<T: ?Sized, G: TagSource, P: NonPagedPoolType> PoolBox<T, G, P> {
    /// Gives up ownership for good and returns the content with any lifetime; the block is never
    /// freed. Only for non-paged boxes: a paged block must stay behind a token.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let forever: &'static mut u32 = ntpool::NonPagedBox::<u32, Doc>::leak(ntpool::NonPagedBox::try_new(&passive, 1).unwrap());
    /// *forever += 1;
    /// # // SAFETY: the leaked block goes back to a box so the test kernel ends clean.
    /// # drop(unsafe { ntpool::NonPagedBox::<u32, Doc>::from_raw(forever) });
    /// # });
    /// ```
    pub fn leak<'a>(b: Self) -> &'a mut T {
        // SAFETY: the box owned a valid `T` (invariant) that is never freed from now on.
        unsafe { &mut *PoolBox::into_raw(b) }
    }
}

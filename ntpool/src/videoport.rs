//! VideoPort pool for video miniport drivers (the `videoport` feature): [`VpBox`], an owning
//! pointer to a block from `VideoPortAllocatePool`, freed with `VideoPortFreePool` and the same
//! `HwDeviceExtension`.
//!
//! A video miniport driver (XPDM, linked against `videoprt.sys`) allocates pool through the video
//! port driver rather than directly from `ntoskrnl.exe`:
//!
//! ```c
//! PVOID VideoPortAllocatePool(PVOID HwDeviceExtension, VP_POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
//! VOID  VideoPortFreePool(PVOID HwDeviceExtension, PVOID Ptr);
//! ```
//!
//! The same guarantees as [`PoolBox`], for these two routines:
//!
//! * **Pools as types**: the four `VP_POOL_TYPE` values are the types [`VpNonPagedPool`],
//!   [`VpPagedPool`], [`VpNonPagedPoolCacheAligned`] and [`VpPagedPoolCacheAligned`]. Each has the
//!   IRQL rules of the ntpool pool it stands for ([`VpPoolType::Pool`]).
//! * **IRQL-checked at compile time**, by the same tokens and rules as paged and non-paged
//!   [`PoolBox`]es. `VideoPortFreePool`'s rule is "callers must be running at IRQL
//!   <= `DISPATCH_LEVEL`. A caller at `DISPATCH_LEVEL` must have specified a `VpNonPaged`*Xxx*
//!   pool type when the memory was allocated. Otherwise, the caller must be running at IRQL <
//!   `DISPATCH_LEVEL`." So a `VpBox` of a `VpNonPaged*` type can be made, used and dropped with a
//!   [`Dispatch`](crate::Dispatch) token, dereferences like `Box`, and is
//!   [`DispatchSafe`]; a `VpBox` of a `VpPaged*` type needs a [`Passive`](crate::Passive) or
//!   [`Apc`](crate::Apc) token to be made or reached ([`VpBox::get`]) and is not `DispatchSafe`,
//!   so it cannot be touched or dropped in a `DISPATCH_LEVEL` region (see "How the IRQL rules are
//!   enforced" in the crate documentation). The `irql-backstop` feature checks paged frees at run
//!   time too.
//! * **The device extension goes with the block**: a `VpBox` keeps the [`HwDeviceExtension`] it
//!   was allocated for and frees with it.
//! * **Tagged**: the tag is a [`Tag`] type, or a [`PoolTag`] known only at run time
//!   ([`VpBox::try_new_with_tag`], [`VpBox::try_new_zeroed_slice_with_tag`]), as for `PoolBox`. By
//!   the WDK's convention for display drivers, their tags start with the letter `D` (for example
//!   `b"DvMd"`, shown as `DvMd` by poolmon and `!poolused`), so that display drivers' pool is
//!   recognisable at a glance. ntpool does not enforce it: the tag rules are those of every tag
//!   ([`pool_tag!`](crate::pool_tag)).
//! * **Uninitialized memory is not hidden**: `VideoPortAllocatePool` does not zero the block.
//!   [`VpBox::try_new`] and [`VpBox::try_new_zeroed`] zero it before use (so no stale pool bytes
//!   ever leak, padding included); [`VpBox::try_new_uninit`] hands it out as `MaybeUninit`.
//! * **Fallible**: a NULL from `VideoPortAllocatePool` is an [`AllocError`], never a panic.
//! * **Aligned**: `VideoPortAllocatePool` gives the pool's 16-byte alignment (x64), so `VpBox` takes
//!   types aligned on at most 16 bytes; a type with a stricter alignment is a compile error. The
//!   promise is checked, not trusted: a block whose address breaks it for its type is freed at once
//!   and the allocation fails with [`AllocError`]. Values of zero size allocate nothing.
//!
//! ```
//! use ntpool::Passive;
//! use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool, VpPagedPool};
//! ntpool::pool_tag!(struct ModeTable = b"DvMt"); // display driver: 'D' first
//! ntpool::pool_tag!(struct Frame = b"DvFr");
//!
//! # let mut storage = [0u64; 8];
//! # ntpool::emulated::Kernel::new().run(|| {
//! // In HwFindAdapter, at PASSIVE_LEVEL, with the device extension the video port driver passed.
//! # let hw_device_extension: ntpool::sys::PVOID = storage.as_mut_ptr().cast();
//! // SAFETY: HwFindAdapter runs at PASSIVE_LEVEL and holds no other token.
//! let mut passive = unsafe { Passive::assume() };
//! // SAFETY: the miniport's device extension, which outlives every block allocated for it.
//! let device = unsafe { HwDeviceExtension::from_raw(hw_device_extension) }.unwrap();
//!
//! let modes = VpBox::<[u32; 4], ModeTable, VpPagedPool>::try_new(&passive, device, [640, 800, 1024, 1280])?;
//! assert_eq!(modes.get(&passive)[1], 800); // paged: through a token
//!
//! let mut frame = VpBox::<u64, Frame, VpNonPagedPool>::try_new(&passive, device, 0)?;
//! passive.raise_to_dispatch(&mut frame, |_dispatch, frame| **frame += 1); // non-paged: fine at DISPATCH_LEVEL
//! assert_eq!(*frame, 1);
//! # Ok::<(), ntpool::AllocError>(())
//! # }).unwrap();
//! ```
//!
//! # What Driver Verifier reports
//!
//! `videoprt.sys` implements both routines on `ExAllocatePoolWithTag` and `ExFreePool`, passing the
//! `VP_POOL_TYPE` on as the `POOL_TYPE` of the same value (the values are chosen to be the same;
//! ReactOS's video port driver does exactly this, and Microsoft documents nothing else). The
//! emulated kernel treats them that way, and does not check the `HwDeviceExtension` (the free has no
//! use for it; `VpBox` passes the one the block was allocated with all the same): a block is recorded with its tag, pool, size and the miniport's call site under the routine
//! name `VideoPortAllocatePool`, left-over blocks are reported at unload (0xC4 / 0x62), and a
//! `VideoPortFreePool` at the wrong IRQL gets `ExFreePool`'s bug check: 0xC4 / 0x11 (IRQL, pool
//! type, address) for a `VpPaged*` block at `DISPATCH_LEVEL` or above, 0xC4 / 0x12 for any block
//! above `DISPATCH_LEVEL`; without Driver Verifier, the kernel's own 0xC2 / 0x09.
//!
//! That is what the kernel's pool checks report for the free `videoprt.sys` makes on the miniport's
//! behalf. Microsoft does not document a VideoPort-specific bug check or subcode for this misuse;
//! Driver Verifier's "VideoPort verification" checks exist for video miniports, but which stop code
//! they would raise first for this call is not documented either, so the emulation reports the one
//! documented check that applies.

use core::alloc::Layout;
use core::ffi::c_void;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::alloc::AllocError;
use crate::boxed::PoolBox;
use crate::irql::Allows;
use crate::pool::{CacheAligned, NonPagedPoolExecute, NonPagedPoolType, PagedPool, PoolType};
use crate::release::{self, Release};
use crate::safe::{DispatchSafe, HighSafe};
use crate::sys::{self, PVOID, VP_POOL_TYPE};
use crate::tag::{PoolTag, Tag, TagSource};

mod sealed {
    pub trait Sealed {}
}

/// A `VP_POOL_TYPE`, as a type: a pool of its own ([`PoolType`]), whose rules are those of the ntpool
/// pool of the same memory ([`VpPoolType::Pool`]). Sealed: the IRQL rules depend on knowing every
/// pool.
///
/// ```
/// use ntpool::videoport::{VpPagedPool, VpPoolType};
/// assert_eq!(VpPagedPool::VP_POOL_TYPE, ntpool::sys::VpPagedPool);
/// ```
pub trait VpPoolType: PoolType + sealed::Sealed {
    /// The value passed to `VideoPortAllocatePool`.
    const VP_POOL_TYPE: VP_POOL_TYPE;
    /// The ntpool pool of the same memory (the `POOL_TYPE` `videoprt.sys` allocates from): this
    /// pool's flags, paging and alignment are its. The name ([`PoolType::NAME`]) is `video.h`'s.
    type Pool: PoolType;
}

/// `VpNonPagedPool`: non-paged memory, usable up to `DISPATCH_LEVEL` (`POOL_TYPE` `NonPagedPool`,
/// executable; its IRQL rules are [`NonPagedPoolExecute`]'s).
///
/// ```
/// use ntpool::videoport::{VpNonPagedPool, VpPoolType};
/// assert_eq!(VpNonPagedPool::VP_POOL_TYPE, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VpNonPagedPool;

/// `VpPagedPool`: paged memory, usable below `DISPATCH_LEVEL` only.
///
/// ```
/// use ntpool::videoport::{VpPagedPool, VpPoolType};
/// assert_eq!(VpPagedPool::VP_POOL_TYPE, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VpPagedPool;

/// `VpNonPagedPoolCacheAligned`: non-paged, cache-aligned memory, usable up to `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::videoport::{VpNonPagedPoolCacheAligned, VpPoolType};
/// assert_eq!(VpNonPagedPoolCacheAligned::VP_POOL_TYPE, 4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VpNonPagedPoolCacheAligned;

/// `VpPagedPoolCacheAligned`: paged, cache-aligned memory, usable below `DISPATCH_LEVEL` only.
///
/// ```
/// use ntpool::videoport::{VpPagedPoolCacheAligned, VpPoolType};
/// assert_eq!(VpPagedPoolCacheAligned::VP_POOL_TYPE, 5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VpPagedPoolCacheAligned;

macro_rules! vp_pool {
    ($name:ident, $value:expr, $pool:ty) => {
        impl sealed::Sealed for $name {}
        impl VpPoolType for $name {
            const VP_POOL_TYPE: VP_POOL_TYPE = $value;
            type Pool = $pool;
        }
        impl crate::pool::sealed::Sealed for $name {}
        impl PoolType for $name {
            const FLAGS: sys::POOL_FLAGS = <$pool as PoolType>::FLAGS;
            const PAGED: bool = <$pool as PoolType>::PAGED;
            const ALIGN: usize = <$pool as PoolType>::ALIGN;
            const NAME: &'static str = stringify!($name);
        }
    };
}
vp_pool!(VpNonPagedPool, sys::VpNonPagedPool, NonPagedPoolExecute);
vp_pool!(VpPagedPool, sys::VpPagedPool, PagedPool);
vp_pool!(VpNonPagedPoolCacheAligned, sys::VpNonPagedPoolCacheAligned, CacheAligned<NonPagedPoolExecute>);
vp_pool!(VpPagedPoolCacheAligned, sys::VpPagedPoolCacheAligned, CacheAligned<PagedPool>);
impl NonPagedPoolType for VpNonPagedPool {}
impl NonPagedPoolType for VpNonPagedPoolCacheAligned {}

/// The miniport driver's device extension (`HwDeviceExtension`), as the video port driver passes
/// it to `HwFindAdapter`, `HwInitialize` and the other miniport callbacks: the first parameter of
/// `VideoPortAllocatePool` and `VideoPortFreePool`.
///
/// A handle only: it gives no access to the extension's memory, so it is `Copy`,
/// [`DispatchSafe`] and [`HighSafe`].
///
/// ```
/// use ntpool::videoport::HwDeviceExtension;
/// let mut storage = [0u64; 4];
/// // SAFETY: stands for a device extension in this example; no block is allocated for it.
/// let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
/// assert_eq!(device.as_ptr(), storage.as_mut_ptr().cast());
/// ```
///
/// # Invariants
/// The pointer is the device extension the video port driver allocated for the miniport, and it
/// stays valid while any [`VpBox`] made with this handle exists.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HwDeviceExtension(NonNull<c_void>);

// SAFETY: an opaque handle; the extension belongs to the adapter, not to a thread.
unsafe impl Send for HwDeviceExtension {}
// SAFETY: as above; `&HwDeviceExtension` gives nothing but the address.
unsafe impl Sync for HwDeviceExtension {}
// SAFETY: it neither owns nor reaches pool memory through safe code.
unsafe impl DispatchSafe for HwDeviceExtension {}
// SAFETY: as above.
unsafe impl HighSafe for HwDeviceExtension {}

impl HwDeviceExtension {
    /// The handle for the `HwDeviceExtension` pointer a miniport callback received; `None` for NULL.
    ///
    /// # Safety
    /// `hw_device_extension` is the device extension the video port driver passed to the miniport,
    /// and it outlives every [`VpBox`] allocated with this handle (the miniport frees its blocks
    /// before its adapter goes away).
    ///
    /// ```
    /// use ntpool::videoport::HwDeviceExtension;
    /// // SAFETY: NULL is never a device extension; `from_raw` turns it down.
    /// assert!(unsafe { HwDeviceExtension::from_raw(core::ptr::null_mut()) }.is_none());
    /// ```
    pub unsafe fn from_raw(hw_device_extension: PVOID) -> Option<Self> {
        // INVARIANT: the caller guarantees what the pointer is and how long it lives.
        NonNull::new(hw_device_extension).map(HwDeviceExtension)
    }

    /// The pointer, as `VideoPortAllocatePool` and `VideoPortFreePool` take it.
    ///
    /// ```
    /// use ntpool::videoport::HwDeviceExtension;
    /// let mut storage = [0u64; 4];
    /// // SAFETY: stands for a device extension; no block is allocated for it.
    /// let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// assert!(!device.as_ptr().is_null());
    /// ```
    pub fn as_ptr(self) -> PVOID {
        self.0.as_ptr()
    }
}

impl fmt::Debug for HwDeviceExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HwDeviceExtension")
    }
}

/// An owning pointer to a `T` in VideoPort pool `V`, allocated with `VideoPortAllocatePool` and tag
/// `G` (a [`Tag`] type, or a run-time [`PoolTag`] that the box stores) for a device extension, freed
/// on drop with `VideoPortFreePool` and that device extension. See the [module documentation](self)
/// for the rules it keeps.
///
/// ```
/// use ntpool::Passive;
/// use ntpool::videoport::{HwDeviceExtension, VpBox, VpPagedPoolCacheAligned};
/// ntpool::pool_tag!(struct Edid = b"DvEd");
/// # let mut storage = [0u64; 8];
/// # ntpool::emulated::Kernel::new().run(|| {
/// # let hw_device_extension: ntpool::sys::PVOID = storage.as_mut_ptr().cast();
/// // SAFETY: a miniport callback at PASSIVE_LEVEL that holds no other token.
/// let passive = unsafe { Passive::assume() };
/// // SAFETY: the miniport's device extension, which outlives the block.
/// let device = unsafe { HwDeviceExtension::from_raw(hw_device_extension) }.unwrap();
/// let mut edid = VpBox::<[u8], Edid, VpPagedPoolCacheAligned>::try_from_slice(&passive, device, &[0; 128])?;
/// edid.get_mut(&passive)[0] = 0x00;
/// assert_eq!(edid.get(&passive).len(), 128);
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Invariants
/// It is a [`PoolBox`] whose owner is a [`VpOwner`]: the box's invariant, with a block that
/// `VideoPortAllocatePool` returned for the owner's device extension, pool `V`, the owner's tag and
/// at least `Layout::for_value(&*ptr).size()` bytes (dangling and aligned when that size is zero:
/// then nothing was allocated).
pub type VpBox<T, G, V = VpNonPagedPool> = PoolBox<T, VpOwner<G>, V>;

/// The owner of a [`VpBox`]: the device extension its block was allocated for, which
/// `VideoPortFreePool` gives it back with, and the tag `G` it was allocated with (zero-sized for a
/// [`Tag`] type, in its type; the tag itself for a run-time [`PoolTag`]).
pub struct VpOwner<G> {
    device: HwDeviceExtension,
    tag: G,
}

impl<G: TagSource> VpOwner<G> {
    fn new(device: HwDeviceExtension, tag: G) -> Self {
        VpOwner { device, tag }
    }
}

impl<G: TagSource> Clone for VpOwner<G> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<G: TagSource> Copy for VpOwner<G> {}

impl<G> fmt::Debug for VpOwner<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VpOwner").field(&self.device).finish()
    }
}

impl<G: TagSource> release::sealed::Sealed for VpOwner<G> {}

// SAFETY: `VideoPortFreePool` with the device extension gives back exactly the block
// `VideoPortAllocatePool` returned for it (nothing was allocated for a size of zero); the device
// extension is a plain address, usable at any IRQL, and owns nothing paged.
unsafe impl<G: TagSource, V: VpPoolType> Release<V> for VpOwner<G> {
    unsafe fn release(self, data: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller's contract is VideoPortFreePool's, for this device's block.
            unsafe { sys::VideoPortFreePool(self.device.as_ptr(), data.as_ptr().cast()) };
        }
    }
}

/// The alignment `VideoPortAllocatePool` promises on x64 (`MEMORY_ALLOCATION_ALIGNMENT`), checked
/// for every block (a block that breaks it for its layout is freed, and the allocation fails).
const VP_ALIGN: usize = 16;

/// Allocates `size` bytes (not zero) for `device` from pool `V` with `tag`.
#[cfg_attr(ntpool_emulated, track_caller)]
fn allocate<V: VpPoolType>(device: HwDeviceExtension, layout: Layout, tag: PoolTag) -> Result<NonNull<u8>, AllocError> {
    if layout.size() == 0 {
        // A non-null pointer aligned for `layout`, with no provenance: nothing is read or written
        // through it.
        return NonNull::new(core::ptr::without_provenance_mut(layout.align())).ok_or(AllocError);
    }
    // SAFETY: the caller holds a token that allows `V::Pool`, whose IRQL rule is `V`'s; the size is
    // not zero, the tag is valid, `device` is the miniport's device extension (invariant).
    let block =
        unsafe { sys::VideoPortAllocatePool(device.as_ptr(), V::VP_POOL_TYPE, layout.size() as u64, tag.to_ulong()) };
    let block = NonNull::new(block.cast::<u8>()).ok_or(AllocError)?;
    if block.addr().get() % layout.align() != 0 {
        // The promise is checked, not trusted: a block that breaks it for this layout goes back at
        // once and is never handed out.
        // SAFETY: the block `VideoPortAllocatePool` just returned for `device`, not handed out.
        unsafe { sys::VideoPortFreePool(device.as_ptr(), block.as_ptr().cast()) };
        return Err(AllocError);
    }
    Ok(block)
}

impl<T, G: Tag, V: VpPoolType> PoolBox<T, VpOwner<G>, V> {
    /// Allocates a block for `device`, zeroes it, and moves `value` into it.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<u32, Doc, VpNonPagedPool>::try_new(&passive, device, 5).unwrap();
    /// assert_eq!(*b, 5);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new(token: &impl Allows<V>, device: HwDeviceExtension, value: T) -> Result<Self, AllocError> {
        VpBox::try_new_in(token, G::default(), device, value)
    }

    /// Allocates a block for `device` and leaves it as `VideoPortAllocatePool` returned it:
    /// uninitialized.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<u32, Doc, VpNonPagedPool>::try_new_uninit(&passive, device).unwrap();
    /// assert_eq!(*b.write(9), 9);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_uninit(
        token: &impl Allows<V>,
        device: HwDeviceExtension,
    ) -> Result<VpBox<MaybeUninit<T>, G, V>, AllocError> {
        VpBox::try_new_uninit_in(token, G::default(), device)
    }

    /// Allocates a block for `device` and zeroes it.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<u64, Doc, VpPagedPool>::try_new_zeroed(&passive, device).unwrap();
    /// // SAFETY: all-zero bytes are a valid u64.
    /// assert_eq!(*unsafe { b.assume_init() }.get(&passive), 0);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed(
        token: &impl Allows<V>,
        device: HwDeviceExtension,
    ) -> Result<VpBox<MaybeUninit<T>, G, V>, AllocError> {
        VpBox::try_new_zeroed_in(token, G::default(), device)
    }
}

impl<T, V: VpPoolType> PoolBox<T, VpOwner<PoolTag>, V> {
    /// Allocates a block for `device` with `tag`, a tag known only at run time, zeroes it, and
    /// moves `value` into it. The box stores the tag beside the device extension.
    ///
    /// ```
    /// use ntpool::PoolTag;
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool};
    /// # let mut storage = [0u64; 8];
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"DvR7")).unwrap(); // say, from a request
    ///     let b = VpBox::<u32, PoolTag, VpNonPagedPool>::try_new_with_tag(&passive, tag, device, 5).unwrap();
    ///     assert_eq!((*b, b.tag().to_string().as_str()), (5, "DvR7"));
    ///     assert_eq!(kernel.outstanding()[0].routine, "VideoPortAllocatePool");
    /// });
    /// let row = &kernel.pool_usage().rows[0]; // freed with VideoPortFreePool
    /// assert_eq!((row.tag.to_string().as_str(), row.allocs, row.frees), ("DvR7", 1, 1));
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_tag(
        token: &impl Allows<V>,
        tag: PoolTag,
        device: HwDeviceExtension,
        value: T,
    ) -> Result<Self, AllocError> {
        VpBox::try_new_in(token, tag, device, value)
    }
}

impl<T, G: TagSource, V: VpPoolType> PoolBox<T, VpOwner<G>, V> {
    /// Compile-time check: the pool's 16 bytes suffice for `T`.
    const ALIGNED: () = assert!(
        align_of::<T>() <= VP_ALIGN,
        "VideoPortAllocatePool aligns blocks on 16 bytes: VpBox takes no type aligned more strictly"
    );

    /// Allocates a zeroed block for `device` with `tag` and moves `value` into it:
    /// [`VpBox::try_new`] and [`VpBox::try_new_with_tag`].
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_in(token: &impl Allows<V>, tag: G, device: HwDeviceExtension, value: T) -> Result<Self, AllocError> {
        Ok(VpBox::try_new_zeroed_in(token, tag, device)?.write(value))
    }

    /// Allocates a block for `device` with `tag`, uninitialized.
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_uninit_in(
        _token: &impl Allows<V>,
        tag: G,
        device: HwDeviceExtension,
    ) -> Result<VpBox<MaybeUninit<T>, G, V>, AllocError> {
        let () = Self::ALIGNED;
        let block = allocate::<V>(device, Layout::new::<T>(), tag.tag())?;
        // SAFETY: a block of `size_of::<T>()` bytes for `device`, `V` and `tag`, aligned for `T`
        // (checked above), whose content is a valid `MaybeUninit<T>` whatever it holds.
        Ok(unsafe { PoolBox::from_parts(block.cast(), VpOwner::new(device, tag)) })
    }

    /// Allocates a block for `device` with `tag`, and zeroes it.
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_zeroed_in(
        token: &impl Allows<V>,
        tag: G,
        device: HwDeviceExtension,
    ) -> Result<VpBox<MaybeUninit<T>, G, V>, AllocError> {
        let b = VpBox::try_new_uninit_in(token, tag, device)?;
        // SAFETY: the block holds `size_of::<T>()` writable bytes (invariant); the token allows
        // touching pool `V`.
        unsafe { b.ptr.as_ptr().write_bytes(0, 1) };
        Ok(b)
    }
}

impl<T, G: Tag, V: VpPoolType> PoolBox<[T], VpOwner<G>, V> {
    /// Allocates a slice of `len` elements for `device`, zeroed, each left as `MaybeUninit`.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPoolCacheAligned};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<[u16], Doc, VpNonPagedPoolCacheAligned>::try_new_zeroed_slice(&passive, device, 4).unwrap();
    /// // SAFETY: all-zero bytes are valid u16 values.
    /// assert_eq!(&*unsafe { b.assume_init() }, &[0, 0, 0, 0]);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice(
        token: &impl Allows<V>,
        device: HwDeviceExtension,
        len: usize,
    ) -> Result<VpBox<[MaybeUninit<T>], G, V>, AllocError> {
        VpBox::try_new_zeroed_slice_in(token, G::default(), device, len)
    }

    /// Allocates a slice for `device` holding a copy of `source`.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<[u8], Doc, VpPagedPool>::try_from_slice(&passive, device, b"abc").unwrap();
    /// assert_eq!(b.get(&passive), b"abc");
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_from_slice(token: &impl Allows<V>, device: HwDeviceExtension, source: &[T]) -> Result<Self, AllocError>
    where
        T: Copy,
    {
        let slice = VpBox::<[T], G, V>::try_new_zeroed_slice(token, device, source.len())?;
        Ok(slice.fill(|i| source[i]))
    }
}

impl<T, V: VpPoolType> PoolBox<[T], VpOwner<PoolTag>, V> {
    /// Allocates a slice of `len` elements for `device` with `tag`, a tag known only at run time,
    /// zeroed, each left as `MaybeUninit`. The box stores the tag beside the device extension.
    ///
    /// ```
    /// use ntpool::PoolTag;
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpPagedPool};
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let tag = PoolTag::new(*b"DvD1");
    /// let b = VpBox::<[u8], PoolTag, VpPagedPool>::try_new_zeroed_slice_with_tag(&passive, tag, device, 8).unwrap();
    /// // SAFETY: zero bytes are valid `u8`s.
    /// let b = unsafe { b.assume_init() };
    /// assert_eq!((b.get(&passive), b.tag()), (&[0; 8][..], tag));
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_zeroed_slice_with_tag(
        token: &impl Allows<V>,
        tag: PoolTag,
        device: HwDeviceExtension,
        len: usize,
    ) -> Result<VpBox<[MaybeUninit<T>], PoolTag, V>, AllocError> {
        VpBox::try_new_zeroed_slice_in(token, tag, device, len)
    }
}

impl<T, G: TagSource, V: VpPoolType> PoolBox<[T], VpOwner<G>, V> {
    /// Allocates a zeroed slice of `len` elements for `device` with `tag`:
    /// [`VpBox::try_new_zeroed_slice`] and [`VpBox::try_new_zeroed_slice_with_tag`].
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_zeroed_slice_in(
        _token: &impl Allows<V>,
        tag: G,
        device: HwDeviceExtension,
        len: usize,
    ) -> Result<VpBox<[MaybeUninit<T>], G, V>, AllocError> {
        let () = VpBox::<T, G, V>::ALIGNED;
        let layout = Layout::array::<T>(len).map_err(|_| AllocError)?;
        let block = allocate::<V>(device, layout, tag.tag())?;
        // SAFETY: the block holds `layout.size()` writable bytes, or none at all for a size of zero.
        unsafe { block.as_ptr().write_bytes(0, layout.size()) };
        let ptr = NonNull::slice_from_raw_parts(block.cast::<MaybeUninit<T>>(), len);
        // SAFETY: a block of `Layout::array::<T>(len)`, the slice's size, for `device`, `V` and `tag`,
        // aligned for `T` (checked above).
        Ok(unsafe { PoolBox::from_parts(ptr, VpOwner::new(device, tag)) })
    }
}

impl<T: ?Sized, G: TagSource, V: VpPoolType> PoolBox<T, VpOwner<G>, V> {
    /// The device extension the block was allocated for, and will be freed with.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<u8, Doc, VpNonPagedPool>::try_new(&passive, device, 1).unwrap();
    /// assert_eq!(b.device_extension(), device);
    /// # });
    /// ```
    pub fn device_extension(&self) -> HwDeviceExtension {
        self.owner.device
    }

    /// The tag the block was allocated with.
    ///
    /// ```
    /// use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool};
    /// ntpool::pool_tag!(struct Doc = b"DvDc");
    /// # let mut storage = [0u64; 8];
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// # // SAFETY: stands for the miniport's device extension; it outlives the block.
    /// # let device = unsafe { HwDeviceExtension::from_raw(storage.as_mut_ptr().cast()) }.unwrap();
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let b = VpBox::<u8, Doc, VpNonPagedPool>::try_new(&passive, device, 1).unwrap();
    /// assert_eq!(b.tag().to_string(), "DvDc");
    /// # });
    /// ```
    pub fn tag(&self) -> PoolTag {
        self.owner.tag.tag()
    }
}

/// A miniport's `HwFindAdapter`, named by a zero-sized type: [`hw_find_adapter`] gives the
/// trampoline for `VIDEO_HW_INITIALIZATION_DATA`, which calls [`HwFindAdapter::find_adapter`] with a
/// [`Passive`](crate::Passive) token. The video port driver calls `HwFindAdapter` at
/// `PASSIVE_LEVEL`, in the thread that loads the miniport.
pub trait HwFindAdapter: 'static {
    /// Finds the adapter for `device` (`None` if the video port driver passed no extension) and
    /// fills in its device extension; the other arguments are the video port driver's, unchanged.
    fn find_adapter(
        device: Option<HwDeviceExtension>,
        hw_context: PVOID,
        argument_string: *mut u16,
        config_info: *mut sys::VIDEO_PORT_CONFIG_INFO,
        again: Option<&mut u8>,
        passive: &mut crate::Passive,
    ) -> sys::VP_STATUS;
}

/// A miniport's `HwInitialize`, named by a zero-sized type: [`hw_initialize`] gives its trampoline,
/// which calls [`HwInitialize::initialize`] with a [`Passive`](crate::Passive) token. The video port
/// driver calls `HwInitialize` at `PASSIVE_LEVEL`, after a successful `HwFindAdapter`.
pub trait HwInitialize: 'static {
    /// Initializes the adapter of `device`; `TRUE` (1) on success.
    fn initialize(device: Option<HwDeviceExtension>, passive: &mut crate::Passive) -> sys::BOOLEAN;
}

/// The `HwFindAdapter` callback that calls `R::find_adapter` with a `Passive` token.
///
/// ```
/// use ntpool::videoport::{HwDeviceExtension, HwFindAdapter, hw_find_adapter};
/// struct Find;
/// impl HwFindAdapter for Find {
///     fn find_adapter(
///         device: Option<HwDeviceExtension>, _: ntpool::sys::PVOID, _: *mut u16,
///         _: *mut ntpool::sys::VIDEO_PORT_CONFIG_INFO, _: Option<&mut u8>, _passive: &mut ntpool::Passive,
///     ) -> ntpool::sys::VP_STATUS {
///         if device.is_some() { ntpool::sys::NO_ERROR } else { ntpool::sys::ERROR_DEV_NOT_EXIST }
///     }
/// }
/// assert!(hw_find_adapter::<Find>().is_some());
/// ```
pub fn hw_find_adapter<R: HwFindAdapter>() -> sys::PVIDEO_HW_FIND_ADAPTER {
    Some(find_adapter_trampoline::<R>)
}

/// The `HwInitialize` callback that calls `R::initialize` with a `Passive` token.
///
/// ```
/// use ntpool::videoport::{HwDeviceExtension, HwInitialize, hw_initialize};
/// struct Init;
/// impl HwInitialize for Init {
///     fn initialize(_: Option<HwDeviceExtension>, _passive: &mut ntpool::Passive) -> u8 {
///         1
///     }
/// }
/// assert!(hw_initialize::<Init>().is_some());
/// ```
pub fn hw_initialize<R: HwInitialize>() -> sys::PVIDEO_HW_INITIALIZE {
    Some(initialize_trampoline::<R>)
}

/// # Safety
/// Called by the video port driver as `HwFindAdapter`: at `PASSIVE_LEVEL`, with the miniport's
/// device extension (or null), which it frees only after every block allocated for it is gone.
unsafe extern "system" fn find_adapter_trampoline<R: HwFindAdapter>(
    hw_device_extension: PVOID,
    hw_context: PVOID,
    argument_string: *mut u16,
    config_info: *mut sys::VIDEO_PORT_CONFIG_INFO,
    again: *mut u8,
) -> sys::VP_STATUS {
    // SAFETY: the video port driver passes the miniport's device extension (caller).
    let device = unsafe { HwDeviceExtension::from_raw(hw_device_extension) };
    // SAFETY: `Again` is null or the video port driver's writable BOOLEAN, for the call.
    let again = unsafe { again.as_mut() };
    // HwFindAdapter runs at PASSIVE_LEVEL, and the thread holds no other token of the miniport's.
    R::find_adapter(device, hw_context, argument_string, config_info, again, &mut crate::Passive::entry())
}

/// # Safety
/// Called by the video port driver as `HwInitialize`: at `PASSIVE_LEVEL`, with the device extension
/// `HwFindAdapter` filled in.
unsafe extern "system" fn initialize_trampoline<R: HwInitialize>(hw_device_extension: PVOID) -> sys::BOOLEAN {
    // SAFETY: as for `find_adapter_trampoline`.
    let device = unsafe { HwDeviceExtension::from_raw(hw_device_extension) };
    // HwInitialize runs at PASSIVE_LEVEL, and the thread holds no other token of the miniport's.
    R::initialize(device, &mut crate::Passive::entry())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `VP_POOL_TYPE` is the legacy `POOL_TYPE` of the ntpool pool whose rules it takes.
    #[test]
    fn vp_pool_types_are_the_pool_types_of_their_pools() {
        fn pool_type<V: VpPoolType>() -> Option<sys::POOL_TYPE> {
            sys::pool_type_for_flags(<V::Pool as PoolType>::FLAGS)
        }
        assert_eq!(pool_type::<VpNonPagedPool>(), Some(VpNonPagedPool::VP_POOL_TYPE));
        assert_eq!(pool_type::<VpPagedPool>(), Some(VpPagedPool::VP_POOL_TYPE));
        assert_eq!(pool_type::<VpNonPagedPoolCacheAligned>(), Some(VpNonPagedPoolCacheAligned::VP_POOL_TYPE));
        assert_eq!(pool_type::<VpPagedPoolCacheAligned>(), Some(VpPagedPoolCacheAligned::VP_POOL_TYPE));
        let paged = [
            <VpNonPagedPool as VpPoolType>::Pool::PAGED,
            <VpPagedPool as VpPoolType>::Pool::PAGED,
            <VpNonPagedPoolCacheAligned as VpPoolType>::Pool::PAGED,
            <VpPagedPoolCacheAligned as VpPoolType>::Pool::PAGED,
        ];
        assert_eq!(paged, [false, true, false, true]);
    }
}

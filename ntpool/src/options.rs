//! [`Alloc`]: how a block is allocated (its tag, known at compile time or at run time; zeroed or
//! not; charged to the current process's quota or not; its [`Priority`] and [`NumaNode`], which
//! `ExAllocatePool3` takes), so that any block is one call:
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
/// `DISPATCH_LEVEL`; with a [`Priority`] ([`Alloc::priority`]) and a [`NumaNode`]
/// ([`Alloc::numa_node`]) when asked, which `ExAllocatePool3` takes.
///
/// # `ExAllocatePool3` and its fallbacks
///
/// An allocation with a priority or a NUMA node goes to `ExAllocatePool3` (Windows 10 version 2004
/// and later), resolved at run time like `ExAllocatePool2`; without either, to `ExAllocatePool2`. Where
/// the kernel lacks `ExAllocatePool3`, the request goes to `ExAllocatePool2` without them (and where
/// that is missing too, to `ExAllocatePoolWithTag`, as every allocation does). What is lost there:
/// the priority (a [`Priority::Low`] request is served like any other when memory runs low, instead of
/// failing first, and a [`Priority::High`] one gets no precedence), and the node (the block may come
/// from any node, even one [`NumaNode::required`] excluded). The allocation itself, its tag, pool,
/// zeroing and quota are the same. `ntpool::sys::uses_ex_allocate_pool3` tells which routine serves.
///
/// ```
/// use ntpool::{Alloc, NonPagedBox, NumaNode, Passive, Priority};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let alloc = Alloc::<Doc>::new().priority(Priority::Low).numa_node(NumaNode::preferred(0));
/// let cache = NonPagedBox::<[u8; 64], Doc>::try_alloc(&passive, alloc)?;
/// // SAFETY: the block was zeroed.
/// assert_eq!(unsafe { cache.assume_init() }[0], 0);
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use = "an `Alloc` only describes an allocation: pass it to `PoolBox::try_alloc`"]
pub struct Alloc<G: TagSource, Q = NoQuota> {
    tag: G,
    zeroed: bool,
    charged: bool,
    extended: Extended,
    _quota: PhantomData<Q>,
}

/// How important an allocation is (`EX_POOL_PRIORITY`, an `ExAllocatePool3` parameter): when memory
/// runs low, the kernel fails low-priority requests first and keeps some for high-priority ones.
/// Lost where the kernel lacks `ExAllocatePool3` (see [`Alloc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Priority {
    /// `LowPoolPriority`: fail early when memory is low; for what the driver can do without.
    Low,
    /// `NormalPoolPriority`: the priority of a request without one.
    Normal,
    /// `HighPoolPriority`: for what the driver cannot work without.
    High,
}

impl Priority {
    /// The `EX_POOL_PRIORITY` value.
    ///
    /// ```
    /// assert_eq!(ntpool::Priority::High.to_ex_pool_priority(), ntpool::sys::HighPoolPriority);
    /// ```
    pub const fn to_ex_pool_priority(self) -> sys::EX_POOL_PRIORITY {
        match self {
            Priority::Low => sys::LowPoolPriority,
            Priority::Normal => sys::NormalPoolPriority,
            Priority::High => sys::HighPoolPriority,
        }
    }
}

/// The NUMA node an allocation should come from (`POOL_NODE_REQUIREMENT`, an `ExAllocatePool3`
/// parameter). For non-paged pools only: `ExAllocatePool3` fails a paged request with a node. Lost
/// where the kernel lacks `ExAllocatePool3` (see [`Alloc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NumaNode(sys::POOL_NODE_REQUIREMENT);

impl NumaNode {
    /// Node `index` if it can serve the request, another node otherwise (`MM_ANY_NODE_OK`).
    ///
    /// ```
    /// assert_eq!(ntpool::NumaNode::preferred(1).to_node_requirement(), 0x8000_0001);
    /// ```
    pub const fn preferred(index: u16) -> Self {
        NumaNode(index as u32 | sys::MM_ANY_NODE_OK)
    }

    /// Node `index` or nothing: the allocation fails when that node cannot serve it (or does not
    /// exist).
    ///
    /// ```
    /// assert_eq!(ntpool::NumaNode::required(1).to_node_requirement(), 1);
    /// ```
    pub const fn required(index: u16) -> Self {
        NumaNode(index as u32)
    }

    /// The `POOL_NODE_REQUIREMENT` value.
    pub const fn to_node_requirement(self) -> sys::POOL_NODE_REQUIREMENT {
        self.0
    }
}

/// The `ExAllocatePool3` parameters of an [`Alloc`]: none, a priority, a node, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extended {
    priority: Option<Priority>,
    node: Option<NumaNode>,
}

impl Extended {
    /// No parameter: `ExAllocatePool2`.
    pub(crate) const NONE: Extended = Extended { priority: None, node: None };

    /// Whether there is no parameter.
    #[inline(always)]
    pub(crate) const fn is_none(&self) -> bool {
        self.priority.is_none() && self.node.is_none()
    }

    /// The parameters, and how many of the array's are used.
    pub(crate) fn parameters(&self) -> ([sys::POOL_EXTENDED_PARAMETER; 2], sys::ULONG) {
        let mut parameters = [sys::POOL_EXTENDED_PARAMETER::priority(sys::NormalPoolPriority); 2];
        let mut count = 0;
        if let Some(priority) = self.priority {
            parameters[count] = sys::POOL_EXTENDED_PARAMETER::priority(priority.to_ex_pool_priority());
            count += 1;
        }
        if let Some(node) = self.node {
            parameters[count] = sys::POOL_EXTENDED_PARAMETER::numa_node(node.to_node_requirement());
            count += 1;
        }
        (parameters, count as sys::ULONG)
    }
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

impl<G: TagSource> Alloc<G> {
    /// Zeroed, tagged with `tag`, no quota: [`Alloc::new`] for a [`Tag`] type, [`Alloc::with_tag`]
    /// for a [`PoolTag`], for code that takes either.
    pub(crate) const fn tagged(tag: G) -> Self {
        Alloc { tag, zeroed: true, charged: false, extended: Extended::NONE, _quota: PhantomData }
    }
}

impl<G: Tag> Alloc<G> {
    /// Zeroed, tagged with `G`, no quota.
    pub fn new() -> Self {
        Alloc::tagged(G::default())
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
        Alloc::tagged(tag)
    }
}

impl<G: TagSource, Q> Alloc<G, Q> {
    /// Left uninitialized (`POOL_FLAG_UNINITIALIZED`): the box holds `MaybeUninit`, to be written.
    pub const fn uninit(self) -> Self {
        Alloc { zeroed: false, ..self }
    }

    /// Zeroed (the default): for the constructors that must hand out zeroed memory whatever they
    /// are given.
    pub(crate) const fn zeroed(self) -> Self {
        Alloc { zeroed: true, ..self }
    }

    /// Charged to the current process's pool quota (`POOL_FLAG_USE_QUOTA`, or the non-raising
    /// `ExAllocatePoolWithQuotaTag` where `ExAllocatePool2` is missing).
    pub const fn quota(self) -> Alloc<G, Quota> {
        self.quota_if(true)
    }

    /// Charged to the current process's quota when `charged` is true (decided at run time; the
    /// token must be below `DISPATCH_LEVEL` either way).
    pub const fn quota_if(self, charged: bool) -> Alloc<G, Quota> {
        Alloc { tag: self.tag, zeroed: self.zeroed, charged, extended: self.extended, _quota: PhantomData }
    }

    /// With `priority` (`ExAllocatePool3`'s `PoolExtendedParameterPriority`; see [`Alloc`] for where
    /// it is lost).
    pub const fn priority(self, priority: Priority) -> Self {
        Alloc { extended: Extended { priority: Some(priority), ..self.extended }, ..self }
    }

    /// From NUMA node `node` (`ExAllocatePool3`'s `PoolExtendedParameterNumaNode`; non-paged pools
    /// only; see [`Alloc`] for where it is lost).
    pub const fn numa_node(self, node: NumaNode) -> Self {
        Alloc { extended: Extended { node: Some(node), ..self.extended }, ..self }
    }

    /// The `ExAllocatePool3` parameters.
    pub(crate) const fn extended(&self) -> Extended {
        self.extended
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

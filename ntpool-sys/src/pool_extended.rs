//! `ExAllocatePool3`'s extended parameters (`wdm.h`, Windows 10 version 2004 and later): the
//! [`POOL_EXTENDED_PARAMETER`] structure, its types and values, and what both kernels share about
//! them: which parameters the `ExAllocatePool2` fallback may drop ([`pool3_fallback_allowed`]), and
//! which ones a kernel that exports `ExAllocatePool3` accepts ([`pool3_parameters_valid`]).

use core::ffi::c_void;

use super::{HANDLE, POOL_FLAG_NON_PAGED, POOL_FLAGS, ULONG, ULONG_PTR};

/// `POOL_EXTENDED_PARAMETER_TYPE`: what a [`POOL_EXTENDED_PARAMETER`] says.
pub type POOL_EXTENDED_PARAMETER_TYPE = i32;
/// `PoolExtendedParameterInvalidType`: never valid.
pub const PoolExtendedParameterInvalidType: POOL_EXTENDED_PARAMETER_TYPE = 0;
/// `PoolExtendedParameterPriority`: the allocation's [`EX_POOL_PRIORITY`], in `Priority`.
pub const PoolExtendedParameterPriority: POOL_EXTENDED_PARAMETER_TYPE = 1;
/// `PoolExtendedParameterSecurePool`: secure pool parameters, in `SecurePoolParams`.
pub const PoolExtendedParameterSecurePool: POOL_EXTENDED_PARAMETER_TYPE = 2;
/// `PoolExtendedParameterNumaNode`: the preferred NUMA node, in `PreferredNode`.
pub const PoolExtendedParameterNumaNode: POOL_EXTENDED_PARAMETER_TYPE = 3;
/// `PoolExtendedParameterMax`: for the kernel's use.
pub const PoolExtendedParameterMax: POOL_EXTENDED_PARAMETER_TYPE = 4;

/// `POOL_EXTENDED_PARAMETER_TYPE_BITS`: the width of the `Type` bit field.
pub const POOL_EXTENDED_PARAMETER_TYPE_BITS: u32 = 8;
/// `POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS`: the width of the `Optional` bit field.
pub const POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS: u32 = 1;
/// `POOL_EXTENDED_PARAMETER_RESERVED_BITS`: the rest of the first `ULONG64`.
pub const POOL_EXTENDED_PARAMETER_RESERVED_BITS: u32 =
    64 - POOL_EXTENDED_PARAMETER_TYPE_BITS - POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS;

/// `EX_POOL_PRIORITY`: how important an allocation is; under low memory, a low-priority request fails
/// first.
pub type EX_POOL_PRIORITY = i32;
/// `LowPoolPriority`.
pub const LowPoolPriority: EX_POOL_PRIORITY = 0;
/// `LowPoolPrioritySpecialPoolOverrun`.
pub const LowPoolPrioritySpecialPoolOverrun: EX_POOL_PRIORITY = 8;
/// `LowPoolPrioritySpecialPoolUnderrun`.
pub const LowPoolPrioritySpecialPoolUnderrun: EX_POOL_PRIORITY = 9;
/// `NormalPoolPriority`.
pub const NormalPoolPriority: EX_POOL_PRIORITY = 16;
/// `NormalPoolPrioritySpecialPoolOverrun`.
pub const NormalPoolPrioritySpecialPoolOverrun: EX_POOL_PRIORITY = 24;
/// `NormalPoolPrioritySpecialPoolUnderrun`.
pub const NormalPoolPrioritySpecialPoolUnderrun: EX_POOL_PRIORITY = 25;
/// `HighPoolPriority`.
pub const HighPoolPriority: EX_POOL_PRIORITY = 32;
/// `HighPoolPrioritySpecialPoolOverrun`.
pub const HighPoolPrioritySpecialPoolOverrun: EX_POOL_PRIORITY = 40;
/// `HighPoolPrioritySpecialPoolUnderrun`.
pub const HighPoolPrioritySpecialPoolUnderrun: EX_POOL_PRIORITY = 41;

/// `POOL_NODE_REQUIREMENT`: a NUMA node index, optionally with [`MM_ANY_NODE_OK`].
pub type POOL_NODE_REQUIREMENT = ULONG;
/// `MM_ANY_NODE_OK`: or-ed into a node index, makes it a preference: another node serves the request
/// when that one cannot. Without it the node is required, and the allocation fails when that node
/// cannot serve it.
pub const MM_ANY_NODE_OK: POOL_NODE_REQUIREMENT = 0x8000_0000;

/// `SECURE_POOL_FLAGS_NONE`.
pub const SECURE_POOL_FLAGS_NONE: ULONG = 0;
/// `SECURE_POOL_FLAGS_FREEABLE`.
pub const SECURE_POOL_FLAGS_FREEABLE: ULONG = 1;
/// `SECURE_POOL_FLAGS_MODIFIABLE`.
pub const SECURE_POOL_FLAGS_MODIFIABLE: ULONG = 2;

/// `POOL_EXTENDED_PARAMS_SECURE_POOL`.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::POOL_EXTENDED_PARAMS_SECURE_POOL>(), 32);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct POOL_EXTENDED_PARAMS_SECURE_POOL {
    /// The secure pool (`ExCreatePool` with `POOL_CREATE_FLG_SECURE_POOL`).
    pub SecurePoolHandle: HANDLE,
    /// The contents to copy into the allocation.
    pub Buffer: *mut c_void,
    /// A cookie the free checks.
    pub Cookie: ULONG_PTR,
    /// `SECURE_POOL_FLAGS_*`.
    pub SecurePoolFlags: ULONG,
}

/// The value of a [`POOL_EXTENDED_PARAMETER`], by its `Type` (`DUMMYUNIONNAME`, bindgen's
/// `__bindgen_anon_2`).
#[repr(C)]
#[derive(Clone, Copy)]
pub union POOL_EXTENDED_PARAMETER_VALUE {
    /// Reserved.
    pub Reserved2: u64,
    /// Reserved.
    pub Reserved3: *mut c_void,
    /// For [`PoolExtendedParameterPriority`].
    pub Priority: EX_POOL_PRIORITY,
    /// For [`PoolExtendedParameterSecurePool`].
    pub SecurePoolParams: *mut POOL_EXTENDED_PARAMS_SECURE_POOL,
    /// For [`PoolExtendedParameterNumaNode`]: a node index from 0 to N-1, with [`MM_ANY_NODE_OK`] or
    /// not. Non-paged allocations only.
    pub PreferredNode: POOL_NODE_REQUIREMENT,
}

/// `POOL_EXTENDED_PARAMETER`: one extended parameter of `ExAllocatePool3`. 16 bytes, 8-byte aligned:
/// a `ULONG64` of bit fields (`Type`: 8 bits, `Optional`: 1 bit, `Reserved`: 55 bits, from the least
/// significant bit on), then the value.
///
/// ```
/// use ntpool_sys::{self as sys, POOL_EXTENDED_PARAMETER};
/// assert_eq!((core::mem::size_of::<POOL_EXTENDED_PARAMETER>(), core::mem::align_of::<POOL_EXTENDED_PARAMETER>()), (16, 8));
/// assert_eq!(core::mem::offset_of!(POOL_EXTENDED_PARAMETER, Value), 8);
/// let low = POOL_EXTENDED_PARAMETER::priority(sys::LowPoolPriority);
/// assert_eq!((low.Type(), low.Optional()), (sys::PoolExtendedParameterPriority, false));
/// let node = POOL_EXTENDED_PARAMETER::numa_node(1 | sys::MM_ANY_NODE_OK);
/// assert_eq!(node.Header, 3);
/// // SAFETY: a NUMA node parameter holds `PreferredNode`.
/// assert_eq!(unsafe { node.Value.PreferredNode }, 0x8000_0001);
/// ```
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct POOL_EXTENDED_PARAMETER {
    /// The bit fields (`DUMMYSTRUCTNAME`, bindgen's `__bindgen_anon_1`): `Type`, `Optional`,
    /// `Reserved`. Read them with [`Type`](Self::Type) and [`Optional`](Self::Optional).
    pub Header: u64,
    /// The value, by `Type`.
    pub Value: POOL_EXTENDED_PARAMETER_VALUE,
}

impl POOL_EXTENDED_PARAMETER {
    /// A parameter of type `kind` with `value`, required unless `optional`.
    pub const fn new(kind: POOL_EXTENDED_PARAMETER_TYPE, optional: bool, value: POOL_EXTENDED_PARAMETER_VALUE) -> Self {
        let header = (kind as u64 & ((1 << POOL_EXTENDED_PARAMETER_TYPE_BITS) - 1))
            | ((optional as u64) << POOL_EXTENDED_PARAMETER_TYPE_BITS);
        POOL_EXTENDED_PARAMETER { Header: header, Value: value }
    }

    /// A required [`PoolExtendedParameterPriority`] parameter.
    pub const fn priority(priority: EX_POOL_PRIORITY) -> Self {
        Self::new(PoolExtendedParameterPriority, false, POOL_EXTENDED_PARAMETER_VALUE { Priority: priority })
    }

    /// A required [`PoolExtendedParameterNumaNode`] parameter (`node` with [`MM_ANY_NODE_OK`] or not).
    pub const fn numa_node(node: POOL_NODE_REQUIREMENT) -> Self {
        Self::new(PoolExtendedParameterNumaNode, false, POOL_EXTENDED_PARAMETER_VALUE { PreferredNode: node })
    }

    /// The `Type` bit field.
    pub const fn Type(&self) -> POOL_EXTENDED_PARAMETER_TYPE {
        (self.Header & ((1 << POOL_EXTENDED_PARAMETER_TYPE_BITS) - 1)) as POOL_EXTENDED_PARAMETER_TYPE
    }

    /// The `Optional` bit field: a parameter the allocator may ignore.
    pub const fn Optional(&self) -> bool {
        self.Header >> POOL_EXTENDED_PARAMETER_TYPE_BITS & 1 == 1
    }
}

impl core::fmt::Debug for POOL_EXTENDED_PARAMETER {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: every bit pattern of the union's 8 bytes is a valid `u64`.
        let value = unsafe { self.Value.Reserved2 };
        f.debug_struct("POOL_EXTENDED_PARAMETER")
            .field("Type", &self.Type())
            .field("Optional", &self.Optional())
            .field("Value", &format_args!("{value:#x}"))
            .finish()
    }
}

/// The parameters at `parameters`, `count` of them.
///
/// # Safety
/// `parameters` points to `count` readable parameters (any pointer when `count` is 0).
pub(crate) unsafe fn pool3_parameters<'a>(
    parameters: *const POOL_EXTENDED_PARAMETER,
    count: ULONG,
) -> &'a [POOL_EXTENDED_PARAMETER] {
    if count == 0 || parameters.is_null() {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { core::slice::from_raw_parts(parameters, count as usize) }
}

/// Whether `ExAllocatePool2` may stand in for `ExAllocatePool3` with `parameters`, dropping them: when
/// each is a priority, a NUMA node, or optional. What is lost: the priority (a low-priority request is
/// served as an ordinary one when memory runs low, instead of failing first) and the node (the block
/// may come from any node, even when the node was required). Secure pool, and any required parameter
/// of another type, cannot be dropped: the request fails instead.
///
/// ```
/// use ntpool_sys::{self as sys, POOL_EXTENDED_PARAMETER, POOL_EXTENDED_PARAMETER_VALUE, pool3_fallback_allowed};
/// assert!(pool3_fallback_allowed(&[POOL_EXTENDED_PARAMETER::priority(sys::LowPoolPriority), POOL_EXTENDED_PARAMETER::numa_node(0)]));
/// let secure = POOL_EXTENDED_PARAMETER::new(sys::PoolExtendedParameterSecurePool, false, POOL_EXTENDED_PARAMETER_VALUE { Reserved2: 0 });
/// assert!(!pool3_fallback_allowed(&[secure]));
/// ```
pub fn pool3_fallback_allowed(parameters: &[POOL_EXTENDED_PARAMETER]) -> bool {
    parameters.iter().all(|parameter| {
        parameter.Optional()
            || matches!(parameter.Type(), PoolExtendedParameterPriority | PoolExtendedParameterNumaNode)
    })
}

/// Whether a kernel that exports `ExAllocatePool3` and has `numa_nodes` NUMA nodes accepts
/// `parameters` for an allocation with `flags`, as its documentation describes it: a required
/// parameter must be of a type it knows, with a valid value: a priority among the `EX_POOL_PRIORITY`
/// values; a node below `numa_nodes` (or any node with [`MM_ANY_NODE_OK`]) for non-paged pool only;
/// secure pool is not offered (ntpool does not use it). An optional parameter that does not fit is
/// ignored.
///
/// ```
/// use ntpool_sys::{self as sys, POOL_EXTENDED_PARAMETER as P, pool3_parameters_valid};
/// let flags = sys::POOL_FLAG_NON_PAGED;
/// assert!(pool3_parameters_valid(flags, &[P::priority(sys::HighPoolPriority), P::numa_node(0)], 1));
/// assert!(pool3_parameters_valid(flags, &[P::numa_node(5 | sys::MM_ANY_NODE_OK)], 1));
/// assert!(!pool3_parameters_valid(flags, &[P::numa_node(5)], 1));
/// assert!(!pool3_parameters_valid(sys::POOL_FLAG_PAGED, &[P::numa_node(0)], 1));
/// assert!(!pool3_parameters_valid(flags, &[P::priority(7)], 1));
/// ```
pub fn pool3_parameters_valid(flags: POOL_FLAGS, parameters: &[POOL_EXTENDED_PARAMETER], numa_nodes: u32) -> bool {
    parameters.iter().all(|parameter| {
        // SAFETY: every variant of the union is 8 bytes or less of plain data, and reading the one
        // `Type` names is what the kernel does; any bit pattern is a valid integer.
        let priority = unsafe { parameter.Value.Priority };
        // SAFETY: as above.
        let node = unsafe { parameter.Value.PreferredNode };
        let valid = match parameter.Type() {
            PoolExtendedParameterPriority => matches!(
                priority,
                LowPoolPriority
                    | LowPoolPrioritySpecialPoolOverrun
                    | LowPoolPrioritySpecialPoolUnderrun
                    | NormalPoolPriority
                    | NormalPoolPrioritySpecialPoolOverrun
                    | NormalPoolPrioritySpecialPoolUnderrun
                    | HighPoolPriority
                    | HighPoolPrioritySpecialPoolOverrun
                    | HighPoolPrioritySpecialPoolUnderrun
            ),
            PoolExtendedParameterNumaNode => {
                flags & POOL_FLAG_NON_PAGED != 0 && (node & MM_ANY_NODE_OK != 0 || node < numa_nodes)
            }
            _ => false,
        };
        valid || parameter.Optional()
    })
}

/// `ExAllocatePool3`'s contract on a kernel that lacks it: `ExAllocatePool2` without the parameters
/// when [`pool3_fallback_allowed`], else NULL. `allocate_pool2` is the kernel's `ExAllocatePool2`
/// (which itself falls back to `ExAllocatePoolWithTag` where it is missing). Both kernels use this.
///
/// # Safety
/// As for `ExAllocatePool3`; `parameters` points to `count` readable parameters.
#[inline(always)]
pub(crate) unsafe fn allocate_pool3_with_pool2(
    parameters: *const POOL_EXTENDED_PARAMETER,
    count: ULONG,
    allocate_pool2: impl FnOnce() -> super::PVOID,
) -> super::PVOID {
    // SAFETY: forwarded.
    let parameters = unsafe { pool3_parameters(parameters, count) };
    if pool3_fallback_allowed(parameters) { allocate_pool2() } else { core::ptr::null_mut() }
}

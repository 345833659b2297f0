//! The pool: allocation (`ExAllocatePool2`, `ExAllocatePoolWithTag`, the quota form and
//! `VideoPortAllocatePool`'s) and free, each checked as Driver Verifier checks it, recorded in the
//! kernel's bookkeeping ([`table`](super::table)) and served from the host's heap, or from pages of
//! their own for special pool and Force IRQL Checking ([`pages`](super::pages)).
#![allow(non_snake_case)]

use std::panic::Location;
use std::sync::atomic::Ordering;

use super::caller::return_address_of_call_to;
use super::checks::{self, Check};
use super::memory::{back, fill, fill_overrun_zone};
use super::reports::PoolKind;
use super::shards::Shard;
use super::state::{State, with_current, with_current_shard};
use super::table::{Memory, NewBlock, Pool};
use super::thread::{IDLE_PROCESS, current_irql, current_process, in_dpc};
use crate::{APC_LEVEL, DISPATCH_LEVEL, POOL_FLAGS, POOL_TYPE, PVOID, SIZE_T, ULONG};

pub(crate) use super::free::free_pool;

/// Bytes a freed block is filled with while it sits in quarantine.
pub(crate) const FREED_FILL: u8 = 0xFE;

pub(crate) fn exports_ex_allocate_pool2() -> bool {
    with_current(|state| state.config.ex_allocate_pool2)
}

pub(crate) fn exports_ex_allocate_pool3() -> bool {
    with_current(|state| state.config.ex_allocate_pool2 && state.config.ex_allocate_pool3)
}

/// What an allocation request asks for, in the terms both allocation routines share.
struct Request {
    kind: PoolKind,
    pool_type: POOL_TYPE,
    size: usize,
    tag: ULONG,
    cache_aligned: bool,
    zeroed: bool,
    routine: &'static str,
    /// Charge the current process's quota.
    quota: bool,
}

/// The entry functions of the allocation routines (never inlined, not generic): the caller's address
/// that bug checks report is where a call to one of them returns to ([`caller`](super::caller)).
fn entries() -> [usize; 4] {
    #[cfg(feature = "videoport")]
    let videoport = videoport_allocate_pool as *const () as usize;
    #[cfg(not(feature = "videoport"))]
    let videoport = allocate_pool2 as *const () as usize;
    [
        allocate_pool2 as *const () as usize,
        allocate_pool_with_tag as *const () as usize,
        allocate_pool_with_quota_tag as *const () as usize,
        videoport,
    ]
}

/// The caller's address of bug checks 0xC2 / 0x9B, 0x9D and 0xC4 / 0x2000: the return address of
/// the driver's call into the kernel (0 where the emulation cannot find it).
fn callers_address() -> u64 {
    return_address_of_call_to(&entries())
}

/// `STATUS_QUOTA_EXCEEDED`, the exception the raising form of `ExAllocatePoolWithQuotaTag` raises
/// when the process's quota is used up.
const STATUS_QUOTA_EXCEEDED: u64 = 0xC000_0044;
/// `STATUS_INSUFFICIENT_RESOURCES`, the exception it raises when the pool itself cannot serve it.
const STATUS_INSUFFICIENT_RESOURCES: u64 = 0xC000_009A;

/// An exception raised by an allocation routine that no handler catches (Rust code has none):
/// bug check 0x1E, with the routine's entry as the address the exception occurred at and no
/// exception parameters.
fn unhandled_exception(state: &State, check: &Check, exception: u64, routine: usize) {
    checks::raise(state, check, [exception, routine as u64, 0, 0]);
}

/// `ExAllocatePool2`'s flags in the terms of a request, worked out where the call is made (inline:
/// a call with constant flags, as ntpool's are, hands over constants): the pool type in bits 0-31
/// of `bits`, then one bit each for a cache-aligned block, a zeroed block, a quota charge,
/// `POOL_FLAG_RAISE_ON_FAILURE`, and flags the kernel refuses; and the pool.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pool2Flags {
    bits: u64,
    kind: PoolKind,
}

impl Pool2Flags {
    const CACHE_ALIGNED: u64 = 1 << 40;
    const ZEROED: u64 = 1 << 41;
    const QUOTA: u64 = 1 << 42;
    const RAISE: u64 = 1 << 43;
    const REFUSED: u64 = 1 << 44;

    #[inline(always)]
    pub(crate) const fn of(flags: POOL_FLAGS) -> Self {
        let raise = if flags & crate::POOL_FLAG_RAISE_ON_FAILURE != 0 { Self::RAISE } else { 0 };
        let pool_type =
            crate::pool_type_for_flags(flags & !(crate::POOL_FLAG_USE_QUOTA | crate::POOL_FLAG_RAISE_ON_FAILURE));
        let unknown = flags & crate::POOL_FLAG_REQUIRED_MASK & !crate::POOL_FLAG_REQUIRED_KNOWN;
        let pool_type = match (pool_type, unknown) {
            (Some(pool_type), 0) => pool_type,
            // No pool, two pools, or a required flag this kernel does not know: the call fails.
            _ => return Pool2Flags { bits: Self::REFUSED | raise, kind: PoolKind::NonPaged },
        };
        // Exactly one pool's flag is set (`pool_type_for_flags` made sure).
        let kind = if flags & crate::POOL_FLAG_PAGED != 0 {
            PoolKind::Paged
        } else if flags & crate::POOL_FLAG_NON_PAGED_EXECUTE != 0 {
            PoolKind::NonPagedExecute
        } else {
            PoolKind::NonPaged
        };
        let mut bits = pool_type as u32 as u64 | raise;
        if flags & crate::POOL_FLAG_CACHE_ALIGNED != 0 {
            bits |= Self::CACHE_ALIGNED;
        }
        if flags & crate::POOL_FLAG_UNINITIALIZED == 0 {
            bits |= Self::ZEROED;
        }
        if flags & crate::POOL_FLAG_USE_QUOTA != 0 {
            bits |= Self::QUOTA;
        }
        Pool2Flags { bits, kind }
    }

    #[inline(always)]
    fn has(self, bit: u64) -> bool {
        self.bits & bit != 0
    }
}

/// `ExAllocatePool2`, with its flags decoded by the caller ([`Pool2Flags::of`]); `None` when the
/// kernel does not export it (the caller then takes the fallback).
#[inline(never)]
pub(crate) fn allocate_pool2(
    flags: Pool2Flags,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> Option<PVOID> {
    with_current_shard(|state, shard| {
        if !state.config.ex_allocate_pool2 {
            return None;
        }
        let block = allocate_pool2_decoded(state, shard, flags, size, tag, site, "ExAllocatePool2");
        if block.is_null() && flags.has(Pool2Flags::RAISE) {
            // https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2: with
            // POOL_FLAG_RAISE_ON_FAILURE, a failure (no memory, tag 0, invalid flags) raises.
            let check = &checks::RAISE_ON_FAILURE_NOT_HANDLED;
            unhandled_exception(state, check, STATUS_INSUFFICIENT_RESOURCES, allocate_pool2 as *const () as usize);
        }
        Some(block)
    })
}

/// `ExAllocatePool2`'s work (or `ExAllocatePool3`'s, `routine`), on `state`, without the raise of
/// `POOL_FLAG_RAISE_ON_FAILURE`.
#[inline(always)]
fn allocate_pool2_decoded(
    state: &State,
    shard: &Shard,
    flags: Pool2Flags,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
    routine: &'static str,
) -> PVOID {
    // Without Driver Verifier a tag of 0 fails the call (with it, the checks bug-check).
    if flags.has(Pool2Flags::REFUSED) || (!state.config.verifier && tag == 0) {
        return core::ptr::null_mut();
    }
    let request = Request {
        kind: flags.kind,
        pool_type: flags.bits as u32 as POOL_TYPE,
        size: size as usize,
        tag,
        cache_aligned: flags.has(Pool2Flags::CACHE_ALIGNED),
        zeroed: flags.has(Pool2Flags::ZEROED),
        routine,
        quota: flags.has(Pool2Flags::QUOTA),
    };
    allocate_on(state, shard, request, site)
}

#[inline(never)]
pub(crate) fn allocate_pool_with_tag(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    // POOL_RAISE_IF_ALLOCATION_FAILURE: a failure raises STATUS_INSUFFICIENT_RESOURCES instead of
    // returning NULL (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/ne-wdm-_pool_type).
    let raise = pool_type & crate::POOL_RAISE_IF_ALLOCATION_FAILURE != 0;
    let block =
        allocate_legacy(pool_type & !crate::POOL_RAISE_IF_ALLOCATION_FAILURE, size, tag, site, "ExAllocatePoolWithTag");
    if block.is_null() && raise {
        let routine = allocate_pool_with_tag as *const () as usize;
        with_current(|state| {
            unhandled_exception(state, &checks::LEGACY_RAISE_NOT_HANDLED, STATUS_INSUFFICIENT_RESOURCES, routine)
        });
    }
    block
}

/// `VideoPortAllocatePool`: `videoprt.sys` hands the `VP_POOL_TYPE` (whose values are the
/// `POOL_TYPE` values of the same pools) to `ExAllocatePoolWithTag`; the block is recorded under the
/// miniport's call.
#[cfg(feature = "videoport")]
#[inline(never)]
pub(crate) fn videoport_allocate_pool(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    allocate_legacy(pool_type, size, tag, site, "VideoPortAllocatePool")
}

/// `NonPagedPoolMustSucceed`: bug check 0xC2 / 0x9A (pool type, bytes, tag), Driver Verifier or not.
fn must_succeed(state: &State, pool_type: POOL_TYPE, size: SIZE_T, tag: ULONG) {
    checks::raise(state, &checks::MUST_SUCCEED_POOL, [0x9A, pool_type as u64, size, tag.into()]);
}

/// An allocation by `POOL_TYPE`, as `ExAllocatePoolWithTag` makes it, on behalf of `routine`.
fn allocate_legacy(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
    routine: &'static str,
) -> PVOID {
    with_current(|state| {
        if pool_type == crate::NonPagedPoolMustSucceed {
            must_succeed(state, pool_type, size, tag);
            return core::ptr::null_mut();
        }
        let Some(request) = legacy_request(pool_type, size, tag, routine, false) else {
            return core::ptr::null_mut();
        };
        allocate(state, request, site)
    })
}

/// The request `ExAllocatePoolWithTag` (or its quota form, `quota`) makes of a `POOL_TYPE`, on behalf
/// of `routine`; `None` for a type it does not take, which fails the call (among them
/// `NonPagedPoolCacheAlignedMustS`, 6).
fn legacy_request(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    routine: &'static str,
    quota: bool,
) -> Option<Request> {
    let base_type = pool_type & !(0x200 | 4);
    if !(0..=1).contains(&base_type) || pool_type & !(0x200 | 4 | 1) != 0 {
        return None;
    }
    Some(Request {
        kind: PoolKind::of_pool_type(pool_type, pool_type & 0x201 == 0),
        pool_type,
        size: size as usize,
        tag,
        cache_aligned: pool_type & 4 != 0,
        zeroed: false,
        routine,
        quota,
    })
}

/// `ExAllocatePoolWithQuotaTag`: as `ExAllocatePoolWithTag`, charged to the current process. With
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` a failure is NULL; without it, the routine raises an exception,
/// which Rust code cannot catch: bug check 0x1E (`KMODE_EXCEPTION_NOT_HANDLED`).
#[inline(never)]
pub(crate) fn allocate_pool_with_quota_tag(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    with_current(|state| allocate_with_quota_in(state, pool_type, size, tag, site))
}

fn allocate_with_quota_in(
    state: &State,
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    let raise = pool_type & crate::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE == 0;
    let pool_type = pool_type & !crate::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
    if pool_type == crate::NonPagedPoolMustSucceed {
        must_succeed(state, pool_type, size, tag);
        return core::ptr::null_mut();
    }
    let Some(request) = legacy_request(pool_type, size, tag, "ExAllocatePoolWithQuotaTag", true) else {
        return core::ptr::null_mut();
    };
    // Which exception the raising form raises: the quota's, or the pool's own failure.
    let over_quota = !charge_fits(state, current_process(), size as usize);
    let block = allocate(state, request, site);
    if block.is_null() && raise {
        let exception = if over_quota { STATUS_QUOTA_EXCEEDED } else { STATUS_INSUFFICIENT_RESOURCES };
        let routine = allocate_pool_with_quota_tag as *const () as usize;
        unhandled_exception(state, &checks::QUOTA_EXCEPTION_NOT_HANDLED, exception, routine);
    }
    block
}

/// The checks of a request, in the order Windows makes them; the bug check of the first that fails.
#[inline(always)]
fn check_request(state: &State, request: &Request) -> Option<(&'static Check, [u64; 4])> {
    let irql = current_irql();
    let verifier = state.config.verifier;
    let Request { kind, pool_type, size, tag, .. } = *request;
    let (pool_type, size) = (pool_type as u64, size as u64);
    let max_irql = if kind == PoolKind::Paged { APC_LEVEL } else { DISPATCH_LEVEL };
    if irql > max_irql {
        return Some(match (verifier, kind == PoolKind::Paged) {
            (true, true) => (&checks::PAGED_ALLOCATION_ABOVE_APC, [0x01, irql.into(), pool_type, size]),
            (true, false) => (&checks::NON_PAGED_ALLOCATION_ABOVE_DISPATCH, [0x02, irql.into(), pool_type, size]),
            (false, _) => (&checks::BAD_POOL_CALLER_ALLOCATION_IRQL, [0x08, irql.into(), pool_type, size]),
        });
    }
    if size == 0 {
        return Some(if verifier {
            (&checks::ZERO_BYTE_ALLOCATION, [0x00, irql.into(), pool_type, 0])
        } else {
            (&checks::BAD_POOL_CALLER_ZERO_BYTES, [0x00, 0, pool_type, tag.into()])
        });
    }
    if !verifier {
        return None;
    }
    if tag == 0 {
        return Some((&checks::TAG_ZERO, [0x9B, pool_type, size, callers_address()]));
    }
    if !tag_has_letter_or_digit(tag) {
        return Some((&checks::TAG_WITHOUT_LETTER_OR_DIGIT, [0x9D, tag.into(), pool_type, callers_address()]));
    }
    if kind == PoolKind::NonPagedExecute && state.config.code_integrity() {
        return Some((&checks::EXECUTABLE_POOL, [0x2000, callers_address(), pool_type, tag.into()]));
    }
    if request.quota && current_process() == IDLE_PROCESS {
        return Some((&checks::QUOTA_CHARGED_TO_IDLE, [0x10A, 0, 0, 0]));
    }
    if request.quota && in_dpc() {
        return Some((&checks::QUOTA_CHARGED_FROM_DPC, [0x10B, 0, 0, 0]));
    }
    None
}

/// Whether each byte is an ASCII letter or digit.
static ALPHANUMERIC: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    table
};

/// [`crate::tag_has_letter_or_digit`], with the common case (the first byte is one) a table lookup.
#[inline(always)]
fn tag_has_letter_or_digit(tag: ULONG) -> bool {
    ALPHANUMERIC[(tag & 0xFF) as usize] || crate::tag_has_letter_or_digit(tag)
}

/// Raises the bug check of a request that fails its checks; the request fails.
#[cold]
#[inline(never)]
fn refuse(state: &State, check: &Check, parameters: [u64; 4]) -> PVOID {
    checks::raise(state, check, parameters);
    core::ptr::null_mut()
}

/// Serves a request on the calling thread's shard ([`allocate_on`]).
#[inline(always)]
fn allocate(state: &State, request: Request, site: &'static Location<'static>) -> PVOID {
    allocate_on(state, state.shard(), request, site)
}

/// Serves a request: checked, counted (its site), recorded in `shard` (the calling thread's), and
/// filled (zeroes, or the uninitialized fill; pool tracking's overrun zone after it).
#[inline(always)]
fn allocate_on(state: &State, shard: &Shard, request: Request, site: &'static Location<'static>) -> PVOID {
    if let Some((check, parameters)) = check_request(state, &request) {
        return refuse(state, check, parameters);
    }
    let Request { kind, pool_type, size, tag, .. } = request;
    if state.hot.simulated && simulated_failure(state, shard, site, request.routine) {
        return core::ptr::null_mut();
    }
    let charged = request.quota;
    if charged && !charge_fits(state, current_process(), size) {
        shard.lock().unsited_calls += 1;
        return core::ptr::null_mut();
    }
    let mut pool = shard.lock();
    let Some((block, reserved)) = back(state, &mut pool, size, tag, kind, request.cache_aligned) else {
        pool.unsited_calls += 1;
        return core::ptr::null_mut();
    };
    if request.zeroed {
        // SAFETY: `block` is valid for `size` bytes.
        unsafe { fill(block, 0, size) };
    } else {
        // SAFETY: as above.
        unsafe { fill(block, state.config.uninitialized_fill, size) };
    }
    let address = block as usize;
    if Pool::reserved_backing(&reserved).1 == Memory::Heap && state.hot.tracking {
        // SAFETY: `back` made the host block reach past the zone; the bytes belong to no one.
        unsafe { fill_overrun_zone(address, size) };
    }
    let origin = pool.count(site, request.routine, false);
    if charged {
        charge(state, address, kind, size);
    }
    pool.insert(reserved, NewBlock { address, size, origin, charged, tag, pool_type, kind });
    block.cast()
}

/// Driver Verifier's low resources simulation and systematic failures
/// ([`KernelBuilder::fail_allocation`](super::KernelBuilder::fail_allocation)): whether this request
/// fails. The requests are numbered across the kernel's threads (one counter every thread writes,
/// only in these configurations).
#[cold]
#[inline(never)]
fn simulated_failure(state: &State, shard: &Shard, site: &'static Location<'static>, routine: &'static str) -> bool {
    let call = state.numbered_calls.fetch_add(1, Ordering::SeqCst) + 1;
    let failed = state.config.fail_allocation == Some(call)
        || state.config.low_resources.is_some_and(|(_, percent)| state.next_random() % 100 < u64::from(percent));
    if failed {
        shard.lock().count(site, routine, true);
    }
    failed
}

/// Whether `size` more bytes fit in `process`'s pool quota.
fn charge_fits(state: &State, process: u64, size: usize) -> bool {
    let Some(limit) = state.config.process_quota else { return true };
    let (paged, non_paged) = state.quota_charges().processes.get(&process).copied().unwrap_or_default();
    paged + non_paged + size as u64 <= limit
}

/// Charges the block of `size` bytes of pool `kind` at `address` to the current process.
#[cold]
#[inline(never)]
fn charge(state: &State, address: usize, kind: PoolKind, size: usize) {
    let process = current_process();
    let mut quota = state.quota_charges();
    quota.blocks.insert(address, process);
    let charge = quota.processes.entry(process).or_default();
    *if kind == PoolKind::Paged { &mut charge.0 } else { &mut charge.1 } += size as u64;
}

/// Whether allocations go to `ExAllocatePool2` (true) or to the `ExAllocatePoolWithTag` fallback
/// (false); on the emulated kernel, as configured with
/// [`KernelBuilder::ex_allocate_pool2`](super::KernelBuilder::ex_allocate_pool2).
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// assert!(Kernel::new().run(ntpool_sys::uses_ex_allocate_pool2));
/// let old_windows = Kernel::builder().ex_allocate_pool2(false).build();
/// assert!(!old_windows.run(ntpool_sys::uses_ex_allocate_pool2));
/// ```
pub fn uses_ex_allocate_pool2() -> bool {
    exports_ex_allocate_pool2()
}

/// `ExAllocatePool2`, or its fallback through `ExAllocatePoolWithTag` where the emulated kernel is
/// configured as a Windows version that lacks it.
///
/// # Safety
/// As for `ExAllocatePool2`. The emulated kernel checks the IRQL and the arguments and bug-checks
/// as Driver Verifier does.
///
/// ```
/// use ntpool_sys as sys;
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let tag = u32::from_le_bytes(*b"Doc1");
/// // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
/// let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 16, tag) };
/// assert!(!p.is_null());
/// // SAFETY: `p` points to 16 bytes that ExAllocatePool2 zeroed (no POOL_FLAG_UNINITIALIZED).
/// assert_eq!(unsafe { p.cast::<[u8; 16]>().read() }, [0; 16]);
/// // SAFETY: `p` came from ExAllocatePool2 with this tag and is not used afterwards.
/// unsafe { sys::ExFreePoolWithTag(p, tag) };
/// # });
/// ```
#[track_caller]
#[inline(always)]
pub unsafe fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    let site = core::panic::Location::caller();
    if let Some(block) = allocate_pool2(Pool2Flags::of(Flags), NumberOfBytes, Tag, site) {
        return block;
    }
    // SAFETY: forwarded contract; the same fallback as on the real kernel.
    unsafe {
        crate::allocate_pool2_with_legacy_routine(
            Flags,
            NumberOfBytes,
            Tag,
            |pool_type, size, tag| allocate_pool_with_tag(pool_type, size, tag, site),
            |pool_type, size, tag| allocate_pool_with_quota_tag(pool_type, size, tag, site),
        )
    }
}

/// Whether [`ExAllocatePool3`] goes to the kernel's `ExAllocatePool3` (true) or to `ExAllocatePool2`
/// without the extended parameters (false); on the emulated kernel, as configured with
/// [`KernelBuilder::ex_allocate_pool3`](super::KernelBuilder::ex_allocate_pool3) (and
/// [`ex_allocate_pool2`](super::KernelBuilder::ex_allocate_pool2): a kernel without `ExAllocatePool2`
/// has no `ExAllocatePool3` either).
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// assert!(Kernel::new().run(ntpool_sys::uses_ex_allocate_pool3));
/// assert!(!Kernel::builder().ex_allocate_pool2(false).build().run(ntpool_sys::uses_ex_allocate_pool3));
/// ```
pub fn uses_ex_allocate_pool3() -> bool {
    exports_ex_allocate_pool3()
}

/// `ExAllocatePool3`: the parameters checked as the kernel checks them
/// ([`pool3_parameters_valid`](crate::pool3_parameters_valid), one NUMA node), then the block
/// allocated and checked as `ExAllocatePool2`'s is, and recorded under `ExAllocatePool3`. Where the
/// emulated kernel is configured without it, `ExAllocatePool2` without the parameters, as on the
/// real kernel.
///
/// # Safety
/// As for `ExAllocatePool3`.
///
/// ```
/// use ntpool_sys::{self as sys, emulated::Kernel, POOL_EXTENDED_PARAMETER as Parameter};
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     let parameters = [Parameter::priority(sys::LowPoolPriority), Parameter::numa_node(0)];
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePool3(sys::POOL_FLAG_NON_PAGED, 16, tag, parameters.as_ptr(), 2) };
///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePool3");
///     // SAFETY: `p` came from ExAllocatePool3 with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
pub unsafe fn ExAllocatePool3(
    Flags: POOL_FLAGS,
    NumberOfBytes: SIZE_T,
    Tag: ULONG,
    ExtendedParameters: *const crate::POOL_EXTENDED_PARAMETER,
    ExtendedParametersCount: ULONG,
) -> PVOID {
    let site = core::panic::Location::caller();
    if !exports_ex_allocate_pool3() {
        let allocate_pool2 = || {
            // SAFETY: the caller upholds ExAllocatePool3's contract, which includes ExAllocatePool2's.
            unsafe { ExAllocatePool2(Flags, NumberOfBytes, Tag) }
        };
        // SAFETY: forwarded contract; the same fallback as on the real kernel.
        return unsafe {
            crate::allocate_pool3_with_pool2(ExtendedParameters, ExtendedParametersCount, allocate_pool2)
        };
    }
    // SAFETY: the caller passes `ExtendedParametersCount` readable parameters.
    let parameters = unsafe { crate::pool3_parameters(ExtendedParameters, ExtendedParametersCount) };
    if !crate::pool3_parameters_valid(Flags, parameters, 1) {
        return core::ptr::null_mut();
    }
    with_current_shard(|state, shard| {
        allocate_pool2_decoded(state, shard, Pool2Flags::of(Flags), NumberOfBytes, Tag, site, "ExAllocatePool3")
    })
}

/// `ExAllocatePoolWithTag`.
///
/// # Safety
/// As for `ExAllocatePoolWithTag`.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, 32, tag) };
///     assert!(!p.is_null());
///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePoolWithTag");
///     // SAFETY: `p` came from ExAllocatePoolWithTag with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
#[inline(always)]
pub unsafe fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    allocate_pool_with_tag(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

/// `ExFreePoolWithTag`.
///
/// # Safety
/// As for `ExFreePoolWithTag`. The emulated kernel bug-checks on a wrong tag, an unknown address,
/// a double free or a bad IRQL, and never touches memory it did not hand out.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, tag) };
///     assert_eq!(kernel.outstanding().len(), 1);
///     // SAFETY: `p` came from ExAllocatePool2 with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert!(kernel.outstanding().is_empty());
/// assert_eq!(kernel.pool_usage().rows[0].frees, 1);
/// ```
pub unsafe fn ExFreePoolWithTag(P: PVOID, Tag: ULONG) {
    super::free::free_pool(P, Some(Tag));
}

/// `ExFreePool`.
///
/// # Safety
/// As for `ExFreePool`.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below.
///     let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, u32::from_le_bytes(*b"Doc1")) };
///     // SAFETY: `p` came from ExAllocatePool2, is not protected, and is not used afterwards.
///     unsafe { sys::ExFreePool(p) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
pub unsafe fn ExFreePool(P: PVOID) {
    super::free::free_pool(P, None);
}

/// `ExAllocatePoolWithQuotaTag`: as `ExAllocatePoolWithTag`, charged to the current process's pool
/// quota ([`in_process`](super::in_process) picks the process). With
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` in `PoolType` a failure returns NULL; without it the emulated
/// routine raises, which no Rust code catches: bug check 0x1E.
///
/// # Safety
/// As for `ExAllocatePoolWithQuotaTag`.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     let pool_type = sys::PagedPool | sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePoolWithQuotaTag(pool_type, 32, tag) };
///     assert_eq!(kernel.quota_charges()[0].paged, 32);
///     // SAFETY: `p` came from ExAllocatePoolWithQuotaTag with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert_eq!(kernel.quota_charges()[0].paged, 0);
/// ```
#[track_caller]
#[inline(always)]
pub unsafe fn ExAllocatePoolWithQuotaTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    allocate_pool_with_quota_tag(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

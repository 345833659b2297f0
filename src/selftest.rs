//! The self-test `DriverEntry` runs: every part of ntpool's API, once, in the real kernel (or Wine,
//! or the emulated kernel). Each failed check is reported with `DbgPrint` and fails `DriverEntry`.
//!
//! The self-test records the IRQL it observed inside each region instead of insisting on it: Wine
//! does not emulate IRQL (CR8 always reads 0). The host tests assert the observed levels.

use allocator_api2::vec::Vec;
use ntpool::{
    Alloc, AllocError, AnyIrql, CacheAligned, CurrentIrql, NonPagedBox, NonPagedPool, NonPagedPoolExecute, PagedBox,
    PagedPool, Passive, PoolAllocator, PoolBox, PoolTag, SpinLock, Tag, Zeroable, sys::KIRQL,
};

use crate::kernel::{NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_UNSUCCESSFUL};

ntpool::pool_tag! {
    /// Blocks the self-test allocates and frees.
    pub struct TestTag = b"NpT1";
}
ntpool::pool_tag! {
    /// The self-test's vector.
    pub struct VecTag = b"NpT2";
}

/// What the self-test saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// Checks that passed.
    pub checks: u32,
    /// IRQL observed inside `raise_to_apc`.
    pub irql_in_apc_region: KIRQL,
    /// IRQL observed inside `raise_to_dispatch` nested in `raise_to_apc`.
    pub irql_in_nested_dispatch_region: KIRQL,
    /// IRQL observed inside a spin-locked region.
    pub irql_in_spin_lock: KIRQL,
}

#[repr(C, align(256))]
struct Aligned256([u8; 8]);

#[repr(C, align(64))]
struct CacheLine([u8; 24]);

#[derive(Zeroable)]
#[repr(C, align(4096))]
struct PageAligned(u64);

fn check(report: &mut Report, ok: bool, what: &str) -> Result<(), NTSTATUS> {
    if ok {
        report.checks += 1;
        Ok(())
    } else {
        crate::debug_print!("self-test check failed: {}", what);
        Err(STATUS_UNSUCCESSFUL)
    }
}

fn out_of_memory(_: AllocError) -> NTSTATUS {
    STATUS_INSUFFICIENT_RESOURCES
}

/// Allocates with whatever token the current IRQL allows: a helper of unknown IRQL, which its
/// callers hand their token as an [`AnyIrql`] ([`Passive::as_any_irql`] and its siblings).
/// `None` above `DISPATCH_LEVEL`, where nothing may be allocated.
fn runtime_checked_allocation(any: &mut AnyIrql) -> Result<Option<u8>, AllocError> {
    match any.current() {
        CurrentIrql::Passive(token) => NonPagedBox::<u8, TestTag>::try_new(&*token, 1).map(|b| Some(*b)),
        CurrentIrql::Apc(token) => NonPagedBox::<u8, TestTag>::try_new(&*token, 1).map(|b| Some(*b)),
        CurrentIrql::Dispatch(token) => NonPagedBox::<u8, TestTag>::try_new(&*token, 1).map(|b| Some(*b)),
        CurrentIrql::High(_) => Ok(None),
    }
}

/// Runs the self-test. Everything it allocates is freed before it returns, whatever happens.
pub fn run(passive: &mut Passive) -> Result<Report, NTSTATUS> {
    let mut report = Report::default();
    let r = &mut report;

    check(r, TestTag::TAG == PoolTag::new(*b"NpT1") && TestTag::TAG.to_bytes() == *b"NpT1", "tag round trip")?;

    let value = NonPagedBox::<u64, TestTag>::try_new(passive, 0x1234).map_err(out_of_memory)?;
    check(r, *value == 0x1234, "non-paged box value")?;
    drop(value);

    let zeroed = NonPagedBox::<[u8; 64], TestTag>::try_alloc_zeroed(passive, Alloc::new()).map_err(out_of_memory)?;
    check(r, zeroed.iter().all(|&b| b == 0), "zeroed allocation")?;

    let mut paged = PagedBox::<[u32; 4], TestTag>::try_new(passive, [1, 2, 3, 4]).map_err(out_of_memory)?;
    paged.get_mut(passive)[3] = 40;
    check(r, paged.get(passive).iter().sum::<u32>() == 46, "paged box through a token")?;

    let slice = PoolBox::<[u16], TestTag, PagedPool>::try_from_fn(passive, 100, |i| i as u16).map_err(out_of_memory)?;
    check(r, slice.get(passive).len() == 100 && slice.get(passive)[99] == 99, "paged slice")?;

    let aligned = NonPagedBox::<Aligned256, TestTag>::try_new(passive, Aligned256([7; 8])).map_err(out_of_memory)?;
    check(r, aligned.as_ptr() as usize % 256 == 0 && aligned.0[7] == 7, "256-byte alignment")?;
    // Made in place (zeroed), not on the stack: a 4 KiB value would need a stack probe.
    let mut page =
        NonPagedBox::<PageAligned, TestTag>::try_alloc_zeroed(passive, Alloc::new()).map_err(out_of_memory)?;
    page.0 = 9;
    check(r, page.as_ptr() as usize % 4096 == 0 && page.0 == 9, "page alignment")?;

    let cache = PoolBox::<CacheLine, TestTag, CacheAligned<NonPagedPool>>::try_new(passive, CacheLine([3; 24]))
        .map_err(out_of_memory)?;
    check(r, cache.as_ptr() as usize % 64 == 0 && cache.0[23] == 3, "cache-aligned pool")?;
    let exec =
        PoolBox::<[u8; 16], TestTag, NonPagedPoolExecute>::try_new(passive, [0xC3; 16]).map_err(out_of_memory)?;
    check(r, exec[0] == 0xC3, "executable non-paged pool")?;

    let unit = NonPagedBox::<(), TestTag>::try_new(passive, ()).map_err(out_of_memory)?;
    check(r, !unit.as_ptr().is_null(), "zero-sized value")?;

    let raw = NonPagedBox::into_raw(NonPagedBox::<u32, TestTag>::try_new(passive, 5).map_err(out_of_memory)?);
    // SAFETY: `raw` came from `into_raw` of a box of the same type, tag and pool.
    let back = unsafe { NonPagedBox::<u32, TestTag>::from_raw(raw) };
    check(r, *back == 5, "into_raw / from_raw")?;

    let mut vector = Vec::new_in(PoolAllocator::<VecTag, NonPagedPool>::new(passive));
    for i in 0..1000u32 {
        vector.try_reserve(1).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        vector.push(i);
    }
    check(
        r,
        vector.len() == 1000 && vector.iter().map(|&v| u64::from(v)).sum::<u64>() == 499_500,
        "allocator-api2 Vec growth",
    )?;

    // A non-paged block handed into a spin-locked region and freed there, at DISPATCH_LEVEL.
    let lock = SpinLock::new(0u32);
    let item = NonPagedBox::<u32, TestTag>::try_new(passive, 11).map_err(out_of_memory)?;
    let (seen, irql) = lock.with(passive, item, |_dispatch, counter, item| {
        *counter += *item;
        drop(item);
        (*counter, ntpool::sys::KeGetCurrentIrql())
    });
    r.irql_in_spin_lock = irql;
    check(r, seen == 11, "non-paged free inside a spin-locked region")?;

    // Nested raises: APC_LEVEL, then DISPATCH_LEVEL, with a paged box touched at APC_LEVEL only.
    let (apc_irql, dispatch_irql) = passive.raise_to_apc(|apc| {
        paged.get_mut(apc)[0] = 10;
        let at_apc = ntpool::sys::KeGetCurrentIrql();
        let at_dispatch = apc.raise_to_dispatch((), |_dispatch, ()| ntpool::sys::KeGetCurrentIrql());
        (at_apc, at_dispatch)
    });
    r.irql_in_apc_region = apc_irql;
    r.irql_in_nested_dispatch_region = dispatch_irql;
    check(r, paged.get(passive)[0] == 10, "paged box touched at APC_LEVEL")?;

    // A runtime-checked token, as a helper of unknown IRQL would use it.
    let runtime = runtime_checked_allocation(passive.as_any_irql()).map_err(out_of_memory)?;
    check(r, runtime == Some(1), "runtime-checked token")?;

    Ok(report)
}

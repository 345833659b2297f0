//! A WDM driver written with windows-drivers-rs (`wdk-sys`'s types, `wdk`'s `println!`, `wdk-panic`)
//! whose pool memory is ntpool's: tagged, IRQL-typed, freed with its tag. See
//! `docs/windows-drivers-rs.md` in the ntpool repository.
//!
//! `DriverEntry` and `DriverUnload` take and return `wdk-sys` types; where ntpool's API meets them,
//! [`convert`] turns one into the other (`PVOID`, `POOL_FLAGS`, `KSPIN_LOCK`, `NTSTATUS`, tags). Those
//! are the same `type` aliases in both crates (bindgen's for `wdk-sys`, ntpool's own for `ntpool::sys`),
//! so the conversions are identities the compiler checks, not casts.
#![no_std]

#[cfg(not(test))]
extern crate wdk_panic;

use core::sync::atomic::{AtomicPtr, Ordering};

use ntpool::{NonPagedBox, PagedBox, Passive, SpinLock};
use wdk_sys::{DRIVER_OBJECT, NTSTATUS, PCUNICODE_STRING, STATUS_SUCCESS};

/// `wdk-sys`, under the name `convert.rs` uses for it (the host test gives it a stand-in with the
/// same aliases).
use wdk_sys as wdk_types;

pub mod convert;

ntpool::pool_tag! {
    /// The driver's state.
    pub struct StateTag = b"WdSt";
}
ntpool::pool_tag! {
    /// A copy of the registry path.
    pub struct PathTag = b"WdRp";
}
ntpool::pool_tag! {
    /// `alloc`'s global allocator, which `wdk-alloc` would otherwise provide (with one tag for
    /// everything, and an import of `ExAllocatePool2` that keeps the driver from loading before
    /// Windows 10 2004).
    pub struct GlobalTag = b"WdGa";
}

#[global_allocator]
static GLOBAL: ntpool::GlobalPoolAllocator<GlobalTag> = ntpool::GlobalPoolAllocator::new();

/// What the driver keeps between `DriverEntry` and `DriverUnload`: non-paged, so that its counter can
/// be reached under the spin lock at `DISPATCH_LEVEL`.
struct State {
    requests: SpinLock<u64>,
    registry_path: PagedBox<[u16], PathTag>,
}

static STATE: AtomicPtr<State> = AtomicPtr::new(core::ptr::null_mut());

/// `DriverEntry`, with `wdk-sys`'s types.
///
/// # Safety
/// Called by the I/O manager at `PASSIVE_LEVEL` with a valid driver object and registry path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(driver: &mut DRIVER_OBJECT, registry_path: PCUNICODE_STRING) -> NTSTATUS {
    // SAFETY: DriverEntry runs at PASSIVE_LEVEL, and this thread holds no other token.
    let mut passive = unsafe { Passive::assume() };
    // SAFETY: the I/O manager passes a valid UNICODE_STRING.
    let path = unsafe { convert::unicode_string_units(registry_path) };
    let state = PagedBox::<[u16], PathTag>::try_from_slice(&passive, path).and_then(|registry_path| {
        NonPagedBox::<State, StateTag>::try_new(&passive, State { requests: SpinLock::new(0), registry_path })
    });
    let state = match state {
        Ok(state) => state,
        // ntpool's AllocError as the NTSTATUS DriverEntry returns.
        Err(error) => return convert::status(Err(error)),
    };
    state.requests.with(&mut passive, (), |_dispatch, requests, ()| *requests += 1);
    wdk::println!("ntpool-wdk-driver: {} path characters", state.registry_path.get(&passive).len());
    STATE.store(NonPagedBox::into_raw(state), Ordering::Release);
    driver.DriverUnload = Some(driver_unload);
    STATUS_SUCCESS
}

/// `DriverUnload`: frees the state, each block with its own tag.
unsafe extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let state = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !state.is_null() {
        // SAFETY: from `NonPagedBox::into_raw` in DriverEntry, taken out of STATE once.
        drop(unsafe { NonPagedBox::<State, StateTag>::from_raw(state) });
    }
}

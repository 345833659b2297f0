//! `ntpool-driver`: a sample WDM driver that uses the ntpool crate for every allocation.
//!
//! `DriverEntry` (at `PASSIVE_LEVEL`) runs a self-test of ntpool's API and reports it with
//! `DbgPrint`, keeps a copy of its registry path in paged pool and a statistics block behind a spin
//! lock, and `DriverUnload` frees all of it.
//!
//! The same code runs in three places: in Windows (built with the WDK or cross-built on Linux), under
//! Wine, and on ntpool's emulated kernel in the host tests (`tests/`).
#![no_std]

#[cfg(not(windows))]
extern crate std;

#[cfg(all(windows, not(ntpool_linux_cross)))]
use wdk_panic as _;

pub mod background;
pub mod bench_pairs;
pub mod device;
pub mod dispatch;
#[cfg(not(windows))]
pub mod host;
pub mod kernel;
pub mod selftest;

use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::{DRIVER_OBJECT, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS, UNICODE_STRING};
use ntpool::{DriverRoutines, NonPagedBox, PagedBox, Passive, PassiveMajor, SpinLock};

ntpool::pool_tag! {
    /// The driver's long-lived state.
    pub struct StateTag = b"NpSt";
}
ntpool::pool_tag! {
    /// The copy of the registry path (paged).
    pub struct RegistryTag = b"NpRg";
}

/// Counters updated at `DISPATCH_LEVEL` under a spin lock.
#[derive(Clone, Copy, Debug, Default, ntpool::DispatchSafe)]
pub struct Stats {
    /// Self-test checks that passed.
    pub checks: u32,
}

/// What the driver keeps between `DriverEntry` and `DriverUnload`.
pub struct DriverState {
    /// The registry path `DriverEntry` received, copied into paged pool.
    pub registry_path: PagedBox<[u16], RegistryTag>,
    /// Counters, behind a spin lock.
    pub stats: SpinLock<Stats>,
}

/// The driver's state, owned through a non-paged box whose raw pointer is kept here from
/// `DriverEntry` until `DriverUnload`.
static STATE: AtomicPtr<DriverState> = AtomicPtr::new(core::ptr::null_mut());

ntpool::driver_entry!(driver_entry);

/// The driver's entry point, called by the `DriverEntry` that [`ntpool::driver_entry!`] generates,
/// with the `PASSIVE_LEVEL` token ntpool vouches for.
fn driver_entry(driver: &mut DRIVER_OBJECT, registry_path: &UNICODE_STRING, passive: &mut Passive) -> NTSTATUS {
    debug_print!(
        "DriverEntry: allocating with {}",
        if ntpool::sys::uses_ex_allocate_pool2() {
            "ExAllocatePool2"
        } else {
            "ExAllocatePoolWithTag (ExAllocatePool2 is not exported)"
        }
    );

    let report = match self_test(passive) {
        Ok(report) => report,
        Err(status) => {
            debug_print!("self-test FAILED: status {:#010x}", status as u32);
            return status;
        }
    };
    debug_print!("self-test passed: {} checks", report.checks);
    disk_interfaces(passive);

    let path = if registry_path.Buffer.is_null() {
        &[][..]
    } else {
        // SAFETY: a valid UNICODE_STRING's buffer holds `Length` bytes of UTF-16.
        unsafe { core::slice::from_raw_parts(registry_path.Buffer, usize::from(registry_path.Length) / 2) }
    };
    let Ok(registry_path) = PagedBox::<[u16], RegistryTag>::try_from_slice(passive, path) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let state = DriverState { registry_path, stats: SpinLock::new(Stats::default()) };
    let Ok(state) = NonPagedBox::<DriverState, StateTag>::try_new(passive, state) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    state.stats.with(passive, report.checks, |_dispatch, stats, checks| stats.checks = checks);

    // SAFETY: the I/O manager passed this driver object, at PASSIVE_LEVEL. (DriverUnload finds the
    // device again through the driver object.)
    if let Err(status) = unsafe { device::create(driver, passive) } {
        debug_print!("creating \\Device\\NtPool failed: status {:#010x}", status as u32);
        return status;
    }
    STATE.store(NonPagedBox::into_raw(state), Ordering::Release);

    // The device is a control device that nothing attaches to: the top of its stack, so its create,
    // close and device-control requests come at PASSIVE_LEVEL in the requesting thread.
    driver.set_passive_dispatch::<dispatch::Create>(PassiveMajor::Create);
    driver.set_passive_dispatch::<dispatch::Close>(PassiveMajor::Close);
    driver.set_passive_dispatch::<dispatch::DeviceControl>(PassiveMajor::DeviceControl);
    // Only the driver itself sends internal device controls, possibly from raised IRQL.
    driver.set_dispatch::<background::Internal>(ntpool::sys::IRP_MJ_INTERNAL_DEVICE_CONTROL);
    driver.set_unload::<Unload>();
    debug_print!("DriverEntry: \\Device\\NtPool is ready");
    debug_print!("DriverEntry: registry path of {} characters kept in paged pool", path.len());
    STATUS_SUCCESS
}

/// The self-test [`DriverEntry`] runs ([`selftest::run`]).
#[cfg(not(fuzzing))]
fn self_test(passive: &mut Passive) -> Result<selftest::Report, NTSTATUS> {
    selftest::run(passive)
}

/// The fuzz build (`--cfg fuzzing`, `cargo xtask fuzz`) leaves the self-test out: the fuzzer loads
/// the driver for every input to fuzz its IOCTLs, and the self-test, which no input reaches, would
/// take a third of a short input's time. The host tests and the low resources simulation run it.
#[cfg(fuzzing)]
fn self_test(_passive: &mut Passive) -> Result<selftest::Report, NTSTATUS> {
    Ok(selftest::Report::default())
}

/// Lists the disk interfaces (`IoGetDeviceInterfaces`) and frees the list the kernel allocated with
/// `ExFreePool`: a buffer the driver did not allocate, freed as its documentation says.
fn disk_interfaces(passive: &Passive) {
    match kernel::device_interfaces(passive, &kernel::GUID_DEVINTERFACE_DISK) {
        Ok(list) => {
            let count = list.multi_sz(passive).count();
            debug_print!("DriverEntry: {} disk interface(s); the list goes back with ExFreePool", count);
        } // freed here, with ExFreePool, at PASSIVE_LEVEL
        Err(status) => debug_print!("DriverEntry: IoGetDeviceInterfaces failed: status {:#010x}", status as u32),
    }
}

/// The driver's `DriverUnload` ([`ntpool::DriverUnload`]).
struct Unload;

impl ntpool::DriverUnload for Unload {
    /// Frees everything the driver owns: called once, at `PASSIVE_LEVEL`, after a successful
    /// `DriverEntry`.
    fn unload(driver: &mut DRIVER_OBJECT, passive: &mut Passive) {
        let device = driver.DeviceObject;
        if !device.is_null() {
            // SAFETY: the driver's only device is the one DriverEntry made, and no request is in
            // progress once DriverUnload is called.
            let outstanding =
                unsafe { device::state(device) }.stats.with(passive, (), |_dispatch, stats, ()| stats.outstanding);
            // SAFETY: made by `device::create`, with its link; deleted once, at PASSIVE_LEVEL.
            unsafe { device::destroy(device, true) };
            debug_print!("DriverUnload: deleted the device and freed {} client block(s)", outstanding);
        }
        let state = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if state.is_null() {
            return;
        }
        // SAFETY: `state` came from `NonPagedBox::into_raw` in DriverEntry, and was taken out of
        // `STATE` above, so it is owned here alone.
        let state = unsafe { NonPagedBox::<DriverState, StateTag>::from_raw(state) };
        let checks = state.stats.with(passive, (), |_dispatch, stats, ()| stats.checks);
        let path_len = state.registry_path.get(passive).len();
        drop(state);
        debug_print!("DriverUnload: freed the state ({} checks, {} path characters)", checks, path_len);
    }
}

ntpool::pool_tag! {
    /// Blocks of `alloc`'s global allocator (the driver itself allocates through ntpool).
    pub struct GlobalTag = b"NpGa";
}

/// In the kernel, `alloc` (which allocator-api2's collections link) needs a global allocator; this one
/// is non-paged and tagged. On the host, std's allocator serves the tests.
#[cfg(windows)]
#[global_allocator]
static GLOBAL: ntpool::GlobalPoolAllocator<GlobalTag> = ntpool::GlobalPoolAllocator::new();

// The panic handler (a bug check) and `_fltused` of the cross build, which has no wdk-panic.
#[cfg(ntpool_linux_cross)]
ntpool_kernel_support::kernel_image_runtime!();

/// The repository README's examples, compiled and run as doc tests (ntpool tests its own README).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

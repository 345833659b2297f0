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

pub mod bench_pairs;
pub mod device;
pub mod dispatch;
#[cfg(not(windows))]
pub mod host;
pub mod kernel;
pub mod selftest;

use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::{
    DRIVER_OBJECT, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_SUCCESS, UNICODE_STRING,
};
use ntpool::{NonPagedBox, PagedBox, Passive, SpinLock};

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

/// The driver's entry point.
///
/// # Safety
/// Called by the I/O manager at `PASSIVE_LEVEL` with a valid driver object and registry path.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: DriverEntry runs at PASSIVE_LEVEL, and this is the thread's only token.
    let mut passive = unsafe { Passive::assume() };
    debug_print!(
        "DriverEntry: allocating with {}",
        if ntpool::sys::uses_ex_allocate_pool2() {
            "ExAllocatePool2"
        } else {
            "ExAllocatePoolWithTag (ExAllocatePool2 is not exported)"
        }
    );

    let report = match self_test(&mut passive) {
        Ok(report) => report,
        Err(status) => {
            debug_print!("self-test FAILED: status {:#010x}", status as u32);
            return status;
        }
    };
    debug_print!("self-test passed: {} checks", report.checks);
    disk_interfaces(&passive);

    // SAFETY: the I/O manager passes a valid registry path.
    let path = unsafe { &*registry_path };
    // SAFETY: its buffer holds `Length` bytes of UTF-16.
    let path = unsafe { core::slice::from_raw_parts(path.Buffer, usize::from(path.Length) / 2) };
    let Ok(registry_path) = PagedBox::<[u16], RegistryTag>::try_from_slice(&passive, path) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let state = DriverState { registry_path, stats: SpinLock::new(Stats::default()) };
    let Ok(state) = NonPagedBox::<DriverState, StateTag>::try_new(&passive, state) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    state.stats.with(&mut passive, report.checks, |_dispatch, stats, checks| stats.checks = checks);

    // SAFETY: the I/O manager passes a valid driver object, at PASSIVE_LEVEL. (DriverUnload finds
    // the device again through the driver object.)
    if let Err(status) = unsafe { device::create(driver, &passive) } {
        debug_print!("creating \\Device\\NtPool failed: status {:#010x}", status as u32);
        return status;
    }
    STATE.store(NonPagedBox::into_raw(state), Ordering::Release);

    // SAFETY: the I/O manager passes a valid driver object, which the driver may fill in.
    let driver = unsafe { &mut *driver };
    driver.MajorFunction[IRP_MJ_CREATE] = Some(dispatch::create_close);
    driver.MajorFunction[IRP_MJ_CLOSE] = Some(dispatch::close);
    driver.MajorFunction[IRP_MJ_DEVICE_CONTROL] = Some(dispatch::device_control);
    driver.DriverUnload = Some(DriverUnload);
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

/// Frees everything the driver owns.
///
/// # Safety
/// Called by the I/O manager at `PASSIVE_LEVEL`, once, after a successful `DriverEntry`.
#[allow(non_snake_case)]
pub unsafe extern "system" fn DriverUnload(driver: *mut DRIVER_OBJECT) {
    // SAFETY: DriverUnload runs at PASSIVE_LEVEL, and this is the thread's only token.
    let mut passive = unsafe { Passive::assume() };
    // SAFETY: the I/O manager passes our driver object; its only device is the one DriverEntry made.
    let device = unsafe { (*driver).DeviceObject };
    if !device.is_null() {
        // SAFETY: no request is in progress once DriverUnload is called.
        let outstanding =
            unsafe { device::state(device) }.stats.with(&mut passive, (), |_dispatch, stats, ()| stats.outstanding);
        // SAFETY: made by `device::create`, with its link; deleted once, at PASSIVE_LEVEL.
        unsafe { device::destroy(device, true) };
        debug_print!("DriverUnload: deleted the device and freed {} client block(s)", outstanding);
    }
    let state = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if state.is_null() {
        return;
    }
    // SAFETY: `state` came from `NonPagedBox::into_raw` in DriverEntry, and was taken out of `STATE`
    // above, so it is owned here alone.
    let state = unsafe { NonPagedBox::<DriverState, StateTag>::from_raw(state) };
    let checks = state.stats.with(&mut passive, (), |_dispatch, stats, ()| stats.checks);
    let path_len = state.registry_path.get(&passive).len();
    drop(state);
    debug_print!("DriverUnload: freed the state ({} checks, {} path characters)", checks, path_len);
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

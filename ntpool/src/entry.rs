//! The driver's own entry points, with the token the I/O manager's contract proves: `DriverEntry`
//! ([`driver_entry!`](crate::driver_entry)), `DriverUnload` ([`DriverUnload`]) and the dispatch
//! routines ([`PassiveDispatch`], [`AnyIrqlDispatch`]), registered through [`DriverRoutines`].
//!
//! Each routine is a safe Rust function behind a trampoline of this crate: the trampoline is the
//! `extern "system"` function the kernel calls, and it is the one place that vouches for the IRQL.
//! A dispatch or unload routine is named by a zero-sized type implementing the routine's trait, so
//! the trampoline is generic over that type and calls it directly: no function pointer is stored,
//! nothing is captured, and the call costs what a hand-written `extern "system"` function would.
//!
//! # Why these IRQLs hold
//!
//! * `DriverEntry` and `DriverUnload` are called by the I/O manager at `PASSIVE_LEVEL`, in a system
//!   thread (Microsoft: "DriverEntry routines are called in the context of a system thread at
//!   IRQL = PASSIVE_LEVEL"; "The DriverUnload routine executes in a system thread context at
//!   IRQL = PASSIVE_LEVEL").
//! * The dispatch routines of a **top-level** device for `IRP_MJ_CREATE`, `IRP_MJ_CLOSE` and
//!   `IRP_MJ_DEVICE_CONTROL` are called by the I/O manager in the context of the thread that made
//!   the request (`NtCreateFile`, the last `CloseHandle`, `DeviceIoControl`), at `PASSIVE_LEVEL`
//!   ("Dispatch routines ... of highest-level drivers ... are called at IRQL = PASSIVE_LEVEL in the
//!   context of the requesting thread"). A device is top-level when no other device is attached
//!   above it: a control device that `IoCreateDevice` made and nothing attached to, such as the
//!   sample driver's. [`DriverRoutines::set_passive_dispatch`] takes only these three major
//!   functions ([`PassiveMajor`]), and its documentation states the top-level condition: a driver
//!   whose device sits lower in a stack registers them with [`DriverRoutines::set_dispatch`]
//!   instead.
//! * Every other dispatch routine, and every dispatch routine of a lower device, may be called at
//!   up to `DISPATCH_LEVEL` (an upper driver may send an IRP from its DPC or completion routine).
//!   [`AnyIrqlDispatch`] receives an [`AnyIrql`], whose [`AnyIrql::current`] reads the IRQL and
//!   hands out the matching token.
//!
//! What the types cannot see is whether the device really is top-level: registering a
//! `PassiveDispatch` routine for a device that a filter attaches above is the one promise the driver
//! makes, in the same place where it chooses the device's place in the stack.

use core::marker::PhantomData;

use crate::irql::{AnyIrql, Passive};
use crate::sys::{
    DRIVER_OBJECT, IO_STACK_LOCATION, IRP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, NTSTATUS,
    PDEVICE_OBJECT, PIRP,
};

/// One of the driver's device objects, as the I/O manager passes it to a dispatch routine: valid
/// for `'a`, the routine's call.
///
/// # Invariants
/// `device` is a device object of the calling driver, valid for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct Device<'a> {
    device: PDEVICE_OBJECT,
    _call: PhantomData<&'a ()>,
}

impl Device<'_> {
    /// The `DEVICE_OBJECT`: one of the calling driver's, valid for the routine's call.
    pub fn as_ptr(self) -> PDEVICE_OBJECT {
        self.device
    }
}

/// The IRP a dispatch routine serves: valid until the routine completes it (consuming this
/// handle, [`Irp::complete`]) or returns.
///
/// # Invariants
/// `irp` is a valid IRP dispatched to the calling driver and not completed yet.
#[derive(Debug)]
pub struct Irp<'a> {
    irp: PIRP,
    _call: PhantomData<&'a mut IRP>,
}

impl Irp<'_> {
    /// The `IRP`: valid, dispatched to the calling driver, and not completed yet.
    pub fn as_ptr(&self) -> PIRP {
        self.irp
    }

    /// The driver's stack location (`IoGetCurrentIrpStackLocation`).
    pub fn stack_location(&self) -> *mut IO_STACK_LOCATION {
        // SAFETY: a valid IRP dispatched to the driver (invariant).
        unsafe { crate::sys::IoGetCurrentIrpStackLocation(self.irp) }
    }

    /// Completes the IRP (`IofCompleteRequest` with no priority boost) with `status` and
    /// `information` (the bytes of output, for a buffered request), and returns `status`.
    pub fn complete(self, status: NTSTATUS, information: usize) -> NTSTATUS {
        // SAFETY: a valid IRP, not completed yet (invariant): ours to write and complete, once
        // (`self` is consumed).
        let io_status = unsafe { &mut (*self.irp).IoStatus };
        io_status.__bindgen_anon_1.Status = status;
        io_status.Information = information as u64;
        // SAFETY: as above.
        unsafe { crate::sys::IofCompleteRequest(self.irp, crate::sys::IO_NO_INCREMENT) };
        status
    }
}

/// Generates the driver's `DriverEntry`: an `extern "system"` function, exported under the name
/// the loader looks for, that calls `$entry` with the driver object, the registry path and a
/// [`Passive`] token.
///
/// `$entry` is a safe function `fn(&mut DRIVER_OBJECT, &UNICODE_STRING, &mut Passive) -> NTSTATUS`.
/// The I/O manager calls `DriverEntry` once, at `PASSIVE_LEVEL`, with a valid driver object and
/// registry path; the generated function passes them on as references.
///
/// ```
/// use ntpool::sys::{DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};
/// use ntpool::{DriverRoutines, Passive};
///
/// fn entry(driver: &mut DRIVER_OBJECT, _registry_path: &UNICODE_STRING, passive: &mut Passive) -> NTSTATUS {
///     assert_eq!(ntpool::sys::KeGetCurrentIrql(), ntpool::sys::PASSIVE_LEVEL);
///     driver.set_unload::<Unload>();
///     0
/// }
///
/// struct Unload;
/// impl ntpool::DriverUnload for Unload {
///     fn unload(_driver: &mut DRIVER_OBJECT, _passive: &mut Passive) {}
/// }
///
/// ntpool::driver_entry!(entry);
///
/// # ntpool::emulated::Kernel::new().run(|| {
/// // The I/O manager's call, as the emulated kernel's host harness makes it:
/// // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid.
/// let mut driver: DRIVER_OBJECT = unsafe { core::mem::zeroed() };
/// let path = UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: core::ptr::null_mut() };
/// // SAFETY: a valid driver object and registry path, at PASSIVE_LEVEL.
/// assert_eq!(unsafe { DriverEntry(&mut driver, &path) }, 0);
/// let unload = driver.DriverUnload.unwrap();
/// // SAFETY: as the I/O manager calls it, at PASSIVE_LEVEL, once.
/// unsafe { unload(&mut driver) };
/// # });
/// ```
#[macro_export]
macro_rules! driver_entry {
    ($entry:path) => {
        /// The driver's entry point, generated by `ntpool::driver_entry!`: calls the driver's safe
        /// entry function with a `Passive` token.
        ///
        /// # Safety
        /// Called by the I/O manager at `PASSIVE_LEVEL`, once, with a valid driver object and
        /// registry path.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::sys::DRIVER_OBJECT,
            registry_path: *const $crate::sys::UNICODE_STRING,
        ) -> $crate::sys::NTSTATUS {
            // SAFETY: this function's own contract, which is DriverEntry's.
            unsafe { $crate::__driver_entry(driver, registry_path, $entry) }
        }
    };
}

/// What [`driver_entry!`](crate::driver_entry) expands to calls.
///
/// # Safety
/// Called as `DriverEntry` is: at `PASSIVE_LEVEL`, with no token of this crate in use on the
/// thread, a valid driver object and registry path.
#[doc(hidden)]
#[inline(always)]
pub unsafe fn __driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const crate::sys::UNICODE_STRING,
    entry: fn(&mut DRIVER_OBJECT, &crate::sys::UNICODE_STRING, &mut Passive) -> NTSTATUS,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes its valid driver object, which DriverEntry may fill in.
    let driver = unsafe { &mut *driver };
    // SAFETY: and a valid registry path, which outlives the call.
    let registry_path = unsafe { &*registry_path };
    // DriverEntry runs at PASSIVE_LEVEL (caller), and this is the thread's only token.
    entry(driver, registry_path, &mut Passive::entry())
}

/// A driver's `DriverUnload`, named by a zero-sized type: [`DriverRoutines::set_unload`] installs a
/// trampoline that calls [`DriverUnload::unload`] with a [`Passive`] token.
pub trait DriverUnload: 'static {
    /// Frees what the driver owns; called once, at `PASSIVE_LEVEL`, after every device's last
    /// request.
    fn unload(driver: &mut DRIVER_OBJECT, passive: &mut Passive);
}

/// A dispatch routine of a top-level device for `IRP_MJ_CREATE`, `IRP_MJ_CLOSE` or
/// `IRP_MJ_DEVICE_CONTROL` ([`PassiveMajor`]), called with a [`Passive`] token. See the module's
/// documentation for why the IRQL holds.
pub trait PassiveDispatch: 'static {
    /// Serves `irp`, sent to `device` (one of this driver's), and completes it (or marks it
    /// pending); returns its status.
    fn dispatch(device: Device<'_>, irp: Irp<'_>, passive: &mut Passive) -> NTSTATUS;
}

/// A dispatch routine that may be called at up to `DISPATCH_LEVEL`, called with an [`AnyIrql`].
pub trait AnyIrqlDispatch: 'static {
    /// Serves `irp`, sent to `device` (one of this driver's); returns its status.
    fn dispatch(device: Device<'_>, irp: Irp<'_>, irql: &mut AnyIrql) -> NTSTATUS;
}

/// The major functions whose dispatch routines a top-level device receives at `PASSIVE_LEVEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassiveMajor {
    /// `IRP_MJ_CREATE`.
    Create,
    /// `IRP_MJ_CLOSE`.
    Close,
    /// `IRP_MJ_DEVICE_CONTROL`.
    DeviceControl,
}

impl PassiveMajor {
    /// The index in `DRIVER_OBJECT::MajorFunction`.
    ///
    /// ```
    /// assert_eq!(ntpool::PassiveMajor::DeviceControl.index(), ntpool::sys::IRP_MJ_DEVICE_CONTROL);
    /// ```
    pub const fn index(self) -> usize {
        match self {
            PassiveMajor::Create => IRP_MJ_CREATE,
            PassiveMajor::Close => IRP_MJ_CLOSE,
            PassiveMajor::DeviceControl => IRP_MJ_DEVICE_CONTROL,
        }
    }
}

/// The trampoline of a [`DriverUnload`].
///
/// # Safety
/// Called by the I/O manager as `DriverUnload`: at `PASSIVE_LEVEL`, with the driver object.
unsafe extern "system" fn unload_trampoline<U: DriverUnload>(driver: *mut DRIVER_OBJECT) {
    // SAFETY: the I/O manager passes the driver's valid driver object.
    let driver = unsafe { &mut *driver };
    // DriverUnload runs at PASSIVE_LEVEL, on a thread where this is the only token.
    U::unload(driver, &mut Passive::entry());
}

/// The trampoline of a [`PassiveDispatch`].
///
/// # Safety
/// Called by the I/O manager as a top-level device's dispatch routine for a [`PassiveMajor`]
/// function: at `PASSIVE_LEVEL`, in the requesting thread.
unsafe extern "system" fn passive_trampoline<R: PassiveDispatch>(device: PDEVICE_OBJECT, irp: PIRP) -> NTSTATUS {
    // The I/O manager calls it at PASSIVE_LEVEL (see the module's documentation); the requesting
    // thread holds no token of this driver's while it is in the kernel.
    // SAFETY: the I/O manager passes the driver's device and an IRP dispatched to it (caller).
    let (device, irp) = unsafe { handles(device, irp) };
    R::dispatch(device, irp, &mut Passive::entry())
}

/// The handles of a dispatch routine's arguments.
///
/// # Safety
/// `device` is the calling driver's device and `irp` an IRP dispatched to it, not completed yet,
/// both valid for `'a`.
unsafe fn handles<'a>(device: PDEVICE_OBJECT, irp: PIRP) -> (Device<'a>, Irp<'a>) {
    (Device { device, _call: PhantomData }, Irp { irp, _call: PhantomData })
}

/// The trampoline of an [`AnyIrqlDispatch`].
///
/// # Safety
/// Called by the I/O manager as a dispatch routine, at up to `DISPATCH_LEVEL`.
unsafe extern "system" fn any_irql_trampoline<R: AnyIrqlDispatch>(device: PDEVICE_OBJECT, irp: PIRP) -> NTSTATUS {
    // The routine is called with no token of this crate in use on the thread: the sender's tokens
    // are behind the `IoCallDriver` it is in.
    // SAFETY: the I/O manager passes the driver's device and an IRP dispatched to it (caller).
    let (device, irp) = unsafe { handles(device, irp) };
    R::dispatch(device, irp, &mut AnyIrql::entry())
}

/// Registers the driver's routines in its `DRIVER_OBJECT`, each behind a trampoline that hands it
/// its token. Implemented for `DRIVER_OBJECT`, which `DriverEntry` receives.
///
/// ```
/// use ntpool::sys::{DRIVER_OBJECT, NTSTATUS};
/// use ntpool::{Device, DriverRoutines, Irp, Passive, PassiveDispatch, PassiveMajor};
///
/// struct Create;
/// impl PassiveDispatch for Create {
///     fn dispatch(_device: Device<'_>, irp: Irp<'_>, _passive: &mut Passive) -> NTSTATUS {
///         irp.complete(0, 0)
///     }
/// }
/// // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid.
/// let mut driver: DRIVER_OBJECT = unsafe { core::mem::zeroed() };
/// driver.set_passive_dispatch::<Create>(PassiveMajor::Create);
/// assert!(driver.MajorFunction[ntpool::sys::IRP_MJ_CREATE].is_some());
/// ```
pub trait DriverRoutines {
    /// Sets `DriverUnload` to call `U::unload` with a [`Passive`] token.
    fn set_unload<U: DriverUnload>(&mut self);

    /// Sets the dispatch routine of `major` to call `R::dispatch` with a [`Passive`] token.
    ///
    /// Only for a top-level device (no device attached above it): its create, close and
    /// device-control requests come at `PASSIVE_LEVEL` in the requesting thread. A device that sits
    /// lower in a stack registers them with [`DriverRoutines::set_dispatch`].
    fn set_passive_dispatch<R: PassiveDispatch>(&mut self, major: PassiveMajor);

    /// Sets the dispatch routine of the major function `major` (an `IRP_MJ_*` index) to call
    /// `R::dispatch` with an [`AnyIrql`]. Ignored for an index beyond `IRP_MJ_MAXIMUM_FUNCTION`.
    fn set_dispatch<R: AnyIrqlDispatch>(&mut self, major: usize);
}

impl DriverRoutines for DRIVER_OBJECT {
    fn set_unload<U: DriverUnload>(&mut self) {
        self.DriverUnload = Some(unload_trampoline::<U>);
    }

    fn set_passive_dispatch<R: PassiveDispatch>(&mut self, major: PassiveMajor) {
        self.MajorFunction[major.index()] = Some(passive_trampoline::<R>);
    }

    fn set_dispatch<R: AnyIrqlDispatch>(&mut self, major: usize) {
        if let Some(slot) = self.MajorFunction.get_mut(major) {
            *slot = Some(any_irql_trampoline::<R>);
        }
    }
}

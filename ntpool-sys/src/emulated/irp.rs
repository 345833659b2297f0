//! IRPs a driver allocates and sends, and their completion routines: `IoAllocateIrp`, `IoFreeIrp`,
//! `IofCallDriver`, the completion half of `IofCompleteRequest` (`complete`); and interrupts as
//! far as they can be emulated without hardware: `KeSynchronizeExecution` on an interrupt object
//! made by [`connect_interrupt`].
//!
//! An IRP from `IoAllocateIrp` is laid out as Windows lays it out: the `IRP`, then its stack
//! locations, none current (`CurrentLocation` = `StackCount` + 1). `IofCallDriver` moves to the next
//! location, sets its `DeviceObject` and calls the driver's dispatch routine for its major function.
//! `IofCompleteRequest` then walks back up: for each location whose `Control` asks for it, it calls
//! the completion routine with the device object of the location above (null above the top), and
//! stops where a routine returns `STATUS_MORE_PROCESSING_REQUIRED`. IRPs the host harness builds
//! (not from `IoAllocateIrp`) are only counted, as before.
//!
//! What is not emulated: an IRP that runs off its top (no routine stopped it) is one the I/O manager
//! would complete to a thread that it has none of: the emulation panics there. Interrupts cannot be
//! connected (`IoConnectInterrupt` needs a device's resources); [`connect_interrupt`] makes the
//! object `KeSynchronizeExecution` takes, and the ISR itself is never called.
#![allow(non_snake_case)]

use std::boxed::Box;
use std::collections::HashMap;
use std::sync::Mutex;

use super::irql::{lower_irql, raise_irql};
use crate::{
    BOOLEAN, CCHAR, IO_STACK_LOCATION, IO_TYPE_IRP, IRP, KIRQL, NTSTATUS, PDEVICE_OBJECT, PIO_COMPLETION_ROUTINE, PIRP,
    PKINTERRUPT, PKSYNCHRONIZE_ROUTINE, PVOID, SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS,
    STATUS_MORE_PROCESSING_REQUIRED,
};

/// IRPs from `IoAllocateIrp` not freed yet: address → layout.
static IRPS: Mutex<Option<HashMap<usize, std::alloc::Layout>>> = Mutex::new(None);

fn irps<R>(f: impl FnOnce(&mut HashMap<usize, std::alloc::Layout>) -> R) -> R {
    let mut guard = IRPS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

const STATUS_CANCELLED: NTSTATUS = 0xC000_0120_u32 as i32;

/// `IoAllocateIrp`: a zeroed IRP with `StackSize` stack locations after it, none current; null for
/// a stack size below 1.
///
/// # Safety
/// IRQL <= `DISPATCH_LEVEL`.
pub unsafe fn IoAllocateIrp(StackSize: CCHAR, _ChargeQuota: BOOLEAN) -> PIRP {
    let Ok(count) = u8::try_from(StackSize) else { return core::ptr::null_mut() };
    if count == 0 {
        return core::ptr::null_mut();
    }
    let size = size_of::<IRP>() + usize::from(count) * size_of::<IO_STACK_LOCATION>();
    let Ok(layout) = std::alloc::Layout::from_size_align(size, 16) else { return core::ptr::null_mut() };
    // SAFETY: a non-zero layout.
    let irp = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<IRP>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: zeroed memory for an IRP and its stack locations, which all-zero bytes are valid for.
    let header = unsafe { &mut *irp };
    header.Type = IO_TYPE_IRP;
    header.Size = size as u16;
    header.StackCount = count as CCHAR;
    header.CurrentLocation = count as CCHAR + 1;
    // SAFETY: the stack locations start right after the IRP, inside the allocation.
    let first = unsafe { irp.add(1) }.cast::<IO_STACK_LOCATION>();
    // SAFETY: one past the last stack location, at the end of the allocation.
    let past = unsafe { first.add(usize::from(count)) };
    header.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation = past;
    irps(|i| i.insert(irp as usize, layout));
    irp
}

/// `IoFreeIrp`.
///
/// # Safety
/// `Irp` came from `IoAllocateIrp`, is not in use by any driver, and is not used afterwards.
pub unsafe fn IoFreeIrp(Irp: PIRP) {
    let layout = irps(|i| i.remove(&(Irp as usize)));
    let layout = layout.expect("IoFreeIrp of an IRP that IoAllocateIrp did not make, or freed twice");
    // SAFETY: allocated above with this layout, freed once (removed from the table).
    unsafe { std::alloc::dealloc(Irp.cast(), layout) };
}

/// `IofCallDriver`: the next stack location becomes current, gets `DeviceObject`, and the device's
/// driver's dispatch routine for its major function is called.
///
/// # Safety
/// `DeviceObject` is a valid device of a loaded driver; `Irp` is valid with a stack location left.
pub unsafe fn IofCallDriver(DeviceObject: PDEVICE_OBJECT, Irp: PIRP) -> NTSTATUS {
    // SAFETY: the caller passes a valid IRP.
    let irp = unsafe { &mut *Irp };
    assert!(irp.CurrentLocation > 1, "IofCallDriver: the IRP has no stack location left (bug check 0x35)");
    irp.CurrentLocation -= 1;
    let location = &mut irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1;
    // SAFETY: the union holds the current location (an IRP's CurrentStackLocation).
    let current = unsafe { location.CurrentStackLocation };
    // SAFETY: the next location, inside the IRP (CurrentLocation was above 1).
    let next = unsafe { current.sub(1) };
    location.CurrentStackLocation = next;
    // SAFETY: a stack location of the IRP, which the caller set up.
    let stack = unsafe { &mut *next };
    stack.DeviceObject = DeviceObject;
    let major = usize::from(stack.MajorFunction);
    // SAFETY: a valid device of a loaded driver (caller).
    let driver = unsafe { (*DeviceObject).DriverObject };
    // SAFETY: a loaded driver's object, valid while its device is.
    let driver = unsafe { &*driver };
    let routine = driver.MajorFunction.get(major).copied().flatten();
    let routine = routine.expect("IofCallDriver: the driver has no dispatch routine for this major function");
    // SAFETY: the driver's dispatch routine, with its device and the IRP.
    unsafe { routine(DeviceObject, Irp) }
}

/// The completion half of `IofCompleteRequest` for an IRP from `IoAllocateIrp`: calls the
/// completion routines above the current location, up to one that returns
/// `STATUS_MORE_PROCESSING_REQUIRED`. Nothing for IRPs the host harness built.
///
/// # Safety
/// `Irp` is valid and being completed by the driver of its current location.
pub(crate) unsafe fn complete(Irp: PIRP) {
    if !irps(|i| i.contains_key(&(Irp as usize))) {
        return;
    }
    loop {
        // SAFETY: a valid IRP (caller).
        let irp = unsafe { &mut *Irp };
        if irp.CurrentLocation > irp.StackCount {
            panic!("IofCompleteRequest: an IRP from IoAllocateIrp was completed past its top, to no thread");
        }
        let location = &mut irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1;
        // SAFETY: the union holds the current location (an IRP's CurrentStackLocation).
        let current = unsafe { location.CurrentStackLocation };
        // SAFETY: a stack location of the IRP (CurrentLocation is at most StackCount).
        let stack = unsafe { &*current };
        let (routine, context, control) = (stack.CompletionRoutine, stack.Context, stack.Control);
        // Up one location, as IoSkipCurrentIrpStackLocation does.
        // SAFETY: at most one past the last location, at the end of the allocation.
        let above = unsafe { current.add(1) };
        location.CurrentStackLocation = above;
        irp.CurrentLocation += 1;
        let device =
            // SAFETY: a location of the IRP when not past the last one.
            if irp.CurrentLocation <= irp.StackCount { unsafe { (*above).DeviceObject } } else { core::ptr::null_mut() };
        // SAFETY: the union holds the status the completing driver set.
        let status = unsafe { irp.IoStatus.__bindgen_anon_1.Status };
        let wanted = match status {
            STATUS_CANCELLED => control & SL_INVOKE_ON_CANCEL != 0,
            s if s < 0 => control & SL_INVOKE_ON_ERROR != 0,
            _ => control & SL_INVOKE_ON_SUCCESS != 0,
        };
        if wanted && !routine.is_null() {
            // SAFETY: `IoSetCompletionRoutine` stored a `PIO_COMPLETION_ROUTINE` there.
            let routine: PIO_COMPLETION_ROUTINE =
                unsafe { core::mem::transmute::<PVOID, PIO_COMPLETION_ROUTINE>(routine) };
            if let Some(routine) = routine {
                // SAFETY: the routine the driver set, with its context, at the completer's IRQL.
                if unsafe { routine(device, Irp, context) } == STATUS_MORE_PROCESSING_REQUIRED {
                    return;
                }
            }
        }
    }
}

/// An emulated interrupt object ([`connect_interrupt`]): its synchronize IRQL and its spin lock.
struct EmulatedInterrupt {
    synchronize_irql: KIRQL,
    lock: Mutex<()>,
}

/// Makes an interrupt object for `KeSynchronizeExecution`, as `IoConnectInterrupt` would for a
/// device whose interrupts come at `synchronize_irql` (a device IRQL, above `DISPATCH_LEVEL`).
/// No interrupt ever comes: the ISR is never called. Freed with [`disconnect_interrupt`].
///
/// ```
/// use ntpool_sys::{self as sys, emulated::irp};
/// unsafe extern "system" fn routine(irql: sys::PVOID) -> sys::BOOLEAN {
///     // SAFETY: the context below.
///     unsafe { *irql.cast::<sys::KIRQL>() = sys::KeGetCurrentIrql() };
///     1
/// }
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let interrupt = irp::connect_interrupt(5);
/// let mut seen: sys::KIRQL = 0;
/// // SAFETY: a connected interrupt, a routine and a context valid for the call.
/// assert_eq!(unsafe { sys::KeSynchronizeExecution(interrupt, Some(routine), (&raw mut seen).cast()) }, 1);
/// assert_eq!((seen, sys::KeGetCurrentIrql()), (5, sys::PASSIVE_LEVEL));
/// // SAFETY: made above, not used afterwards.
/// unsafe { irp::disconnect_interrupt(interrupt) };
/// # });
/// ```
pub fn connect_interrupt(synchronize_irql: KIRQL) -> PKINTERRUPT {
    let interrupt = Box::new(EmulatedInterrupt { synchronize_irql, lock: Mutex::new(()) });
    Box::into_raw(interrupt).cast()
}

/// Frees an interrupt object of [`connect_interrupt`] (`IoDisconnectInterrupt`).
///
/// # Safety
/// `interrupt` came from [`connect_interrupt`] and is not used afterwards.
pub unsafe fn disconnect_interrupt(interrupt: PKINTERRUPT) {
    // SAFETY: made by `connect_interrupt` as a boxed `EmulatedInterrupt`, freed once.
    drop(unsafe { Box::from_raw(interrupt.cast::<EmulatedInterrupt>()) });
}

/// `KeSynchronizeExecution`: raises to the interrupt's synchronize IRQL, takes its spin lock, calls
/// `SynchronizeRoutine(SynchronizeContext)`, releases the lock and lowers the IRQL; returns what the
/// routine returned.
///
/// # Safety
/// `Interrupt` came from [`connect_interrupt`]; IRQL <= the synchronize IRQL.
pub unsafe fn KeSynchronizeExecution(
    Interrupt: PKINTERRUPT,
    SynchronizeRoutine: PKSYNCHRONIZE_ROUTINE,
    SynchronizeContext: PVOID,
) -> BOOLEAN {
    // SAFETY: an interrupt object of `connect_interrupt` (caller).
    let interrupt = unsafe { &*Interrupt.cast::<EmulatedInterrupt>() };
    let old = raise_irql(interrupt.synchronize_irql);
    let guard = interrupt.lock.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: the driver's routine and context, at the synchronize IRQL with the lock held.
    let result = SynchronizeRoutine.map_or(0, |routine| unsafe { routine(SynchronizeContext) });
    drop(guard);
    lower_irql(old);
    result
}

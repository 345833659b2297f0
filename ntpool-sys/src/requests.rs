//! The declarations of IRPs a driver allocates and sends (`IoAllocateIrp`, `IofCallDriver`,
//! `IoFreeIrp`) and of their completion routines, with the WDK's inline helpers
//! `IoGetNextIrpStackLocation` and `IoSetCompletionRoutine`; and of `KeSynchronizeExecution`'s
//! interrupt object. Layouts and constants are checked against mingw-w64's DDK headers by the
//! sample driver's `tests/declarations.rs`.
#![allow(missing_docs)]

use crate::{BOOLEAN, IO_STACK_LOCATION, KIRQL, NTSTATUS, PDEVICE_OBJECT, PIRP, PVOID, UCHAR};

/// `PIO_COMPLETION_ROUTINE`: called when a lower driver completes the IRP, at `IRQL <=
/// DISPATCH_LEVEL`; `STATUS_MORE_PROCESSING_REQUIRED` stops the completion there.
pub type PIO_COMPLETION_ROUTINE =
    Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: PIRP, Context: PVOID) -> NTSTATUS>;

pub const IRP_MJ_INTERNAL_DEVICE_CONTROL: usize = 0x0f;
pub const SL_INVOKE_ON_CANCEL: UCHAR = 0x20;
pub const SL_INVOKE_ON_SUCCESS: UCHAR = 0x40;
pub const SL_INVOKE_ON_ERROR: UCHAR = 0x80;
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = 0xC000_0016_u32 as i32;
pub const STATUS_DEVICE_BUSY: NTSTATUS = 0x8000_0011_u32 as i32;
/// `IO_TYPE_IRP`, an IRP's `Type`.
pub const IO_TYPE_IRP: i16 = 6;

/// `IoGetNextIrpStackLocation` (inline in the WDK headers): the stack location of the driver the
/// IRP is sent to next.
///
/// # Safety
/// `irp` is a valid IRP with a stack location below the current one.
pub unsafe fn IoGetNextIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees the IRP.
    let current = unsafe { crate::IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: the next location is the one below the current one, inside the IRP (caller).
    unsafe { current.sub(1) }
}

/// `IoSetCompletionRoutine` (inline in the WDK headers): sets `routine` and `context` in the next
/// stack location, to be called on success, error and cancel as asked.
///
/// # Safety
/// As for [`IoGetNextIrpStackLocation`]; `routine` and `context` stay valid until it has run.
pub unsafe fn IoSetCompletionRoutine(
    irp: PIRP,
    routine: PIO_COMPLETION_ROUTINE,
    context: PVOID,
    on_success: bool,
    on_error: bool,
    on_cancel: bool,
) {
    // SAFETY: the caller guarantees the IRP and its next location.
    let next = unsafe { IoGetNextIrpStackLocation(irp) };
    // SAFETY: as above: a stack location of the IRP, which the caller may fill in.
    let next = unsafe { &mut *next };
    next.CompletionRoutine = routine.map_or(core::ptr::null_mut(), |r| r as PVOID);
    next.Context = context;
    next.Control = 0;
    if on_success {
        next.Control |= SL_INVOKE_ON_SUCCESS;
    }
    if on_error {
        next.Control |= SL_INVOKE_ON_ERROR;
    }
    if on_cancel {
        next.Control |= SL_INVOKE_ON_CANCEL;
    }
}

/// `PKSYNCHRONIZE_ROUTINE`: runs at the interrupt's synchronize IRQL, holding its spin lock.
pub type PKSYNCHRONIZE_ROUTINE = Option<unsafe extern "system" fn(SynchronizeContext: PVOID) -> BOOLEAN>;

/// `KINTERRUPT`: opaque, made by `IoConnectInterrupt` (a real one needs hardware). The emulated
/// kernel makes one with `emulated::irp::connect_interrupt`.
#[repr(C)]
pub struct KINTERRUPT {
    _opaque: [u8; 0],
}
/// `PKINTERRUPT`.
pub type PKINTERRUPT = *mut KINTERRUPT;

/// Unused here, kept for the signature of the ISR type.
pub type PKSERVICE_ROUTINE =
    Option<unsafe extern "system" fn(Interrupt: PKINTERRUPT, ServiceContext: PVOID) -> BOOLEAN>;

/// The IRQL an emulated interrupt's routines run at is a device IRQL.
pub type DEVICE_IRQL = KIRQL;

//! The WDM declarations the sample drivers use besides the pool's: the structures they read and write
//! (`DRIVER_OBJECT`, `DEVICE_OBJECT`, `IRP`, `IO_STACK_LOCATION`, ...) and the constants they pass,
//! with the names and types of `wdk-sys` (field paths included, down to bindgen's `__bindgen_anon_N`
//! for the anonymous unions), so that driver code reads the same as a windows-drivers-rs driver's.
//! The routines that take them are at the crate root: imports from `ntoskrnl.exe` on Windows, the
//! [emulated I/O manager][io] elsewhere.
//!
//! Layouts are x64's, which are ARM64's too (both LLP64 with 8-byte pointers; no field differs). Every size, offset and constant here is checked against mingw-w64's DDK headers
//! by the sample driver's `tests/declarations.rs`. The items carry the WDK's names and meanings and
//! are documented there, not here.
//!
#![cfg_attr(ntpool_emulated, doc = "[io]: crate::emulated::io")]
#![cfg_attr(
    not(ntpool_emulated),
    doc = "[io]: https://docs.rs/ntpool-sys/latest/x86_64-unknown-linux-gnu/ntpool_sys/emulated/io/"
)]
#![allow(missing_docs)]

use core::ffi::c_void;

use crate::{KIRQL, KSPIN_LOCK, LIST_ENTRY, NTSTATUS, PVOID, ULONG, UNICODE_STRING};

pub type USHORT = u16;
pub type UCHAR = u8;
pub type CCHAR = i8;
pub type CSHORT = i16;
pub type LONG = i32;
pub type BOOLEAN = u8;
pub type ULONG_PTR = u64;
pub type ACCESS_MASK = u32;
pub type SECURITY_INFORMATION = u32;
pub type DEVICE_TYPE = u32;
pub type PDEVICE_OBJECT = *mut DEVICE_OBJECT;
pub type PIRP = *mut IRP;
pub type HANDLE = *mut c_void;
pub type KPROCESSOR_MODE = CCHAR;

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;

pub const IRP_MJ_CREATE: usize = 0x00;
pub const IRP_MJ_CLOSE: usize = 0x02;
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1b;
pub const IO_NO_INCREMENT: CCHAR = 0;

pub const DO_BUFFERED_IO: ULONG = 0x0000_0004;
pub const DO_DEVICE_INITIALIZING: ULONG = 0x0000_0080;
pub const FILE_DEVICE_SECURE_OPEN: ULONG = 0x0000_0100;

pub const SECURITY_DESCRIPTOR_REVISION: ULONG = 1;
pub const ACL_REVISION: ULONG = 2;
pub const DACL_SECURITY_INFORMATION: SECURITY_INFORMATION = 0x0000_0004;
pub const OBJ_KERNEL_HANDLE: ULONG = 0x0000_0200;
pub const WRITE_DAC: ACCESS_MASK = 0x0004_0000;
pub const KernelMode: KPROCESSOR_MODE = 0;
/// `FILE_ALL_ACCESS`: `STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF`.
pub const FILE_ALL_ACCESS: ACCESS_MASK = 0x001F_01FF;
/// `SECURITY_DESCRIPTOR` (absolute form) on x64.
pub const SECURITY_DESCRIPTOR_SIZE: usize = 40;
pub const TRUE: BOOLEAN = 1;
pub const FALSE: BOOLEAN = 0;

/// `PDRIVER_UNLOAD`.
pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(DriverObject: *mut DRIVER_OBJECT)>;
/// `PDRIVER_DISPATCH`.
pub type PDRIVER_DISPATCH = Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Irp: PIRP) -> NTSTATUS>;

/// `DRIVER_OBJECT`.
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: CSHORT,
    pub Size: CSHORT,
    pub DeviceObject: PDEVICE_OBJECT,
    pub Flags: ULONG,
    pub DriverStart: PVOID,
    pub DriverSize: ULONG,
    pub DriverSection: PVOID,
    pub DriverExtension: *mut c_void,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: PVOID,
    pub DriverStartIo: PVOID,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1],
}

/// `KDEVICE_QUEUE`.
#[repr(C)]
pub struct KDEVICE_QUEUE {
    pub Type: CSHORT,
    pub Size: CSHORT,
    pub DeviceListHead: LIST_ENTRY,
    pub Lock: KSPIN_LOCK,
    pub Busy: BOOLEAN,
}

/// `DEVICE_OBJECT`. Parts the driver never touches are kept as opaque bytes of their exact size.
#[repr(C)]
pub struct DEVICE_OBJECT {
    pub Type: CSHORT,
    pub Size: USHORT,
    pub ReferenceCount: LONG,
    pub DriverObject: *mut DRIVER_OBJECT,
    pub NextDevice: PDEVICE_OBJECT,
    pub AttachedDevice: PDEVICE_OBJECT,
    pub CurrentIrp: PIRP,
    pub Timer: PVOID,
    pub Flags: ULONG,
    pub Characteristics: ULONG,
    pub Vpb: PVOID,
    pub DeviceExtension: PVOID,
    pub DeviceType: DEVICE_TYPE,
    pub StackSize: CCHAR,
    /// The `Queue` union (`LIST_ENTRY` or `WAIT_CONTEXT_BLOCK`), 72 bytes.
    pub Queue: [u64; 9],
    pub AlignmentRequirement: ULONG,
    pub DeviceQueue: KDEVICE_QUEUE,
    /// The `KDPC` (64 bytes).
    pub Dpc: [u64; 8],
    pub ActiveThreadCount: ULONG,
    pub SecurityDescriptor: PVOID,
    /// The `DeviceLock` `KEVENT` (24 bytes).
    pub DeviceLock: [u64; 3],
    pub SectorSize: USHORT,
    pub Spare1: USHORT,
    pub DeviceObjectExtension: PVOID,
    pub Reserved: PVOID,
}

/// `IO_STATUS_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    pub __bindgen_anon_1: IO_STATUS_BLOCK__bindgen_ty_1,
    pub Information: ULONG_PTR,
}

/// The `Status` / `Pointer` union of `IO_STATUS_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STATUS_BLOCK__bindgen_ty_1 {
    pub Status: NTSTATUS,
    pub Pointer: PVOID,
}

/// `IRP`'s `AssociatedIrp` union.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP__bindgen_ty_1 {
    pub MasterIrp: PIRP,
    pub IrpCount: LONG,
    pub SystemBuffer: PVOID,
}

/// `IRP` (x64, 208 bytes). The `Tail` union is declared as its `Overlay` member, the one drivers use.
#[repr(C)]
pub struct IRP {
    pub Type: CSHORT,
    pub Size: USHORT,
    pub AllocationProcessorNumber: USHORT,
    pub Reserved: USHORT,
    pub MdlAddress: PVOID,
    pub Flags: ULONG,
    pub AssociatedIrp: IRP__bindgen_ty_1,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: CCHAR,
    pub PendingReturned: BOOLEAN,
    pub StackCount: CCHAR,
    pub CurrentLocation: CCHAR,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: CCHAR,
    pub AllocationFlags: UCHAR,
    pub UserIosb: *mut IO_STATUS_BLOCK,
    pub UserEvent: PVOID,
    /// The `Overlay` union (`AsynchronousParameters` or `AllocationSize`), 16 bytes.
    pub Overlay: [u64; 2],
    pub CancelRoutine: PVOID,
    pub UserBuffer: PVOID,
    pub Tail: IRP__bindgen_ty_3,
}

/// `IRP`'s `Tail` union, as its `Overlay` member (88 bytes, the size of the largest member, `KAPC`).
#[repr(C)]
pub struct IRP__bindgen_ty_3 {
    pub Overlay: IRP__bindgen_ty_3__bindgen_ty_1,
}

/// `Tail.Overlay`.
#[repr(C)]
pub struct IRP__bindgen_ty_3__bindgen_ty_1 {
    /// `DeviceQueueEntry` / `DriverContext[4]`.
    pub DriverContext: [PVOID; 4],
    pub Thread: PVOID,
    pub AuxiliaryBuffer: *mut i8,
    pub __bindgen_anon_2: IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2,
    pub OriginalFileObject: PVOID,
    /// The rest of the union (`KAPC` is 88 bytes).
    pub _KapcTail: [u64; 1],
}

/// `Tail.Overlay`'s list entry and current stack location.
#[repr(C)]
pub struct IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2 {
    pub ListEntry: LIST_ENTRY,
    pub __bindgen_anon_1: IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2__bindgen_ty_1,
}

/// `CurrentStackLocation` / `PacketType`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2__bindgen_ty_1 {
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    pub PacketType: ULONG,
}

/// `IO_STACK_LOCATION` (x64, 72 bytes). `Parameters` is declared as its `DeviceIoControl` member, the
/// one this driver reads, padded to the union's 32 bytes.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: UCHAR,
    pub MinorFunction: UCHAR,
    pub Flags: UCHAR,
    pub Control: UCHAR,
    pub Parameters: IO_STACK_LOCATION__bindgen_ty_1,
    pub DeviceObject: PDEVICE_OBJECT,
    pub FileObject: PVOID,
    pub CompletionRoutine: PVOID,
    pub Context: PVOID,
}

/// `IO_STACK_LOCATION.Parameters`.
#[repr(C)]
pub struct IO_STACK_LOCATION__bindgen_ty_1 {
    pub DeviceIoControl: IO_STACK_LOCATION__bindgen_ty_1__bindgen_ty_16,
}

/// `Parameters.DeviceIoControl` (each field pointer-aligned: `POINTER_ALIGNMENT`).
#[repr(C)]
pub struct IO_STACK_LOCATION__bindgen_ty_1__bindgen_ty_16 {
    pub OutputBufferLength: ULONG,
    pub _Pad0: u32,
    pub InputBufferLength: ULONG,
    pub _Pad1: u32,
    pub IoControlCode: ULONG,
    pub _Pad2: u32,
    pub Type3InputBuffer: PVOID,
}

/// `IoGetCurrentIrpStackLocation` (inline in the WDK headers).
///
/// # Safety
/// `irp` is a valid IRP being dispatched to this driver.
pub unsafe fn IoGetCurrentIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees the IRP is valid.
    let irp = unsafe { &*irp };
    // SAFETY: the I/O manager set the current location: the union holds the pointer.
    unsafe { irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation }
}

/// `GUID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// `GUID_DEVINTERFACE_DISK` (`{53F56307-B6BF-11D0-94F2-00A0C91EFB8B}`), the disks' device interface
/// class.
pub const GUID_DEVINTERFACE_DISK: GUID =
    GUID { Data1: 0x53F5_6307, Data2: 0xB6BF, Data3: 0x11D0, Data4: [0x94, 0xF2, 0x00, 0xA0, 0xC9, 0x1E, 0xFB, 0x8B] };

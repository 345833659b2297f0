//! The host I/O manager: the kernel routines a WDM driver calls besides the pool's (devices and
//! symbolic links, IRP completion, security descriptors and ACLs, kernel handles, device interfaces,
//! `DbgPrint`), with the checks and status codes of the real ones where a driver could get them wrong,
//! and what a test harness reads back (the device a link leads to, a device's DACL, how often an IRP
//! was completed, the debug output). The harness that loads a driver and sends it requests is the
//! driver's own (see the sample driver's `host` module).
//!
//! The object manager's state is one per process (as the names are), not per [`Kernel`](super::Kernel).
#![allow(non_snake_case)]

use std::borrow::ToOwned;
use std::boxed::Box;
use std::collections::HashMap;
use std::panic::Location;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

use crate::{
    ACCESS_MASK, BOOLEAN, CCHAR, DEVICE_OBJECT, DEVICE_TYPE, DO_DEVICE_INITIALIZING, DRIVER_OBJECT, IRP, NTSTATUS,
    PDEVICE_OBJECT, PIRP, PVOID, ULONG, UNICODE_STRING,
};

/// What the emulated object manager knows: named devices, symbolic links, DACLs, completed IRPs, and
/// debug output.
#[derive(Default)]
struct Objects {
    devices: HashMap<String, usize>,
    links: HashMap<String, String>,
    dacls: HashMap<usize, Vec<(Vec<u8>, u32)>>,
    extensions: HashMap<usize, std::alloc::Layout>,
    /// Open kernel handles: the object, and the access granted.
    handles: HashMap<usize, u32>,
    completions: HashMap<usize, u32>,
    debug_output: Vec<String>,
}

static OBJECTS: Mutex<Option<Objects>> = Mutex::new(None);

fn objects<R>(f: impl FnOnce(&mut Objects) -> R) -> R {
    let mut guard = OBJECTS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Objects::default))
}

/// The text of a `UNICODE_STRING`.
///
/// # Safety
/// `string` points to a valid `UNICODE_STRING`.
unsafe fn text(string: *const UNICODE_STRING) -> String {
    // SAFETY: the caller guarantees the string is valid.
    let string = unsafe { &*string };
    if string.Buffer.is_null() {
        return String::new();
    }
    // SAFETY: a valid UNICODE_STRING's buffer holds `Length` bytes.
    let units = unsafe { core::slice::from_raw_parts(string.Buffer, usize::from(string.Length) / 2) };
    String::from_utf16_lossy(units)
}

const STATUS_SUCCESS: NTSTATUS = 0;
const STATUS_OBJECT_NAME_COLLISION: NTSTATUS = 0xC000_0035_u32 as i32;
const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as i32;
const STATUS_UNKNOWN_REVISION: NTSTATUS = 0xC000_0058_u32 as i32;
const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as i32;
const STATUS_ALLOTTED_SPACE_EXCEEDED: NTSTATUS = 0xC000_0099_u32 as i32;
const STATUS_INVALID_SECURITY_DESCR: NTSTATUS = 0xC000_0079_u32 as i32;
const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as i32;
const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0022_u32 as i32;
const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
/// Device extensions are aligned like pool blocks.
const EXTENSION_ALIGN: usize = 16;

/// `DbgPrint`, called with `"%s"` and one NUL-terminated string (as `debug_print!` of
/// `ntpool-kernel-support` calls it): the line is kept, without its line end, for
/// [`take_debug_output`].
///
/// # Safety
/// `text` is a NUL-terminated string.
pub unsafe fn DbgPrint(_format: *const u8, text: *const u8) -> ULONG {
    // SAFETY: the driver always passes a NUL-terminated string (`debug_print!`).
    let text = unsafe { core::ffi::CStr::from_ptr(text.cast()) };
    let line = String::from_utf8_lossy(text.to_bytes()).trim_end().to_owned();
    objects(|o| o.debug_output.push(line));
    0
}

/// `IoCreateDevice`: a device object with a zeroed extension of `DeviceExtensionSize` bytes, linked
/// into the driver object's list and flagged `DO_DEVICE_INITIALIZING`;
/// `STATUS_OBJECT_NAME_COLLISION` for a name that exists.
///
/// # Safety
/// As for `IoCreateDevice`: a valid driver object, name and out pointer.
pub unsafe fn IoCreateDevice(
    DriverObject: *mut DRIVER_OBJECT,
    DeviceExtensionSize: ULONG,
    DeviceName: *mut UNICODE_STRING,
    DeviceType: DEVICE_TYPE,
    DeviceCharacteristics: ULONG,
    _Exclusive: BOOLEAN,
    DeviceObject: *mut PDEVICE_OBJECT,
) -> NTSTATUS {
    // SAFETY: the driver passes a valid name.
    let name = unsafe { text(DeviceName) };
    if objects(|o| o.devices.contains_key(&name)) {
        return STATUS_OBJECT_NAME_COLLISION;
    }
    let size = (DeviceExtensionSize as usize).max(1);
    let Ok(layout) = std::alloc::Layout::from_size_align(size, EXTENSION_ALIGN) else {
        return crate::STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: a non-zero layout.
    let extension = unsafe { std::alloc::alloc_zeroed(layout) };
    if extension.is_null() {
        // As the kernel answers when it has no memory for the device object and its extension.
        return crate::STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: DEVICE_OBJECT is plain data for which all-zero bytes are valid.
    let mut device: Box<DEVICE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    device.DeviceExtension = extension.cast();
    device.DriverObject = DriverObject;
    device.DeviceType = DeviceType;
    device.Characteristics = DeviceCharacteristics;
    device.Flags = DO_DEVICE_INITIALIZING;
    // As IoCreateDevice does: IRPs sent to this device need one stack location.
    device.StackSize = 1;
    // SAFETY: the driver passes its valid driver object.
    device.NextDevice = unsafe { (*DriverObject).DeviceObject };
    let device = Box::into_raw(device);
    // SAFETY: as above.
    unsafe { (*DriverObject).DeviceObject = device };
    objects(|o| {
        o.devices.insert(name, device as usize);
        o.extensions.insert(device as usize, layout);
    });
    // SAFETY: the driver passes a valid out pointer.
    unsafe { *DeviceObject = device };
    STATUS_SUCCESS
}

/// `IoDeleteDevice`: unlinks the device from its driver object and frees it and its extension.
///
/// # Safety
/// As for `IoDeleteDevice`: a device this kernel created, deleted once.
pub unsafe fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT) {
    let address = DeviceObject as usize;
    let layout = objects(|o| {
        o.dacls.remove(&address);
        let name = o.devices.iter().find(|(_, d)| **d == address).map(|(n, _)| n.clone());
        name.map(|name| o.devices.remove(&name));
        o.extensions.remove(&address)
    });
    let layout = layout.expect("IoDeleteDevice on a device this kernel created");
    // SAFETY: created by IoCreateDevice above, deleted once.
    let device = unsafe { Box::from_raw(DeviceObject) };
    // SAFETY: the driver object outlives its devices.
    let driver = unsafe { &mut *device.DriverObject };
    // Unlink it from the driver's device list (made of devices created above).
    let mut link: &mut PDEVICE_OBJECT = &mut driver.DeviceObject;
    while !link.is_null() && *link != DeviceObject {
        // SAFETY: a device of the list, created above and not deleted yet.
        link = unsafe { &mut (**link).NextDevice };
    }
    if !link.is_null() {
        *link = device.NextDevice;
    }
    // SAFETY: allocated by IoCreateDevice with this layout, released once.
    unsafe { std::alloc::dealloc(device.DeviceExtension.cast(), layout) };
}

/// `IoCreateSymbolicLink`; `STATUS_OBJECT_NAME_COLLISION` for a link that exists.
///
/// # Safety
/// As for `IoCreateSymbolicLink`: valid names.
pub unsafe fn IoCreateSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING, DeviceName: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the driver passes a valid name.
    let link = unsafe { text(SymbolicLinkName) };
    // SAFETY: as above.
    let target = unsafe { text(DeviceName) };
    objects(|o| {
        if o.links.contains_key(&link) {
            return STATUS_OBJECT_NAME_COLLISION;
        }
        o.links.insert(link, target);
        STATUS_SUCCESS
    })
}

/// `IoDeleteSymbolicLink`; `STATUS_OBJECT_NAME_NOT_FOUND` for a link that does not exist.
///
/// # Safety
/// As for `IoDeleteSymbolicLink`: a valid name.
pub unsafe fn IoDeleteSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the driver passes a valid name.
    let link = unsafe { text(SymbolicLinkName) };
    objects(|o| if o.links.remove(&link).is_some() { STATUS_SUCCESS } else { STATUS_OBJECT_NAME_NOT_FOUND })
}

/// `IofCompleteRequest`: counted per IRP ([`take_completions`]); for an IRP from `IoAllocateIrp`,
/// the completion routines run ([`irp`](super::irp)).
///
/// # Safety
/// As for `IofCompleteRequest`.
pub unsafe fn IofCompleteRequest(Irp: PIRP, _PriorityBoost: CCHAR) {
    objects(|o| *o.completions.entry(Irp as usize).or_default() += 1);
    // SAFETY: the caller completes a valid IRP; its completion routines run now.
    unsafe { super::irp::complete(Irp) };
}

/// `RtlCreateSecurityDescriptor`: an empty absolute descriptor; `STATUS_UNKNOWN_REVISION` for any
/// revision but 1.
///
/// # Safety
/// `SecurityDescriptor` points to `SECURITY_DESCRIPTOR_SIZE` writable bytes.
pub unsafe fn RtlCreateSecurityDescriptor(SecurityDescriptor: PVOID, Revision: ULONG) -> NTSTATUS {
    if Revision != 1 {
        return STATUS_UNKNOWN_REVISION;
    }
    // SAFETY: the caller passes SECURITY_DESCRIPTOR_SIZE writable bytes.
    unsafe { core::ptr::write_bytes(SecurityDescriptor.cast::<u8>(), 0, crate::SECURITY_DESCRIPTOR_SIZE) };
    // SAFETY: as above; `Revision` is the first byte.
    unsafe { *SecurityDescriptor.cast::<u8>() = 1 };
    STATUS_SUCCESS
}

/// `RtlCreateAcl`: an empty ACL of `AclLength` bytes.
///
/// # Safety
/// `Acl` points to `AclLength` writable bytes.
pub unsafe fn RtlCreateAcl(Acl: PVOID, AclLength: ULONG, AclRevision: ULONG) -> NTSTATUS {
    if !(8..=0xFFFF).contains(&AclLength) {
        return STATUS_BUFFER_TOO_SMALL;
    }
    if AclRevision != 2 && AclRevision != 4 {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes `AclLength` writable bytes.
    let acl = unsafe { core::slice::from_raw_parts_mut(Acl.cast::<u8>(), AclLength as usize) };
    acl.fill(0);
    acl[0] = AclRevision as u8;
    acl[2..4].copy_from_slice(&(AclLength as u16).to_le_bytes());
    STATUS_SUCCESS
}

/// An initialized ACL, as the bytes its header says it has.
///
/// # Safety
/// `acl` points to an ACL made by `RtlCreateAcl`, valid for its whole size.
unsafe fn acl_bytes<'a>(acl: *mut u8) -> &'a mut [u8] {
    // SAFETY: an ACL starts with an 8-byte header.
    let header = unsafe { core::slice::from_raw_parts(acl, 8) };
    let size = usize::from(u16::from_le_bytes([header[2], header[3]]));
    // SAFETY: the header's size is what `RtlCreateAcl` was given room for.
    unsafe { core::slice::from_raw_parts_mut(acl, size) }
}

/// A SID's bytes: revision, sub-authority count, 6 bytes of authority, 4 per sub-authority.
///
/// # Safety
/// `sid` points to a valid SID.
unsafe fn sid_bytes<'a>(sid: *const u8) -> &'a [u8] {
    // SAFETY: a SID starts with its revision and sub-authority count.
    let count = usize::from(unsafe { core::slice::from_raw_parts(sid, 2) }[1]);
    // SAFETY: a valid SID has 8 + 4 * count bytes.
    unsafe { core::slice::from_raw_parts(sid, 8 + 4 * count) }
}

/// `RtlAddAccessAllowedAce`; `STATUS_ALLOTTED_SPACE_EXCEEDED` when the ACL has no room for it.
///
/// # Safety
/// `Acl` was made by `RtlCreateAcl`; `Sid` is a valid SID.
pub unsafe fn RtlAddAccessAllowedAce(Acl: PVOID, _AceRevision: ULONG, AccessMask: ACCESS_MASK, Sid: PVOID) -> NTSTATUS {
    // SAFETY: the caller passes an ACL made by RtlCreateAcl.
    let acl = unsafe { acl_bytes(Acl.cast()) };
    // SAFETY: the caller passes a valid SID.
    let sid = unsafe { sid_bytes(Sid.cast()) };
    let count = u16::from_le_bytes([acl[4], acl[5]]);
    let mut end = 8;
    for _ in 0..count {
        end += usize::from(u16::from_le_bytes([acl[end + 2], acl[end + 3]]));
    }
    let ace_size = 8 + sid.len();
    let Some(ace) = acl.get_mut(end..end + ace_size) else {
        return STATUS_ALLOTTED_SPACE_EXCEEDED;
    };
    ace[0] = 0; // ACCESS_ALLOWED_ACE_TYPE
    ace[1] = 0;
    ace[2..4].copy_from_slice(&(ace_size as u16).to_le_bytes());
    ace[4..8].copy_from_slice(&AccessMask.to_le_bytes());
    ace[8..].copy_from_slice(sid);
    acl[4..6].copy_from_slice(&(count + 1).to_le_bytes());
    STATUS_SUCCESS
}

/// An absolute security descriptor's bytes: revision, control at 2, the DACL pointer at 32.
///
/// # Safety
/// `descriptor` points to SECURITY_DESCRIPTOR_SIZE valid bytes.
unsafe fn descriptor_bytes<'a>(descriptor: PVOID) -> &'a mut [u8] {
    // SAFETY: the caller guarantees the size.
    unsafe { core::slice::from_raw_parts_mut(descriptor.cast::<u8>(), crate::SECURITY_DESCRIPTOR_SIZE) }
}

/// `RtlSetDaclSecurityDescriptor`: sets the control bits and the DACL pointer.
///
/// # Safety
/// `SecurityDescriptor` was made by `RtlCreateSecurityDescriptor`.
pub unsafe fn RtlSetDaclSecurityDescriptor(
    SecurityDescriptor: PVOID,
    DaclPresent: BOOLEAN,
    Dacl: PVOID,
    DaclDefaulted: BOOLEAN,
) -> NTSTATUS {
    // SAFETY: the caller passes a descriptor made by RtlCreateSecurityDescriptor.
    let descriptor = unsafe { descriptor_bytes(SecurityDescriptor) };
    let mut control = u16::from_le_bytes([descriptor[2], descriptor[3]]) & !0xC;
    if DaclPresent != 0 {
        control |= 0x4; // SE_DACL_PRESENT
    }
    if DaclDefaulted != 0 {
        control |= 0x8; // SE_DACL_DEFAULTED
    }
    descriptor[2..4].copy_from_slice(&control.to_le_bytes());
    descriptor[32..40].copy_from_slice(&(Dacl as usize).to_le_bytes());
    STATUS_SUCCESS
}

/// `ObOpenObjectByPointer`, for a device of this kernel, a kernel handle, in kernel mode (else
/// `STATUS_INVALID_PARAMETER`): the handle stands for the device and the access asked for.
///
/// # Safety
/// As for `ObOpenObjectByPointer`: a valid out pointer.
pub unsafe fn ObOpenObjectByPointer(
    Object: PVOID,
    HandleAttributes: ULONG,
    _PassedAccessState: PVOID,
    DesiredAccess: ACCESS_MASK,
    _ObjectType: PVOID,
    AccessMode: crate::KPROCESSOR_MODE,
    Handle: *mut crate::HANDLE,
) -> NTSTATUS {
    let known = objects(|o| o.devices.values().any(|&device| device == Object as usize));
    if !known || HandleAttributes != crate::OBJ_KERNEL_HANDLE || AccessMode != crate::KernelMode {
        return STATUS_INVALID_PARAMETER;
    }
    // The handle stands for the object and the access it was opened with.
    objects(|o| o.handles.insert(Object as usize, DesiredAccess));
    // SAFETY: the caller passes a valid out pointer.
    unsafe { *Handle = Object };
    STATUS_SUCCESS
}

/// `ZwClose`; `STATUS_INVALID_HANDLE` for a handle that is not open.
///
/// # Safety
/// As for `ZwClose`.
pub unsafe fn ZwClose(Handle: crate::HANDLE) -> NTSTATUS {
    objects(|o| if o.handles.remove(&(Handle as usize)).is_some() { STATUS_SUCCESS } else { STATUS_INVALID_HANDLE })
}

/// `ZwSetSecurityObject` with a DACL: kept for [`device_dacl`]. `STATUS_ACCESS_DENIED` without
/// `WRITE_DAC` access, `STATUS_INVALID_SECURITY_DESCR` for anything but a DACL that is present.
///
/// # Safety
/// As for `ZwSetSecurityObject`: a descriptor made by `RtlCreateSecurityDescriptor`, its DACL by
/// `RtlCreateAcl` and `RtlAddAccessAllowedAce`.
pub unsafe fn ZwSetSecurityObject(
    Handle: crate::HANDLE,
    SecurityInformation: ULONG,
    SecurityDescriptor: PVOID,
) -> NTSTATUS {
    let Some(access) = objects(|o| o.handles.get(&(Handle as usize)).copied()) else {
        return STATUS_INVALID_HANDLE;
    };
    if access & crate::WRITE_DAC == 0 {
        return STATUS_ACCESS_DENIED;
    }
    let Object = Handle;
    // SAFETY: the caller passes a descriptor made by RtlCreateSecurityDescriptor.
    let descriptor = unsafe { descriptor_bytes(SecurityDescriptor) };
    let control = u16::from_le_bytes([descriptor[2], descriptor[3]]);
    let dacl = usize::from_le_bytes(descriptor[32..40].try_into().unwrap_or_default()) as *mut u8;
    if descriptor[0] != 1
        || SecurityInformation != crate::DACL_SECURITY_INFORMATION
        || control & 0x4 == 0
        || dacl.is_null()
    {
        return STATUS_INVALID_SECURITY_DESCR;
    }
    // SAFETY: the descriptor's DACL was made by RtlCreateAcl and RtlAddAccessAllowedAce.
    let acl = unsafe { acl_bytes(dacl) };
    let mut entries = Vec::new();
    let mut at = 8;
    for _ in 0..u16::from_le_bytes([acl[4], acl[5]]) {
        let size = usize::from(u16::from_le_bytes([acl[at + 2], acl[at + 3]]));
        let mask = u32::from_le_bytes([acl[at + 4], acl[at + 5], acl[at + 6], acl[at + 7]]);
        entries.push((acl[at + 8..at + size].to_vec(), mask));
        at += size;
    }
    objects(|o| o.dacls.insert(Object as usize, entries));
    STATUS_SUCCESS
}

/// The one interface the host machine has: a disk.
pub const HOST_DISK_INTERFACE: &str = "\\??\\SCSI#Disk&Ven_Host&Prod_Disk#0#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}";

/// `IoGetDeviceInterfaces`: the host has one disk and nothing else. The list is allocated as the
/// kernel does, from paged pool inside the kernel (tag `PnpD` here), for the caller to free with
/// `ExFreePool`.
///
/// # Safety
/// As for `IoGetDeviceInterfaces`: a valid GUID and out pointer, at `PASSIVE_LEVEL`.
#[track_caller]
pub unsafe fn IoGetDeviceInterfaces(
    InterfaceClassGuid: *const crate::GUID,
    _PhysicalDeviceObject: crate::PDEVICE_OBJECT,
    _Flags: ULONG,
    SymbolicLinkList: *mut *mut u16,
) -> NTSTATUS {
    // SAFETY: the caller passes a valid GUID.
    let class = unsafe { *InterfaceClassGuid };
    let mut list: Vec<u16> = Vec::new();
    if class == crate::GUID_DEVINTERFACE_DISK {
        list.extend(HOST_DISK_INTERFACE.encode_utf16());
        list.push(0);
    }
    list.push(0);
    let bytes = list.len() * 2;
    // A paged allocation at PASSIVE_LEVEL (the routine's IRQL), recorded at the driver's call.
    let tag = u32::from_le_bytes(*b"PnpD");
    let buffer = super::pool::allocate_pool_with_tag(crate::PagedPool, bytes as u64, tag, Location::caller());
    if buffer.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: `bytes` bytes were allocated.
    unsafe { buffer.cast::<u16>().copy_from_nonoverlapping(list.as_ptr(), list.len()) };
    // SAFETY: the caller passes a valid out pointer.
    unsafe { SymbolicLinkList.write(buffer.cast()) };
    STATUS_SUCCESS
}

/// Everything the driver printed with `DbgPrint` since the last call, one line per call, without its
/// line end.
///
/// ```
/// use ntpool_sys::emulated::io::take_debug_output;
/// // SAFETY: "%s" and a NUL-terminated string, as `DbgPrint` takes them.
/// unsafe { ntpool_sys::DbgPrint(c"%s".as_ptr().cast(), c"hello\n".as_ptr().cast()) };
/// assert!(take_debug_output().iter().any(|line| line == "hello"));
/// ```
pub fn take_debug_output() -> Vec<String> {
    objects(|o| core::mem::take(&mut o.debug_output))
}

/// The device the symbolic link `link` (for example `\\DosDevices\\NtPool`) leads to, as `CreateFileW`
/// finds it; `None` when there is no such link or its device is gone.
pub fn symbolic_link_device(link: &str) -> Option<PDEVICE_OBJECT> {
    objects(|o| {
        let target = o.links.get(link)?;
        o.devices.get(target).map(|&device| device as PDEVICE_OBJECT)
    })
}

/// The DACL `ZwSetSecurityObject` gave `device`: `(SID, access mask)` per entry, none if it was
/// never set.
pub fn device_dacl(device: *const DEVICE_OBJECT) -> Vec<(Vec<u8>, u32)> {
    objects(|o| o.dacls.get(&(device as usize)).cloned().unwrap_or_default())
}

/// How often `IofCompleteRequest` completed `irp` since the last call for it (forgotten then, so
/// that another IRP may later have the same address).
pub fn take_completions(irp: *const IRP) -> u32 {
    objects(|o| o.completions.remove(&(irp as usize)).unwrap_or(0))
}

/// How many device names and symbolic links exist: `(devices, links)`.
///
/// ```
/// assert_eq!(ntpool_sys::emulated::io::named_objects(), (0, 0));
/// ```
pub fn named_objects() -> (usize, usize) {
    objects(|o| (o.devices.len(), o.links.len()))
}

/// How many kernel handles (`ObOpenObjectByPointer`) are open and not closed (`ZwClose`).
///
/// ```
/// assert_eq!(ntpool_sys::emulated::io::open_handles(), 0);
/// ```
pub fn open_handles() -> usize {
    objects(|o| o.handles.len())
}

/// Opens a kernel handle to `object` (the emulated handle is the object's address) with `access`:
/// for the other modules' objects (system threads), closed by [`ZwClose`].
pub(crate) fn open_handle(object: usize, access: u32) {
    objects(|o| o.handles.insert(object, access));
}

/// Whether `handle` is an open kernel handle.
pub(crate) fn is_open_handle(handle: usize) -> bool {
    objects(|o| o.handles.contains_key(&handle))
}

//! The driver on ntpool's emulated kernel (host builds only): the kernel routines the driver calls
//! besides ntpool's, emulated ([`routines`]), and what the I/O manager does around the driver:
//! `DriverEntry` and `DriverUnload`, opening the device, and `METHOD_BUFFERED` device-control
//! requests. For the host tests and `cargo xtask run`.

use std::borrow::ToOwned;
use std::boxed::Box;
use std::collections::HashMap;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

use crate::kernel::{
    DEVICE_OBJECT, DRIVER_OBJECT, IO_STACK_LOCATION, IRP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, NTSTATUS,
    PDEVICE_OBJECT, UNICODE_STRING,
};

/// The registry path a service named `ntpool` gets.
pub const REGISTRY_PATH: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool";

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

std::thread_local! {
    /// What the I/O manager fills the rest of a system buffer with, on this thread.
    static SYSTEM_BUFFER_FILL: core::cell::Cell<u8> = const { core::cell::Cell::new(0xCD) };
}

/// Sets what the I/O manager fills the part of a system buffer past the input with (0xCD by
/// default), for the requests sent from this thread: as uninitialized pool would be. A test that runs
/// the same requests with two fills sees whether any of those bytes reaches user mode.
pub fn set_system_buffer_fill(fill: u8) {
    SYSTEM_BUFFER_FILL.with(|cell| cell.set(fill));
}

/// A `FILE_OBJECT` (x64, 0xD8 bytes): the driver only compares its address.
type FileObject = [u64; 27];

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

/// Emulations of the kernel routines the driver declares in [`crate::kernel`], with the checks and
/// status codes of the real ones where the driver could get them wrong.
/// Each routine stands for the WDK routine of the same name, whose contract it keeps.
#[allow(non_snake_case, missing_docs, clippy::missing_safety_doc)]
pub mod routines {
    use super::*;
    use crate::kernel::{ACCESS_MASK, BOOLEAN, CCHAR, DEVICE_TYPE, DO_DEVICE_INITIALIZING, PIRP, PVOID, ULONG};

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

    /// `DbgPrint`, called by the driver with `"%s"` and one NUL-terminated string: the line is kept
    /// for [`take_debug_output`](super::take_debug_output).
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
        // SAFETY: DEVICE_OBJECT is plain data for which all-zero bytes are valid.
        let mut device: Box<DEVICE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
        let size = (DeviceExtensionSize as usize).max(1);
        let layout = std::alloc::Layout::from_size_align(size, EXTENSION_ALIGN).expect("a valid extension size");
        // SAFETY: a non-zero layout.
        let extension = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!extension.is_null(), "out of host memory");
        device.DeviceExtension = extension.cast();
        device.DriverObject = DriverObject;
        device.DeviceType = DeviceType;
        device.Characteristics = DeviceCharacteristics;
        device.Flags = DO_DEVICE_INITIALIZING;
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

    pub unsafe fn IoCreateSymbolicLink(
        SymbolicLinkName: *mut UNICODE_STRING,
        DeviceName: *mut UNICODE_STRING,
    ) -> NTSTATUS {
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

    pub unsafe fn IoDeleteSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING) -> NTSTATUS {
        // SAFETY: the driver passes a valid name.
        let link = unsafe { text(SymbolicLinkName) };
        objects(|o| if o.links.remove(&link).is_some() { STATUS_SUCCESS } else { STATUS_OBJECT_NAME_NOT_FOUND })
    }

    pub unsafe fn IofCompleteRequest(Irp: PIRP, _PriorityBoost: CCHAR) {
        objects(|o| *o.completions.entry(Irp as usize).or_default() += 1);
    }

    pub unsafe fn RtlCreateSecurityDescriptor(SecurityDescriptor: PVOID, Revision: ULONG) -> NTSTATUS {
        if Revision != 1 {
            return STATUS_UNKNOWN_REVISION;
        }
        // SAFETY: the caller passes SECURITY_DESCRIPTOR_SIZE writable bytes.
        unsafe { core::ptr::write_bytes(SecurityDescriptor.cast::<u8>(), 0, crate::kernel::SECURITY_DESCRIPTOR_SIZE) };
        // SAFETY: as above; `Revision` is the first byte.
        unsafe { *SecurityDescriptor.cast::<u8>() = 1 };
        STATUS_SUCCESS
    }

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

    pub unsafe fn RtlAddAccessAllowedAce(
        Acl: PVOID,
        _AceRevision: ULONG,
        AccessMask: ACCESS_MASK,
        Sid: PVOID,
    ) -> NTSTATUS {
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
        unsafe { core::slice::from_raw_parts_mut(descriptor.cast::<u8>(), crate::kernel::SECURITY_DESCRIPTOR_SIZE) }
    }

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

    pub unsafe fn ObOpenObjectByPointer(
        Object: PVOID,
        HandleAttributes: ULONG,
        _PassedAccessState: PVOID,
        DesiredAccess: ACCESS_MASK,
        _ObjectType: PVOID,
        AccessMode: crate::kernel::KPROCESSOR_MODE,
        Handle: *mut crate::kernel::HANDLE,
    ) -> NTSTATUS {
        let known = objects(|o| o.devices.values().any(|&device| device == Object as usize));
        if !known || HandleAttributes != crate::kernel::OBJ_KERNEL_HANDLE || AccessMode != crate::kernel::KernelMode {
            return STATUS_INVALID_PARAMETER;
        }
        // The handle stands for the object and the access it was opened with.
        objects(|o| o.handles.insert(Object as usize, DesiredAccess));
        // SAFETY: the caller passes a valid out pointer.
        unsafe { *Handle = Object };
        STATUS_SUCCESS
    }

    pub unsafe fn ZwClose(Handle: crate::kernel::HANDLE) -> NTSTATUS {
        objects(|o| if o.handles.remove(&(Handle as usize)).is_some() { STATUS_SUCCESS } else { STATUS_INVALID_HANDLE })
    }

    pub unsafe fn ZwSetSecurityObject(
        Handle: crate::kernel::HANDLE,
        SecurityInformation: ULONG,
        SecurityDescriptor: PVOID,
    ) -> NTSTATUS {
        let Some(access) = objects(|o| o.handles.get(&(Handle as usize)).copied()) else {
            return STATUS_INVALID_HANDLE;
        };
        if access & crate::kernel::WRITE_DAC == 0 {
            return STATUS_ACCESS_DENIED;
        }
        let Object = Handle;
        // SAFETY: the caller passes a descriptor made by RtlCreateSecurityDescriptor.
        let descriptor = unsafe { descriptor_bytes(SecurityDescriptor) };
        let control = u16::from_le_bytes([descriptor[2], descriptor[3]]);
        let dacl = usize::from_le_bytes(descriptor[32..40].try_into().unwrap_or_default()) as *mut u8;
        if descriptor[0] != 1
            || SecurityInformation != crate::kernel::DACL_SECURITY_INFORMATION
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
    pub unsafe fn IoGetDeviceInterfaces(
        InterfaceClassGuid: *const crate::kernel::GUID,
        _PhysicalDeviceObject: crate::kernel::PDEVICE_OBJECT,
        _Flags: ULONG,
        SymbolicLinkList: *mut *mut u16,
    ) -> NTSTATUS {
        // SAFETY: the caller passes a valid GUID.
        let class = unsafe { *InterfaceClassGuid };
        let mut list: Vec<u16> = Vec::new();
        if class == crate::kernel::GUID_DEVINTERFACE_DISK {
            list.extend(HOST_DISK_INTERFACE.encode_utf16());
            list.push(0);
        }
        list.push(0);
        let bytes = list.len() * 2;
        // SAFETY: a plain allocation at PASSIVE_LEVEL (the routine's IRQL).
        let buffer = unsafe {
            ntpool::sys::ExAllocatePoolWithTag(ntpool::sys::PagedPool, bytes as u64, u32::from_le_bytes(*b"PnpD"))
        };
        if buffer.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: `bytes` bytes were allocated.
        unsafe { buffer.cast::<u16>().copy_from_nonoverlapping(list.as_ptr(), list.len()) };
        // SAFETY: the caller passes a valid out pointer.
        unsafe { SymbolicLinkList.write(buffer.cast()) };
        STATUS_SUCCESS
    }
}

/// Everything the driver printed with `DbgPrint` since the last call.
pub fn take_debug_output() -> Vec<String> {
    objects(|o| core::mem::take(&mut o.debug_output))
}

/// A loaded driver: its driver object, kept until [`LoadedDriver::unload`].
pub struct LoadedDriver {
    driver: Box<DRIVER_OBJECT>,
}

/// What `DriverEntry` returned and printed.
pub struct LoadResult {
    /// `DriverEntry`'s status.
    pub status: NTSTATUS,
    /// The driver, if `DriverEntry` succeeded.
    pub driver: Option<LoadedDriver>,
    /// Its `DbgPrint` output.
    pub output: Vec<String>,
}

/// Calls `DriverEntry` as the I/O manager does, on the calling thread's emulated kernel, at
/// `PASSIVE_LEVEL`. If it fails, checks that it left no device or link behind.
pub fn load() -> LoadResult {
    // SAFETY: DRIVER_OBJECT is plain data for which all-zero bytes are valid (null pointers, `None`).
    let mut driver: Box<DRIVER_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    let mut path: Vec<u16> = REGISTRY_PATH.encode_utf16().collect();
    let bytes = (path.len() * 2) as u16;
    let registry_path = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: path.as_mut_ptr() };
    // SAFETY: a valid driver object and registry path, at PASSIVE_LEVEL.
    let status = unsafe { crate::DriverEntry(&mut *driver, &registry_path) };
    let output = take_debug_output();
    if status < 0 {
        assert!(driver.DeviceObject.is_null(), "DriverEntry failed but left a device behind");
        assert!(objects(|o| o.links.is_empty()), "DriverEntry failed but left a symbolic link behind");
    }
    let driver = (status >= 0).then_some(LoadedDriver { driver });
    LoadResult { status, driver, output }
}

impl LoadedDriver {
    /// Calls the driver's `DriverUnload`, checks it deleted its device and link, and returns what it
    /// printed.
    pub fn unload(mut self) -> Vec<String> {
        if let Some(unload) = self.driver.DriverUnload {
            // SAFETY: DriverEntry succeeded and set this routine; it runs once, at PASSIVE_LEVEL.
            unsafe { unload(&mut *self.driver) };
        }
        assert!(self.driver.DeviceObject.is_null(), "DriverUnload left a device behind");
        assert!(objects(|o| o.links.is_empty() && o.devices.is_empty()), "DriverUnload left a name behind");
        assert!(objects(|o| o.handles.is_empty()), "the driver left a kernel handle open");
        take_debug_output()
    }

    /// Opens `\\.\NtPool` as `CreateFileW` would: the symbolic link leads to the device, and the
    /// driver's `IRP_MJ_CREATE` routine answers.
    pub fn open(&self) -> Result<Handle<'_>, NTSTATUS> {
        let device = objects(|o| {
            let target = o.links.get(ntpool_protocol::DOS_DEVICE_NAME)?;
            o.devices.get(target).copied()
        });
        let device = device.ok_or(0xC000_0034_u32 as i32)? as PDEVICE_OBJECT;
        let handle = Handle { driver: self, device, file: Box::new([0; 27]) };
        let (status, _) = handle.send(IRP_MJ_CREATE, 0, &[], 0);
        if status < 0 { Err(status) } else { Ok(handle) }
    }

    /// The DACL the driver gave its device: `(SID, access mask)` per entry.
    pub fn device_dacl(&self) -> Vec<(Vec<u8>, u32)> {
        let device = self.driver.DeviceObject as usize;
        objects(|o| o.dacls.get(&device).cloned().unwrap_or_default())
    }

    /// The device object the driver created.
    pub fn device(&self) -> *const DEVICE_OBJECT {
        self.driver.DeviceObject
    }
}

/// An open handle to the device, with a file object of its own (which the driver sees in every
/// request's stack location, and which identifies the client).
pub struct Handle<'a> {
    driver: &'a LoadedDriver,
    device: PDEVICE_OBJECT,
    file: Box<FileObject>,
}

impl Handle<'_> {
    /// `DeviceIoControl` with a `METHOD_BUFFERED` code: the input is copied into a system buffer of
    /// `max(input, output)` bytes (the rest filled with a pattern, as uninitialized pool would be:
    /// see [`set_system_buffer_fill`]),
    /// the driver's routine runs, and the `Information` bytes it reports are copied back. Checks that
    /// the driver completed the IRP exactly once and never reported more output than there was room
    /// for.
    pub fn device_control(&self, code: u32, input: &[u8], output_length: usize) -> (NTSTATUS, Vec<u8>) {
        self.send(IRP_MJ_DEVICE_CONTROL, code, input, output_length)
    }

    fn send(&self, major: usize, code: u32, input: &[u8], output_length: usize) -> (NTSTATUS, Vec<u8>) {
        let fill = SYSTEM_BUFFER_FILL.with(core::cell::Cell::get);
        let mut system_buffer = std::vec![fill; input.len().max(output_length)];
        system_buffer[..input.len()].copy_from_slice(input);
        // SAFETY: IRP and IO_STACK_LOCATION are plain data for which all-zero bytes are valid.
        let mut irp: Box<IRP> = Box::new(unsafe { core::mem::zeroed() });
        // SAFETY: as above.
        let mut stack: Box<IO_STACK_LOCATION> = Box::new(unsafe { core::mem::zeroed() });
        stack.MajorFunction = major as u8;
        stack.DeviceObject = self.device;
        stack.FileObject = (&*self.file as *const FileObject).cast_mut().cast();
        stack.Parameters.DeviceIoControl.IoControlCode = code;
        stack.Parameters.DeviceIoControl.InputBufferLength = input.len() as u32;
        stack.Parameters.DeviceIoControl.OutputBufferLength = output_length as u32;
        irp.AssociatedIrp.SystemBuffer =
            if system_buffer.is_empty() { core::ptr::null_mut() } else { system_buffer.as_mut_ptr().cast() };
        irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation = &mut *stack;
        irp.RequestorMode = 1; // UserMode
        let routine = self.driver.driver.MajorFunction[major].expect("the driver handles this request");
        let irp_address = &mut *irp as *mut IRP as usize;
        // SAFETY: a valid device and IRP, at PASSIVE_LEVEL, as the I/O manager calls it.
        let returned = unsafe { routine(self.device, &mut *irp) };
        let completions = objects(|o| o.completions.remove(&irp_address).unwrap_or(0));
        assert_eq!(completions, 1, "the IRP must be completed exactly once");
        // SAFETY: the driver set the status when it completed the IRP.
        let status = unsafe { irp.IoStatus.__bindgen_anon_1.Status };
        assert_eq!(returned, status, "the routine returns the status it completed the IRP with");
        let information = irp.IoStatus.Information as usize;
        assert!(
            information <= output_length,
            "the driver reported {information} bytes for a {output_length}-byte buffer"
        );
        (status, system_buffer[..information].to_vec())
    }
}

/// File objects of handles whose `IRP_MJ_CLOSE` never came ([`Handle::abandon`]): kept, as the I/O
/// manager keeps a file object until its close, so that no later handle gets the same address.
#[allow(clippy::vec_box)] // boxed: each file object keeps the address the driver saw
static ABANDONED: Mutex<Vec<Box<FileObject>>> = Mutex::new(Vec::new());

impl Handle<'_> {
    /// Lets the handle go without `IRP_MJ_CLOSE`, as if its close never came: the driver keeps the
    /// handle's blocks until `DriverUnload`. (The file object stays allocated, reachable, for the
    /// rest of the process.)
    pub fn abandon(self) {
        let handle = core::mem::ManuallyDrop::new(self);
        // SAFETY: `handle` is never dropped, so its file object is moved out of it once, here.
        let file = unsafe { core::ptr::read(&handle.file) };
        ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).push(file);
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        let (status, _) = self.send(IRP_MJ_CLOSE, 0, &[], 0);
        assert_eq!(status, 0, "IRP_MJ_CLOSE failed");
    }
}

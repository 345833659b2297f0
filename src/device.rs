//! The driver's device: `\Device\NtPool` with its symbolic link `\DosDevices\NtPool`, open to
//! SYSTEM and Administrators only, and the state it keeps in its device extension.

use core::sync::atomic::{AtomicU64, Ordering};

use ntpool::{
    Allows, FastMutex, IoRequest, LookasideBox, LookasideList, NonPagedBox, PagedPool, Passive, PoolTag, SpinLock,
};
use ntpool_protocol::Statistics;

use crate::kernel::{
    ACL_REVISION, DACL_SECURITY_INFORMATION, DO_BUFFERED_IO, DO_DEVICE_INITIALIZING, DRIVER_OBJECT, FILE_ALL_ACCESS,
    FILE_DEVICE_SECURE_OPEN, HANDLE, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    KernelMode, NTSTATUS, OBJ_KERNEL_HANDLE, ObOpenObjectByPointer, PDEVICE_OBJECT, RtlAddAccessAllowedAce,
    RtlCreateAcl, RtlCreateSecurityDescriptor, RtlSetDaclSecurityDescriptor, SECURITY_DESCRIPTOR_REVISION,
    SECURITY_DESCRIPTOR_SIZE, UnicodeLiteral, WRITE_DAC, ZwClose, ZwSetSecurityObject, unicode, utf16,
};

ntpool::pool_tag! {
    /// The allocation table's fast mutex.
    pub struct TableTag = b"NpTb";
}
ntpool::pool_tag! {
    /// What `IOCTL_NTPOOL_RUN_BACKGROUND` allocates: the system thread's context and paged block,
    /// and the internal request's context.
    pub struct BackgroundTag = b"NpBg";
}
ntpool::pool_tag! {
    /// Entries of the request log (non-paged, freed at `DISPATCH_LEVEL`).
    pub struct LogTag = b"NpLg";
}

static DEVICE_NAME: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"\\Device\\NtPool\0"));
static DOS_DEVICE_NAME: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"\\DosDevices\\NtPool\0"));

/// `S-1-5-18`, LocalSystem.
pub const SYSTEM_SID: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
/// `S-1-5-32-544`, BUILTIN\Administrators.
pub const ADMINISTRATORS_SID: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];

/// One outstanding block that a client allocated.
pub struct Entry {
    /// Its identifier (never an address).
    pub id: u64,
    /// The tag the client chose.
    pub tag: PoolTag,
    /// The file object of the handle it was allocated through: only that handle can read, list or
    /// free it, it counts against that handle's limits, and it is freed when that handle is closed.
    /// Compared, never dereferenced, and never returned to user mode.
    pub owner: usize,
    /// The memory.
    pub block: Block,
}

/// A client's block, in the pool it asked for.
pub enum Block {
    /// Non-paged, no-execute pool.
    NonPaged(NonPagedBox<[u8], PoolTag>),
    /// Paged pool.
    Paged(ntpool::PagedBox<[u8], PoolTag>),
}

impl Block {
    /// Its bytes, reached with a token that allows paged memory (which a non-paged block needs
    /// no token for, but one code path serves both).
    pub fn bytes<'a, I: Allows<PagedPool>>(&'a self, token: &'a I) -> &'a [u8] {
        match self {
            Block::NonPaged(block) => block,
            Block::Paged(block) => block.get(token),
        }
    }

    /// Its pool, as the protocol numbers it.
    pub fn pool(&self) -> u32 {
        match self {
            Block::NonPaged(_) => ntpool_protocol::POOL_NON_PAGED,
            Block::Paged(_) => ntpool_protocol::POOL_PAGED,
        }
    }
}

/// The blocks clients allocated, at most [`ntpool_protocol::MAX_ALLOCATIONS`].
pub struct Table {
    /// The slots; `None` where free. In a block of their own: kernel stacks are small, and the table
    /// is never built on one.
    pub entries: NonPagedBox<[Option<Entry>], TableTag>,
    /// The next id to hand out (ids start at 1 and are never reused).
    pub next_id: u64,
}

/// The last requests the device served, kept in entries of the device's non-paged lookaside list:
/// an entry displaced by a new one goes back to the list inside the spin-locked region, at
/// `DISPATCH_LEVEL`.
#[derive(Default, ntpool::DispatchSafe)]
pub struct RequestLog {
    /// The entries, oldest overwritten first. They borrow [`DeviceState::log_entries`], which lives
    /// as long as the device (and is dropped after this log).
    pub entries: [Option<LookasideBox<'static, LogEntry, LogTag>>; 8],
    /// Where the next one goes.
    pub next: usize,
}

/// One logged request.
#[derive(Clone, Copy, Debug, Default, ntpool::DispatchSafe)]
pub struct LogEntry {
    /// The IOCTL code.
    pub code: u32,
    /// The status it was answered with.
    pub status: i32,
}

/// The device's counters: the protocol's [`Statistics`], which the protocol crate cannot mark
/// [`DispatchSafe`](ntpool::DispatchSafe) itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters(pub Statistics);

// SAFETY: `Statistics` is eight `u64` counters: it owns and reaches no memory.
unsafe impl ntpool::DispatchSafe for Counters {}

impl core::ops::Deref for Counters {
    type Target = Statistics;
    fn deref(&self) -> &Statistics {
        &self.0
    }
}

impl core::ops::DerefMut for Counters {
    fn deref_mut(&mut self) -> &mut Statistics {
        &mut self.0
    }
}

/// What the device keeps in its extension.
pub struct DeviceState {
    /// Clients' blocks: paged ones included, so behind a fast mutex (`APC_LEVEL`).
    pub table: FastMutex<Table, TableTag>,
    /// Counters, updated at `DISPATCH_LEVEL` under a spin lock.
    pub stats: SpinLock<Counters>,
    /// The recent requests. Declared before `log_entries`, so dropped before it: every entry is back
    /// in the list when the list is deleted.
    pub log: SpinLock<RequestLog>,
    /// The lookaside list the log's entries come from (non-paged, tag `NpLg`).
    pub log_entries: LookasideList<LogEntry, LogTag>,
    /// The request the driver sends to its own device (`IOCTL_NTPOOL_RUN_BACKGROUND`): its
    /// completion routine keeps the `Information` the device answered with.
    pub internal: IoRequest<AtomicU64, BackgroundTag>,
}

/// The device's state, from its extension.
///
/// # Safety
/// `device` is this driver's device, created by [`create`] and not yet deleted.
pub unsafe fn state<'a>(device: PDEVICE_OBJECT) -> &'a DeviceState {
    // SAFETY: the caller guarantees the device is ours.
    let extension = unsafe { extension(device) };
    // SAFETY: `create` wrote a `DeviceState` into the extension, which lives as long as the device.
    unsafe { &*extension }
}

/// Where the device's state lives.
///
/// # Safety
/// `device` is a valid device object of this driver.
unsafe fn extension(device: PDEVICE_OBJECT) -> *mut DeviceState {
    // SAFETY: the caller guarantees the device is valid.
    unsafe { (*device).DeviceExtension.cast::<DeviceState>() }
}

/// Creates the device, its state and its symbolic link, and restricts it to SYSTEM and
/// Administrators. On failure nothing is left behind.
///
/// # Safety
/// `driver` is this driver's valid driver object, and the IRQL is `PASSIVE_LEVEL`.
pub unsafe fn create(driver: *mut DRIVER_OBJECT, passive: &mut Passive) -> Result<PDEVICE_OBJECT, NTSTATUS> {
    let no_memory = |_| crate::kernel::STATUS_INSUFFICIENT_RESOURCES;
    let entries =
        NonPagedBox::try_from_fn(passive, ntpool_protocol::MAX_ALLOCATIONS as usize, |_| None).map_err(no_memory)?;
    let table = FastMutex::try_new(passive, Table { entries, next_id: 1 }).map_err(no_memory)?;
    let log_entries = LookasideList::try_new(passive).map_err(no_memory)?;
    let internal = IoRequest::try_new(passive, AtomicU64::new(0), |_up_to_dispatch, information, done| {
        // At up to DISPATCH_LEVEL: an atomic store, nothing else.
        information.store(done.information as u64, Ordering::Release);
    })
    .map_err(no_memory)?;
    let mut name = unicode(DEVICE_NAME);
    let mut device: PDEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: a valid driver object and name; the extension is sized for `DeviceState`.
    let status = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<DeviceState>() as u32,
            &mut name,
            ntpool_protocol::FILE_DEVICE_NTPOOL,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut device,
        )
    };
    if status < 0 {
        return Err(status);
    }
    let state = DeviceState {
        table,
        stats: SpinLock::new(Counters::default()),
        log: SpinLock::new(RequestLog::default()),
        log_entries,
        internal,
    };
    // SAFETY: the device was just created.
    let extension = unsafe { extension(device) };
    // SAFETY: the extension is `size_of::<DeviceState>()` bytes of non-paged memory, suitably aligned
    // (16 bytes) and not in use yet.
    unsafe { extension.write(state) };
    if let Err(status) = secure(device).and_then(|()| link()) {
        // SAFETY: the device was created above and nothing else refers to it yet.
        unsafe { destroy(device, false) };
        return Err(status);
    }
    // SAFETY: the device was created above; the driver may set its flags until it clears
    // DO_DEVICE_INITIALIZING.
    let flags = unsafe { &mut (*device).Flags };
    *flags = (*flags | DO_BUFFERED_IO) & !DO_DEVICE_INITIALIZING;
    Ok(device)
}

/// Deletes the symbolic link (if `linked`), drops the state (freeing every client's block) and
/// deletes the device.
///
/// # Safety
/// `device` came from [`create`], at `PASSIVE_LEVEL`, and no request is in progress on it.
pub unsafe fn destroy(device: PDEVICE_OBJECT, linked: bool) {
    if linked {
        let mut link = unicode(DOS_DEVICE_NAME);
        // SAFETY: the link was created by `create`.
        unsafe { IoDeleteSymbolicLink(&mut link) };
    }
    // SAFETY: the device is valid (caller).
    let extension = unsafe { extension(device) };
    // SAFETY: the state was written by `create` and is dropped once, here.
    unsafe { core::ptr::drop_in_place(extension) };
    // SAFETY: the device is this driver's, and nothing refers to it any more.
    unsafe { IoDeleteDevice(device) };
}

fn link() -> Result<(), NTSTATUS> {
    let mut link = unicode(DOS_DEVICE_NAME);
    let mut name = unicode(DEVICE_NAME);
    // SAFETY: valid names.
    let status = unsafe { IoCreateSymbolicLink(&mut link, &mut name) };
    if status < 0 { Err(status) } else { Ok(()) }
}

/// Gives the device a DACL that lets SYSTEM and Administrators in, and nobody else.
fn secure(device: PDEVICE_OBJECT) -> Result<(), NTSTATUS> {
    let mut system = SYSTEM_SID;
    let mut administrators = ADMINISTRATORS_SID;
    // ACL header (8) + two ACCESS_ALLOWED_ACEs (8 + SID each), rounded up.
    let mut acl = [0u64; 8];
    let mut descriptor = [0u64; SECURITY_DESCRIPTOR_SIZE / 8];
    let acl_ptr = acl.as_mut_ptr().cast();
    let descriptor_ptr = descriptor.as_mut_ptr().cast();
    let check = |status: NTSTATUS| if status < 0 { Err(status) } else { Ok(()) };
    // SAFETY: a buffer of SECURITY_DESCRIPTOR_SIZE bytes, suitably aligned.
    check(unsafe { RtlCreateSecurityDescriptor(descriptor_ptr, SECURITY_DESCRIPTOR_REVISION) })?;
    // SAFETY: a buffer of 64 bytes, suitably aligned.
    check(unsafe { RtlCreateAcl(acl_ptr, core::mem::size_of_val(&acl) as u32, ACL_REVISION) })?;
    // SAFETY: an initialized ACL with room for the ACE, and a valid SID.
    check(unsafe { RtlAddAccessAllowedAce(acl_ptr, ACL_REVISION, FILE_ALL_ACCESS, system.as_mut_ptr().cast()) })?;
    // SAFETY: as above.
    check(unsafe {
        RtlAddAccessAllowedAce(acl_ptr, ACL_REVISION, FILE_ALL_ACCESS, administrators.as_mut_ptr().cast())
    })?;
    // SAFETY: an initialized descriptor and ACL, both alive until the object manager copied them.
    check(unsafe { RtlSetDaclSecurityDescriptor(descriptor_ptr, 1, acl_ptr, 0) })?;
    // The DACL goes on through a kernel handle to the device: `ObSetSecurityObjectByPointer` would
    // save the handle, but Wine only stubs it, while both implement this path.
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: the device object is ours; the handle is a kernel handle closed below.
    check(unsafe {
        ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KernelMode,
            &mut handle,
        )
    })?;
    // SAFETY: a handle with WRITE_DAC; the object manager copies the descriptor.
    let status = unsafe { ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, descriptor_ptr) };
    // SAFETY: the handle opened above, closed once.
    unsafe { ZwClose(handle) };
    check(status)
}

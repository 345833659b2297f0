//! The I/O control interface of the ntpool sample driver: device names, IOCTL codes, the request and
//! reply layouts, the limits the driver enforces, and the NTSTATUS codes it answers with.
//!
//! Shared by the driver (kernel mode) and its client (user mode). Every structure is `#[repr(C)]`
//! with explicit reserved fields and no implicit padding, so that no byte the driver returns is
//! uninitialized, and every size is fixed on 64-bit Windows.
//!
//! With the `model` feature, [`model`] is an executable model of the driver's rules, which the
//! fuzzer and the client's unit tests check answers against.
#![no_std]

#[cfg(any(test, feature = "model"))]
extern crate alloc;

#[cfg(any(test, feature = "model"))]
pub mod model;

/// The device's name in the object manager namespace.
pub const DEVICE_NAME: &str = "\\Device\\NtPool";
/// The symbolic link user mode opens (as `\\.\NtPool`).
pub const DOS_DEVICE_NAME: &str = "\\DosDevices\\NtPool";
/// The path user mode passes to `CreateFileW`.
pub const USER_PATH: &str = "\\\\.\\NtPool";

/// The device type: in the range Microsoft reserves for vendors (0x8000-0xFFFF).
pub const FILE_DEVICE_NTPOOL: u32 = 0x8A50;
/// `METHOD_BUFFERED`: the I/O manager copies input and output through one system buffer.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_DATA` access.
pub const FILE_READ_DATA: u32 = 1;
/// `FILE_WRITE_DATA` access.
pub const FILE_WRITE_DATA: u32 = 2;

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Allocate a block: [`AllocateRequest`] in, [`AllocateReply`] out. Needs read and write access.
pub const IOCTL_NTPOOL_ALLOCATE: u32 =
    ctl_code(FILE_DEVICE_NTPOOL, 0x800, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA);
/// Free a block: [`FreeRequest`] in, nothing out. Needs read and write access.
pub const IOCTL_NTPOOL_FREE: u32 =
    ctl_code(FILE_DEVICE_NTPOOL, 0x801, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA);
/// Read a block's bytes: [`ReadRequest`] in, the bytes out. Needs read access.
pub const IOCTL_NTPOOL_READ: u32 = ctl_code(FILE_DEVICE_NTPOOL, 0x802, METHOD_BUFFERED, FILE_READ_DATA);
/// List the outstanding blocks of the handle the request comes through: nothing in,
/// [`AllocationsHeader`] and [`AllocationInfo`]s out.
pub const IOCTL_NTPOOL_QUERY_ALLOCATIONS: u32 = ctl_code(FILE_DEVICE_NTPOOL, 0x803, METHOD_BUFFERED, FILE_READ_DATA);
/// The driver's counters: nothing in, [`Statistics`] out.
pub const IOCTL_NTPOOL_QUERY_STATISTICS: u32 = ctl_code(FILE_DEVICE_NTPOOL, 0x804, METHOD_BUFFERED, FILE_READ_DATA);
/// Runs the routines the kernel calls, once: a system thread that sums a paged block at
/// `PASSIVE_LEVEL`; an IRP the driver sends to its own device, whose completion routine reads what
/// the device answered; a periodic timer whose DPC frees non-paged blocks as they expire, one per
/// period, at `DISPATCH_LEVEL`, and then queues a work item that frees paged blocks at
/// `PASSIVE_LEVEL`. Any input is ignored; [`BackgroundReply`] out.
pub const IOCTL_NTPOOL_RUN_BACKGROUND: u32 = ctl_code(FILE_DEVICE_NTPOOL, 0x805, METHOD_BUFFERED, FILE_READ_DATA);
/// What the system thread of `IOCTL_NTPOOL_RUN_BACKGROUND` computes: the sum of 0..64.
pub const BACKGROUND_THREAD_SUM: u64 = 2016;
/// What the driver's device answers the internal request of `IOCTL_NTPOOL_RUN_BACKGROUND` with
/// (its `Information`), which the completion routine reports.
pub const BACKGROUND_COMPLETION: u64 = 0x4E50;
/// How many non-paged blocks the timer's DPC of `IOCTL_NTPOOL_RUN_BACKGROUND` frees as they expire.
pub const BACKGROUND_EXPIRED: u64 = 4;
/// How many paged blocks the work item of `IOCTL_NTPOOL_RUN_BACKGROUND` frees.
pub const BACKGROUND_RECLAIMED: u64 = 2;

/// [`AllocateRequest::pool`]: non-paged, no-execute pool.
pub const POOL_NON_PAGED: u32 = 0;
/// [`AllocateRequest::pool`]: paged pool.
pub const POOL_PAGED: u32 = 1;
/// Or-ed into [`AllocateRequest::pool`]: charge the block to the requesting process's pool quota
/// (`POOL_FLAG_USE_QUOTA`), so that a client cannot use more pool than its quota allows. The
/// block's pool, as reported back, is the pool without this flag.
pub const POOL_CHARGE_QUOTA: u32 = 0x100;

/// At most this many blocks are outstanding at once, over all clients.
pub const MAX_ALLOCATIONS: u32 = 64;
/// At most this many bytes in one block.
pub const MAX_SIZE: u32 = 64 * 1024;
/// At most this many bytes of non-paged pool outstanding (non-paged memory is scarce).
pub const MAX_NON_PAGED_BYTES: u64 = 256 * 1024;
/// At most this many bytes of paged pool outstanding.
pub const MAX_PAGED_BYTES: u64 = 1024 * 1024;
/// At most this many blocks outstanding through one open handle (file object): a quarter of
/// [`MAX_ALLOCATIONS`], so that one client cannot take the whole driver's budget. A handle's blocks
/// are freed when it is closed (`IRP_MJ_CLOSE`).
pub const MAX_HANDLE_ALLOCATIONS: u32 = MAX_ALLOCATIONS / 4;
/// At most this many bytes of non-paged pool outstanding through one open handle.
pub const MAX_HANDLE_NON_PAGED_BYTES: u64 = MAX_NON_PAGED_BYTES / 4;
/// At most this many bytes of paged pool outstanding through one open handle.
pub const MAX_HANDLE_PAGED_BYTES: u64 = MAX_PAGED_BYTES / 4;

/// `IOCTL_NTPOOL_ALLOCATE` input.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocateRequest {
    /// [`POOL_NON_PAGED`] or [`POOL_PAGED`], optionally with [`POOL_CHARGE_QUOTA`].
    pub pool: u32,
    /// The pool tag, as the kernel stores it (`u32::from_le_bytes(*b"Tag1")`): printable ASCII with a
    /// letter or digit, not `Wdm ` or `Ddk `.
    pub tag: u32,
    /// Bytes, from 1 to [`MAX_SIZE`].
    pub size: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `IOCTL_NTPOOL_ALLOCATE` output: the block's identifier (never an address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocateReply {
    /// Identifies the block in later requests; never reused while the driver is loaded.
    pub id: u64,
}

/// `IOCTL_NTPOOL_FREE` input.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreeRequest {
    /// What `IOCTL_NTPOOL_ALLOCATE` returned.
    pub id: u64,
}

/// `IOCTL_NTPOOL_READ` input; the output buffer receives `length` bytes of the block from `offset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// The block.
    pub id: u64,
    /// Where to start reading.
    pub offset: u32,
    /// How many bytes; `offset + length` must not pass the block's end.
    pub length: u32,
}

/// `IOCTL_NTPOOL_QUERY_ALLOCATIONS` output header, followed by `returned` [`AllocationInfo`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocationsHeader {
    /// Blocks outstanding through this handle.
    pub outstanding: u32,
    /// Entries that follow (as many as the output buffer holds).
    pub returned: u32,
}

/// One outstanding block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocationInfo {
    /// Its identifier.
    pub id: u64,
    /// [`POOL_NON_PAGED`] or [`POOL_PAGED`].
    pub pool: u32,
    /// Its tag.
    pub tag: u32,
    /// Its size.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
}

/// `IOCTL_NTPOOL_RUN_BACKGROUND` output.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackgroundReply {
    /// What the system thread computed ([`BACKGROUND_THREAD_SUM`]).
    pub thread_sum: u64,
    /// What the completion routine saw ([`BACKGROUND_COMPLETION`]).
    pub completion: u64,
    /// The non-paged blocks the timer's DPC freed ([`BACKGROUND_EXPIRED`]).
    pub expired: u64,
    /// The paged blocks the work item freed ([`BACKGROUND_RECLAIMED`]).
    pub reclaimed: u64,
}

impl BackgroundReply {
    /// The reply of a driver whose routines all ran.
    pub const EXPECTED: BackgroundReply = BackgroundReply {
        thread_sum: BACKGROUND_THREAD_SUM,
        completion: BACKGROUND_COMPLETION,
        expired: BACKGROUND_EXPIRED,
        reclaimed: BACKGROUND_RECLAIMED,
    };
}

/// `IOCTL_NTPOOL_QUERY_STATISTICS` output.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Blocks allocated since the driver loaded.
    pub allocations: u64,
    /// Blocks freed since the driver loaded.
    pub frees: u64,
    /// Allocation requests the pool could not satisfy.
    pub failures: u64,
    /// Requests refused: bad input or a limit reached.
    pub rejected: u64,
    /// Blocks outstanding.
    pub outstanding: u64,
    /// Bytes of non-paged pool outstanding.
    pub non_paged_bytes: u64,
    /// Bytes of paged pool outstanding.
    pub paged_bytes: u64,
    /// Requests handled at `DISPATCH_LEVEL` under the statistics spin lock.
    pub requests: u64,
}

/// The NTSTATUS values the driver answers with.
pub mod status {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `STATUS_INVALID_DEVICE_REQUEST`: an unknown IOCTL code.
    pub const INVALID_DEVICE_REQUEST: i32 = 0xC000_0010_u32 as i32;
    /// `STATUS_INFO_LENGTH_MISMATCH`: the input buffer is not the request's size.
    pub const INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32 as i32;
    /// `STATUS_BUFFER_TOO_SMALL`: the output buffer cannot hold the reply.
    pub const BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32 as i32;
    /// `STATUS_INVALID_PARAMETER_1`: the pool (or the block id) is not valid.
    pub const INVALID_PARAMETER_1: i32 = 0xC000_00EF_u32 as i32;
    /// `STATUS_INVALID_PARAMETER_2`: the tag (or the read offset) is not valid.
    pub const INVALID_PARAMETER_2: i32 = 0xC000_00F0_u32 as i32;
    /// `STATUS_INVALID_PARAMETER_3`: the size (or the read length) is not valid.
    pub const INVALID_PARAMETER_3: i32 = 0xC000_00F1_u32 as i32;
    /// `STATUS_INVALID_PARAMETER_4`: a reserved field is not zero.
    pub const INVALID_PARAMETER_4: i32 = 0xC000_00F2_u32 as i32;
    /// `STATUS_NOT_FOUND`: no outstanding block of this handle has that id (never allocated, already
    /// freed, or allocated through another handle).
    pub const NOT_FOUND: i32 = 0xC000_0225_u32 as i32;
    /// `STATUS_QUOTA_EXCEEDED`: the request would pass one of the driver's limits, for the handle or
    /// for the whole driver.
    pub const QUOTA_EXCEEDED: i32 = 0xC000_0044_u32 as i32;
    /// `STATUS_INSUFFICIENT_RESOURCES`: the pool could not satisfy the request.
    pub const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;

    /// The name of a status this driver returns, for reports.
    pub const fn name(status: i32) -> &'static str {
        match status {
            SUCCESS => "STATUS_SUCCESS",
            INVALID_DEVICE_REQUEST => "STATUS_INVALID_DEVICE_REQUEST",
            INFO_LENGTH_MISMATCH => "STATUS_INFO_LENGTH_MISMATCH",
            BUFFER_TOO_SMALL => "STATUS_BUFFER_TOO_SMALL",
            INVALID_PARAMETER_1 => "STATUS_INVALID_PARAMETER_1",
            INVALID_PARAMETER_2 => "STATUS_INVALID_PARAMETER_2",
            INVALID_PARAMETER_3 => "STATUS_INVALID_PARAMETER_3",
            INVALID_PARAMETER_4 => "STATUS_INVALID_PARAMETER_4",
            NOT_FOUND => "STATUS_NOT_FOUND",
            QUOTA_EXCEEDED => "STATUS_QUOTA_EXCEEDED",
            INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
            _ => "another status",
        }
    }
}

/// Views a request or reply as its bytes (every type here is plain data without padding).
pub trait Wire: Copy + Default {
    /// The bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: implemented only for the `#[repr(C)]` types of this module, which have no padding:
        // every byte is initialized.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), core::mem::size_of::<Self>()) }
    }

    /// The value whose bytes are `bytes`, if `bytes` has exactly its size.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        let mut value = Self::default();
        // SAFETY: every bit pattern is a valid value of these all-integer types; the sizes match.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut value as *mut Self).cast::<u8>(), bytes.len());
        }
        Some(value)
    }
}

impl Wire for AllocateRequest {}
impl Wire for AllocateReply {}
impl Wire for FreeRequest {}
impl Wire for ReadRequest {}
impl Wire for AllocationsHeader {}
impl Wire for AllocationInfo {}
impl Wire for Statistics {}
impl Wire for BackgroundReply {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn ioctl_codes_are_buffered_vendor_codes_with_the_access_they_need() {
        assert_eq!(IOCTL_NTPOOL_ALLOCATE, 0x8A50_E000);
        assert_eq!(IOCTL_NTPOOL_FREE, 0x8A50_E004);
        assert_eq!(IOCTL_NTPOOL_READ, 0x8A50_6008);
        assert_eq!(IOCTL_NTPOOL_QUERY_ALLOCATIONS & 3, METHOD_BUFFERED);
        assert_eq!(IOCTL_NTPOOL_QUERY_STATISTICS >> 16, FILE_DEVICE_NTPOOL);
    }

    #[test]
    fn wire_structures_have_no_padding() {
        assert_eq!(size_of::<AllocateRequest>(), 16);
        assert_eq!(size_of::<AllocateReply>(), 8);
        assert_eq!(size_of::<FreeRequest>(), 8);
        assert_eq!(size_of::<ReadRequest>(), 16);
        assert_eq!(size_of::<AllocationsHeader>(), 8);
        assert_eq!(size_of::<AllocationInfo>(), 24);
        assert_eq!(size_of::<Statistics>(), 64);
    }

    #[test]
    fn requests_round_trip_through_bytes_and_wrong_sizes_are_refused() {
        let request = AllocateRequest { pool: POOL_PAGED, tag: u32::from_le_bytes(*b"Tst1"), size: 100, reserved: 0 };
        assert_eq!(AllocateRequest::from_bytes(request.as_bytes()), Some(request));
        assert_eq!(AllocateRequest::from_bytes(&request.as_bytes()[..15]), None);
        assert_eq!(FreeRequest::from_bytes(&[0; 9]), None);
    }
}

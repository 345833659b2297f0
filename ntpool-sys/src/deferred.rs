//! The declarations of the routines the kernel calls back: deferred procedure calls (`KDPC`),
//! timers (`KTIMER`), I/O work items (`IO_WORKITEM`), with `LARGE_INTEGER` and the dispatcher
//! header they need, with the names and types of the WDK (as bound by `wdk-sys`). Layouts are x64's,
//! checked against mingw-w64's DDK headers by the sample driver's `tests/declarations.rs`.
//!
//! The routines are at the crate root: imports from `ntoskrnl.exe` on Windows
//! (`ntoskrnl_deferred.rs`), the emulated kernel's `dpc`, `timer` and `work` modules elsewhere.
#![allow(missing_docs)]

use crate::{LIST_ENTRY, PDEVICE_OBJECT, PVOID, ULONG};

/// `LARGE_INTEGER`: a signed 64-bit value, also readable as its two halves.
///
/// ```
/// let due = ntpool_sys::LARGE_INTEGER { QuadPart: -10_000 }; // 1 ms from now, in 100 ns units
/// // SAFETY: every bit pattern is a valid i64.
/// assert_eq!(unsafe { due.QuadPart }, -10_000);
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
pub union LARGE_INTEGER {
    pub __bindgen_anon_1: LARGE_INTEGER__bindgen_ty_1,
    pub QuadPart: i64,
}

/// `LARGE_INTEGER`'s `LowPart` / `HighPart` halves.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LARGE_INTEGER__bindgen_ty_1 {
    pub LowPart: u32,
    pub HighPart: i32,
}

/// `SINGLE_LIST_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SINGLE_LIST_ENTRY {
    pub Next: *mut SINGLE_LIST_ENTRY,
}

/// `KAFFINITY` (x64).
pub type KAFFINITY = u64;

/// `PKDEFERRED_ROUTINE`: a DPC's routine, called at `DISPATCH_LEVEL`.
pub type PKDEFERRED_ROUTINE = Option<
    unsafe extern "system" fn(Dpc: *mut KDPC, DeferredContext: PVOID, SystemArgument1: PVOID, SystemArgument2: PVOID),
>;

/// `KDPC` (x64, 64 bytes; the layout of Windows 8 and later, whose `DpcListEntry` is a
/// `SINGLE_LIST_ENTRY` followed by `ProcessorHistory` where older headers have a `LIST_ENTRY`).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::KDPC>(), 64);
/// ```
#[repr(C)]
pub struct KDPC {
    pub Type: u8,
    pub Importance: u8,
    pub Number: u16,
    pub DpcListEntry: SINGLE_LIST_ENTRY,
    pub ProcessorHistory: KAFFINITY,
    pub DeferredRoutine: PKDEFERRED_ROUTINE,
    pub DeferredContext: PVOID,
    pub SystemArgument1: PVOID,
    pub SystemArgument2: PVOID,
    pub DpcData: PVOID,
}

/// `DISPATCHER_HEADER` (x64, 24 bytes). The first four bytes are a union of type, flags and lock
/// bits that drivers never read; declared as its `Lock` member.
#[repr(C)]
pub struct DISPATCHER_HEADER {
    pub Lock: i32,
    pub SignalState: i32,
    pub WaitListHead: LIST_ENTRY,
}

/// `KTIMER` (x64, 64 bytes).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::KTIMER>(), 64);
/// ```
#[repr(C)]
pub struct KTIMER {
    pub Header: DISPATCHER_HEADER,
    /// `ULARGE_INTEGER DueTime`.
    pub DueTime: u64,
    pub TimerListEntry: LIST_ENTRY,
    pub Dpc: *mut KDPC,
    pub Processor: ULONG,
    pub Period: ULONG,
}

/// `TIMER_TYPE`.
pub type TIMER_TYPE = i32;
/// A timer that stays signaled until set again.
pub const NotificationTimer: TIMER_TYPE = 0;
/// A timer that releases one waiter and resets.
pub const SynchronizationTimer: TIMER_TYPE = 1;

/// `IO_WORKITEM`: opaque, allocated by `IoAllocateWorkItem`.
#[repr(C)]
pub struct IO_WORKITEM {
    _opaque: [u8; 0],
}
/// `PIO_WORKITEM`.
pub type PIO_WORKITEM = *mut IO_WORKITEM;
/// `PIO_WORKITEM_ROUTINE`: a work item's routine, called at `PASSIVE_LEVEL` on a system worker
/// thread.
pub type PIO_WORKITEM_ROUTINE = Option<unsafe extern "system" fn(DeviceObject: PDEVICE_OBJECT, Context: PVOID)>;

/// `WORK_QUEUE_TYPE`.
pub type WORK_QUEUE_TYPE = i32;
/// `CriticalWorkQueue`.
pub const CriticalWorkQueue: WORK_QUEUE_TYPE = 0;
/// `DelayedWorkQueue`: the queue drivers use.
pub const DelayedWorkQueue: WORK_QUEUE_TYPE = 1;

/// `KPROCESSOR_MODE`'s `KernelMode`, for `KeDelayExecutionThread`'s `WaitMode`.
pub const KERNEL_MODE: i8 = 0;

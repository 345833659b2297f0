//! The real kernel's routines for the routines it calls back: DPCs, timers, work items, and
//! `KeDelayExecutionThread` for waiting on them at `PASSIVE_LEVEL`. `raw-dylib` imports from
//! `ntoskrnl.exe`, every one exported since Windows 2000 (`KeFlushQueuedDpcs` since XP SP2) and by
//! Wine 8 (which does not run every one of them: see `docs/wine.md`).

use super::{
    ACCESS_MASK, BOOLEAN, HANDLE, KDPC, KPROCESSOR_MODE, KTIMER, KWAIT_REASON, LARGE_INTEGER, LONG, NTSTATUS,
    OBJECT_ATTRIBUTES, PDEVICE_OBJECT, PIO_WORKITEM, PIO_WORKITEM_ROUTINE, PKDEFERRED_ROUTINE, PKSTART_ROUTINE, PVOID,
    TIMER_TYPE, ULONG, WORK_QUEUE_TYPE,
};
use super::{CCHAR, PIRP, PKINTERRUPT, PKSYNCHRONIZE_ROUTINE};

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// `KeInitializeDpc`.
    pub fn KeInitializeDpc(Dpc: *mut KDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID);
    /// `KeInsertQueueDpc`: TRUE if the DPC was queued, FALSE if it already was.
    pub fn KeInsertQueueDpc(Dpc: *mut KDPC, SystemArgument1: PVOID, SystemArgument2: PVOID) -> BOOLEAN;
    /// `KeRemoveQueueDpc`: TRUE if the DPC was queued and is no longer.
    pub fn KeRemoveQueueDpc(Dpc: *mut KDPC) -> BOOLEAN;
    /// `KeFlushQueuedDpcs`, at `PASSIVE_LEVEL`: every DPC queued before the call has run.
    pub fn KeFlushQueuedDpcs();
    /// `KeInitializeTimerEx`.
    pub fn KeInitializeTimerEx(Timer: *mut KTIMER, Type: TIMER_TYPE);
    /// `KeSetTimerEx`: TRUE if the timer was already set.
    pub fn KeSetTimerEx(Timer: *mut KTIMER, DueTime: LARGE_INTEGER, Period: LONG, Dpc: *mut KDPC) -> BOOLEAN;
    /// `KeCancelTimer`: TRUE if the timer was set.
    pub fn KeCancelTimer(Timer: *mut KTIMER) -> BOOLEAN;
    /// `IoAllocateWorkItem`.
    pub fn IoAllocateWorkItem(DeviceObject: PDEVICE_OBJECT) -> PIO_WORKITEM;
    /// `IoQueueWorkItem`.
    pub fn IoQueueWorkItem(
        IoWorkItem: PIO_WORKITEM,
        WorkerRoutine: PIO_WORKITEM_ROUTINE,
        QueueType: WORK_QUEUE_TYPE,
        Context: PVOID,
    );
    /// `IoFreeWorkItem`.
    pub fn IoFreeWorkItem(IoWorkItem: PIO_WORKITEM);
    /// `KeDelayExecutionThread`.
    pub fn KeDelayExecutionThread(
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// `PsCreateSystemThread`.
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: ULONG,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: PVOID,
        StartRoutine: PKSTART_ROUTINE,
        StartContext: PVOID,
    ) -> NTSTATUS;
    /// `PsTerminateSystemThread`: ends the calling system thread (does not return there).
    pub fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS;
    /// `ObReferenceObjectByHandle`.
    pub fn ObReferenceObjectByHandle(
        Handle: HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectType: PVOID,
        AccessMode: KPROCESSOR_MODE,
        Object: *mut PVOID,
        HandleInformation: PVOID,
    ) -> NTSTATUS;
    /// `ObfDereferenceObject` (what the WDK's `ObDereferenceObject` macro calls).
    pub fn ObfDereferenceObject(Object: PVOID) -> isize;
    /// `KeWaitForSingleObject`.
    pub fn KeWaitForSingleObject(
        Object: PVOID,
        WaitReason: KWAIT_REASON,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// `IoAllocateIrp`: an IRP with `StackSize` stack locations, none of them current yet.
    pub fn IoAllocateIrp(StackSize: CCHAR, ChargeQuota: BOOLEAN) -> PIRP;
    /// `IoFreeIrp`.
    pub fn IoFreeIrp(Irp: PIRP);
    /// `IofCallDriver` (what the WDK's `IoCallDriver` macro calls).
    pub fn IofCallDriver(DeviceObject: PDEVICE_OBJECT, Irp: PIRP) -> NTSTATUS;
    /// `KeSynchronizeExecution`.
    pub fn KeSynchronizeExecution(
        Interrupt: PKINTERRUPT,
        SynchronizeRoutine: PKSYNCHRONIZE_ROUTINE,
        SynchronizeContext: PVOID,
    ) -> BOOLEAN;
}

//! System threads: `PsCreateSystemThread`, `PsTerminateSystemThread`, and waiting for one with
//! `ObReferenceObjectByHandle`, `KeWaitForSingleObject` and `ObfDereferenceObject`.
//!
//! Each system thread is a host thread that has entered the kernel that created it, so its pool
//! calls are checked and tracked there; it starts at `PASSIVE_LEVEL` in the System process. Its
//! handle is a kernel handle of the I/O manager's table (closed with `ZwClose`; a handle left open
//! fails the sample driver's unload check), and the thread object a handle leads to is a record
//! here, which `KeWaitForSingleObject` waits on until the thread has ended. A test waits for every
//! system thread with [`Kernel::wait_for_work_items`](super::Kernel::wait_for_work_items), which
//! also hands back a bug check a thread raised.
//!
//! What is not emulated: `PsTerminateSystemThread` cannot end a host thread from inside, so it
//! records the exit status and returns; the start routine must return right after it (as ntpool's
//! trampoline does, and as a real one never notices). `KeWaitForSingleObject` waits on thread
//! objects only, without a timeout.
#![allow(non_snake_case)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::reports::{BugCheck, quietly};
use super::state::{State, current, enter};
use super::thread::current_irql;
use crate::{
    ACCESS_MASK, BOOLEAN, HANDLE, KPROCESSOR_MODE, KWAIT_REASON, LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES,
    PASSIVE_LEVEL, PKSTART_ROUTINE, PVOID, STATUS_SUCCESS, ULONG,
};

const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as i32;
const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;

/// A system thread's object: whether it has ended, its exit status, and the references to it.
#[derive(Default)]
struct ThreadObject {
    /// `Some(exit status)` once the thread has ended.
    ended: Mutex<Option<NTSTATUS>>,
    changed: Condvar,
    /// References taken with `ObReferenceObjectByHandle` and not yet released.
    references: AtomicUsize,
}

/// The thread objects, by address (which is also the handle `PsCreateSystemThread` returned).
static THREADS: Mutex<Option<HashMap<usize, Arc<ThreadObject>>>> = Mutex::new(None);

fn threads<R>(f: impl FnOnce(&mut HashMap<usize, Arc<ThreadObject>>) -> R) -> R {
    let mut guard = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

std::thread_local! {
    /// The exit status `PsTerminateSystemThread` recorded on this thread.
    static EXIT_STATUS: core::cell::Cell<Option<NTSTATUS>> = const { core::cell::Cell::new(None) };
}

/// A fresh address for a thread object: never dereferenced, never reused.
fn new_address() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0x7E00_0000_0000);
    NEXT.fetch_add(0x40, Ordering::Relaxed)
}

/// `PsCreateSystemThread`: runs `StartRoutine(StartContext)` on a new thread at `PASSIVE_LEVEL`,
/// and returns a kernel handle to it. `STATUS_INVALID_PARAMETER` for a thread in another process
/// than the System process (`ProcessHandle` not null) or a handle that is not a kernel handle
/// (`OBJ_KERNEL_HANDLE`), which a driver running in a user's process must ask for.
///
/// # Safety
/// As for `PsCreateSystemThread`: valid pointers, at `PASSIVE_LEVEL`; `StartContext` stays valid
/// for the thread.
///
/// ```
/// use ntpool_sys as sys;
/// unsafe extern "system" fn start(flag: sys::PVOID) {
///     assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
///     // SAFETY: the flag below, which outlives the thread.
///     unsafe { (*flag.cast::<std::sync::atomic::AtomicBool>()).store(true, std::sync::atomic::Ordering::SeqCst) };
///     // SAFETY: the thread ends here.
///     unsafe { sys::PsTerminateSystemThread(sys::STATUS_SUCCESS) };
/// }
/// let kernel = ntpool_sys::emulated::Kernel::new();
/// let flag = std::sync::atomic::AtomicBool::new(false);
/// kernel.run(|| {
///     let mut attributes = sys::OBJECT_ATTRIBUTES::unnamed(sys::OBJ_KERNEL_HANDLE);
///     let (mut handle, mut thread) = (core::ptr::null_mut(), core::ptr::null_mut());
///     let context = (&raw const flag).cast_mut().cast();
///     let null = core::ptr::null_mut();
///     // SAFETY: valid pointers; the flag outlives the thread, which is waited for below.
///     unsafe {
///         assert_eq!(sys::PsCreateSystemThread(&mut handle, sys::THREAD_ALL_ACCESS, &mut attributes, null, null, Some(start), context), 0);
///         assert_eq!(sys::ObReferenceObjectByHandle(handle, sys::SYNCHRONIZE, null, sys::KernelMode, &mut thread, null), 0);
///         assert_eq!(sys::ZwClose(handle), 0);
///         assert_eq!(sys::KeWaitForSingleObject(thread, sys::Executive, sys::KernelMode, 0, null.cast()), 0);
///         sys::ObfDereferenceObject(thread);
///     }
/// });
/// assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
/// ```
pub unsafe fn PsCreateSystemThread(
    ThreadHandle: *mut HANDLE,
    _DesiredAccess: ULONG,
    ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ProcessHandle: HANDLE,
    _ClientId: PVOID,
    StartRoutine: PKSTART_ROUTINE,
    StartContext: PVOID,
) -> NTSTATUS {
    // SAFETY: the caller passes valid attributes, or none.
    let kernel_handle =
        unsafe { ObjectAttributes.as_ref() }.is_some_and(|a| a.Attributes & crate::OBJ_KERNEL_HANDLE != 0);
    if !ProcessHandle.is_null() || !kernel_handle || ThreadHandle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let address = new_address();
    let object = Arc::new(ThreadObject::default());
    threads(|t| t.insert(address, object.clone()));
    super::io::open_handle(address, crate::THREAD_ALL_ACCESS);
    let state = current();
    state.objects.lock().running_work += 1;
    let context = StartContext as usize;
    std::thread::spawn(move || run_system_thread(state, object, StartRoutine, context));
    // SAFETY: the caller passes a valid out pointer.
    unsafe { ThreadHandle.write(address as HANDLE) };
    STATUS_SUCCESS
}

/// The host thread of one system thread.
fn run_system_thread(state: Arc<State>, object: Arc<ThreadObject>, routine: PKSTART_ROUTINE, context: usize) {
    let _entered = enter(state.clone());
    let result = quietly(|| {
        std::panic::catch_unwind(|| {
            if let Some(routine) = routine {
                // SAFETY: the routine and context the driver passed, at PASSIVE_LEVEL.
                unsafe { routine(context as PVOID) };
            }
            if current_irql() != PASSIVE_LEVEL {
                std::panic::panic_any(BugCheck::new(
                    crate::IRQL_NOT_LESS_OR_EQUAL,
                    [0, current_irql().into(), 0, routine.map_or(0, |r| r as usize as u64)],
                ));
            }
        })
    });
    let status = EXIT_STATUS.with(|s| s.take()).unwrap_or(STATUS_SUCCESS);
    let mut objects = state.objects.lock();
    if let Err(payload) = result {
        let bug_check = payload.downcast::<BugCheck>().map_or(BugCheck::new(0x1E, [0, 0, 0, 0]), |b| *b);
        objects.worker_bug_checks.push(bug_check);
    }
    *object.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    object.changed.notify_all();
    objects.running_work -= 1;
    drop(objects);
    state.objects.changed.notify_all();
}

/// `PsTerminateSystemThread`: records the exit status and returns (see the module's
/// documentation); the start routine returns right after it.
///
/// # Safety
/// Called by a system thread, at `PASSIVE_LEVEL`.
pub unsafe fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS {
    EXIT_STATUS.with(|s| s.set(Some(ExitStatus)));
    STATUS_SUCCESS
}

/// `ObReferenceObjectByHandle`, for the kernel handle of a system thread (any object type asked
/// for is taken as the thread type), in kernel mode: the thread object, referenced.
/// `STATUS_INVALID_HANDLE` for any other handle.
///
/// # Safety
/// As for `ObReferenceObjectByHandle`: a valid out pointer.
pub unsafe fn ObReferenceObjectByHandle(
    Handle: HANDLE,
    _DesiredAccess: ACCESS_MASK,
    _ObjectType: PVOID,
    AccessMode: KPROCESSOR_MODE,
    Object: *mut PVOID,
    _HandleInformation: PVOID,
) -> NTSTATUS {
    let address = Handle as usize;
    let Some(object) = threads(|t| t.get(&address).cloned()) else { return STATUS_INVALID_HANDLE };
    if !super::io::is_open_handle(address) || AccessMode != crate::KernelMode {
        return STATUS_INVALID_HANDLE;
    }
    object.references.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the caller passes a valid out pointer.
    unsafe { Object.write(address as PVOID) };
    STATUS_SUCCESS
}

/// `ObfDereferenceObject`: releases a reference `ObReferenceObjectByHandle` took; the record of a
/// thread that has ended goes with its last reference. Returns the references left.
///
/// # Safety
/// `Object` was referenced, and is not used after its last reference.
pub unsafe fn ObfDereferenceObject(Object: PVOID) -> isize {
    let address = Object as usize;
    let Some(object) = threads(|t| t.get(&address).cloned()) else {
        panic!("ObfDereferenceObject({address:#x}): the emulated kernel knows no such object");
    };
    let left = object.references.fetch_sub(1, Ordering::SeqCst) - 1;
    let ended = object.ended.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    if left == 0 && ended && !super::io::is_open_handle(address) {
        threads(|t| t.remove(&address));
    }
    left as isize
}

/// `KeWaitForSingleObject` on a thread object: waits until the thread has ended. No timeout.
///
/// # Safety
/// `Object` is a referenced thread object; IRQL <= `APC_LEVEL` (waiting without a zero timeout).
pub unsafe fn KeWaitForSingleObject(
    Object: PVOID,
    _WaitReason: KWAIT_REASON,
    _WaitMode: KPROCESSOR_MODE,
    _Alertable: BOOLEAN,
    _Timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let address = Object as usize;
    let Some(object) = threads(|t| t.get(&address).cloned()) else {
        panic!("KeWaitForSingleObject({address:#x}): the emulated kernel waits on system threads only");
    };
    let mut ended = object.ended.lock().unwrap_or_else(|p| p.into_inner());
    while ended.is_none() {
        ended = object.changed.wait(ended).unwrap_or_else(|p| p.into_inner());
    }
    STATUS_SUCCESS
}

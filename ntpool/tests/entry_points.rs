//! The driver's own entry points and the routines the kernel calls besides DPCs, timers and work
//! items: `DriverEntry` ([`ntpool::driver_entry!`]), `DriverUnload` and dispatch routines behind
//! ntpool's trampolines, system threads, IRP completion routines and `KeSynchronizeExecution`, on
//! the emulated kernel.

use core::sync::atomic::{AtomicU32, Ordering};

use ntpool::emulated::Kernel;
use ntpool::sys::{self, DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};
use ntpool::{
    AnyIrql, AnyIrqlDispatch, CurrentIrql, Device, DriverRoutines, Irp, PagedBox, Passive, PassiveDispatch,
    PassiveMajor, SystemThread,
};

ntpool::pool_tag!(struct Tg = b"Entr");

static ENTRY_IRQL: AtomicU32 = AtomicU32::new(u32::MAX);

fn entry(driver: &mut DRIVER_OBJECT, registry_path: &UNICODE_STRING, passive: &mut Passive) -> NTSTATUS {
    ENTRY_IRQL.store(sys::KeGetCurrentIrql().into(), Ordering::SeqCst);
    // The token allows paged pool.
    let copy = PagedBox::<u16, Tg>::try_new(passive, registry_path.Length).unwrap();
    assert_eq!(*copy.get(passive), 4);
    driver.set_unload::<Unload>();
    driver.set_passive_dispatch::<Control>(PassiveMajor::DeviceControl);
    driver.set_dispatch::<Internal>(0x0f);
    sys::STATUS_SUCCESS
}

ntpool::driver_entry!(entry);

struct Unload;
impl ntpool::DriverUnload for Unload {
    fn unload(driver: &mut DRIVER_OBJECT, passive: &mut Passive) {
        assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
        drop(PagedBox::<u8, Tg>::try_new(passive, 1).unwrap());
        driver.DriverUnload = None;
    }
}

struct Control;
impl PassiveDispatch for Control {
    fn dispatch(_device: Device<'_>, irp: Irp<'_>, passive: &mut Passive) -> NTSTATUS {
        let block = PagedBox::<u32, Tg>::try_new(passive, 7).unwrap();
        let seven = *block.get(passive) as usize;
        irp.complete(sys::STATUS_SUCCESS, seven)
    }
}

struct Internal;
impl AnyIrqlDispatch for Internal {
    fn dispatch(_device: Device<'_>, irp: Irp<'_>, irql: &mut AnyIrql) -> NTSTATUS {
        let level = match irql.current() {
            CurrentIrql::Passive(_) => 0,
            CurrentIrql::Apc(_) => 1,
            CurrentIrql::Dispatch(_) => 2,
            CurrentIrql::High(_) => 3,
        };
        irp.complete(sys::STATUS_SUCCESS, level)
    }
}

/// Sends an IRP with one stack location to the routine of `major`, as the I/O manager does.
fn send(driver: &DRIVER_OBJECT, major: usize) -> usize {
    // SAFETY: plain data for which all-zero bytes are valid.
    let mut irp: Box<sys::IRP> = Box::new(unsafe { core::mem::zeroed() });
    // SAFETY: as above.
    let mut stack: Box<sys::IO_STACK_LOCATION> = Box::new(unsafe { core::mem::zeroed() });
    stack.MajorFunction = major as u8;
    irp.Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation = &mut *stack;
    let routine = driver.MajorFunction[major].unwrap();
    // SAFETY: a valid IRP for a device of this test, as the I/O manager would pass it.
    let status = unsafe { routine(0x1000 as sys::PDEVICE_OBJECT, &mut *irp) };
    assert_eq!(status, sys::STATUS_SUCCESS);
    irp.IoStatus.Information as usize
}

#[test]
fn the_driver_entry_points_get_their_tokens_from_ntpool() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: plain data for which all-zero bytes are valid.
        let mut driver: DRIVER_OBJECT = unsafe { core::mem::zeroed() };
        let mut name = [0x41u16, 0x42];
        let path = UNICODE_STRING { Length: 4, MaximumLength: 4, Buffer: name.as_mut_ptr() };
        // SAFETY: a valid driver object and registry path, at PASSIVE_LEVEL.
        assert_eq!(unsafe { DriverEntry(&mut driver, &path) }, 0);
        assert_eq!(ENTRY_IRQL.load(Ordering::SeqCst), 0);
        assert_eq!(send(&driver, sys::IRP_MJ_DEVICE_CONTROL), 7);
        // The any-IRQL routine reads the IRQL it was called at.
        assert_eq!(send(&driver, 0x0f), 0);
        // SAFETY: raised for the call below, lowered right after.
        let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
        let at_dispatch = send(&driver, 0x0f);
        // SAFETY: back to what KfRaiseIrql returned.
        unsafe { sys::KeLowerIrql(old) };
        assert_eq!(at_dispatch, 2);
        let unload = driver.DriverUnload.unwrap();
        // SAFETY: at PASSIVE_LEVEL, once.
        unsafe { unload(&mut driver) };
        assert!(driver.DriverUnload.is_none());
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_system_thread_runs_at_passive_level_with_paged_memory_and_is_joined_on_drop() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let numbers = PagedBox::<[u32; 3], Tg>::try_new(&passive, [1, 2, 3]).unwrap();
        let thread = SystemThread::<(PagedBox<[u32; 3], Tg>, AtomicU32), Tg>::try_new(
            &passive,
            (numbers, AtomicU32::new(0)),
            |passive, (numbers, sum)| {
                assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
                let extra = PagedBox::<u32, Tg>::try_new(passive, 4).unwrap();
                let total = numbers.get(passive).iter().sum::<u32>() + *extra.get(passive);
                sum.store(total, Ordering::SeqCst);
            },
        )
        .unwrap();
        kernel.wait_for_work_items().unwrap();
        assert_eq!(thread.context(&passive).1.load(Ordering::SeqCst), 10);
        drop(thread); // joins, then frees the paged block of the context
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_bug_check_on_a_system_thread_reaches_the_test() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let thread = SystemThread::<(), Tg>::try_new(&passive, (), |_passive, ()| {
            // SAFETY: a deliberate violation: the thread returns at DISPATCH_LEVEL.
            unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
        })
        .unwrap();
        thread.join();
    });
    let stop = kernel.wait_for_work_items().unwrap_err();
    assert_eq!((stop.code, stop.parameters[1]), (sys::IRQL_NOT_LESS_OR_EQUAL, 2));
}

/// A completion routine's context: what it saw.
#[derive(Default, ntpool::DispatchSafe)]
struct Seen {
    status: core::sync::atomic::AtomicI32,
    information: core::sync::atomic::AtomicUsize,
    irql: AtomicU32,
}

#[test]
fn an_irp_sent_to_a_device_completes_into_its_routine_with_an_up_to_dispatch_token() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: plain data for which all-zero bytes are valid.
        let mut driver: Box<DRIVER_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
        driver.set_dispatch::<Internal>(sys::IRP_MJ_INTERNAL_DEVICE_CONTROL);
        // SAFETY: as above.
        let mut device: Box<sys::DEVICE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
        device.DriverObject = &mut *driver;
        device.StackSize = 1;
        let request = ntpool::IoRequest::<Seen, Tg>::try_new(&mut passive, Seen::default(), |token, seen, done| {
            // At most DISPATCH_LEVEL: non-paged memory only.
            drop(ntpool::NonPagedBox::<u8, Tg>::try_new(&*token, 1).unwrap());
            seen.status.store(done.status, Ordering::SeqCst);
            seen.information.store(done.information, Ordering::SeqCst);
            seen.irql.store(sys::KeGetCurrentIrql().into(), Ordering::SeqCst);
        })
        .unwrap();
        // SAFETY: the device above outlives the request, which completes before the call returns.
        let status = unsafe { request.send_ioctl(&passive, &mut *device, 0x1234, true) };
        // The dispatch routine completed it: IofCallDriver returns its status.
        assert_eq!(status, sys::STATUS_SUCCESS);
        assert!(!request.is_pending());
        let seen = request.context();
        assert_eq!(seen.status.load(Ordering::SeqCst), sys::STATUS_SUCCESS);
        assert_eq!(seen.information.load(Ordering::SeqCst), 0); // completed at PASSIVE_LEVEL
        assert_eq!(seen.irql.load(Ordering::SeqCst), 0);
    });
    // The IRP and the routine's block were freed.
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn synchronized_code_runs_at_the_device_irql_with_a_high_token() {
    Kernel::new().run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let raw = sys::emulated::irp::connect_interrupt(7);
        // SAFETY: connected above, disconnected below.
        let interrupt = unsafe { ntpool::Interrupt::from_raw(raw) };
        let counter = AtomicU32::new(0);
        let irql = interrupt.synchronize(&mut passive, &counter, |_high, counter| {
            counter.fetch_add(1, Ordering::SeqCst);
            sys::KeGetCurrentIrql()
        });
        assert_eq!((irql, counter.load(Ordering::SeqCst)), (7, 1));
        // From DISPATCH_LEVEL too.
        let irql = passive.raise_to_dispatch(&interrupt, |dispatch, interrupt| {
            interrupt.synchronize(dispatch, (), |_high, ()| sys::KeGetCurrentIrql())
        });
        assert_eq!((irql, sys::KeGetCurrentIrql()), (7, sys::PASSIVE_LEVEL));
        // SAFETY: not used afterwards.
        unsafe { sys::emulated::irp::disconnect_interrupt(raw) };
    });
}

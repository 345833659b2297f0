use core::sync::atomic::{AtomicPtr, Ordering};
use ntpool::*;
pool_tag!(struct Tg = b"Test");

/// Long-lived driver state: paged settings and a spin-locked counter.
struct DriverState {
    settings: PagedBox<[u8], Tg>,
    hits: SpinLock<u64>,
}

static STATE: AtomicPtr<DriverState> = AtomicPtr::new(core::ptr::null_mut());

fn driver_entry(passive: &mut Passive) {
    let settings = PagedBox::<[u8], Tg>::try_from_slice(passive, b"verbose").unwrap();
    let state = NonPagedBox::<DriverState, Tg>::try_new(passive, DriverState { settings, hits: SpinLock::new(0) }).unwrap();
    STATE.store(NonPagedBox::into_raw(state), Ordering::Release);
}

fn dispatch_routine(passive: &mut Passive) {
    // SAFETY: STATE is set between driver_entry and unload, which do not overlap this call.
    let state = unsafe { &*STATE.load(Ordering::Acquire) };
    state.hits.with(passive, (), |_dispatch, hits, ()| *hits += 1);
    assert_eq!(state.settings.get(passive), b"verbose");
}

fn unload(_passive: &mut Passive) {
    let state = STATE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: from `into_raw` in driver_entry, taken out of STATE above.
    drop(unsafe { NonPagedBox::<DriverState, Tg>::from_raw(state) });
}

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        driver_entry(&mut passive);
        dispatch_routine(&mut passive);
        unload(&mut passive);
    });
    kernel.verify_unload().unwrap();
}

use core::sync::atomic::{AtomicI32, Ordering};
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let last = PagedBox::<AtomicI32, Tg>::try_new(&passive, AtomicI32::new(0)).unwrap();
        let request = IoRequest::<&AtomicI32, Tg>::try_new(&mut passive, last.get(&passive), |_, last, done| {
            last.store(done.status, Ordering::Relaxed);
        });
        drop(request);
    });
}

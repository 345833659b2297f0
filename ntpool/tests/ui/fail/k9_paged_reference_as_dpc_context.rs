use core::sync::atomic::{AtomicU32, Ordering};
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let counter = PagedBox::<AtomicU32, Tg>::try_new(&passive, AtomicU32::new(0)).unwrap();
        // A reference into paged pool, reached with the token: the routine would read it at
        // DISPATCH_LEVEL.
        let in_paged_pool: &AtomicU32 = counter.get(&passive);
        let dpc = Dpc::<&AtomicU32, Tg>::try_new(&mut passive, in_paged_pool, |_dispatch, paged| {
            paged.fetch_add(1, Ordering::Relaxed);
        });
        drop(dpc);
    });
}

use core::sync::atomic::{AtomicU32, Ordering};
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let counter = AtomicU32::new(0);
        // The routine reaches only its context: it cannot capture.
        let _dpc = Dpc::<(), Tg>::try_new(&mut passive, (), |_dispatch, ()| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(0u32);
        let b = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        lock.with(&mut passive, b, |_dispatch, _count, b| drop(b));
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(0u32);
        let mut b = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        let value: &mut u32 = b.get_mut(&passive);
        lock.with(&mut passive, value, |_dispatch, _count, value| *value += 1);
    });
}

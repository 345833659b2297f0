use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(0u64);
        let mut paged = PagedBox::<[u64; 8], Tg>::try_new(&passive, [1; 8]).unwrap();
        let sum: u64 = paged.get(&passive).iter().sum();
        lock.with(&mut passive, sum, |_dispatch, total, sum| *total += sum);
        paged.get_mut(&passive)[0] = lock.with(&mut passive, (), |_dispatch, total, ()| *total);
        assert_eq!(paged.get(&passive)[0], 8);
        drop(paged);
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let list = LookasideList::<u32, Tg>::try_new(&passive).unwrap();
        let log = SpinLock::new(None);
        let entry = list.try_alloc(&passive, 1).unwrap();
        log.with(&mut passive, entry, |_dispatch, slot, entry| *slot = Some(entry));
        // Entries are allocated and given back at DISPATCH_LEVEL, inside the lock.
        log.with(&mut passive, &list, |dispatch, slot, list| {
            assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
            *slot = Some(list.try_alloc(dispatch, 2).unwrap());
        });
        drop(log);
    });
    kernel.verify_unload().unwrap();
}

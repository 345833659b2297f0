use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(None::<NonPagedBox<u32, Tg>>);
        passive.raise_to_dispatch(&lock, |dispatch, lock| {
            let b = NonPagedBox::<u32, Tg>::try_new(dispatch, 7).unwrap();
            lock.with(dispatch, b, |_dispatch, slot, b| *slot = Some(b));
            lock.with(dispatch, (), |_dispatch, slot, ()| drop(slot.take()));
        });
    });
}

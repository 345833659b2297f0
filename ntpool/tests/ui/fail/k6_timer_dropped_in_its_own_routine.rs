use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let inner = Timer::<(), Tg>::try_new(&mut passive, (), |_dispatch, ()| {}).unwrap();
        // A timer cannot be the context of a DPC: it would be dropped or freed at DISPATCH_LEVEL.
        let _outer = Dpc::<_, Tg>::try_new(&mut passive, SpinLock::new(Some(inner)), |dispatch, slot| {
            slot.with(dispatch, (), |_, slot, ()| *slot = None);
        });
    });
}

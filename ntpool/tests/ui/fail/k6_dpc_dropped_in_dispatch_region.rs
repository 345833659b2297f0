use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let dpc = Dpc::<(), Tg>::try_new(&mut passive, (), |_dispatch, ()| {}).unwrap();
        // Dropping a DPC waits for its routine (KeFlushQueuedDpcs): not at DISPATCH_LEVEL.
        passive.raise_to_dispatch(dpc, |_dispatch, dpc| drop(dpc));
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut log = PagedVec::<u32, Tg>::new(&passive);
        passive.raise_to_dispatch(&mut log, |_dispatch, _log| {});
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let shared = PagedArc::<u32, Tg>::try_new(&passive, 1).unwrap();
        // A clone is a reference to paged memory: its drop (or the last one's free) must not run here.
        passive.raise_to_dispatch(shared.clone(), |_dispatch, shared| drop(shared));
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let b = PagedBox::<[u8], Tg>::try_from_slice(&passive, b"paged").unwrap();
        let bytes: &[u8] = b.get(&passive);
        passive.raise_to_dispatch(bytes, |_dispatch, bytes| bytes[0]);
    });
}

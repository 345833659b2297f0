use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let bytes = PagedBox::<[u8], Tg>::try_from_fn(&passive, 16, |i| i as u8).unwrap();
        // The same through a timer made with a run-time tag, and a slice.
        let tag = PoolTag::new(*b"Dyn1");
        let timer = Timer::<&[u8], PoolTag>::try_new_with_tag(&mut passive, tag, bytes.get(&passive), |_, paged| {
            let _ = paged[0];
        });
        drop(timer);
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // A completion routine may run at DISPATCH_LEVEL: its context cannot hold paged memory.
        let _request = IoRequest::<_, Tg>::try_new(&mut passive, paged, |_token, _paged, _completion| {});
    });
}

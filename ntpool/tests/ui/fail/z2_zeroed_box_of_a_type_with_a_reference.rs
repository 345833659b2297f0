use ntpool::*;
pool_tag!(struct Tg = b"Test");

// A null reference is not a reference: a struct holding one is not valid when all-zero.
struct Request {
    name: &'static str,
}

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let request = NonPagedBox::<Request, Tg>::try_alloc_zeroed(&passive, Alloc::new()).unwrap();
        let _ = request.name;
    });
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let counter = 0_u32;
        // A thread body is a plain function: what it works on comes in as its context.
        let _thread = SystemThread::<u32, Tg>::try_new(&passive, 0, |_passive, _context| {
            let _ = counter;
        });
    });
}

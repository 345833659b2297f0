use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mutex = FastMutex::<u32, Tg>::try_new(&passive, 0).unwrap();
        passive.raise_to_dispatch(&mutex, |dispatch, mutex| mutex.lock(dispatch, |_apc, count| *count += 1));
    });
}

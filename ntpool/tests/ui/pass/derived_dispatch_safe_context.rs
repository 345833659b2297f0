use ntpool::*;
pool_tag!(struct Tg = b"Test");

#[derive(DispatchSafe)]
struct Queue {
    items: NonPagedBox<[u32], Tg>,
    taken: usize,
}

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut queue = Queue { items: NonPagedBox::<[u32], Tg>::try_from_slice(&passive, &[1, 2, 3]).unwrap(), taken: 0 };
        let sum = passive.raise_to_dispatch(&mut queue, |_dispatch, queue| {
            queue.taken += 1;
            queue.items.iter().sum::<u32>()
        });
        assert_eq!((sum, queue.taken), (6, 1));
    });
}

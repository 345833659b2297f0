//! Values that cannot own or reach pool memory enter DISPATCH_LEVEL regions (and, where they own
//! nothing at all, regions above it): tags, errors, results of non-paged allocations, function
//! pointers, ranges, IRQLs, and a fast mutex inside spin-locked data.
use core::ops::Range;
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn double(x: u32) -> u32 {
    2 * x
}

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let allocated: Result<NonPagedBox<u32, Tg>, AllocError> = NonPagedBox::try_new(&passive, 4);
        let context = (
            PoolTag::new(*b"Ctx1"),
            AllocError,
            allocated,
            double as fn(u32) -> u32,
            0..3_usize,
            HighIrql::CLOCK,
            Tg,
            InvalidTag::DefaultTag,
        );
        let context = passive.raise_to_dispatch(context, |_dispatch, context| {
            let (tag, _, allocated, f, range, _, _, _): (_, _, _, _, Range<usize>, _, _, _) = context;
            assert_eq!(f(range.end as u32) + **allocated.as_ref().unwrap(), 10);
            (tag, f)
        });
        passive.raise_above_dispatch(HighIrql::CLOCK, context, |_high, (tag, f)| {
            assert_eq!((tag.to_ulong() != 0, f(1)), (true, 2));
        });
        let mutex = FastMutex::<u32, Tg>::try_new(&passive, 1).unwrap();
        let locked = SpinLock::new((mutex, 0_u32));
        locked.with(&mut passive, (), |_dispatch, data, ()| data.1 += 1);
        let (mutex, count) = locked.into_inner();
        assert_eq!(mutex.lock(&mut passive, |_apc, value| *value + count), 2);
    });
    assert!(kernel.verify_unload().is_ok());
}

use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // SAFETY: any address stands for the device here.
        let work = unsafe { WorkItem::<_, Tg>::try_new(&passive, 8 as _, paged, |_passive, _paged| {}) }.unwrap();
        // The code that queues it at DISPATCH_LEVEL gets a trigger, not the work item and its context.
        passive.raise_to_dispatch(&work, |dispatch, work| {
            work.queue(dispatch);
        });
    });
}

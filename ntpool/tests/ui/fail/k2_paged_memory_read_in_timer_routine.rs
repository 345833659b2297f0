use ntpool::*;
pool_tag!(struct Tg = b"Test");

static SETTINGS: Option<&'static PagedBox<u32, Tg>> = None;

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let _timer = Timer::<(), Tg>::try_new(&mut passive, (), |dispatch, ()| {
            // Even reached through a `static`, paged memory is read only with a Passive or Apc token.
            if let Some(settings) = SETTINGS {
                let _value = *settings.get(dispatch);
            }
        });
    });
}

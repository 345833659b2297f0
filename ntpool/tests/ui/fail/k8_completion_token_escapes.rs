use ntpool::*;
pool_tag!(struct Tg = b"Test");

static mut ESCAPED: Option<&'static mut UpToDispatch> = None;

fn keep(token: &mut UpToDispatch, _context: &u32, _completion: Completion) {
    // The completion routine's token lives only while the routine runs.
    unsafe { ESCAPED = Some(token) };
}

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let _request = IoRequest::<u32, Tg>::try_new(&mut passive, 0, keep);
    });
}

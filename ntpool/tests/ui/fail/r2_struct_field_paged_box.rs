use ntpool::*;
pool_tag!(struct Tg = b"Test");

#[derive(DispatchSafe)]
struct DeviceState {
    requests: u32,
    settings: PagedBox<[u8], Tg>,
}

fn main() {}

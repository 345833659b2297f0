use ntpool::*;

// All-zero bytes may be no variant of an enum (here: none is 0), so it cannot be `Zeroable`.
#[derive(Zeroable)]
#[repr(u8)]
enum State {
    Idle = 1,
    Busy = 2,
}

fn main() {
    let _ = State::Idle;
    let _ = State::Busy;
}

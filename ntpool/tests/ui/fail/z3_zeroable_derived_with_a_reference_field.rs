use ntpool::*;

// A null reference is not a reference: the derive requires every field to be `Zeroable`.
#[derive(Zeroable)]
struct Request {
    id: u64,
    name: &'static str,
}

fn main() {
    let request = Request { id: 1, name: "a" };
    let _ = (request.id, request.name);
}

//! Writes the seed corpus of the `ioctl` fuzz target: meaningful lives of the driver, one per file.
//! `cargo xtask fuzz --seeds` runs it; the files are kept in `fuzz/corpus/ioctl/`.

use ntpool_fuzz::{Choice, Code, Id, Op, Output, Setup, Value, decode, encode};
use ntpool_protocol::*;

/// Indices into `ntpool_fuzz::POOLS`.
const NON_PAGED: Choice = Choice::Pick(0);
const PAGED: Choice = Choice::Pick(1);
const NON_PAGED_QUOTA: Choice = Choice::Pick(2);
const PAGED_QUOTA: Choice = Choice::Pick(3);
/// Indices into `ntpool_fuzz::TAGS`.
const TAG: Choice = Choice::Pick(0);
const OTHER_TAG: Choice = Choice::Pick(1);

/// [`Value::Near`] references of a size: the largest size, what the handle's limit leaves.
const MAX: u8 = 0;
const HANDLE_LEFT: u8 = 1;
/// [`Value::Near`] references of a read: the block's size; what is left after the offset.
const SIZE: u8 = 0;
const REST: u8 = 0;
/// [`ntpool_fuzz::DELTAS`]: 0, +1.
const EXACT: u8 = 0;
const PLUS_ONE: u8 = 2;

fn allocate(handle: u8, pool: Choice, size: Value) -> Op {
    Op::Allocate { handle, pool, tag: TAG, size, output: Output::Fit(0) }
}

fn bytes(n: u32) -> Value {
    if n < 64 { Value::Small(n as u8) } else { Value::Raw(n) }
}

fn free(handle: u8, recent: u8) -> Op {
    Op::Free { handle, id: Id::Recent(recent) }
}

fn read(handle: u8, recent: u8, offset: Value, length: Value) -> Op {
    Op::Read { handle, id: Id::Recent(recent), offset, length, output: Output::Fit(0) }
}

fn list(handle: u8) -> Op {
    Op::List { handle, output: Output::Fit(0) }
}

fn statistics(handle: u8) -> Op {
    Op::Statistics { handle, output: Output::Fit(0) }
}

fn raw(code: u32, input: &[u8], output: u32) -> Op {
    let code = match ntpool_fuzz::CODES.iter().position(|&c| c == code) {
        Some(pick) => Code::Pick(pick as u8),
        None => Code::Raw(code),
    };
    Op::Raw { handle: 0, code, output: Output::Raw(output), input: input.to_vec() }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <corpus directory>");
    let round_trip = vec![
        Op::Open,
        allocate(0, PAGED, bytes(100)),
        allocate(0, NON_PAGED_QUOTA, bytes(4096)),
        read(0, 1, Value::Small(0), Value::Near(REST, EXACT)),
        read(0, 0, bytes(4000), Value::Near(REST, EXACT)),
        list(0),
        statistics(0),
        free(0, 1),
        free(0, 0),
        statistics(0),
    ];
    // Reads at and around a small block's end, a double free, a read after free.
    let edges = vec![
        allocate(0, NON_PAGED, bytes(10)),
        read(0, 0, Value::Small(0), Value::Near(SIZE, EXACT)),
        read(0, 0, Value::Small(0), Value::Near(SIZE, PLUS_ONE)),
        read(0, 0, Value::Small(5), Value::Near(REST, EXACT)),
        read(0, 0, Value::Small(5), Value::Near(REST, PLUS_ONE)),
        read(0, 0, Value::Near(SIZE, EXACT), Value::Small(0)),
        read(0, 0, Value::Near(SIZE, PLUS_ONE), Value::Small(0)),
        read(0, 0, Value::Small(1), Value::Near(3, EXACT)), // offset + length wraps to 0
        Op::Read {
            handle: 0,
            id: Id::Recent(0),
            offset: Value::Small(0),
            length: Value::Near(SIZE, EXACT),
            output: Output::Short(0),
        },
        free(0, 0),
        free(0, 0),
        read(0, 0, Value::Small(0), Value::Small(1)),
        Op::Free { handle: 0, id: Id::Special(1) },
    ];
    // Two clients in two processes: neither reaches the other's blocks; closing frees a handle's blocks.
    let handles = vec![
        Op::Open,
        Op::Open,
        allocate(0, PAGED_QUOTA, bytes(32)),
        allocate(1, NON_PAGED_QUOTA, bytes(48)),
        free(1, 1),
        read(0, 0, Value::Small(0), Value::Small(8)),
        list(0),
        list(1),
        Op::Close(0),
        statistics(0),
        read(0, 0, Value::Small(0), Value::Near(SIZE, EXACT)),
        free(0, 0),
    ];
    // The per-handle limits: blocks, then bytes of each pool.
    let mut handle_limits: Vec<Op> = (0..=MAX_HANDLE_ALLOCATIONS).map(|_| allocate(0, PAGED, bytes(8))).collect();
    handle_limits.extend([
        Op::Open,
        allocate(1, NON_PAGED, Value::Near(MAX, EXACT)),
        allocate(1, NON_PAGED, Value::Near(HANDLE_LEFT, PLUS_ONE)),
        allocate(1, NON_PAGED, bytes(1)),
        allocate(1, PAGED, Value::Near(MAX, EXACT)),
        allocate(1, PAGED, Value::Near(MAX, EXACT)),
        allocate(1, PAGED, Value::Near(MAX, EXACT)),
        allocate(1, PAGED, Value::Near(HANDLE_LEFT, EXACT)),
        allocate(1, PAGED, Value::Near(HANDLE_LEFT, PLUS_ONE)),
        list(1),
        statistics(1),
    ]);
    // The driver's limit on blocks, through five handles of up to 16 blocks.
    let mut driver_limit = Vec::new();
    for handle in 0..5u8 {
        driver_limit.push(Op::Open);
        driver_limit.extend((0..13).map(|_| allocate(handle, NON_PAGED, bytes(16))));
    }
    driver_limit.extend([statistics(0), Op::Close(2), allocate(0, NON_PAGED, bytes(16)), statistics(0)]);
    let good = AllocateRequest { pool: POOL_PAGED, tag: u32::from_le_bytes(*b"Fz01"), size: 16, reserved: 0 };
    let bad = |request: AllocateRequest| raw(IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8);
    let bad_input = vec![
        raw(0, &[], 0),
        raw(0x8A50_E3FC, &[], 0),
        raw(IOCTL_NTPOOL_ALLOCATE | 3, good.as_bytes(), 8),
        raw(IOCTL_NTPOOL_ALLOCATE, &good.as_bytes()[..15], 8),
        raw(IOCTL_NTPOOL_ALLOCATE, &[good.as_bytes(), &[0]].concat(), 8),
        raw(IOCTL_NTPOOL_ALLOCATE, good.as_bytes(), 7),
        bad(AllocateRequest { reserved: 1, ..good }),
        bad(AllocateRequest { pool: 2, ..good }),
        bad(AllocateRequest { pool: POOL_CHARGE_QUOTA | 2, ..good }),
        bad(AllocateRequest { tag: 0, ..good }),
        bad(AllocateRequest { tag: u32::from_le_bytes(*b"Wdm "), ..good }),
        bad(AllocateRequest { tag: good.tag | 0x8000_0000, ..good }),
        bad(AllocateRequest { size: 0, ..good }),
        bad(AllocateRequest { size: MAX_SIZE + 1, ..good }),
        bad(AllocateRequest { size: u32::MAX, ..good }),
        Op::Allocate { handle: 0, pool: Choice::Pick(4), tag: OTHER_TAG, size: bytes(8), output: Output::Fit(0) },
        Op::Allocate { handle: 0, pool: PAGED, tag: Choice::Pick(6), size: bytes(8), output: Output::Fit(0) },
        Op::Allocate { handle: 0, pool: PAGED, tag: TAG, size: Value::Near(MAX, PLUS_ONE), output: Output::Fit(0) },
        Op::Allocate { handle: 0, pool: PAGED, tag: TAG, size: bytes(8), output: Output::Short(0) },
        Op::Free { handle: 0, id: Id::Special(0) },
        Op::Free { handle: 0, id: Id::Special(2) },
        raw(IOCTL_NTPOOL_FREE, &[1, 0, 0], 0),
        raw(IOCTL_NTPOOL_READ, &[0; 8], 1),
        Op::List { handle: 0, output: Output::Short(0) },
        Op::Statistics { handle: 0, output: Output::Short(0) },
        statistics(0),
    ];
    // Quota of 64 KiB per process: the third 24 KiB quota block of a process does not fit.
    let quota = vec![
        Op::Open,
        Op::Open,
        allocate(0, PAGED_QUOTA, bytes(24 * 1024)),
        allocate(0, NON_PAGED_QUOTA, bytes(24 * 1024)),
        allocate(0, PAGED_QUOTA, bytes(24 * 1024)),
        allocate(0, PAGED, bytes(24 * 1024)),
        allocate(1, NON_PAGED_QUOTA, bytes(24 * 1024)),
        free(0, 3),
        allocate(0, PAGED_QUOTA, bytes(24 * 1024)),
        Op::Close(1),
        statistics(0),
    ];
    let reload = vec![
        allocate(0, PAGED, bytes(1000)),
        allocate(0, NON_PAGED, bytes(1000)),
        Op::Reload,
        list(0),
        allocate(0, NON_PAGED, bytes(8)),
        read(0, 2, Value::Small(0), Value::Small(8)),
        statistics(0),
    ];
    let seeds: Vec<(&str, Setup, Vec<Op>)> = vec![
        ("round-trip", Setup::Verifier, round_trip.clone()),
        ("read-edges", Setup::Verifier, edges),
        ("handles", Setup::Verifier, handles),
        ("handle-limits", Setup::Verifier, handle_limits),
        ("driver-limit", Setup::Verifier, driver_limit),
        ("bad-input", Setup::Verifier, bad_input),
        ("process-quota", Setup::ProcessQuota(64), quota),
        ("reload", Setup::Verifier, reload),
        ("without-exallocatepool2", Setup::NoExAllocatePool2, round_trip.clone()),
        ("fail-in-driverentry", Setup::FailAllocation(3), round_trip.clone()),
        ("fail-client-block", Setup::FailAllocation(7), round_trip.clone()),
        ("low-resources", Setup::LowResources(1, 20), round_trip),
    ];
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("an old seed removed");
    }
    for (name, setup, ops) in seeds {
        let data = encode(setup, &ops);
        assert_eq!(decode(&data), (setup, ops), "{name}: the format reads back");
        ntpool_fuzz::run(&data);
        std::fs::write(format!("{dir}/{name}"), data).expect("a seed file");
        println!("{dir}/{name}");
    }
}

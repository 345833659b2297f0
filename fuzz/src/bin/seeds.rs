//! Writes the seed corpus of the `ioctl` fuzz target: meaningful lives of the driver, one per file.
//! `cargo xtask fuzz --seeds` runs it; the files are kept in `fuzz/corpus/ioctl/`.

use ntpool_fuzz::{Op, Setup, encode};
use ntpool_protocol::*;

fn control(handle: u8, code: u32, input: &[u8], output: u16) -> Op {
    Op::Control { handle, code, output, input: input.to_vec() }
}

fn allocate(handle: u8, pool: u32, tag: &[u8; 4], size: u32) -> Op {
    let request = AllocateRequest { pool, tag: u32::from_le_bytes(*tag), size, reserved: 0 };
    control(handle, IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8)
}

fn free(handle: u8, id: u64) -> Op {
    control(handle, IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0)
}

fn read(handle: u8, id: u64, offset: u32, length: u32, output: u16) -> Op {
    control(handle, IOCTL_NTPOOL_READ, ReadRequest { id, offset, length }.as_bytes(), output)
}

fn list(handle: u8, output: u16) -> Op {
    control(handle, IOCTL_NTPOOL_QUERY_ALLOCATIONS, &[], output)
}

fn statistics(handle: u8) -> Op {
    control(handle, IOCTL_NTPOOL_QUERY_STATISTICS, &[], 64)
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <corpus directory>");
    let good = AllocateRequest { pool: POOL_PAGED, tag: u32::from_le_bytes(*b"Fz01"), size: 16, reserved: 0 };
    let bad = |request: AllocateRequest| control(0, IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8);
    let round_trip = vec![
        Op::Open,
        allocate(0, POOL_PAGED, b"Fz01", 100),
        allocate(0, POOL_NON_PAGED, b"Fz02", 4096),
        read(0, 1, 0, 100, 100),
        read(0, 2, 4000, 96, 200),
        list(0, 8 + 2 * 24),
        statistics(0),
        free(0, 1),
        free(0, 2),
        statistics(0),
    ];
    let bad_input = vec![
        Op::Open,
        control(0, 0, &[], 0),
        control(0, 0x8A50_E3FC, &[], 0),
        control(0, IOCTL_NTPOOL_ALLOCATE | 3, good.as_bytes(), 8),
        control(0, IOCTL_NTPOOL_ALLOCATE, &good.as_bytes()[..15], 8),
        control(0, IOCTL_NTPOOL_ALLOCATE, &[good.as_bytes(), &[0]].concat(), 8),
        control(0, IOCTL_NTPOOL_ALLOCATE, good.as_bytes(), 7),
        bad(AllocateRequest { reserved: 1, ..good }),
        bad(AllocateRequest { pool: 2, ..good }),
        bad(AllocateRequest { tag: 0, ..good }),
        bad(AllocateRequest { tag: u32::from_le_bytes(*b"Ab\0c"), ..good }),
        bad(AllocateRequest { tag: good.tag | 0x8000_0000, ..good }),
        bad(AllocateRequest { size: 0, ..good }),
        bad(AllocateRequest { size: MAX_SIZE + 1, ..good }),
        bad(AllocateRequest { size: u32::MAX, ..good }),
        free(0, 0),
        free(0, 999),
        control(0, IOCTL_NTPOOL_FREE, &[1, 0, 0], 0),
        read(0, 7, 0, 1, 1),
        control(0, IOCTL_NTPOOL_READ, &[0; 8], 1),
        list(0, 7),
        control(0, IOCTL_NTPOOL_QUERY_STATISTICS, &[], 63),
        statistics(0),
    ];
    let reads = vec![
        allocate(0, POOL_NON_PAGED, b"Fz03", 10),
        read(0, 1, 11, 0, 0),
        read(0, 1, 1, 10, 10),
        read(0, 1, 1, u32::MAX, 10),
        read(0, 1, 0, 10, 9),
        read(0, 1, 10, 0, 0),
        free(0, 1),
        free(0, 1),
    ];
    let mut block_limit: Vec<Op> = (0..=MAX_ALLOCATIONS).map(|_| allocate(0, POOL_PAGED, b"Fz04", 8)).collect();
    block_limit.extend([list(0, 8 + 24 * 66), statistics(0)]);
    let mut byte_limit: Vec<Op> = (0..=MAX_NON_PAGED_BYTES / u64::from(MAX_SIZE))
        .map(|_| allocate(0, POOL_NON_PAGED, b"Fz05", MAX_SIZE))
        .collect();
    byte_limit.extend([allocate(0, POOL_PAGED, b"Fz05", MAX_SIZE), statistics(0)]);
    let handles = vec![
        Op::Open,
        Op::Open,
        Op::Open,
        allocate(0, POOL_PAGED, b"Fz06", 32),
        allocate(1, POOL_NON_PAGED, b"Fz06", 32),
        free(2, 1),
        Op::Close(0),
        list(0, 8 + 24),
        read(1, 2, 0, 32, 32),
        Op::Close(1),
        statistics(0),
    ];
    let reload = vec![
        allocate(0, POOL_PAGED, b"Fz07", 1000),
        allocate(0, POOL_NON_PAGED, b"Fz07", 1000),
        Op::Reload,
        list(0, 8 + 24 * 2),
        allocate(0, POOL_NON_PAGED, b"Fz07", 8),
        statistics(0),
    ];
    let seeds: Vec<(&str, Setup, Vec<Op>)> = vec![
        ("round-trip", Setup::Verifier, round_trip.clone()),
        ("bad-input", Setup::Verifier, bad_input),
        ("read-ranges", Setup::Verifier, reads),
        ("block-limit", Setup::Verifier, block_limit),
        ("byte-limit", Setup::Verifier, byte_limit),
        ("handles", Setup::Verifier, handles),
        ("reload", Setup::Verifier, reload),
        ("without-exallocatepool2", Setup::NoExAllocatePool2, round_trip.clone()),
        ("fail-in-driverentry", Setup::FailAllocation(5), round_trip.clone()),
        ("fail-client-block", Setup::FailAllocation(25), round_trip.clone()),
        ("low-resources", Setup::LowResources(7, 20), round_trip),
    ];
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    for (name, setup, ops) in seeds {
        let data = encode(setup, &ops);
        assert_eq!(ntpool_fuzz::decode(&data), (setup, ops), "{name}: the format reads back");
        ntpool_fuzz::run(&data);
        std::fs::write(format!("{dir}/{name}"), data).expect("a seed file");
        println!("{dir}/{name}");
    }
}

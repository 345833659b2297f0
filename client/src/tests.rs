//! The scenario against an in-memory model of the driver: it passes on a faithful model, and
//! fails when the model misbehaves.

use std::collections::BTreeMap;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::*;

/// Ways the model can misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// `FREE` of an id that is not outstanding succeeds.
    DoubleFreeSucceeds,
    /// New blocks are not zeroed: one byte in the middle is left over.
    DirtyNewBlocks,
    /// The fifth successful `FREE` answers success but keeps the block.
    LeaksOnFree,
    /// No limit on the number of outstanding blocks.
    NoCountLimit,
    /// No limit on non-paged bytes.
    NoNonPagedLimit,
    /// `reserved` is checked after the pool and the tag.
    ReservedCheckedLast,
    /// Failures report `information` 8.
    InformationOnFailure,
    /// Ids start again from the first after every `FREE`.
    ReusesIds,
    /// `offset + length` is computed with wrapping arithmetic.
    ReadOverflow,
    /// Unknown codes are not counted as rejected.
    UnknownNotRejected,
    /// On success, the whole output buffer is written (zeros past the reply).
    WritesWholeOutput,
    /// `QUERY_ALLOCATIONS` lists the blocks in descending id order.
    ListsDescending,
    /// `ALLOCATE` with `METHOD_NEITHER` is served like `ALLOCATE`.
    AcceptsMethodNeither,
    /// Tags with no letter or digit are accepted.
    AcceptsTagWithoutAlphanumeric,
    /// `READ` with offset == size and length 0 is refused.
    RefusesEmptyReadAtEnd,
}

struct Block {
    pool: u32,
    tag: u32,
    data: Vec<u8>,
}

/// The driver, as its rules say.
struct Model {
    blocks: BTreeMap<u64, Block>,
    next_id: u64,
    statistics: Statistics,
    fault: Fault,
    successful_frees: u32,
    /// Blocks kept by [`Fault::LeaksOnFree`].
    leaked: u32,
}

impl Model {
    fn new(fault: Fault) -> Self {
        // A driver that has been used before: the counters are not zero, nothing is outstanding.
        let statistics = Statistics {
            allocations: 1000,
            frees: 1000,
            failures: 3,
            rejected: 77,
            requests: 5000,
            ..Default::default()
        };
        Model { blocks: BTreeMap::new(), next_id: 1001, statistics, fault, successful_frees: 0, leaked: 0 }
    }

    fn bytes(&self, pool: u32) -> u64 {
        self.blocks.values().filter(|block| block.pool == pool).map(|block| block.data.len() as u64).sum()
    }

    fn valid_tag(&self, tag: u32) -> bool {
        let bytes = tag.to_le_bytes();
        let alphanumeric =
            self.fault == Fault::AcceptsTagWithoutAlphanumeric || bytes.iter().any(u8::is_ascii_alphanumeric);
        bytes.iter().all(|byte| (0x20..=0x7E).contains(byte)) && alphanumeric && bytes != *b"Wdm " && bytes != *b"Ddk "
    }

    fn allocate(&mut self, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let Some(request) = AllocateRequest::from_bytes(input) else { return (status::INFO_LENGTH_MISMATCH, 0) };
        if output.len() < 8 {
            return (status::BUFFER_TOO_SMALL, 0);
        }
        let reserved_first = self.fault != Fault::ReservedCheckedLast;
        if reserved_first && request.reserved != 0 {
            return (status::INVALID_PARAMETER_4, 0);
        }
        let request = AllocateRequest { pool: request.pool & !POOL_CHARGE_QUOTA, ..request };
        if request.pool != POOL_NON_PAGED && request.pool != POOL_PAGED {
            return (status::INVALID_PARAMETER_1, 0);
        }
        if !self.valid_tag(request.tag) {
            return (status::INVALID_PARAMETER_2, 0);
        }
        if !reserved_first && request.reserved != 0 {
            return (status::INVALID_PARAMETER_4, 0);
        }
        if request.size == 0 || request.size > MAX_SIZE {
            return (status::INVALID_PARAMETER_3, 0);
        }
        let (limit, enforced) = if request.pool == POOL_PAGED {
            (MAX_HANDLE_PAGED_BYTES, true)
        } else {
            (MAX_HANDLE_NON_PAGED_BYTES, self.fault != Fault::NoNonPagedLimit)
        };
        let too_many = self.fault != Fault::NoCountLimit && self.blocks.len() >= MAX_HANDLE_ALLOCATIONS as usize;
        if too_many || (enforced && self.bytes(request.pool) + u64::from(request.size) > limit) {
            return (status::QUOTA_EXCEEDED, 0);
        }
        let mut data = vec![0; request.size as usize];
        if self.fault == Fault::DirtyNewBlocks {
            data[request.size as usize / 2] = 0x41;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.blocks.insert(id, Block { pool: request.pool, tag: request.tag, data });
        self.statistics.allocations += 1;
        output[..8].copy_from_slice(AllocateReply { id }.as_bytes());
        (status::SUCCESS, 8)
    }

    fn free(&mut self, input: &[u8]) -> (i32, usize) {
        let Some(request) = FreeRequest::from_bytes(input) else { return (status::INFO_LENGTH_MISMATCH, 0) };
        if !self.blocks.contains_key(&request.id) {
            if self.fault == Fault::DoubleFreeSucceeds {
                self.statistics.frees += 1;
                return (status::SUCCESS, 0);
            }
            return (status::NOT_FOUND, 0);
        }
        self.successful_frees += 1;
        if self.fault == Fault::LeaksOnFree && self.successful_frees == 5 {
            self.leaked += 1;
        } else {
            self.blocks.remove(&request.id);
        }
        if self.fault == Fault::ReusesIds {
            self.next_id = self.blocks.keys().next_back().map_or(1, |last| last + 1);
        }
        self.statistics.frees += 1;
        (status::SUCCESS, 0)
    }

    fn read(&mut self, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let Some(request) = ReadRequest::from_bytes(input) else { return (status::INFO_LENGTH_MISMATCH, 0) };
        let Some(block) = self.blocks.get(&request.id) else { return (status::NOT_FOUND, 0) };
        let size = block.data.len() as u32;
        if request.offset > size {
            return (status::INVALID_PARAMETER_2, 0);
        }
        let past_end = if self.fault == Fault::ReadOverflow {
            request.offset.wrapping_add(request.length) > size
        } else {
            request.length > size - request.offset
        };
        if past_end {
            return (status::INVALID_PARAMETER_3, 0);
        }
        if self.fault == Fault::RefusesEmptyReadAtEnd && request.length == 0 && request.offset == size {
            return (status::INVALID_PARAMETER_2, 0);
        }
        if output.len() < request.length as usize {
            return (status::BUFFER_TOO_SMALL, 0);
        }
        let start = request.offset as usize;
        let length = request.length as usize;
        output[..length].copy_from_slice(&block.data[start..start + length]);
        (status::SUCCESS, length)
    }

    fn query_allocations(&mut self, output: &mut [u8]) -> (i32, usize) {
        if output.len() < 8 {
            return (status::BUFFER_TOO_SMALL, 0);
        }
        let fit = (output.len() - 8) / 24;
        let mut entries: Vec<AllocationInfo> = self
            .blocks
            .iter()
            .map(|(&id, block)| AllocationInfo {
                id,
                pool: block.pool,
                tag: block.tag,
                size: block.data.len() as u32,
                reserved: 0,
            })
            .collect();
        if self.fault == Fault::ListsDescending {
            entries.reverse();
        }
        let returned = entries.len().min(fit);
        let header = AllocationsHeader { outstanding: entries.len() as u32, returned: returned as u32 };
        output[..8].copy_from_slice(header.as_bytes());
        for (index, entry) in entries.iter().take(returned).enumerate() {
            output[8 + 24 * index..8 + 24 * (index + 1)].copy_from_slice(entry.as_bytes());
        }
        (status::SUCCESS, 8 + 24 * returned)
    }

    fn query_statistics(&mut self, output: &mut [u8]) -> (i32, usize) {
        if output.len() < 64 {
            return (status::BUFFER_TOO_SMALL, 0);
        }
        let statistics = Statistics {
            outstanding: self.blocks.len() as u64,
            non_paged_bytes: self.bytes(POOL_NON_PAGED),
            paged_bytes: self.bytes(POOL_PAGED),
            ..self.statistics
        };
        output[..64].copy_from_slice(statistics.as_bytes());
        (status::SUCCESS, 64)
    }
}

impl Device for Model {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        // Counted on entry, so QUERY_STATISTICS includes itself.
        self.statistics.requests += 1;
        // METHOD_BUFFERED: the driver writes into a system buffer, and the I/O manager copies
        // `information` bytes back, and nothing on failure.
        let mut system = vec![0u8; output.len()];
        let (status, information) = match code {
            IOCTL_NTPOOL_ALLOCATE => self.allocate(input, &mut system),
            code if code == IOCTL_NTPOOL_ALLOCATE | 3 && self.fault == Fault::AcceptsMethodNeither => {
                self.allocate(input, &mut system)
            }
            IOCTL_NTPOOL_FREE => self.free(input),
            IOCTL_NTPOOL_READ => self.read(input, &mut system),
            IOCTL_NTPOOL_QUERY_ALLOCATIONS => self.query_allocations(&mut system),
            IOCTL_NTPOOL_QUERY_STATISTICS => self.query_statistics(&mut system),
            _ => {
                if self.fault == Fault::UnknownNotRejected {
                    self.statistics.rejected -= 1;
                }
                (status::INVALID_DEVICE_REQUEST, 0)
            }
        };
        if status == status::INSUFFICIENT_RESOURCES {
            self.statistics.failures += 1;
        } else if status < 0 {
            self.statistics.rejected += 1;
        }
        if status < 0 {
            let information = if self.fault == Fault::InformationOnFailure { 8 } else { 0 };
            return (status, information);
        }
        let copied = if self.fault == Fault::WritesWholeOutput { output.len() } else { information };
        output[..copied].copy_from_slice(&system[..copied]);
        (status, information)
    }
}

fn run(fault: Fault) -> (Summary, String, Model) {
    let mut model = Model::new(fault);
    let mut out = String::new();
    let summary = run_scenario(&mut model, &mut out);
    (summary, out, model)
}

fn fail_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|line| line.starts_with("FAIL")).collect()
}

#[test]
fn passes_on_a_faithful_model_and_leaves_nothing_behind() {
    let (summary, out, model) = run(Fault::None);
    assert_eq!(fail_lines(&out), Vec::<&str>::new(), "{out}");
    assert_eq!(summary.failed, 0);
    assert!(summary.passed > 120, "only {} checks:\n{out}", summary.passed);
    assert!(summary.all_passed());
    assert!(model.blocks.is_empty(), "left outstanding: {:?}", model.blocks.keys().collect::<Vec<_>>());
    assert_eq!(model.statistics.allocations - 1000, model.statistics.frees - 1000);
    assert_eq!(model.statistics.failures, 3);
}

#[test]
fn prints_one_line_per_check_and_the_summary_last() {
    let (summary, out, _) = run(Fault::None);
    let lines: Vec<&str> = out.lines().collect();
    let (last, checks) = lines.split_last().expect("output");
    assert_eq!(*last, std::format!("{} passed, 0 failed", summary.passed));
    assert_eq!(checks.len(), summary.passed as usize);
    assert!(checks.iter().all(|line| line.starts_with("ok   ")), "{out}");
    assert!(out.contains("ok   ALLOCATE paged (quota) 100 bytes tag \"Tst1\" -> id 1001\n"), "{out}");
    assert!(out.contains(
        "ok   ALLOCATE non-paged 16 bytes tag \"Fill\" (one more than MAX_HANDLE_ALLOCATIONS) -> STATUS_QUOTA_EXCEEDED\n"
    ));
    assert!(out.contains("ok   ALLOCATE paged 32 bytes tag \"Ab\\x00c\" (a NUL byte) -> STATUS_INVALID_PARAMETER_2\n"));
    assert!(out.contains("READ id 1001 offset 1 length 4294967295 into 64 bytes (offset + length overflows u32)"));
}

#[test]
fn covers_every_ioctl_and_the_limits() {
    let (_, out, _) = run(Fault::None);
    for needle in [
        "ALLOCATE 16 x non-paged 16 bytes tag \"Fill\", every other one paged (up to MAX_HANDLE_ALLOCATIONS)",
        "ALLOCATE 1 x non-paged 65536 bytes tag \"NpLm\" (up to MAX_HANDLE_NON_PAGED_BYTES)",
        "ALLOCATE 4 x paged 65536 bytes tag \"PgLm\" (up to MAX_HANDLE_PAGED_BYTES)",
        "(past MAX_HANDLE_NON_PAGED_BYTES) -> STATUS_QUOTA_EXCEEDED",
        "(past MAX_HANDLE_PAGED_BYTES) -> STATUS_QUOTA_EXCEEDED",
        "again (double free) -> STATUS_NOT_FOUND",
        "(never allocated) -> STATUS_NOT_FOUND",
        "all 65536 bytes of the new block are zero (64 reads)",
        "QUERY_ALLOCATIONS into 0 bytes -> STATUS_BUFFER_TOO_SMALL",
        "QUERY_STATISTICS into 63 bytes -> STATUS_BUFFER_TOO_SMALL",
        "IOCTL 0x8A50E3FC",
        "ALLOCATE code with METHOD_NEITHER -> STATUS_INVALID_DEVICE_REQUEST",
        "tag \"Wdm \" (the default tag) -> STATUS_INVALID_PARAMETER_2",
        "tag \"Ddk \" (the default tag) -> STATUS_INVALID_PARAMETER_2",
        "tag \"Tst\\xb1\" (the high bit set) -> STATUS_INVALID_PARAMETER_2",
        "65537 bytes tag \"Tst6\" (more than MAX_SIZE) -> STATUS_INVALID_PARAMETER_3",
        "statistics: requests moved by",
        "nothing outstanding at the end",
    ] {
        assert!(out.contains(needle), "no line with {needle:?}:\n{out}");
    }
}

#[test]
fn counters_are_compared_relative_to_the_start() {
    // The model starts with counters far from zero; a second run on the same model passes too.
    let mut model = Model::new(Fault::None);
    let mut out = String::new();
    assert!(run_scenario(&mut model, &mut out).all_passed(), "{out}");
    out.clear();
    assert!(run_scenario(&mut model, &mut out).all_passed(), "{out}");
}

#[test]
fn reports_failures_when_the_model_misbehaves() {
    let cases: [(Fault, &str); 15] = [
        (Fault::DoubleFreeSucceeds, "again (double free): expected STATUS_NOT_FOUND, got STATUS_SUCCESS"),
        (Fault::DirtyNewBlocks, "bytes of the new block are zero (1 reads): byte 50 is 0x41, not zero"),
        (
            Fault::LeaksOnFree,
            "nothing outstanding at the end: 0 blocks, 0 non-paged and 0 paged bytes: outstanding: expected 0, got 1",
        ),
        (
            Fault::NoCountLimit,
            "(one more than MAX_HANDLE_ALLOCATIONS): expected STATUS_QUOTA_EXCEEDED, got STATUS_SUCCESS",
        ),
        (
            Fault::NoNonPagedLimit,
            "(past MAX_HANDLE_NON_PAGED_BYTES): expected STATUS_QUOTA_EXCEEDED, got STATUS_SUCCESS",
        ),
        (
            Fault::ReservedCheckedLast,
            "(reserved before pool): expected STATUS_INVALID_PARAMETER_4, got STATUS_INVALID_PARAMETER_1",
        ),
        (Fault::InformationOnFailure, "expected information 0, got 8"),
        (Fault::ReusesIds, "was handed out before"),
        (
            Fault::ReadOverflow,
            "(offset + length overflows u32): expected STATUS_INVALID_PARAMETER_3, got STATUS_BUFFER_TOO_SMALL",
        ),
        (Fault::UnknownNotRejected, "statistics: rejected moved by"),
        (Fault::WritesWholeOutput, "returned 8 bytes but changed byte 8 of the output buffer"),
        (Fault::ListsDescending, "entry 0: expected {id 1001"),
        (
            Fault::AcceptsMethodNeither,
            "ALLOCATE code with METHOD_NEITHER: expected STATUS_INVALID_DEVICE_REQUEST, got STATUS_SUCCESS",
        ),
        (
            Fault::AcceptsTagWithoutAlphanumeric,
            "tag \"----\" (no letter or digit): expected STATUS_INVALID_PARAMETER_2, got STATUS_SUCCESS",
        ),
        (
            Fault::RefusesEmptyReadAtEnd,
            "READ id 1001 offset 100 length 0 into 16 bytes: expected STATUS_SUCCESS, got STATUS_INVALID_PARAMETER_2",
        ),
    ];
    for (fault, expected) in cases {
        let (summary, out, model) = run(fault);
        assert!(summary.failed > 0, "{fault:?}: no failure reported:\n{out}");
        assert!(!summary.all_passed());
        let failures = fail_lines(&out);
        assert_eq!(failures.len(), summary.failed as usize, "{fault:?}");
        assert!(
            failures.iter().any(|line| line.contains(expected)),
            "{fault:?}: no FAIL line with {expected:?}:\n{out}"
        );
        assert_eq!(out.lines().last(), Some(std::format!("{summary}").as_str()));
        // Whatever went wrong, the scenario freed what the driver told it about.
        assert_eq!(model.blocks.len() as u32, model.leaked, "{fault:?}: left blocks outstanding:\n{out}");
    }
}

#[test]
fn a_leak_shows_in_the_final_list_and_statistics() {
    let (_, out, model) = run(Fault::LeaksOnFree);
    assert_eq!(model.blocks.len(), 1);
    let failures = fail_lines(&out);
    assert!(failures.iter().any(|line| line.starts_with("FAIL QUERY_ALLOCATIONS into 1640 bytes at the end")), "{out}");
    assert!(failures.iter().any(|line| line.contains("outstanding: expected 0, got 1")), "{out}");
}

#[test]
fn a_driver_that_refuses_everything_fails_without_panicking() {
    struct Broken;
    impl Device for Broken {
        fn control(&mut self, _: u32, _: &[u8], _: &mut [u8]) -> (i32, usize) {
            (status::INVALID_DEVICE_REQUEST, 0)
        }
    }
    let mut out = String::new();
    let summary = run_scenario(&mut Broken, &mut out);
    assert!(summary.failed > 10, "{out}");
    assert!(out.contains("FAIL QUERY_STATISTICS at the start"), "{out}");
    assert!(out.ends_with(&std::format!("{summary}\n")));
}

#[test]
fn a_driver_that_answers_garbage_fails_without_panicking() {
    // Claims more bytes than the buffer has, and success for everything.
    struct Liar;
    impl Device for Liar {
        fn control(&mut self, _: u32, _: &[u8], output: &mut [u8]) -> (i32, usize) {
            output.fill(0xFF);
            (status::SUCCESS, output.len() + 100)
        }
    }
    let mut out = String::new();
    let summary = run_scenario(&mut Liar, &mut out);
    assert!(summary.failed > 10, "{out}");
}

#[test]
fn tags_and_statuses_print_readably() {
    assert_eq!(std::format!("{}", Tag(tag(*b"Ab\0c"))), "\"Ab\\x00c\"");
    assert_eq!(std::format!("{}", Tag(tag(*b"a\"\\ "))), "\"a\\\"\\\\ \"");
    assert_eq!(std::format!("{}", Status(status::NOT_FOUND)), "STATUS_NOT_FOUND");
    assert_eq!(std::format!("{}", Status(0xC000_0001_u32 as i32)), "NTSTATUS 0xC0000001");
    assert_eq!(std::format!("{}", Summary { passed: 3, failed: 1 }), "3 passed, 1 failed");
}

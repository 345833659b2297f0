//! The scenario against the model of the driver's rules (`ntpool_protocol::model`): it passes on
//! the model, and fails when a fault injected around the model breaks one of the rules.

use std::string::String;
use std::vec;
use std::vec::Vec;

use ntpool_protocol::model::{Block, LIMITS, Limits, Model, Prediction, Sender, Totals, allocations_reply};
use ntpool_protocol::{
    AllocateRequest, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_READ,
    ReadRequest, Statistics, Wire, status,
};

use crate::display::{Status, Tag, tag};
use crate::hostile::{CASES, Devices, run_table};
use crate::{Device, Summary, run_scenario};

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

/// One handle, in one process: the scenario's.
const SCENARIO: Sender = Sender { handle: 1, process: 0x1000 };

/// The driver as [`Model`] says, with `fault` injected around the model: the scenario's device.
struct Faulty {
    model: Model,
    fault: Fault,
    successful_frees: u32,
    /// Blocks kept by [`Fault::LeaksOnFree`].
    leaked: u32,
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        let limits = match fault {
            Fault::NoCountLimit => Limits {
                driver: Totals { blocks: u32::MAX, ..LIMITS.driver },
                handle: Totals { blocks: u32::MAX, ..LIMITS.handle },
            },
            Fault::NoNonPagedLimit => Limits {
                driver: Totals { non_paged_bytes: u64::MAX, ..LIMITS.driver },
                handle: Totals { non_paged_bytes: u64::MAX, ..LIMITS.handle },
            },
            _ => LIMITS,
        };
        // A driver that has been used before: the counters are not zero, nothing is outstanding.
        let counters = Statistics {
            allocations: 1000,
            frees: 1000,
            failures: 3,
            rejected: 77,
            requests: 5000,
            ..Default::default()
        };
        let model = Model::new().with_limits(limits).with_history(counters, 1001);
        Faulty { model, fault, successful_frees: 0, leaked: 0 }
    }

    /// The size of the scenario's block `id`, if it is outstanding.
    fn size(&self, id: u64) -> Option<u32> {
        self.model.blocks().get(&id).map(|block| block.size)
    }

    /// The model's prediction, as the fault changes it.
    fn predict(&self, code: u32, input: &[u8], output: usize) -> Prediction {
        let prediction = self.model.predict(SCENARIO, code, input, output);
        match (self.fault, code, prediction) {
            (Fault::ReservedCheckedLast, IOCTL_NTPOOL_ALLOCATE, prediction) => {
                let Some(request) = AllocateRequest::from_bytes(input).filter(|request| request.reserved != 0) else {
                    return prediction;
                };
                // The checks up to the tag's decide first, then `reserved`.
                let without = AllocateRequest { reserved: 0, ..request };
                match self.model.predict(SCENARIO, code, without.as_bytes(), output) {
                    Prediction::Fail(
                        status @ (status::BUFFER_TOO_SMALL | status::INVALID_PARAMETER_1 | status::INVALID_PARAMETER_2),
                    ) => Prediction::Fail(status),
                    _ => Prediction::Fail(status::INVALID_PARAMETER_4),
                }
            }
            (
                Fault::AcceptsTagWithoutAlphanumeric,
                IOCTL_NTPOOL_ALLOCATE,
                Prediction::Fail(status::INVALID_PARAMETER_2),
            ) => {
                let request = AllocateRequest::from_bytes(input).expect("a request that got as far as its tag");
                let bytes = request.tag.to_le_bytes();
                let printable = bytes.iter().all(|byte| (0x20..=0x7E).contains(byte));
                if !printable || bytes == *b"Wdm " || bytes == *b"Ddk " {
                    return Prediction::Fail(status::INVALID_PARAMETER_2);
                }
                // Decided as for a valid tag; the block keeps its own.
                let valid = AllocateRequest { tag: tag(*b"Tst1"), ..request };
                match self.model.predict(SCENARIO, code, valid.as_bytes(), output) {
                    Prediction::Allocate(block) => Prediction::Allocate(Block { tag: request.tag, ..block }),
                    other => other,
                }
            }
            (Fault::DoubleFreeSucceeds, IOCTL_NTPOOL_FREE, Prediction::Fail(status::NOT_FOUND)) => {
                Prediction::Reply(Vec::new())
            }
            (Fault::ReadOverflow, IOCTL_NTPOOL_READ, Prediction::Fail(status::INVALID_PARAMETER_3)) => {
                let request = ReadRequest::from_bytes(input).expect("a request that got as far as its length");
                let size = self.size(request.id).expect("a block that got as far as its length");
                if request.offset.wrapping_add(request.length) > size {
                    return Prediction::Fail(status::INVALID_PARAMETER_3);
                }
                // `offset + length` wrapped past the check: the next one, the output's room, fails
                // (no output buffer holds more than 4 GiB less a block).
                Prediction::Fail(status::BUFFER_TOO_SMALL)
            }
            (Fault::RefusesEmptyReadAtEnd, IOCTL_NTPOOL_READ, Prediction::Reply(reply)) => {
                let request = ReadRequest::from_bytes(input).expect("a request that succeeded");
                if request.length == 0 && Some(request.offset) == self.size(request.id) {
                    return Prediction::Fail(status::INVALID_PARAMETER_2);
                }
                Prediction::Reply(reply)
            }
            (Fault::ListsDescending, IOCTL_NTPOOL_QUERY_ALLOCATIONS, Prediction::Reply(_)) => {
                let mut entries = self.model.allocations(SCENARIO.handle);
                entries.reverse();
                Prediction::Reply(allocations_reply(&entries, output))
            }
            (_, _, prediction) => prediction,
        }
    }

    /// Serves one request: the status and the bytes the driver returns.
    fn serve(&mut self, code: u32, input: &[u8], output: usize) -> (i32, Vec<u8>) {
        let code = if self.fault == Fault::AcceptsMethodNeither && code == IOCTL_NTPOOL_ALLOCATE | 3 {
            IOCTL_NTPOOL_ALLOCATE
        } else {
            code
        };
        let prediction = self.predict(code, input, output);
        let status = prediction.status();
        let mut reply = match prediction {
            Prediction::Free(id) => {
                self.successful_frees += 1;
                if self.fault == Fault::LeaksOnFree && self.successful_frees == 5 {
                    self.leaked += 1;
                    self.model.counters_mut().frees += 1;
                } else {
                    self.model.apply(Prediction::Free(id));
                }
                if self.fault == Fault::ReusesIds {
                    let next = self.model.blocks().keys().next_back().map_or(1, |last| last + 1);
                    self.model.set_next_id(next);
                }
                Vec::new()
            }
            // A `FREE` that succeeds without a block to free ([`Fault::DoubleFreeSucceeds`]) is
            // counted as a free all the same.
            Prediction::Reply(reply) if code == IOCTL_NTPOOL_FREE => {
                self.model.counters_mut().frees += 1;
                reply
            }
            prediction => self.model.apply(prediction),
        };
        self.model.count(status);
        if self.fault == Fault::UnknownNotRejected && status == status::INVALID_DEVICE_REQUEST {
            self.model.counters_mut().rejected -= 1;
        }
        if self.fault == Fault::DirtyNewBlocks && code == IOCTL_NTPOOL_READ && status == status::SUCCESS {
            // One byte in the middle of every block is left over.
            let request = ReadRequest::from_bytes(input).expect("a request that succeeded");
            let middle = self.size(request.id).expect("a block read") / 2;
            if (request.offset..request.offset + request.length).contains(&middle) {
                reply[(middle - request.offset) as usize] = 0x41;
            }
        }
        (status, reply)
    }
}

impl Device for Faulty {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        let (status, reply) = self.serve(code, input, output.len());
        // METHOD_BUFFERED: the driver writes into a system buffer, and the I/O manager copies
        // `information` bytes back, and nothing on failure.
        if status < 0 {
            let information = if self.fault == Fault::InformationOnFailure { 8 } else { 0 };
            return (status, information);
        }
        let mut system = vec![0u8; output.len()];
        system[..reply.len()].copy_from_slice(&reply);
        let copied = if self.fault == Fault::WritesWholeOutput { output.len() } else { reply.len() };
        output[..copied].copy_from_slice(&system[..copied]);
        (status, reply.len())
    }
}

/// Handles to the model, by index, each its own [`Sender`]: the hostile-input table's devices.
struct ModelHandles {
    model: Model,
    open: Vec<bool>,
}

impl Devices for ModelHandles {
    fn open(&mut self) -> Option<usize> {
        self.open.push(true);
        Some(self.open.len() - 1)
    }

    fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        assert!(self.open[handle], "a request through closed handle {handle}");
        let sender = Sender { handle: handle as u64, process: SCENARIO.process };
        let (status, reply) = self.model.serve(sender, code, input, output.len());
        output[..reply.len()].copy_from_slice(&reply);
        (status, reply.len())
    }

    fn close(&mut self, handle: usize) {
        self.open[handle] = false;
        self.model.close(handle as u64);
    }
}

fn run(fault: Fault) -> (Summary, String, Faulty) {
    let mut model = Faulty::new(fault);
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
    let (blocks, statistics) = (model.model.blocks(), model.model.statistics());
    assert!(blocks.is_empty(), "left outstanding: {:?}", blocks.keys().collect::<Vec<_>>());
    assert_eq!(statistics.allocations - 1000, statistics.frees - 1000);
    assert_eq!(statistics.failures, 3);
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
    let mut model = Faulty::new(Fault::None);
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
        assert_eq!(model.model.blocks().len() as u32, model.leaked, "{fault:?}: left blocks outstanding:\n{out}");
    }
}

#[test]
fn a_leak_shows_in_the_final_list_and_statistics() {
    let (_, out, model) = run(Fault::LeaksOnFree);
    assert_eq!(model.model.blocks().len(), 1);
    let failures = fail_lines(&out);
    assert!(failures.iter().any(|line| line.starts_with("FAIL QUERY_ALLOCATIONS into 1640 bytes at the end")), "{out}");
    assert!(failures.iter().any(|line| line.contains("outstanding: expected 0, got 1")), "{out}");
}

/// The table and the model agree on every row (the host tests check the table against the driver,
/// the fuzzer the model).
#[test]
fn every_row_of_the_hostile_input_table_gets_its_status_from_the_model() {
    let mut devices = ModelHandles { model: Model::new(), open: Vec::new() };
    let mut out = String::new();
    let summary = run_table(&mut devices, &mut out);
    assert_eq!((summary.passed, summary.failed), (CASES.len() as u32, 0), "{out}");
    assert!(devices.model.blocks().is_empty(), "the table left blocks outstanding");
    assert!(devices.open.iter().all(|open| !open), "the table left handles open");
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

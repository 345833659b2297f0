//! The fuzz harness of the sample driver: a fuzzer's bytes become a life of the driver on ntpool's
//! emulated kernel (Driver Verifier's checks on), and every answer is checked against a model that
//! predicts it exactly.
//!
//! # Input format
//!
//! Structure-aware: most bytes choose among meaningful values rather than spell them out, so that a
//! random or mutated input is mostly a meaningful life of the driver. Ids usually name blocks the
//! driver handed out earlier in the same input; sizes, offsets, lengths and output buffers are
//! drawn from small values, boundaries (a block's size ± 1, [`MAX_SIZE`](ntpool_protocol::MAX_SIZE) ± 1, what a limit leaves
//! ± 1, the reply's size ± 1), powers of two and raw values; tags and pools from a small set of valid
//! and invalid ones. Raw requests keep malformed buffers and unknown codes in reach.
//!
//! An input is a configuration ([`Setup`]: first byte % 8, 0-3 plain) followed by operations until
//! the input ends ([`decode`]; [`encode`] writes the same format, for the seed corpus). An operation
//! byte's low four bits are its kind, its high four bits the handle it goes through (% open
//! handles; one is opened if none is):
//!
//! | kind | operation | then |
//! |---|---|---|
//! | 0, 14 | open a handle (at most [`MAX_HANDLES`]) | |
//! | 1 | close the handle | |
//! | 2 | close every handle, unload, check nothing leaked, load again | |
//! | 3, 4, 5 | `IOCTL_NTPOOL_ALLOCATE` | pool, tag, size ([`Value`]), output ([`Output`]) |
//! | 6, 7 | `IOCTL_NTPOOL_FREE` | id ([`Id`]) |
//! | 8, 9, 10 | `IOCTL_NTPOOL_READ` | id, offset, length ([`Value`]s), output |
//! | 11 | `IOCTL_NTPOOL_QUERY_ALLOCATIONS` | output |
//! | 12 | `IOCTL_NTPOOL_QUERY_STATISTICS` | output |
//! | 13, 15 | any request, raw | code ([`Code`]), output, input length (1 byte), input |
//!
//! Handles belong to two processes (by the order they were opened in), so that blocks charged to
//! quota ([`POOL_CHARGE_QUOTA`](ntpool_protocol::POOL_CHARGE_QUOTA)) are charged to two processes.
//!
//! # What is a crash
//!
//! [`run`] loads the driver, runs the operations, unloads it, and panics (a crash for libFuzzer) on
//! a bug check, a leak at unload, an I/O manager check (IRP completed once, no more output than room
//! for), or an answer that differs from the model's: the model knows the driver's blocks (owner
//! handle, pool, tag, size, quota), its next id and its counters, and predicts every status and
//! every reply byte (blocks read as zeros; lists in id order; statistics exact). Without fault
//! injection the prediction is exact; with it, a successful allocation may instead fail with
//! `STATUS_INSUFFICIENT_RESOURCES`. After every allocation or free request and every close, the
//! kernel's outstanding client blocks (tag, pool, size) and every process's quota charges must equal
//! the model's: a leak or a free of the wrong block shows at once.
//!
//! The fuzz build (`--cfg fuzzing`) leaves the self-test out of `DriverEntry` (the host tests and the
//! systematic low resources simulation run it); the rest of `DriverEntry` runs for every input.
//!
//! `NTPOOL_FUZZ_TRACE=1` prints each operation and its answer to stderr.
//!
//! # Modules
//!
//! Each uses only those before it: `input` (the types and tables of the format), `decoding` and
//! `encoding` (the format), `mutator` (the structural mutator), `resolve` (an operation's request)
//! and `runner` (an input's run). The model the answers are checked against is the one the client's unit
//! tests use too: `ntpool_protocol::model`.

mod decoding;
mod encoding;
mod input;
mod mutator;
mod resolve;
mod runner;

pub use decoding::decode;
pub use encoding::encode;
pub use input::{
    CODES, Choice, Code, DELTAS, Id, MAX_HANDLES, MAX_OUTPUT, Op, Output, POOLS, PROCESSES, Setup, TAGS, Value,
};
pub use mutator::mutate;
pub use runner::run;

//! The soak worker: a long, deterministic stream of requests through one handle, each answer
//! checked. `ntpool-client.exe --soak THREADS REQUESTS` runs one worker per thread, each on its own
//! handle, all at once (`cargo xtask wine --soak` does that over many load/unload cycles).
//!
//! A worker allocates a block (the pool, size and tag vary with the step), reads part of it back
//! (it must be zero), lists its handle's blocks (exactly its own must be there: other workers'
//! blocks are invisible to it) or frees an id that does not exist (`STATUS_NOT_FOUND`), and frees
//! the block of the step before. It never holds more than two blocks, so workers never reach a limit
//! and every run makes the same requests, whatever the threads' interleaving.

use ntpool_protocol::{
    AllocateReply, AllocateRequest, AllocationInfo, AllocationsHeader, FreeRequest, IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_READ, POOL_NON_PAGED, POOL_PAGED, ReadRequest,
    Wire, status,
};

use crate::Device;

/// Requests per step of a worker.
pub const REQUESTS_PER_STEP: u32 = 4;
/// The most bytes a worker reads back at once.
const READ_MAX: usize = 256;
const HEADER: usize = core::mem::size_of::<AllocationsHeader>();
const ENTRY: usize = core::mem::size_of::<AllocationInfo>();
/// Room for the header and four entries.
const LIST: usize = HEADER + 4 * ENTRY;

/// What one worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoakReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered as expected.
    pub passed: u64,
    /// Blocks allocated.
    pub allocations: u64,
    /// Blocks freed.
    pub frees: u64,
    /// The first unexpected answer: (request number from 1, IOCTL code, status).
    pub first_failure: Option<(u64, u32, i32)>,
}

impl SoakReport {
    /// Adds another worker's numbers (the first failure stays the first one seen).
    pub fn add(&mut self, other: &SoakReport) {
        self.requests += other.requests;
        self.passed += other.passed;
        self.allocations += other.allocations;
        self.frees += other.frees;
        self.first_failure = self.first_failure.or(other.first_failure);
    }

    /// Whether every request was answered as expected (and there was at least one).
    pub fn all_passed(&self) -> bool {
        self.requests > 0 && self.passed == self.requests
    }
}

struct Worker<'a, D> {
    device: &'a mut D,
    report: SoakReport,
    buffer: [u8; READ_MAX],
}

impl<D: Device> Worker<'_, D> {
    /// Sends a request; whether `check` accepts the answer (status, returned bytes).
    fn send(&mut self, code: u32, input: &[u8], output: usize, check: impl FnOnce(i32, &[u8]) -> bool) -> bool {
        self.report.requests += 1;
        let (status, information) = self.device.control(code, input, &mut self.buffer[..output]);
        let ok = information <= output && check(status, &self.buffer[..information.min(output)]);
        if ok {
            self.report.passed += 1;
        } else if self.report.first_failure.is_none() {
            self.report.first_failure = Some((self.report.requests, code, status));
        }
        ok
    }

    fn allocate(&mut self, request: &AllocateRequest) -> Option<u64> {
        let mut id = None;
        self.send(IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8, |status, reply| {
            id = AllocateReply::from_bytes(reply).map(|reply| reply.id).filter(|_| status == status::SUCCESS);
            id.is_some()
        });
        self.report.allocations += u64::from(id.is_some());
        id
    }

    fn free(&mut self, id: u64) {
        let freed = self.send(IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0, |status, reply| {
            status == status::SUCCESS && reply.is_empty()
        });
        self.report.frees += u64::from(freed);
    }

    /// `QUERY_ALLOCATIONS` must list exactly `ids` (ascending, 0 meaning none).
    fn list(&mut self, ids: [u64; 2]) {
        let expected = ids.iter().filter(|&&id| id != 0).count();
        self.send(IOCTL_NTPOOL_QUERY_ALLOCATIONS, &[], LIST, |status, reply| {
            let Some(header) = reply.get(..HEADER).and_then(AllocationsHeader::from_bytes) else { return false };
            let listed = reply[HEADER..].chunks_exact(ENTRY).filter_map(AllocationInfo::from_bytes);
            status == status::SUCCESS
                && header.outstanding as usize == expected
                && header.returned as usize == expected
                && reply.len() == HEADER + expected * ENTRY
                && listed.zip(ids.iter().filter(|&&id| id != 0)).all(|(info, &id)| info.id == id)
        });
    }
}

/// Runs `steps` steps ([`REQUESTS_PER_STEP`] requests each) and a final `FREE` through `device`
/// as worker number `worker` (which picks its tags: `Sk` and two digits). The driver must have
/// nothing outstanding through this handle at the start.
pub fn soak_worker(device: &mut impl Device, worker: u32, steps: u32) -> SoakReport {
    let mut this = Worker { device, report: SoakReport::default(), buffer: [0; READ_MAX] };
    let mut previous = 0;
    for step in 0..steps {
        let pool = if step % 3 == 0 { POOL_NON_PAGED } else { POOL_PAGED };
        let size = 1 + (step.wrapping_mul(2654435761) >> 20) % 4096;
        let tag = u32::from_le_bytes([b'S', b'k', b'0' + (worker % 10) as u8, b'0' + pool as u8]);
        let request = AllocateRequest { pool, tag, size, reserved: 0 };
        let id = this.allocate(&request).unwrap_or(0);
        let length = size.min(READ_MAX as u32);
        let read = ReadRequest { id, offset: size - length, length };
        this.send(IOCTL_NTPOOL_READ, read.as_bytes(), length as usize, |status, reply| {
            status == status::SUCCESS && reply.len() == length as usize && reply.iter().all(|&byte| byte == 0)
        });
        if step % 2 == 0 {
            this.list(if previous < id { [previous, id] } else { [id, previous] });
        } else {
            this.send(IOCTL_NTPOOL_FREE, FreeRequest { id: u64::MAX }.as_bytes(), 0, |status, reply| {
                status == status::NOT_FOUND && reply.is_empty()
            });
        }
        if previous != 0 {
            this.free(previous);
        } else {
            // The first step has nothing to free yet: an unknown code instead.
            this.send(IOCTL_NTPOOL_FREE | 3, FreeRequest { id }.as_bytes(), 0, |status, reply| {
                status == status::INVALID_DEVICE_REQUEST && reply.is_empty()
            });
        }
        previous = id;
    }
    if previous != 0 {
        this.free(previous);
    }
    this.report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that refuses everything: the worker counts every request as failed and stops
    /// nothing.
    struct Refuses(u64);

    impl Device for Refuses {
        fn control(&mut self, _code: u32, _input: &[u8], _output: &mut [u8]) -> (i32, usize) {
            self.0 += 1;
            (status::QUOTA_EXCEEDED, 0)
        }
    }

    #[test]
    fn a_worker_reports_what_it_could_not_do() {
        let mut device = Refuses(0);
        let report = soak_worker(&mut device, 1, 10);
        assert_eq!(report.requests, device.0);
        assert_eq!(report.requests, 10 * u64::from(REQUESTS_PER_STEP));
        assert!(!report.all_passed());
        assert_eq!(report.first_failure, Some((1, IOCTL_NTPOOL_ALLOCATE, status::QUOTA_EXCEEDED)));
        assert_eq!((report.allocations, report.frees), (0, 0));
    }
}

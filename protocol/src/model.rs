//! A model of the driver's rules: for any request through any handle, the status and every reply
//! byte the sample driver must answer, and what the request changes.
//!
//! The rules it knows, all of them the driver's:
//!
//! * Ids count up from 1 (or from where [`Model::with_history`] puts them) and are never reused.
//! * `ALLOCATE` checks, in this order: the input's length, the output's room for the reply,
//!   `reserved`, the pool (without [`POOL_CHARGE_QUOTA`]), the tag ([`valid_tag`]), the size, the
//!   driver's limits and the handle's ([`LIMITS`]: [`QUOTA_EXCEEDED`](status::QUOTA_EXCEEDED)), and
//!   last the process's pool quota for a block charged to it
//!   ([`INSUFFICIENT_RESOURCES`](status::INSUFFICIENT_RESOURCES)).
//! * A handle reaches its own blocks only: `FREE` and `READ` of another handle's block, like those
//!   of an id never handed out, get [`NOT_FOUND`](status::NOT_FOUND); closing a handle frees its
//!   blocks ([`Model::close`]).
//! * New blocks read as zeros. `READ` checks the id, then the offset, then the length (no overflow),
//!   then the output's room.
//! * `QUERY_ALLOCATIONS` lists the handle's blocks in id order, as many as the output holds.
//! * The counters count every request after it is served (so `QUERY_STATISTICS` does not include
//!   itself), failures for [`INSUFFICIENT_RESOURCES`](status::INSUFFICIENT_RESOURCES), rejections
//!   for every other failure; the gauges are what is outstanding.
//!
//! One request is [`predict`](Model::predict)ed without changing the model, the prediction
//! [`apply`](Model::apply)'d and the answer [`count`](Model::count)ed; [`serve`](Model::serve) does
//! the three. The fuzzer predicts each request, compares the driver's answer with the prediction
//! (the driver may fail an allocation the model allows when the kernel injects failures) and then
//! applies and counts what the driver answered. The client's unit tests serve the client's scenario
//! from the model, and change predictions to model a driver that breaks one of the rules.
//!
//! Built for the `model` feature (and this crate's own tests); needs `alloc`.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::mem::size_of;

use crate::{
    AllocateReply, AllocateRequest, AllocationInfo, AllocationsHeader, BackgroundReply, FreeRequest,
    IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS,
    IOCTL_NTPOOL_READ, IOCTL_NTPOOL_RUN_BACKGROUND, MAX_ALLOCATIONS, MAX_HANDLE_ALLOCATIONS,
    MAX_HANDLE_NON_PAGED_BYTES, MAX_HANDLE_PAGED_BYTES, MAX_NON_PAGED_BYTES, MAX_PAGED_BYTES, MAX_SIZE,
    POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, ReadRequest, Statistics, Wire, status,
};

/// Blocks, and bytes of each pool: what is outstanding, or what a limit allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Blocks.
    pub blocks: u32,
    /// Bytes of non-paged pool.
    pub non_paged_bytes: u64,
    /// Bytes of paged pool.
    pub paged_bytes: u64,
}

impl Totals {
    /// The bytes of `pool` ([`POOL_PAGED`], or else non-paged).
    pub const fn bytes(&self, pool: u32) -> u64 {
        if pool == POOL_PAGED { self.paged_bytes } else { self.non_paged_bytes }
    }

    /// Whether one more block of `size` bytes in `pool` stays within `limit`.
    fn admits(&self, limit: &Totals, pool: u32, size: u64) -> bool {
        self.blocks < limit.blocks && self.bytes(pool) + size <= limit.bytes(pool)
    }
}

/// What may be outstanding at once: over all handles, and through one handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Over all handles.
    pub driver: Totals,
    /// Through one handle.
    pub handle: Totals,
}

/// The driver's limits, as the protocol declares them.
pub const LIMITS: Limits = Limits {
    driver: Totals { blocks: MAX_ALLOCATIONS, non_paged_bytes: MAX_NON_PAGED_BYTES, paged_bytes: MAX_PAGED_BYTES },
    handle: Totals {
        blocks: MAX_HANDLE_ALLOCATIONS,
        non_paged_bytes: MAX_HANDLE_NON_PAGED_BYTES,
        paged_bytes: MAX_HANDLE_PAGED_BYTES,
    },
};

/// Whether `tag` is a valid pool tag, as [`AllocateRequest::tag`] documents it: four printable
/// ASCII characters with a letter or digit, not `Wdm ` or `Ddk `.
pub fn valid_tag(tag: u32) -> bool {
    let bytes = tag.to_le_bytes();
    bytes.iter().all(|byte| (0x20..=0x7E).contains(byte))
        && bytes.iter().any(u8::is_ascii_alphanumeric)
        && bytes != *b"Wdm "
        && bytes != *b"Ddk "
}

/// The `QUERY_ALLOCATIONS` reply for an output buffer of `output` bytes (at least the header's):
/// the header, and as many of `entries` as fit.
pub fn allocations_reply(entries: &[AllocationInfo], output: usize) -> Vec<u8> {
    let header_len = size_of::<AllocationsHeader>();
    let returned = entries.len().min(output.saturating_sub(header_len) / size_of::<AllocationInfo>());
    let header = AllocationsHeader { outstanding: entries.len() as u32, returned: returned as u32 };
    let mut reply = header.as_bytes().to_vec();
    for entry in &entries[..returned] {
        reply.extend_from_slice(entry.as_bytes());
    }
    reply
}

/// Who sends a request: the handle it goes through, and the process it is sent from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    /// The handle (any number that tells the handles apart).
    pub handle: u64,
    /// The process (the one quota is charged to).
    pub process: u64,
}

/// One outstanding block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// The handle it was allocated through ([`Sender::handle`]).
    pub owner: u64,
    /// [`POOL_NON_PAGED`] or [`POOL_PAGED`].
    pub pool: u32,
    /// Its tag.
    pub tag: u32,
    /// Its size.
    pub size: u32,
    /// The process its quota is charged to, if it is.
    pub charged: Option<u64>,
}

/// What the driver must answer to one request, and what the request changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// It fails with this status: nothing returned, nothing changed.
    Fail(i32),
    /// It succeeds with these bytes, and changes nothing.
    Reply(Vec<u8>),
    /// It allocates this block, under the next id, which it returns.
    Allocate(Block),
    /// It frees the block with this id, and returns nothing.
    Free(u64),
}

impl Prediction {
    /// The status of the answer.
    pub fn status(&self) -> i32 {
        match *self {
            Prediction::Fail(status) => status,
            Prediction::Reply(_) | Prediction::Allocate(_) | Prediction::Free(_) => status::SUCCESS,
        }
    }
}

/// The driver's state, as far as user mode can tell: its outstanding blocks (whose handle, pool, tag,
/// size and quota charge), the next id, and its counters.
#[derive(Clone, Debug)]
pub struct Model {
    blocks: BTreeMap<u64, Block>,
    next_id: u64,
    /// The counters; the gauges (outstanding blocks and bytes) come from `blocks`.
    counters: Statistics,
    limits: Limits,
    process_quota: Option<u64>,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    /// The driver just loaded: nothing outstanding, ids from 1, counters at zero, the protocol's
    /// limits, and no quota limit on any process.
    pub fn new() -> Self {
        Model {
            blocks: BTreeMap::new(),
            next_id: 1,
            counters: Statistics::default(),
            limits: LIMITS,
            process_quota: None,
        }
    }

    /// A driver used before, with nothing outstanding: `counters` (their gauges are ignored), and
    /// `next_id` the next id.
    pub fn with_history(self, counters: Statistics, next_id: u64) -> Self {
        Model { counters, next_id, ..self }
    }

    /// With other limits than the driver's (a test's model of a driver that gets them wrong).
    pub fn with_limits(self, limits: Limits) -> Self {
        Model { limits, ..self }
    }

    /// Every process may have at most `bytes` of pool charged to its quota (both pools together),
    /// or any amount with `None`.
    pub fn with_process_quota(self, bytes: Option<u64>) -> Self {
        Model { process_quota: bytes, ..self }
    }

    /// The outstanding blocks, by id.
    pub fn blocks(&self) -> &BTreeMap<u64, Block> {
        &self.blocks
    }

    /// The id the next allocation gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Sets the id the next allocation gets (a test's model of a driver that reuses ids).
    pub fn set_next_id(&mut self, id: u64) {
        self.next_id = id;
    }

    /// The counters and gauges, as `QUERY_STATISTICS` returns them.
    pub fn statistics(&self) -> Statistics {
        let outstanding = self.usage(None);
        Statistics {
            outstanding: u64::from(outstanding.blocks),
            non_paged_bytes: outstanding.non_paged_bytes,
            paged_bytes: outstanding.paged_bytes,
            ..self.counters
        }
    }

    /// The counters (`allocations`, `frees`, `failures`, `rejected`, `requests`; the gauges in
    /// there are not used), for a test's model of a driver that counts wrongly.
    pub fn counters_mut(&mut self) -> &mut Statistics {
        &mut self.counters
    }

    /// What is outstanding through handle `owner`, or through every handle.
    pub fn usage(&self, owner: Option<u64>) -> Totals {
        let blocks = self.blocks.values().filter(|block| owner.is_none_or(|owner| block.owner == owner));
        blocks.fold(Totals::default(), |mut totals, block| {
            totals.blocks += 1;
            if block.pool == POOL_PAGED {
                totals.paged_bytes += u64::from(block.size);
            } else {
                totals.non_paged_bytes += u64::from(block.size);
            }
            totals
        })
    }

    /// Quota charged to `process`: (paged, non-paged) bytes.
    pub fn charged(&self, process: u64) -> (u64, u64) {
        let charged = self.blocks.values().filter(|block| block.charged == Some(process));
        charged.fold((0, 0), |(paged, non_paged), block| match block.pool {
            POOL_PAGED => (paged + u64::from(block.size), non_paged),
            _ => (paged, non_paged + u64::from(block.size)),
        })
    }

    /// The blocks of handle `owner` as `QUERY_ALLOCATIONS` lists them: in id order.
    pub fn allocations(&self, owner: u64) -> Vec<AllocationInfo> {
        let owned = self.blocks.iter().filter(|(_, block)| block.owner == owner);
        owned
            .map(|(&id, block)| AllocationInfo { id, pool: block.pool, tag: block.tag, size: block.size, reserved: 0 })
            .collect()
    }

    /// The block `id` if handle `owner` may reach it.
    fn owned(&self, owner: u64, id: u64) -> Option<&Block> {
        self.blocks.get(&id).filter(|block| block.owner == owner)
    }

    /// What the driver must answer to the request `code` with `input` and an output buffer of
    /// `output` bytes from `sender`. Changes nothing.
    pub fn predict(&self, sender: Sender, code: u32, input: &[u8], output: usize) -> Prediction {
        let answer = match code {
            IOCTL_NTPOOL_ALLOCATE => self.allocate(sender, input, output).map(Prediction::Allocate),
            IOCTL_NTPOOL_FREE => match FreeRequest::from_bytes(input) {
                None => Err(status::INFO_LENGTH_MISMATCH),
                Some(request) => {
                    self.owned(sender.handle, request.id).map(|_| Prediction::Free(request.id)).ok_or(status::NOT_FOUND)
                }
            },
            IOCTL_NTPOOL_READ => self.read(sender, input, output).map(Prediction::Reply),
            IOCTL_NTPOOL_QUERY_ALLOCATIONS if output < size_of::<AllocationsHeader>() => Err(status::BUFFER_TOO_SMALL),
            IOCTL_NTPOOL_QUERY_ALLOCATIONS => {
                Ok(Prediction::Reply(allocations_reply(&self.allocations(sender.handle), output)))
            }
            IOCTL_NTPOOL_QUERY_STATISTICS if output < size_of::<Statistics>() => Err(status::BUFFER_TOO_SMALL),
            IOCTL_NTPOOL_QUERY_STATISTICS => Ok(Prediction::Reply(self.statistics().as_bytes().to_vec())),
            IOCTL_NTPOOL_RUN_BACKGROUND if output < size_of::<BackgroundReply>() => Err(status::BUFFER_TOO_SMALL),
            IOCTL_NTPOOL_RUN_BACKGROUND => Ok(Prediction::Reply(BackgroundReply::EXPECTED.as_bytes().to_vec())),
            _ => Err(status::INVALID_DEVICE_REQUEST),
        };
        answer.unwrap_or_else(Prediction::Fail)
    }

    /// `ALLOCATE`: the block, or the failure.
    fn allocate(&self, sender: Sender, input: &[u8], output: usize) -> Result<Block, i32> {
        let request = AllocateRequest::from_bytes(input).ok_or(status::INFO_LENGTH_MISMATCH)?;
        let pool = request.pool & !POOL_CHARGE_QUOTA;
        if output < size_of::<AllocateReply>() {
            return Err(status::BUFFER_TOO_SMALL);
        }
        if request.reserved != 0 {
            return Err(status::INVALID_PARAMETER_4);
        }
        if pool != POOL_PAGED && pool != POOL_NON_PAGED {
            return Err(status::INVALID_PARAMETER_1);
        }
        if !valid_tag(request.tag) {
            return Err(status::INVALID_PARAMETER_2);
        }
        if request.size == 0 || request.size > MAX_SIZE {
            return Err(status::INVALID_PARAMETER_3);
        }
        let size = u64::from(request.size);
        if !self.usage(None).admits(&self.limits.driver, pool, size)
            || !self.usage(Some(sender.handle)).admits(&self.limits.handle, pool, size)
        {
            return Err(status::QUOTA_EXCEEDED);
        }
        let quota = request.pool & POOL_CHARGE_QUOTA != 0;
        let (paged, non_paged) = self.charged(sender.process);
        if quota && self.process_quota.is_some_and(|limit| paged + non_paged + size > limit) {
            return Err(status::INSUFFICIENT_RESOURCES);
        }
        let charged = quota.then_some(sender.process);
        Ok(Block { owner: sender.handle, pool, tag: request.tag, size: request.size, charged })
    }

    /// `READ`: the bytes (zeros), or the failure.
    fn read(&self, sender: Sender, input: &[u8], output: usize) -> Result<Vec<u8>, i32> {
        let request = ReadRequest::from_bytes(input).ok_or(status::INFO_LENGTH_MISMATCH)?;
        let block = self.owned(sender.handle, request.id).ok_or(status::NOT_FOUND)?;
        let (size, offset, length) = (u64::from(block.size), u64::from(request.offset), u64::from(request.length));
        if offset > size {
            Err(status::INVALID_PARAMETER_2)
        } else if offset + length > size {
            Err(status::INVALID_PARAMETER_3)
        } else if (output as u64) < length {
            Err(status::BUFFER_TOO_SMALL)
        } else {
            Ok(vec![0; length as usize])
        }
    }

    /// Carries out a prediction the driver answered as predicted: allocates or frees its block. The
    /// bytes the driver returns.
    ///
    /// # Panics
    /// On a [`Prediction::Free`] of a block the model does not have.
    pub fn apply(&mut self, prediction: Prediction) -> Vec<u8> {
        match prediction {
            Prediction::Fail(_) => Vec::new(),
            Prediction::Reply(reply) => reply,
            Prediction::Allocate(block) => {
                let id = self.next_id;
                self.next_id += 1;
                self.blocks.insert(id, block);
                self.counters.allocations += 1;
                AllocateReply { id }.as_bytes().to_vec()
            }
            Prediction::Free(id) => {
                self.remove(id);
                Vec::new()
            }
        }
    }

    /// Counts one request the driver answered with `status`.
    pub fn count(&mut self, status: i32) {
        self.counters.requests += 1;
        match status {
            status::SUCCESS => {}
            status::INSUFFICIENT_RESOURCES => self.counters.failures += 1,
            _ => self.counters.rejected += 1,
        }
    }

    /// Serves one request as the driver does: the status and the bytes returned.
    pub fn serve(&mut self, sender: Sender, code: u32, input: &[u8], output: usize) -> (i32, Vec<u8>) {
        let prediction = self.predict(sender, code, input, output);
        let status = prediction.status();
        let reply = self.apply(prediction);
        self.count(status);
        (status, reply)
    }

    /// `IRP_MJ_CLOSE` of handle `owner`: its blocks are freed.
    pub fn close(&mut self, owner: u64) {
        let owned: Vec<u64> = self.blocks.iter().filter(|(_, block)| block.owner == owner).map(|(&id, _)| id).collect();
        for id in owned {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        self.blocks.remove(&id).expect("a block the model knows");
        self.counters.frees += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Sender = Sender { handle: 1, process: 10 };
    const TWO: Sender = Sender { handle: 2, process: 10 };

    fn allocate(model: &mut Model, sender: Sender, pool: u32, size: u32) -> (i32, Vec<u8>) {
        let request = AllocateRequest { pool, tag: u32::from_le_bytes(*b"Mdl1"), size, reserved: 0 };
        model.serve(sender, IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8)
    }

    #[test]
    fn a_handle_reaches_its_own_blocks_and_closing_it_frees_them() {
        let mut model = Model::new();
        assert_eq!(allocate(&mut model, ONE, POOL_PAGED, 100), (status::SUCCESS, 1u64.to_le_bytes().to_vec()));
        let free = FreeRequest { id: 1 };
        assert_eq!(model.predict(TWO, IOCTL_NTPOOL_FREE, free.as_bytes(), 0), Prediction::Fail(status::NOT_FOUND));
        let read = ReadRequest { id: 1, offset: 90, length: 10 };
        assert_eq!(model.predict(ONE, IOCTL_NTPOOL_READ, read.as_bytes(), 10), Prediction::Reply(vec![0; 10]));
        model.close(ONE.handle);
        let statistics = model.statistics();
        assert_eq!((statistics.allocations, statistics.frees, statistics.outstanding), (1, 1, 0));
        assert_eq!(allocate(&mut model, ONE, POOL_PAGED, 100).1, 2u64.to_le_bytes(), "ids are not reused");
    }

    #[test]
    fn the_handle_limits_and_the_driver_limits_both_hold() {
        let mut model = Model::new();
        for _ in 0..MAX_HANDLE_ALLOCATIONS {
            assert_eq!(allocate(&mut model, ONE, POOL_NON_PAGED, 16).0, status::SUCCESS);
        }
        assert_eq!(allocate(&mut model, ONE, POOL_NON_PAGED, 16).0, status::QUOTA_EXCEEDED);
        for handle in 2..=(MAX_ALLOCATIONS / MAX_HANDLE_ALLOCATIONS) as u64 {
            let sender = Sender { handle, process: 10 };
            for _ in 0..MAX_HANDLE_ALLOCATIONS {
                assert_eq!(allocate(&mut model, sender, POOL_PAGED, 16).0, status::SUCCESS);
            }
        }
        let fresh = Sender { handle: 99, process: 10 };
        assert_eq!(allocate(&mut model, fresh, POOL_PAGED, 16).0, status::QUOTA_EXCEEDED, "the driver's limit");
        let statistics = model.statistics();
        assert_eq!((statistics.rejected, statistics.requests, statistics.outstanding), (2, 66, 64));
        assert_eq!((statistics.non_paged_bytes, statistics.paged_bytes), (16 * 16, 48 * 16));
    }

    #[test]
    fn a_block_charged_to_quota_fails_past_the_process_quota() {
        let mut model = Model::new().with_process_quota(Some(1000));
        assert_eq!(allocate(&mut model, ONE, POOL_PAGED | POOL_CHARGE_QUOTA, 600).0, status::SUCCESS);
        assert_eq!(model.charged(ONE.process), (600, 0));
        assert_eq!(
            allocate(&mut model, TWO, POOL_NON_PAGED | POOL_CHARGE_QUOTA, 600).0,
            status::INSUFFICIENT_RESOURCES
        );
        assert_eq!(allocate(&mut model, TWO, POOL_NON_PAGED, 600).0, status::SUCCESS, "not charged");
        assert_eq!(model.statistics().failures, 1);
        assert_eq!(model.allocations(ONE.handle)[0].pool, POOL_PAGED, "listed without the quota flag");
    }

    #[test]
    fn allocate_checks_come_in_the_drivers_order() {
        let model = Model::new();
        let all_bad = AllocateRequest { pool: 2, tag: 0, size: 0, reserved: 1 };
        let predict = |request: AllocateRequest, output| {
            model.predict(ONE, IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), output).status()
        };
        assert_eq!(predict(all_bad, 7), status::BUFFER_TOO_SMALL);
        assert_eq!(predict(all_bad, 8), status::INVALID_PARAMETER_4);
        assert_eq!(predict(AllocateRequest { reserved: 0, ..all_bad }, 8), status::INVALID_PARAMETER_1);
        assert_eq!(
            predict(AllocateRequest { reserved: 0, pool: POOL_PAGED, ..all_bad }, 8),
            status::INVALID_PARAMETER_2
        );
        let tag = u32::from_le_bytes(*b"Tst1");
        assert_eq!(
            predict(AllocateRequest { tag, size: MAX_SIZE + 1, reserved: 0, pool: 1 }, 8),
            status::INVALID_PARAMETER_3
        );
        assert_eq!(model.predict(ONE, IOCTL_NTPOOL_ALLOCATE, &[0; 15], 0).status(), status::INFO_LENGTH_MISMATCH);
        assert!(!valid_tag(u32::from_le_bytes(*b"----")) && !valid_tag(u32::from_le_bytes(*b"Ddk ")));
        assert!(valid_tag(u32::from_le_bytes(*b"a   ")));
    }
}

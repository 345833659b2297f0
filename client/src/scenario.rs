//! The scenario: every IOCTL with good and bad input, the limits of one handle, and the clean-up,
//! in the order [`run_scenario`] runs them; each step checks its requests with the
//! [`Runner`]'s checks.

use core::fmt::Write;

use ntpool_protocol::{
    AllocateRequest, BACKGROUND_COMPLETION, BACKGROUND_EXPIRED, BACKGROUND_RECLAIMED, BACKGROUND_THREAD_SUM,
    BackgroundReply, FILE_DEVICE_NTPOOL, FILE_READ_DATA, FreeRequest, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ, IOCTL_NTPOOL_RUN_BACKGROUND,
    MAX_HANDLE_ALLOCATIONS, MAX_HANDLE_NON_PAGED_BYTES, MAX_HANDLE_PAGED_BYTES, MAX_SIZE, METHOD_BUFFERED,
    POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, ReadRequest, Wire, ctl_code, status,
};

use crate::checks::{Problem, compare};
use crate::device::{Device, Summary};
use crate::display::{Request, tag};
use crate::runner::{
    ENTRY_LEN, HEADER_LEN, LIST_ALL, METHOD_NEITHER, NEVER_ALLOCATED, REPLY_LEN, Runner, STATISTICS_LEN,
};

/// Runs the whole scenario against `device`, printing one line per check to `out` and then the
/// line `{passed} passed, {failed} failed`, and returns those numbers.
///
/// It allocates blocks in both pools, reads them back (new blocks must read as zeros), lists and
/// counts them, fills its handle to each of the per-handle limits, sends malformed and unknown
/// requests, and frees everything it allocated, including after a failed check. It expects a
/// driver with nothing outstanding at the start and no other client while it runs. Errors writing
/// to `out` are ignored.
pub fn run_scenario(device: &mut impl Device, out: &mut impl Write) -> Summary {
    let mut runner = Runner::new(device, out);
    runner.run();
    let summary = runner.summary;
    // Nothing can be done about a failing writer.
    let _ = writeln!(runner.out, "{summary}");
    summary
}

/// `STATUS_INVALID_DEVICE_REQUEST` codes: nothing the driver knows.
const UNKNOWN_CODES: [(u32, &str); 3] = [
    (0, "0"),
    (0x8A50_E3FC, "0x8A50E3FC (vendor device type, unknown function)"),
    (
        ctl_code(FILE_DEVICE_NTPOOL, 0x806, METHOD_BUFFERED, FILE_READ_DATA),
        "function 0x806 (next after RUN_BACKGROUND)",
    ),
];

impl<D: Device, W: Write> Runner<'_, D, W> {
    pub(crate) fn run(&mut self) {
        self.start = self.statistics("at the start (the baseline of the counters)");
        if let Some(start) = self.start {
            let idle = if start.outstanding == 0 && start.non_paged_bytes == 0 && start.paged_bytes == 0 {
                Ok(())
            } else {
                Err(Problem::Busy { outstanding: start.outstanding })
            };
            self.report(idle, format_args!("nothing outstanding at the start"));
        }
        self.check_allocations(&[], LIST_ALL, "at the start");

        let blocks = self.blocks_read_back();
        self.queries();
        self.background();
        self.reads(blocks);
        self.unknown_codes(blocks);
        self.frees(blocks);
        self.bad_allocations();
        self.good_tags();
        self.count_limit();
        self.non_paged_limit();
        self.paged_limit();
        self.finish();
    }

    /// Four blocks of both pools and several sizes (two charged to this process's quota), read back
    /// as zeros, listed and counted.
    fn blocks_read_back(&mut self) -> Blocks {
        let blocks = Blocks {
            small: self.allocate(POOL_PAGED | POOL_CHARGE_QUOTA, *b"Tst1", 100),
            tiny: self.allocate(POOL_NON_PAGED | POOL_CHARGE_QUOTA, *b"Tst2", 1),
            page: self.allocate(POOL_NON_PAGED, *b"Tst3", 4096),
            largest: self.allocate(POOL_PAGED, *b"Tst4", MAX_SIZE),
        };
        for (id, size) in [(blocks.small, 100), (blocks.tiny, 1), (blocks.page, 4096), (blocks.largest, MAX_SIZE)] {
            if let Some(id) = id {
                self.read_zero(id, size);
            }
        }
        self.check_allocations(&[], LIST_ALL, "with 4 blocks");
        self.check_gauges("with 4 blocks");
        blocks
    }

    /// `QUERY_ALLOCATIONS` and `QUERY_STATISTICS` with small, exact and large output buffers.
    /// `IOCTL_NTPOOL_RUN_BACKGROUND`: the driver's system thread and the request it sends its own
    /// device, each with the answer it must give.
    fn background(&mut self) {
        let len = core::mem::size_of::<BackgroundReply>();
        self.refused(
            IOCTL_NTPOOL_RUN_BACKGROUND,
            &[],
            len - 1,
            status::BUFFER_TOO_SMALL,
            format_args!("RUN_BACKGROUND into {} bytes", len - 1),
        );
        let reply = self.call(IOCTL_NTPOOL_RUN_BACKGROUND, &[], len);
        let got = BackgroundReply::from_bytes(&self.output()[..len]).unwrap_or_default();
        let checked = reply.expect(status::SUCCESS, len).and_then(|()| {
            compare(&[
                ("the system thread's sum", BACKGROUND_THREAD_SUM, got.thread_sum),
                ("the completion routine's answer", BACKGROUND_COMPLETION, got.completion),
                ("non-paged blocks the timer's DPC freed", BACKGROUND_EXPIRED, got.expired),
                ("paged blocks the work item freed", BACKGROUND_RECLAIMED, got.reclaimed),
            ])
        });
        self.report(
            checked,
            format_args!("RUN_BACKGROUND: a system thread, a completion routine, a timer's DPC and a work item"),
        );
    }

    fn queries(&mut self) {
        for output_len in [0, HEADER_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_QUERY_ALLOCATIONS,
                &[],
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("QUERY_ALLOCATIONS into {output_len} bytes"),
            );
        }
        self.check_allocations(&[], HEADER_LEN, "(the header only)");
        self.check_allocations(&[], HEADER_LEN + ENTRY_LEN, "(one entry)");
        self.check_allocations(&[], HEADER_LEN + 2 * ENTRY_LEN + ENTRY_LEN - 1, "(two entries and a partial one)");
        self.check_allocations(&[0xFF; 40], LIST_ALL, "with 40 bytes of input, which is ignored");

        for output_len in [0, STATISTICS_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_QUERY_STATISTICS,
                &[],
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("QUERY_STATISTICS into {output_len} bytes"),
            );
        }
        let reply = self.call(IOCTL_NTPOOL_QUERY_STATISTICS, &[0xFF; 16], STATISTICS_LEN + 36);
        self.report(
            reply.expect(status::SUCCESS, STATISTICS_LEN),
            format_args!("QUERY_STATISTICS into 100 bytes with 16 bytes of input -> 64 bytes"),
        );
    }

    /// `READ`: the block's end, bad input lengths, unknown ids, offsets and lengths past the end,
    /// an overflowing `offset + length`, a small output buffer, and the order of the checks.
    fn reads(&mut self, blocks: Blocks) {
        let (Some(small), Some(tiny)) = (blocks.small, blocks.tiny) else { return };
        let size = 100;
        self.read_ok(small, 10, 20, 36);
        self.read_ok(small, size, 0, 16);
        self.read_ok(small, 0, size, size as usize);
        self.read_ok(tiny, 0, 1, 1);

        let good = ReadRequest { id: small, offset: 0, length: 10 };
        let mut padded = [0u8; 17];
        padded[..16].copy_from_slice(good.as_bytes());
        for input in [&padded[..0], &padded[..8], &padded[..15], &padded[..17]] {
            let len = input.len();
            self.refused(
                IOCTL_NTPOOL_READ,
                input,
                64,
                status::INFO_LENGTH_MISMATCH,
                format_args!("READ with {len} bytes of input"),
            );
        }

        let read = |id, offset, length| ReadRequest { id, offset, length };
        self.read_refused(read(NEVER_ALLOCATED, 0, 1), 64, status::NOT_FOUND, "never allocated");
        self.read_refused(read(0, 0, 1), 64, status::NOT_FOUND, "zero id");
        self.read_refused(read(small, size + 1, 0), 64, status::INVALID_PARAMETER_2, "offset past the end");
        self.read_refused(read(small, u32::MAX, 0), 64, status::INVALID_PARAMETER_2, "offset past the end");
        self.read_refused(read(small, 0, size + 1), 128, status::INVALID_PARAMETER_3, "length past the end");
        self.read_refused(read(small, 60, 41), 64, status::INVALID_PARAMETER_3, "offset + length past the end");
        self.read_refused(read(small, size, 1), 64, status::INVALID_PARAMETER_3, "one byte past the end");
        self.read_refused(read(small, 1, u32::MAX), 64, status::INVALID_PARAMETER_3, "offset + length overflows u32");
        self.read_refused(read(tiny, 1, u32::MAX), 64, status::INVALID_PARAMETER_3, "offset + length overflows u32");
        self.read_refused(read(small, 0, size), 99, status::BUFFER_TOO_SMALL, "output one byte short");
        self.read_refused(read(small, 0, 1), 0, status::BUFFER_TOO_SMALL, "no output buffer");

        // The checks come in order: the first one that fails decides.
        self.refused(
            IOCTL_NTPOOL_READ,
            &read(NEVER_ALLOCATED, 0, 1).as_bytes()[..15],
            64,
            status::INFO_LENGTH_MISMATCH,
            format_args!("READ with 15 bytes of input naming an unknown id"),
        );
        self.read_refused(
            read(NEVER_ALLOCATED, size + 1, 0),
            64,
            status::NOT_FOUND,
            "unknown id before offset past the end",
        );
        self.read_refused(
            read(small, size + 1, size + 1),
            0,
            status::INVALID_PARAMETER_2,
            "offset before length before output",
        );
        self.read_refused(read(small, 0, size + 1), 0, status::INVALID_PARAMETER_3, "length before output");
    }

    /// Unknown codes, and the driver's codes with `METHOD_NEITHER`: refused, and nothing done.
    fn unknown_codes(&mut self, blocks: Blocks) {
        let request = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Tst5"), size: 16, reserved: 0 };
        for (code, name) in UNKNOWN_CODES {
            self.refused(
                code,
                request.as_bytes(),
                REPLY_LEN,
                status::INVALID_DEVICE_REQUEST,
                format_args!("IOCTL {name}"),
            );
        }
        self.refused(0, &[], 0, status::INVALID_DEVICE_REQUEST, format_args!("IOCTL 0 without buffers"));
        self.refused(
            IOCTL_NTPOOL_ALLOCATE | METHOD_NEITHER,
            request.as_bytes(),
            REPLY_LEN,
            status::INVALID_DEVICE_REQUEST,
            format_args!("ALLOCATE code with METHOD_NEITHER"),
        );
        if let Some(tiny) = blocks.tiny {
            self.refused(
                IOCTL_NTPOOL_FREE | METHOD_NEITHER,
                FreeRequest { id: tiny }.as_bytes(),
                0,
                status::INVALID_DEVICE_REQUEST,
                format_args!("FREE code with METHOD_NEITHER, id {tiny}"),
            );
        }
        self.check_allocations(&[], LIST_ALL, "after the unknown codes (nothing allocated or freed)");
    }

    /// `FREE`: bad input lengths, unknown ids, a double free, a read after free.
    fn frees(&mut self, blocks: Blocks) {
        let id = blocks.small.unwrap_or(NEVER_ALLOCATED);
        let mut padded = [0u8; 16];
        padded[..8].copy_from_slice(FreeRequest { id }.as_bytes());
        for len in [0, 7, 9, 16] {
            self.refused(
                IOCTL_NTPOOL_FREE,
                &padded[..len],
                0,
                status::INFO_LENGTH_MISMATCH,
                format_args!("FREE with {len} bytes of input (id {id})"),
            );
        }
        for (bad, why) in [(0, "zero id"), (NEVER_ALLOCATED, "never allocated")] {
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: bad }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {bad} ({why})"),
            );
        }
        if let Some(small) = blocks.small {
            let reply = self.call(IOCTL_NTPOOL_FREE, FreeRequest { id: small }.as_bytes(), 16);
            self.report(
                reply.expect(status::SUCCESS, 0),
                format_args!("FREE id {small} with a 16-byte output buffer -> nothing written"),
            );
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: small }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {small} again (double free)"),
            );
            self.read_refused(ReadRequest { id: small, offset: 0, length: 1 }, 64, status::NOT_FOUND, "freed block");
        }
        for id in [blocks.tiny, blocks.page, blocks.largest].into_iter().flatten() {
            self.free(id);
        }
        if let Some(tiny) = blocks.tiny {
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: tiny }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {tiny} again (double free)"),
            );
        }
        self.check_allocations(&[], LIST_ALL, "after the frees");
        self.check_gauges("after the frees");
    }

    /// `ALLOCATE` with each kind of bad input, and inputs bad in two ways (the first check wins).
    fn bad_allocations(&mut self) {
        let good = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Tst6"), size: 32, reserved: 0 };
        let mut padded = [0u8; 32];
        padded[..16].copy_from_slice(good.as_bytes());
        for len in [0, 8, 15, 17, 32] {
            self.refused(
                IOCTL_NTPOOL_ALLOCATE,
                &padded[..len],
                REPLY_LEN,
                status::INFO_LENGTH_MISMATCH,
                format_args!("ALLOCATE with {len} bytes of input"),
            );
        }
        for output_len in [0, REPLY_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_ALLOCATE,
                good.as_bytes(),
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("ALLOCATE {} into {output_len} bytes", Request(&good)),
            );
        }
        for reserved in [1, 0x8000_0000] {
            self.allocate_refused(AllocateRequest { reserved, ..good }, status::INVALID_PARAMETER_4, "reserved not 0");
        }
        for pool in [2, u32::MAX] {
            self.allocate_refused(AllocateRequest { pool, ..good }, status::INVALID_PARAMETER_1, "unknown pool");
        }
        let bad_tags: [(u32, &str); 8] = [
            (0, "zero"),
            (tag(*b"Ab\0c"), "a NUL byte"),
            (tag(*b"Ab\x7fc"), "a DEL byte"),
            (tag(*b"----"), "no letter or digit"),
            (tag(*b"    "), "no letter or digit"),
            (tag(*b"Wdm "), "the default tag"),
            (tag(*b"Ddk "), "the default tag"),
            (tag(*b"Tst1") | 0x8000_0000, "the high bit set"),
        ];
        for (bad, why) in bad_tags {
            self.allocate_refused(AllocateRequest { tag: bad, ..good }, status::INVALID_PARAMETER_2, why);
        }
        for size in [0, MAX_SIZE + 1, u32::MAX] {
            let why = if size == 0 { "empty" } else { "more than MAX_SIZE" };
            self.allocate_refused(AllocateRequest { size, ..good }, status::INVALID_PARAMETER_3, why);
        }

        // The checks come in order: the first one that fails decides.
        self.refused(
            IOCTL_NTPOOL_ALLOCATE,
            &good.as_bytes()[..15],
            0,
            status::INFO_LENGTH_MISMATCH,
            format_args!("ALLOCATE with 15 bytes of input into 0 bytes"),
        );
        let all_bad = AllocateRequest { pool: 2, tag: 0, size: 0, reserved: 1 };
        self.refused(
            IOCTL_NTPOOL_ALLOCATE,
            all_bad.as_bytes(),
            REPLY_LEN - 1,
            status::BUFFER_TOO_SMALL,
            format_args!(
                "ALLOCATE {} into {} bytes (output length before the fields)",
                Request(&all_bad),
                REPLY_LEN - 1
            ),
        );
        self.allocate_refused(all_bad, status::INVALID_PARAMETER_4, "reserved before pool");
        let request = AllocateRequest { reserved: 0, ..all_bad };
        self.allocate_refused(request, status::INVALID_PARAMETER_1, "pool before tag");
        let request = AllocateRequest { pool: POOL_NON_PAGED, ..request };
        self.allocate_refused(request, status::INVALID_PARAMETER_2, "tag before size");

        self.check_allocations(&[], LIST_ALL, "after the refused ALLOCATEs (nothing allocated)");
    }

    /// Unusual tags that are valid.
    fn good_tags(&mut self) {
        for bytes in [*b"a   ", *b"~~~9", *b"Z !~", *b"wdm1"] {
            if let Some(id) = self.allocate(POOL_NON_PAGED, bytes, 8) {
                self.free(id);
            }
        }
    }

    /// `MAX_HANDLE_ALLOCATIONS` blocks outstanding through this handle: one more is refused, listed in full and in part, freed.
    fn count_limit(&mut self) {
        let outstanding = self.start.map_or(0, |start| start.outstanding) + self.live_len as u64;
        let room = u64::from(MAX_HANDLE_ALLOCATIONS).saturating_sub(outstanding) as u32;
        let fill = AllocateRequest { pool: POOL_NON_PAGED, tag: tag(*b"Fill"), size: 16, reserved: 0 };
        if self.allocate_many(room, fill, true, "up to MAX_HANDLE_ALLOCATIONS") {
            self.allocate_refused(fill, status::QUOTA_EXCEEDED, "one more than MAX_HANDLE_ALLOCATIONS");
            let paged = AllocateRequest { pool: POOL_PAGED, size: 1, ..fill };
            self.allocate_refused(paged, status::QUOTA_EXCEEDED, "one more than MAX_HANDLE_ALLOCATIONS");
            // Input errors come before the limit.
            self.allocate_refused(
                AllocateRequest { size: 0, ..fill },
                status::INVALID_PARAMETER_3,
                "size before limit",
            );
            self.allocate_refused(AllocateRequest { tag: 0, ..fill }, status::INVALID_PARAMETER_2, "tag before limit");
            self.check_allocations(&[], LIST_ALL, "at MAX_HANDLE_ALLOCATIONS");
            self.check_allocations(&[], HEADER_LEN + 10 * ENTRY_LEN, "at MAX_HANDLE_ALLOCATIONS (room for 10)");
            self.check_gauges("at MAX_HANDLE_ALLOCATIONS");
        }
        self.free_all("MAX_HANDLE_ALLOCATIONS");
        // The slots are free again, and recycled memory reads as zero.
        if let Some(id) = self.allocate(POOL_NON_PAGED, *b"Tst7", 2048) {
            self.read_zero(id, 2048);
            self.free(id);
        }
    }

    /// One 64 KiB non-paged block reaches `MAX_HANDLE_NON_PAGED_BYTES`: more non-paged memory is refused,
    /// paged memory is not.
    fn non_paged_limit(&mut self) {
        let (up_to, past) = ("up to MAX_HANDLE_NON_PAGED_BYTES", "past MAX_HANDLE_NON_PAGED_BYTES");
        if self.fill_to_limit(POOL_NON_PAGED, *b"NpLm", MAX_HANDLE_NON_PAGED_BYTES, up_to, past) {
            if let Some(id) = self.allocate(POOL_PAGED, *b"PgOk", MAX_SIZE) {
                self.read_zero(id, MAX_SIZE);
            }
            self.check_gauges("at MAX_HANDLE_NON_PAGED_BYTES");
        }
        if let Some(last) = self.live().iter().rev().find(|block| block.pool == POOL_NON_PAGED).copied() {
            self.read_zero(last.id, last.size);
        }
        self.free_all("MAX_HANDLE_NON_PAGED_BYTES");
    }

    /// Four 64 KiB paged blocks reach `MAX_HANDLE_PAGED_BYTES`: more paged memory is refused,
    /// non-paged memory is not.
    fn paged_limit(&mut self) {
        let (up_to, past) = ("up to MAX_HANDLE_PAGED_BYTES", "past MAX_HANDLE_PAGED_BYTES");
        if self.fill_to_limit(POOL_PAGED, *b"PgLm", MAX_HANDLE_PAGED_BYTES, up_to, past) {
            self.allocate(POOL_NON_PAGED, *b"NpOk", 1);
            self.check_gauges("at MAX_HANDLE_PAGED_BYTES");
        }
        self.free_all("MAX_HANDLE_PAGED_BYTES");
    }

    /// Allocates 64 KiB blocks of `pool` tagged `block_tag` up to `limit` bytes, the handle's limit
    /// for that pool (the checks say `up_to`), then checks that one more block, of the same size or
    /// of 1 byte, is refused with `STATUS_QUOTA_EXCEEDED` (`past`). False if the blocks up to the
    /// limit were not all given.
    fn fill_to_limit(&mut self, pool: u32, block_tag: [u8; 4], limit: u64, up_to: &str, past: &str) -> bool {
        let count = (limit / u64::from(MAX_SIZE)) as u32;
        let request = AllocateRequest { pool, tag: tag(block_tag), size: MAX_SIZE, reserved: 0 };
        if !self.allocate_many(count, request, false, up_to) {
            return false;
        }
        self.allocate_refused(request, status::QUOTA_EXCEEDED, past);
        self.allocate_refused(AllocateRequest { size: 1, ..request }, status::QUOTA_EXCEEDED, past);
        true
    }

    /// Frees what is left, and checks that nothing is outstanding and that the counters moved by
    /// what the answers imply.
    fn finish(&mut self) {
        if self.live_len > 0 {
            self.free_all("left over after failed checks");
        }
        if self.untracked > 0 {
            self.report(Err(Problem::Untracked(self.untracked)), format_args!("every block freed"));
        }
        self.check_allocations(&[], LIST_ALL, "at the end");
        let Some(end) = self.statistics("at the end") else { return };
        let zero = compare(&[
            ("outstanding", 0, end.outstanding),
            ("non_paged_bytes", 0, end.non_paged_bytes),
            ("paged_bytes", 0, end.paged_bytes),
        ]);
        self.report(zero, format_args!("nothing outstanding at the end: 0 blocks, 0 non-paged and 0 paged bytes"));

        let Some(start) = self.start else {
            self.report(Err(Problem::NoBaseline), format_args!("counters moved by the scenario's requests"));
            return;
        };
        let tally = self.tally;
        // The first QUERY_STATISTICS is not between the two snapshots (whether the driver counts a
        // request before or after it copies the statistics, the difference is the same).
        let counters: [(&str, u64, u64, &str); 5] = [
            ("allocations", start.allocations, end.allocations, "ALLOCATEs that succeeded"),
            ("frees", start.frees, end.frees, "FREEs that succeeded"),
            ("failures", start.failures, end.failures, "STATUS_INSUFFICIENT_RESOURCES answers"),
            ("rejected", start.rejected, end.rejected, "requests refused"),
            ("requests", start.requests, end.requests, "requests after the first QUERY_STATISTICS"),
        ];
        let expected = [tally.allocations, tally.frees, tally.failures, tally.rejected, tally.requests - 1];
        for ((name, before, after, what), expected) in counters.into_iter().zip(expected) {
            let moved = after.wrapping_sub(before);
            let result = compare(&[(name, expected, moved)]);
            self.report(result, format_args!("statistics: {name} moved by {expected} ({what})"));
        }
    }
}

/// The scenario's first four blocks.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    /// Paged, 100 bytes.
    small: Option<u64>,
    /// Non-paged, 1 byte.
    tiny: Option<u64>,
    /// Non-paged, 4096 bytes.
    page: Option<u64>,
    /// Paged, `MAX_SIZE` bytes.
    largest: Option<u64>,
}

//! `ntpool-client.exe`: opens the ntpool sample driver's device (`\\.\NtPool`), runs the checks of
//! [`ntpool_client::run_scenario`] against it and prints them to standard output.
//!
//! Then it sends every row of the hostile-input table ([`ntpool_client::hostile::run_table`]), and
//! prints the total as its last line, `{passed} passed, {failed} failed`.
//!
//! `ntpool-client.exe --soak THREADS STEPS` runs the soak instead: `THREADS` threads (at most
//! [`MAX_THREADS`](exe::MAX_THREADS)), each with its own handle, each running
//! [`ntpool_client::soak::soak_worker`] for `STEPS` steps, all at once; it prints what they did and
//! the same summary line (one check per request).
//!
//! Exit codes: 0 when every check passed, 1 when one failed, 2 when the device cannot be opened
//! (the driver is not loaded, or access is denied), 3 on a bad command line, 101 on an internal
//! error (a panic).
//!
//! A `no_std` program without a C runtime, for `x86_64-pc-windows-msvc` only: it is entered at
//! `mainCRTStartup` (the link arguments are in `build.rs`), imports a few routines of
//! `kernel32.dll` and `ntdll.dll` with `raw-dylib` (no import library needed), and allocates
//! nothing. Requests go through `NtDeviceIoControlFile`, which returns the driver's NTSTATUS
//! itself rather than a Win32 error translated from it. Built by `cargo xtask` with
//! `--features windows-exe`; on other targets this file builds a stub that says so.
#![cfg_attr(all(windows, target_env = "msvc"), no_std, no_main)]

#[cfg(all(windows, target_env = "msvc"))]
mod exe {
    use core::ffi::c_void;
    use core::fmt::{self, Write};
    use core::ptr::{null, null_mut};

    use ntpool_client::hostile::{Devices, run_table};
    use ntpool_client::soak::{REQUESTS_PER_STEP, SoakReport, soak_worker};
    use ntpool_client::{Device, Summary, run_scenario};
    use ntpool_protocol::USER_PATH;

    type Handle = *mut c_void;

    const INVALID_HANDLE_VALUE: Handle = -1_isize as Handle;
    const GENERIC_READ: u32 = 0x8000_0000;
    const GENERIC_WRITE: u32 = 0x4000_0000;
    const FILE_SHARE_READ: u32 = 0x0000_0001;
    const FILE_SHARE_WRITE: u32 = 0x0000_0002;
    const OPEN_EXISTING: u32 = 3;
    const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;
    const STD_OUTPUT_HANDLE: u32 = -11_i32 as u32;
    const STD_ERROR_HANDLE: u32 = -12_i32 as u32;
    const STATUS_PENDING: i32 = 0x0000_0103;
    const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;

    /// `IO_STATUS_BLOCK`: the `Status`/`Pointer` union is pointer-sized on x64.
    #[repr(C)]
    struct IoStatusBlock {
        status: usize,
        information: usize,
    }

    #[link(name = "kernel32.dll", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        fn CreateFileW(
            name: *const u16,
            access: u32,
            share: u32,
            security: *mut c_void,
            disposition: u32,
            flags: u32,
            template: Handle,
        ) -> Handle;
        fn CloseHandle(handle: Handle) -> i32;
        safe fn GetStdHandle(which: u32) -> Handle;
        fn WriteFile(handle: Handle, buffer: *const u8, length: u32, written: *mut u32, overlapped: *mut c_void)
        -> i32;
        safe fn GetLastError() -> u32;
        safe fn ExitProcess(code: u32) -> !;
        safe fn GetCommandLineW() -> *const u16;
        fn CreateThread(
            security: *mut c_void,
            stack_size: usize,
            start: unsafe extern "system" fn(*mut c_void) -> u32,
            parameter: *mut c_void,
            flags: u32,
            thread_id: *mut u32,
        ) -> Handle;
        fn WaitForMultipleObjects(count: u32, handles: *const Handle, wait_all: i32, milliseconds: u32) -> u32;
    }

    #[link(name = "ntdll.dll", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        fn NtDeviceIoControlFile(
            file: Handle,
            event: Handle,
            apc_routine: *mut c_void,
            apc_context: *mut c_void,
            io_status: *mut IoStatusBlock,
            code: u32,
            input: *const c_void,
            input_length: u32,
            output: *mut c_void,
            output_length: u32,
        ) -> i32;
        /// The stack probe the compiler calls in functions with more than a page of locals (the
        /// scenario's state is about 5 KiB). No C runtime is linked to provide it; ntdll exports it.
        /// Never called from Rust.
        fn __chkstk();
    }

    /// The marker the MSVC C runtime defines for programs that use floating point; the compiled
    /// `compiler_builtins` references it, and no C runtime is linked.
    #[unsafe(no_mangle)]
    pub static _fltused: i32 = 0;

    /// `\\.\NtPool`, NUL-terminated UTF-16.
    const PATH: [u16; USER_PATH.len() + 1] = wide(USER_PATH);

    /// An ASCII string as UTF-16 with a NUL after it (`N` is its length plus one).
    const fn wide<const N: usize>(text: &str) -> [u16; N] {
        let bytes = text.as_bytes();
        assert!(bytes.len() + 1 == N);
        let mut wide = [0; N];
        let mut index = 0;
        while index < bytes.len() {
            assert!(bytes[index].is_ascii());
            wide[index] = bytes[index] as u16;
            index += 1;
        }
        wide
    }

    /// The program's entry point: runs, and exits with the code [`run`] returns.
    #[unsafe(no_mangle)]
    pub extern "system" fn mainCRTStartup() -> ! {
        let mut out = Console::new(STD_OUTPUT_HANDLE);
        let mut err = Console::new(STD_ERROR_HANDLE);
        let code = run(&mut out, &mut err);
        out.flush();
        err.flush();
        ExitProcess(code)
    }

    fn run(out: &mut Console, err: &mut Console) -> u32 {
        let args = Args::parse();
        match args.words() {
            [] | [_] => {}
            [_, flag, threads, steps] if flag.is("--soak") => {
                return match (threads.number(), steps.number()) {
                    (Some(threads @ 1..=MAX_THREADS), Some(steps)) => soak(threads, steps as u32, out, err),
                    _ => usage(err),
                };
            }
            _ => return usage(err),
        }
        let Some(mut device) = NtPool::open() else {
            let error = GetLastError();
            // Nothing can be done about a failing console.
            let _ = writeln!(err, "ntpool-client: cannot open {USER_PATH}: Win32 error {error}{}", Win32Error(error));
            return 2;
        };
        let _ = writeln!(out, "ntpool-client: checking the driver through {USER_PATH}");
        let scenario = run_scenario(&mut device, out);
        drop(device);
        let mut handles = Handles { open: [const { None }; 16] };
        let table = run_table(&mut handles, out);
        let total = Summary { passed: scenario.passed + table.passed, failed: scenario.failed + table.failed };
        let _ = writeln!(out, "total: {total}");
        if total.all_passed() && table.all_passed() { 0 } else { 1 }
    }

    fn usage(err: &mut Console) -> u32 {
        let _ = writeln!(err, "usage: ntpool-client.exe [--soak THREADS(1-{MAX_THREADS}) STEPS]");
        3
    }

    /// The most soak threads.
    pub const MAX_THREADS: usize = 16;

    /// What one soak thread works with and reports.
    struct Slot {
        worker: u32,
        steps: u32,
        opened: bool,
        report: SoakReport,
    }

    /// A soak thread: opens its own handle and runs the worker.
    unsafe extern "system" fn soak_thread(parameter: *mut c_void) -> u32 {
        // SAFETY: `soak` passes a slot of its array, which outlives the thread (it waits for every
        // thread before it reads the slots), and no other thread touches this slot.
        let slot = unsafe { &mut *parameter.cast::<Slot>() };
        let Some(mut device) = NtPool::open() else { return 2 };
        slot.opened = true;
        slot.report = soak_worker(&mut device, slot.worker, slot.steps);
        0
    }

    fn soak(threads: usize, steps: u32, out: &mut Console, err: &mut Console) -> u32 {
        const INFINITE: u32 = u32::MAX;
        let mut slots: [Slot; MAX_THREADS] = core::array::from_fn(|worker| Slot {
            worker: worker as u32,
            steps,
            opened: false,
            report: SoakReport::default(),
        });
        let mut handles: [Handle; MAX_THREADS] = [null_mut(); MAX_THREADS];
        let mut started = 0;
        for (slot, handle) in slots.iter_mut().zip(handles.iter_mut()).take(threads) {
            // SAFETY: `soak_thread` has the right signature; the slot outlives the thread (waited for
            // below before `slots` is read or dropped).
            *handle = unsafe { CreateThread(null_mut(), 0, soak_thread, (slot as *mut Slot).cast(), 0, null_mut()) };
            if handle.is_null() {
                break;
            }
            started += 1;
        }
        if started > 0 {
            // SAFETY: `started` valid thread handles.
            unsafe { WaitForMultipleObjects(started as u32, handles.as_ptr(), 1, INFINITE) };
        }
        for handle in &handles[..started] {
            // SAFETY: a thread handle from CreateThread, closed once, here.
            unsafe { CloseHandle(*handle) };
        }
        if started < threads {
            let _ = writeln!(err, "ntpool-client: could only start {started} of {threads} threads");
            return 1;
        }
        let mut total = SoakReport::default();
        for slot in &slots[..threads] {
            if !slot.opened {
                let _ = writeln!(err, "ntpool-client: soak thread {} cannot open {USER_PATH}", slot.worker);
                return 2;
            }
            total.add(&slot.report);
        }
        let _ = writeln!(
            out,
            "soak: {threads} threads x {steps} steps: {} requests ({} per thread), {} allocations, {} frees",
            total.requests,
            u64::from(steps) * u64::from(REQUESTS_PER_STEP) + 1,
            total.allocations,
            total.frees
        );
        if let Some((request, code, status)) = total.first_failure {
            let _ = writeln!(out, "FAIL soak: request {request} (IOCTL {code:#010X}) answered {:#010X}", status as u32);
        }
        let summary = Summary { passed: total.passed as u32, failed: (total.requests - total.passed) as u32 };
        let _ = writeln!(out, "{summary}");
        if total.all_passed() && total.allocations == total.frees { 0 } else { 1 }
    }

    /// A command-line word, in UTF-16 units.
    #[derive(Clone, Copy)]
    struct Word {
        units: &'static [u16],
    }

    impl Word {
        fn is(&self, text: &str) -> bool {
            self.units.len() == text.len()
                && self.units.iter().zip(text.bytes()).all(|(&unit, byte)| unit == u16::from(byte))
        }

        fn number(&self) -> Option<usize> {
            if self.units.is_empty() || self.units.len() > 9 {
                return None;
            }
            self.units.iter().try_fold(0usize, |value, &unit| {
                let digit = unit.checked_sub(u16::from(b'0')).filter(|digit| *digit < 10)?;
                Some(value * 10 + usize::from(digit))
            })
        }
    }

    /// The command line's words, split at spaces and tabs (a word that starts with `"` runs to the
    /// next `"`: the program's path may have spaces); at most five, the fifth standing for any more.
    struct Args {
        words: [Word; 5],
        count: usize,
    }

    impl Args {
        fn parse() -> Args {
            let line = GetCommandLineW();
            let mut length = 0;
            // SAFETY: GetCommandLineW returns the process's NUL-terminated command line, which lives
            // as long as the process.
            while unsafe { *line.add(length) } != 0 {
                length += 1;
            }
            // SAFETY: `length` units before the NUL; the command line lives as long as the process.
            let units: &'static [u16] = unsafe { core::slice::from_raw_parts(line, length) };
            let blank = |unit: u16| unit == u16::from(b' ') || unit == u16::from(b'\t');
            let mut args = Args { words: [Word { units: &[] }; 5], count: 0 };
            let mut at = 0;
            while at < units.len() && args.count < args.words.len() {
                while at < units.len() && blank(units[at]) {
                    at += 1;
                }
                if at == units.len() {
                    break;
                }
                let start = at;
                if units[at] == u16::from(b'"') {
                    at += 1;
                    while at < units.len() && units[at] != u16::from(b'"') {
                        at += 1;
                    }
                    at = (at + 1).min(units.len());
                } else {
                    while at < units.len() && !blank(units[at]) {
                        at += 1;
                    }
                }
                args.words[args.count] = Word { units: &units[start..at] };
                args.count += 1;
            }
            args
        }

        fn words(&self) -> &[Word] {
            &self.words[..self.count]
        }
    }

    /// Several handles to the device, for the hostile-input table.
    struct Handles {
        open: [Option<NtPool>; 16],
    }

    impl Devices for Handles {
        fn open(&mut self) -> Option<usize> {
            let index = self.open.iter().position(Option::is_none)?;
            self.open[index] = Some(NtPool::open()?);
            Some(index)
        }

        fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
            match self.open.get_mut(handle).and_then(Option::as_mut) {
                Some(device) => device.control(code, input, output),
                None => (STATUS_INVALID_PARAMETER, 0),
            }
        }

        fn close(&mut self, handle: usize) {
            if let Some(slot) = self.open.get_mut(handle) {
                *slot = None;
            }
        }
    }

    /// What the common errors of opening the device mean.
    struct Win32Error(u32);

    impl fmt::Display for Win32Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self.0 {
                2 => " (ERROR_FILE_NOT_FOUND: the ntpool driver is not loaded)",
                3 => " (ERROR_PATH_NOT_FOUND: the ntpool driver is not loaded)",
                5 => " (ERROR_ACCESS_DENIED: the device admits administrators only)",
                32 => " (ERROR_SHARING_VIOLATION)",
                _ => "",
            })
        }
    }

    /// The driver's device, open for reading and writing.
    struct NtPool {
        handle: Handle,
    }

    impl NtPool {
        /// Opens `\\.\NtPool`; `None` with the error in `GetLastError` when it cannot.
        fn open() -> Option<NtPool> {
            // SAFETY: `PATH` is a NUL-terminated UTF-16 string; no security attributes or template
            // are passed. Without FILE_FLAG_OVERLAPPED the handle is synchronous: every request on
            // it is complete when the call returns.
            let handle = unsafe {
                CreateFileW(
                    PATH.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE,
                    null_mut(),
                    OPEN_EXISTING,
                    FILE_ATTRIBUTE_NORMAL,
                    null_mut(),
                )
            };
            (handle != INVALID_HANDLE_VALUE && !handle.is_null()).then_some(NtPool { handle })
        }
    }

    impl Drop for NtPool {
        fn drop(&mut self) {
            // SAFETY: the handle is open and owned by this value, and closed once, here.
            unsafe { CloseHandle(self.handle) };
        }
    }

    impl Device for NtPool {
        fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
            let (Ok(input_length), Ok(output_length)) = (u32::try_from(input.len()), u32::try_from(output.len()))
            else {
                return (STATUS_INVALID_PARAMETER, 0);
            };
            // Empty buffers are passed as null pointers, not as the dangling pointers of empty slices.
            let input_buffer = if input.is_empty() { null() } else { input.as_ptr().cast::<c_void>() };
            let output_buffer = if output.is_empty() { null_mut() } else { output.as_mut_ptr().cast::<c_void>() };
            // When a request fails, the I/O manager leaves the status block alone: 0 bytes returned.
            let mut io_status = IoStatusBlock { status: 0, information: 0 };
            // SAFETY: the handle is open; the buffers are valid for their lengths and live until the
            // call returns, which, on a synchronous handle, is when the request is complete (so the
            // status block and the buffers are no longer used by the I/O manager either).
            let status = unsafe {
                NtDeviceIoControlFile(
                    self.handle,
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    &mut io_status,
                    code,
                    input_buffer,
                    input_length,
                    output_buffer,
                    output_length,
                )
            };
            // A synchronous handle never returns STATUS_PENDING, but the final status would be in
            // the status block if it did.
            let status = if status == STATUS_PENDING { io_status.status as i32 } else { status };
            (status, io_status.information)
        }
    }

    /// Standard output or error, written with `WriteFile` a line at a time (bytes, as the output is
    /// ASCII). Write errors are ignored: there is nowhere to report them.
    struct Console {
        handle: Handle,
        buffer: [u8; 256],
        length: usize,
    }

    impl Console {
        fn new(which: u32) -> Console {
            Console { handle: GetStdHandle(which), buffer: [0; 256], length: 0 }
        }

        fn flush(&mut self) {
            let mut start = 0;
            while start < self.length && !self.handle.is_null() && self.handle != INVALID_HANDLE_VALUE {
                let pending = &self.buffer[start..self.length];
                let mut written = 0;
                // SAFETY: `pending` is valid for its length (at most 256 bytes); `written` is a valid
                // u32; no OVERLAPPED: a standard handle is synchronous.
                let ok =
                    unsafe { WriteFile(self.handle, pending.as_ptr(), pending.len() as u32, &mut written, null_mut()) };
                if ok == 0 || written == 0 {
                    break;
                }
                start += written as usize;
            }
            self.length = 0;
        }
    }

    impl Write for Console {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            for &byte in text.as_bytes() {
                if self.length == self.buffer.len() {
                    self.flush();
                }
                self.buffer[self.length] = byte;
                self.length += 1;
                if byte == b'\n' {
                    self.flush();
                }
            }
            Ok(())
        }
    }

    /// A panic is a bug of this program: say so on standard error and exit with 101, as Rust
    /// programs do.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let mut err = Console::new(STD_ERROR_HANDLE);
        let _ = writeln!(err, "ntpool-client: internal error: {info}");
        err.flush();
        ExitProcess(101)
    }
}

/// The client is a Windows program: elsewhere, say so.
#[cfg(not(all(windows, target_env = "msvc")))]
fn main() -> std::process::ExitCode {
    eprintln!("ntpool-client runs on x86_64-pc-windows-msvc only: build it with `cargo xtask` on Linux");
    std::process::ExitCode::from(2)
}

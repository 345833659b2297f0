//! What the workspace's kernel-mode images share (the sample WDM driver, the sample video miniport and
//! the `videoprt.sys` test fixture):
//!
//! * [`DebugLine`] and [`debug_print!`]: `DbgPrint` with Rust formatting, each line with its image's
//!   prefix, formatted into a fixed stack buffer (no allocation);
//! * [`DbgPrint`], ntpool-sys's: imported from `ntoskrnl.exe` on Windows targets, the emulated
//!   kernel's (which keeps the lines for tests) elsewhere;
//! * [`kernel_image_runtime!`]: the panic handler and `_fltused` of an image built without the WDK's
//!   crates.
//!
//! ```
//! use core::fmt::Write;
//! let mut line = ntpool_kernel_support::DebugLine::new();
//! write!(line, "ntpool-driver: {} checks", 3).unwrap();
//! assert_eq!(line.terminate(), c"ntpool-driver: 3 checks\n");
//! ```
#![no_std]

#[doc(hidden)]
pub use ntpool_sys as __sys;

/// `DbgPrint`: on Windows targets the import from `ntoskrnl.exe` (variadic, C calling convention);
/// elsewhere the emulated kernel's, which takes `"%s"` and one string and keeps the line for tests
/// (`ntpool_sys::emulated::io::take_debug_output`).
pub use ntpool_sys::DbgPrint;

/// The bytes of a [`DebugLine`]'s buffer: the text, then `"\n"` and a NUL.
pub const DEBUG_LINE_BUFFER: usize = 256;

/// A line of debug output, formatted into a fixed stack buffer (no allocation), for
/// `DbgPrint("%s", line.terminate())`. Text beyond `DEBUG_LINE_BUFFER - 2` bytes is cut off.
///
/// Invariant: `len <= DEBUG_LINE_BUFFER - 2`, so that the line end and the NUL always fit.
///
/// ```
/// use core::fmt::Write;
/// use ntpool_kernel_support::{DEBUG_LINE_BUFFER, DebugLine};
/// let mut line = DebugLine::new();
/// for _ in 0..DEBUG_LINE_BUFFER {
///     line.write_str("x").unwrap();
/// }
/// assert_eq!(line.terminate().to_bytes().len(), DEBUG_LINE_BUFFER - 1); // the text and "\n"
/// ```
pub struct DebugLine {
    buffer: [u8; DEBUG_LINE_BUFFER],
    len: usize,
}

impl Default for DebugLine {
    fn default() -> Self {
        Self::new()
    }
}

impl DebugLine {
    /// An empty line.
    ///
    /// ```
    /// let mut line = ntpool_kernel_support::DebugLine::new();
    /// assert_eq!(line.terminate(), c"\n");
    /// ```
    pub const fn new() -> Self {
        DebugLine { buffer: [0; DEBUG_LINE_BUFFER], len: 0 }
    }

    /// Ends the line with `"\n"` and a NUL, and returns it as a C string for `DbgPrint("%s", ...)`.
    ///
    /// ```
    /// use core::fmt::Write;
    /// let mut line = ntpool_kernel_support::DebugLine::new();
    /// line.write_str("videoprt: unload").unwrap();
    /// assert_eq!(line.terminate(), c"videoprt: unload\n");
    /// ```
    pub fn terminate(&mut self) -> &core::ffi::CStr {
        let end = self.len;
        self.buffer[end] = b'\n';
        self.buffer[end + 1] = 0;
        // The NUL just written ends the string, or an earlier one the text contained.
        core::ffi::CStr::from_bytes_until_nul(&self.buffer[..end + 2]).unwrap_or(c"")
    }
}

impl core::fmt::Write for DebugLine {
    /// Appends what fits of `s` (never fails: the rest is cut off).
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let take = s.len().min(DEBUG_LINE_BUFFER - 2 - self.len);
        self.buffer[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `DbgPrint` with Rust formatting: `debug_print!(print, prefix, format, args...)` formats
/// `prefix` and the message into a [`DebugLine`] and calls `print("%s", line)`, where `print` is
/// [`DbgPrint`] (or any stand-in with the signature `unsafe fn(*const u8, *const u8) -> u32`, as the
/// emulated kernel's is).
///
/// Each image wraps it in a `debug_print!` of its own with its prefix, such as `ntpool-driver: `.
///
/// ```
/// use std::sync::Mutex;
/// static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// /// A stand-in for `DbgPrint("%s", text)`.
/// unsafe fn print(_format: *const u8, text: *const u8) -> u32 {
///     // SAFETY: `debug_print!` passes a NUL-terminated string.
///     let text = unsafe { core::ffi::CStr::from_ptr(text.cast()) };
///     LINES.lock().unwrap().push(text.to_str().unwrap().to_owned());
///     0
/// }
/// ntpool_kernel_support::debug_print!(print, "ntpool-video: ", "{} modes", 4);
/// assert_eq!(*LINES.lock().unwrap(), ["ntpool-video: 4 modes\n"]);
/// ```
#[macro_export]
macro_rules! debug_print {
    ($print:path, $prefix:literal, $($arg:tt)*) => {{
        let mut line = $crate::DebugLine::new();
        let _ = core::fmt::Write::write_str(&mut line, $prefix);
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        let line = line.terminate();
        // SAFETY: both strings are NUL-terminated and outlive the call; "%s" consumes one string.
        unsafe { $print(c"%s".as_ptr().cast(), line.as_ptr().cast::<u8>()) };
    }};
}

/// The items a kernel image built without the WDK's crates needs from a runtime, for its crate
/// root:
///
/// * a panic handler (outside `cfg(test)`): a panic in the kernel stops the machine with bug check
///   `0x52504E43` (`RPNC`, the code wdk-panic uses);
/// * `_fltused`, the floating-point marker the MSVC runtime would define, which debug builds
///   reference.
///
/// ```
/// // In a kernel image's crate root, for the builds that have no WDK:
/// #[cfg(windows)]
/// ntpool_kernel_support::kernel_image_runtime!();
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! kernel_image_runtime {
    () => {
        /// A panic in the kernel stops the machine (the code wdk-panic uses, `RPNC`).
        #[cfg(not(test))]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
            // SAFETY: a deliberate stop.
            unsafe { $crate::__sys::KeBugCheckEx(0x5250_4E43, 0, 0, 0, 0) }
        }

        /// Debug builds reference the floating-point marker the MSVC runtime would define.
        #[unsafe(no_mangle)]
        pub static _fltused: i32 = 0;
    };
}

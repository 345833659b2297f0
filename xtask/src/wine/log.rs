//! Reading Wine's log line by line, for the driver's run and the video miniport's alike: the
//! markers the session writes between commands ([`MARK`]), the thread a line comes from, the relay
//! trace's `Call` and `Ret` lines of `ntoskrnl.exe` and of the driver's entry points, the lines that
//! mean a crash ([`CRASH_PATTERNS`]), and pool tags as poolmon shows them.

use std::fmt;

/// Log lines that mean the driver (or Wine) went wrong, whatever the rest says.
pub(super) const CRASH_PATTERNS: &[&str] = &["Unhandled page fault", "unimplemented function", " stub"];
/// The markers the session writes into the log between commands.
pub(super) const MARK: &str = "xtask-wine:";

/// A pool tag, shown as poolmon shows it: the value's little-endian bytes as characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tag(pub(super) u32);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.to_le_bytes() {
            let c = if byte.is_ascii_graphic() || byte == b' ' { char::from(byte) } else { '.' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// `'NpSt' (0x7453704e)`.
pub(super) fn tag_name(tag: u32) -> String {
    format!("'{}' ({tag:#010x})", Tag(tag))
}

/// One relay line.
#[derive(Debug)]
pub(super) enum Relay<'a> {
    /// `Call ntoskrnl.exe.F(a,b,...) ret=R`.
    Call { func: &'a str, args: Vec<u64>, ret: u64 },
    /// `Ret  ntoskrnl.exe.F() retval=V ret=R`.
    Ret { func: &'a str, retval: u64, ret: u64 },
    /// `Call driver init|unload|dispatch ADDR (...)`.
    DriverCall { kind: &'a str, addr: u64, detail: &'a str },
    /// `Ret  driver init|unload|dispatch ADDR (...)`.
    DriverRet { kind: &'a str, addr: u64 },
}

pub(super) fn hex(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.is_empty() { None } else { u64::from_str_radix(text, 16).ok() }
}

/// Splits `0024:Call ...` (or `pid:tid:...`, or with a timestamp first) into the thread id and the
/// rest.
pub(super) fn split_thread(line: &str) -> Option<(u32, &str)> {
    let mut rest = line;
    let mut thread = None;
    while let Some((head, tail)) = rest.split_once(':') {
        let numeric = !head.is_empty() && head.len() <= 16 && head.chars().all(|c| c.is_ascii_hexdigit() || c == '.');
        if !numeric {
            break;
        }
        thread = u32::from_str_radix(head, 16).ok().or(thread);
        rest = tail;
    }
    thread.map(|thread| (thread, rest))
}

pub(super) fn parse_relay(rest: &str) -> Option<Relay<'_>> {
    if let Some(call) = rest.strip_prefix("Call ntoskrnl.exe.") {
        let (func, tail) = call.split_once('(')?;
        let (args, ret) = tail.rsplit_once(") ret=")?;
        let args =
            if args.trim().is_empty() { Vec::new() } else { args.split(',').map(hex).collect::<Option<Vec<_>>>()? };
        return Some(Relay::Call { func, args, ret: hex(ret)? });
    }
    if let Some(ret) = rest.strip_prefix("Ret  ntoskrnl.exe.") {
        let (func, tail) = ret.split_once('(')?;
        let (_, values) = tail.split_once("retval=")?;
        let (retval, ret) = values.split_once(" ret=")?;
        return Some(Relay::Ret { func, retval: hex(retval)?, ret: hex(ret)? });
    }
    if let Some(call) = rest.strip_prefix("Call driver ") {
        let mut words = call.splitn(3, ' ');
        let kind = words.next()?;
        let addr = hex(words.next()?)?;
        return Some(Relay::DriverCall { kind, addr, detail: words.next().unwrap_or("") });
    }
    if let Some(ret) = rest.strip_prefix("Ret  driver ") {
        let mut words = ret.splitn(3, ' ');
        let kind = words.next()?;
        return Some(Relay::DriverRet { kind, addr: hex(words.next()?)? });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NP_ST: u32 = 0x7453_704e; // "NpSt"
    const NP_RG: u32 = 0x6752_704e; // "NpRg"

    #[test]
    fn tags_read_as_poolmon_shows_them() {
        assert_eq!(Tag(NP_ST).to_string(), "NpSt");
        assert_eq!(Tag(0x3154_704e).to_string(), "NpT1");
        assert_eq!(tag_name(NP_RG), "'NpRg' (0x6752704e)");
        assert_eq!(Tag(0x0000_4142).to_string(), "BA..");
    }

    #[test]
    fn thread_ids_are_read_with_or_without_a_process_id() {
        assert_eq!(split_thread("0114:Call ntoskrnl.exe.X() ret=1").map(|t| t.0), Some(0x114));
        assert_eq!(split_thread("0020:0114:Call ntoskrnl.exe.X() ret=1").map(|t| t.0), Some(0x114));
        assert_eq!(split_thread("0114:warn:debugstr:x").map(|t| t.1), Some("warn:debugstr:x"));
        assert_eq!(split_thread("wine: Call from"), None);
    }
}

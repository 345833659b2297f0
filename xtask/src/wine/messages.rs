//! How a failed run quotes what it saw: log lines with their numbers (at most [`MAX_SHOWN`] of a
//! kind), the tail of a command's output, and the report a Wine run ends with.

use std::path::Path;

/// How many log lines a failure shows at most, per kind.
const MAX_SHOWN: usize = 12;

pub(super) fn show_lines(lines: &[(usize, String)]) -> String {
    let mut shown: Vec<String> = lines.iter().take(MAX_SHOWN).map(|(number, text)| log_line(*number, text)).collect();
    if lines.len() > MAX_SHOWN {
        shown.push(format!("    ... and {} more", lines.len() - MAX_SHOWN));
    }
    if shown.is_empty() {
        shown.push("    (none)".into());
    }
    shown.join("\n")
}

/// `    wine.log:<number>: <text>`, the text cut at 200 characters.
pub(super) fn log_line(number: usize, text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let ellipsis = if cut.len() < text.len() { " ..." } else { "" };
    format!("    wine.log:{number}: {cut}{ellipsis}")
}

pub(super) fn indent_block(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() { String::new() } else { format!(":\n{}", tail(text, 20)) }
}

/// The error a Wine run of `image` ends with: each of `problems`, then where the log is.
pub(super) fn problem_report(image: &str, problems: &[String], log: &Path) -> String {
    let mut message = format!("wine: {} problem(s) with {image} under Wine:\n", problems.len());
    for problem in problems {
        message.push_str("\n* ");
        message.push_str(&indent_after_first(problem, "  "));
        message.push('\n');
    }
    message.push_str(&format!("\nlog: {}", log.display()));
    message
}

pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|line| format!("    | {line}")).collect::<Vec<_>>().join("\n")
}

fn indent_after_first(text: &str, indent: &str) -> String {
    text.replace('\n', &format!("\n{indent}"))
}

//! The tables in `docs/` that are generated from code: each page shows, between its markers,
//! exactly what the code's `render_markdown` prints. `NTPOOL_UPDATE_DOCS=1 cargo test --test
//! generated_docs` rewrites the pages from the code.

use std::fmt;
use std::path::Path;

/// Fails unless the text of `docs/{page}` between `<!-- BEGIN {table} table -->` and
/// `<!-- END {table} table -->` is `render`'s output; with `NTPOOL_UPDATE_DOCS` set, writes it
/// there instead.
fn documented_table(page: &str, table: &str, source: &str, render: fn(&mut String) -> fmt::Result) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(page);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("docs/{page}: {error}"));
    let (begin, end) = (format!("<!-- BEGIN {table} table -->\n"), format!("<!-- END {table} table -->"));
    let start = text.find(&begin).unwrap_or_else(|| panic!("docs/{page} has no {begin:?}")) + begin.len();
    let stop = text.find(&end).unwrap_or_else(|| panic!("docs/{page} has no {end:?}"));
    let mut rendered = String::new();
    render(&mut rendered).expect("rendering into a String");
    if std::env::var_os("NTPOOL_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{rendered}{}", &text[..start], &text[stop..]))
            .unwrap_or_else(|error| panic!("writing docs/{page}: {error}"));
        return;
    }
    assert_eq!(
        &text[start..stop],
        rendered,
        "docs/{page} is not the table of {source}; NTPOOL_UPDATE_DOCS=1 cargo test --test generated_docs rewrites it"
    );
}

/// `docs/verifier.md` shows exactly the emulated kernel's `CHECKS`.
#[test]
fn the_documented_table_is_the_table_the_kernel_raises_from() {
    documented_table("verifier.md", "verifier", "ntpool-sys/src/emulated/checks.rs", |out| {
        ntpool::emulated::checks::render_markdown(out)
    });
}

/// `docs/hostile-inputs.md` shows exactly the client's hostile-input `CASES`.
#[test]
fn the_documented_table_is_the_table_the_tests_run() {
    documented_table("hostile-inputs.md", "hostile-input", "client/src/hostile.rs", |out| {
        ntpool_client::hostile::render_markdown(out)
    });
}

//! The keepalived.conf importer: any text gives a translation or an error, never a panic;
//! every translation loads as an xvrrpd configuration or is refused with problems (the
//! importer does not validate values, `xvrrpd check` does), never a TOML syntax error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Includes read the file system; the parser's include handling has its own tests.
    if text.contains("include") {
        return;
    }
    let Ok(out) = xvrrpd::import::import_text(text, std::path::Path::new("/nonexistent/k.conf"), "db1")
    else {
        return;
    };
    if let Err(problems) = xvrrpd::config::parse(&out.toml, false) {
        for p in &problems {
            assert!(
                p.key != "(syntax)",
                "the importer wrote invalid TOML: {p:?}\n{}",
                out.toml
            );
        }
    }
});

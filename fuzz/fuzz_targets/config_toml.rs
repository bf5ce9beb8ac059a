//! The TOML configuration loader: any text gives a config or a list of problems, never a
//! panic; every problem names a key.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = xvrrpd::config::parse(text, false) {
        assert!(!problems.is_empty());
        for p in problems {
            assert!(!p.key.is_empty() && !p.message.is_empty(), "{p:?}");
        }
    }
});

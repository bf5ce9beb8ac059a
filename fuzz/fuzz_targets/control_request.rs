//! Control-socket requests and the status document: any line parses or is refused; what
//! parses serialises back to the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xvrrpd::control::{status::Status, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
    }
    if let Ok(s) = serde_json::from_slice::<Status>(data) {
        let _ = xvrrpd::control::status::render(&s);
    }
});

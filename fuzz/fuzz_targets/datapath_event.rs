//! Ring-buffer records from the kernel: any bytes decode to an event or an error, and a
//! decoded event renders as JSON and text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xvrrpd::datapath::event::DatapathEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = DatapathEvent::decode(data) {
        let _ = ev.to_json("eth0");
        let _ = ev.to_line("eth0");
    }
});

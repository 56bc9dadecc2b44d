//! `parse_response` on arbitrary bytes: it must never panic, and every
//! response it accepts must survive `write_response` (or `write_fault`) and
//! parse back to the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podium::rpc::codec::{parse_response, write_fault, write_response, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = parse_response(data, Limits::default()) else {
        return;
    };
    let bytes = match &response {
        Ok(value) => write_response(value)
            .unwrap_or_else(|e| panic!("parsed value {value:?} cannot be written: {e}")),
        Err(fault) => write_fault(fault),
    };
    let back = parse_response(&bytes, Limits::default()).unwrap_or_else(|e| {
        panic!(
            "written response does not parse: {e}\nresponse: {response:?}\nwritten: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(back, response, "round trip changed the response");
});

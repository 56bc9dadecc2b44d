//! `parse_call` on arbitrary bytes: it must never panic, and every call it
//! accepts must survive `write_call` and parse back to the same call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podium::rpc::codec::{parse_call, write_call, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(call) = parse_call(data, Limits::default()) else {
        return;
    };
    let bytes = write_call(&call.method, &call.params)
        .unwrap_or_else(|e| panic!("parsed call {call:?} cannot be written: {e}"));
    let back = parse_call(&bytes, Limits::default()).unwrap_or_else(|e| {
        panic!(
            "written call does not parse: {e}\ncall: {call:?}\nwritten: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(back, call, "round trip changed the call");
});

//! What the Engine API server parses from a client before it calls the engine: a container create's
//! query and JSON body, and a list's query with docker's `filters`. Refused with an error or accepted,
//! never a panic. The input is the query string, a newline, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let query = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = bulkhead_api::fuzzing::create_request(&query, body);
    let _ = bulkhead_api::fuzzing::list_query(&query);
});

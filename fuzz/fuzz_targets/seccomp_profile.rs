//! A Docker-format seccomp profile (`--security-opt seccomp=FILE`) compiled to a BPF program for a
//! default container: refused with an error or compiled, never a panic.
#![no_main]

use bulkhead_runtime::{compile_seccomp, SeccompPolicy, SecuritySpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let security = SecuritySpec {
        seccomp: SeccompPolicy::Profile(json.to_string()),
        ..SecuritySpec::default()
    };
    let _ = compile_seccomp(&security);
});

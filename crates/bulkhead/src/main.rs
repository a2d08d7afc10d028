//! `bulkhead`: one static binary with several roles, each owned by a library crate. This file only
//! decides which role the process plays.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::process::id() == 1 {
        // PID 1 of a bulkhead VM guest: the initramfs /init is this binary.
        bulkhead_guest::main();
    }
    bulkhead_cli::main()
}

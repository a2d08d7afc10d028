//! The escape probe: run as root inside a container, it makes each escape attempt and prints one line
//! per attempt (`NAME<TAB>blocked|ESCAPED<TAB>DETAIL`). Arguments: attempt names to make only those, or
//! `--flood-console BYTES` (a privileged container in a VM: write that much to the guest's serial port).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    bulkhead_hostile::probe_main(&args)
}

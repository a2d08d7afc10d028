//! Escape attempts that hostile code makes from inside a container, each with raw syscalls, and the
//! one-line report per attempt that the `escape-probe` binary prints and the suite parses.
//!
//! An attempt that the kernel could refuse only with a real effect on success (rebooting, loading a
//! module) is made with arguments that the kernel rejects *after* its permission check: an errno such as
//! EINVAL then proves the call got past the boundary without doing harm. So the probe is safe to run as
//! root on a bare host, which its own test does, to prove that it sees an escape when there is one.

pub mod attempts;
pub mod report;

pub use attempts::{flood_console, run, ATTEMPTS};
pub use report::{Outcome, Row};

/// Environment the suite passes into the container.
pub mod env {
    /// A host pid outside the container's pid namespace (a `sleep` the test started).
    pub const HOST_PID: &str = "HOSTILE_HOST_PID";
    /// The command line that process has, NUL-separated words joined by spaces.
    pub const HOST_PID_CMDLINE: &str = "HOSTILE_HOST_PID_CMDLINE";
    /// Host block devices to mknod, as `MAJOR:MINOR` separated by commas.
    pub const HOST_DISKS: &str = "HOSTILE_HOST_DISKS";
    /// A file on the host, and its secret content, that no container may read.
    pub const MARKER_PATH: &str = "HOSTILE_MARKER_PATH";
    pub const MARKER_TEXT: &str = "HOSTILE_MARKER_TEXT";
}

/// A device node the suite ships in the image's layer: path in the image, block (else char), numbers.
pub struct ImageDevice {
    pub path: &'static str,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
}

/// /dev/mem, /dev/kmsg and the first SCSI disk, as nodes inside an image.
pub const IMAGE_DEVICES: [ImageDevice; 3] = [
    ImageDevice {
        path: "/hostile/mem",
        block: false,
        major: 1,
        minor: 1,
    },
    ImageDevice {
        path: "/hostile/kmsg",
        block: false,
        major: 1,
        minor: 11,
    },
    ImageDevice {
        path: "/hostile/sda",
        block: true,
        major: 8,
        minor: 0,
    },
];

/// The probe's command line (see the `escape-probe` binary). The suite's test binary runs this too when
/// it is itself the probe inside a container.
pub fn probe_main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let [flag, bytes] = args {
        if flag == "--flood-console" {
            let Ok(bytes) = bytes.parse() else {
                eprintln!("escape-probe: --flood-console wants a byte count, not {bytes}");
                return ExitCode::from(2);
            };
            return match flood_console(bytes) {
                Ok(written) => {
                    println!("flooded the console with {written} bytes");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("escape-probe: flooding the console: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    match run(args) {
        Ok(rows) => {
            for row in rows {
                println!("{row}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("escape-probe: {e}");
            ExitCode::from(2)
        }
    }
}

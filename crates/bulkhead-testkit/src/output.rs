//! Collecting a child's output with a hang guard: a command that must end by itself and does not fails
//! the test instead of blocking the whole run.

use std::io::Read;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// How long a command that must end by itself may take (a hang guard, not a performance assertion).
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Waits for a spawned child with piped stdout/stderr, failing the test if it hangs.
pub fn wait_output(mut child: Child, what: &str) -> Output {
    // Readers on their own threads, so that a child filling one pipe cannot block on it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + HANG_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

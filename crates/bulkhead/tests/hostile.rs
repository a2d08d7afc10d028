//! The hostile-code suite: escape attempts made as root inside a default container, the same list in both
//! isolation modes (see `bulkhead-hostile`), plus a VM guest that floods its serial console. It prints a
//! table `ATTEMPT | MODE | RESULT` and fails if any attempt escaped.
//!
//! The probe is this very test binary (static, like every artifact of the workspace): copied into the
//! image as `/escape-probe`, it sees that name as its argv[0] and makes the attempts instead of running
//! the suite. So the probe is always built, always current, and found without knowing cargo's layout.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bulkhead_hostile::{env, Outcome, Row, ATTEMPTS, IMAGE_DEVICES};
use bulkhead_testkit::{
    busybox_layer, vm_lock, write_layout, Isolation, Layer, LayerBuilder, Platform,
};
use common::Root;

/// The probe's path inside the image.
const PROBE: &str = "/escape-probe";
const IMAGE: &str = "hostile.test/probe:1";
/// What the flooding guest writes to its serial console (about 100 KiB/s under TCG).
const FLOOD_BYTES: u64 = 3 << 20;
/// The most of it the host may keep: the monitor caps `console.log` at 1 MiB and rotates it once, to
/// `console.log.1`.
const CONSOLE_LOG_CAP: u64 = 2 << 20;
/// Less than this in the host log means the test watches the wrong file (a quiet boot prints ~100
/// bytes; QEMU may drop part of the flood when the host side is slow, which is fine).
const FLOOD_ARRIVED: u64 = 64 << 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.first().is_some_and(|a| a == PROBE) {
        return bulkhead_hostile::probe_main(&args[1..]);
    }
    let trials = vec![libtest_mimic::Trial::test(
        "vm_hostile_code_escapes_in_neither_mode",
        || {
            suite();
            Ok(())
        },
    )];
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}

fn suite() {
    let _vm = vm_lock();
    let host = HostBait::new();
    let root = Root::empty();
    import_probe_image(&root);
    let mut table = Vec::new();
    for mode in [Isolation::Process, Isolation::Vm] {
        let rows = run_probe(&root, mode, &host);
        table.extend(rows.into_iter().map(|row| (mode, row)));
    }
    let flood = console_flood(&root);
    if let Ok(row) = &flood {
        table.push((Isolation::Vm, row.clone()));
    }
    print_table(&table);
    if let Err(e) = flood {
        panic!("{e}");
    }
    let escaped: Vec<String> = table
        .iter()
        .filter(|(_, row)| row.outcome == Outcome::Escaped)
        .map(|(mode, row)| format!("{} ({}): {}", row.attempt, mode.name(), row.detail))
        .collect();
    assert!(escaped.is_empty(), "escaped:\n{}", escaped.join("\n"));
}

/// What the host offers to be found: a process outside every container and a file with a secret.
struct HostBait {
    sleeper: Child,
    marker: tempfile::NamedTempFile,
    secret: String,
}

impl HostBait {
    fn new() -> HostBait {
        let sleeper = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        let secret = format!(
            "bulkhead-hostile-marker-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let mut marker = tempfile::Builder::new()
            .prefix("bh-hostile-marker-")
            .tempfile()
            .expect("marker file");
        marker.write_all(secret.as_bytes()).expect("writing marker");
        HostBait {
            sleeper,
            marker,
            secret,
        }
    }

    /// `-e` options that tell the probe where to look.
    fn env(&self) -> Vec<String> {
        let disks: Vec<String> = ["/", self.marker.path().to_str().unwrap()]
            .iter()
            .filter_map(|p| nix::sys::stat::stat(*p).ok())
            .map(|st| {
                let dev = st.st_dev;
                format!(
                    "{}:{}",
                    nix::sys::stat::major(dev),
                    nix::sys::stat::minor(dev)
                )
            })
            .collect();
        [
            (env::HOST_PID, self.sleeper.id().to_string()),
            (env::HOST_PID_CMDLINE, "sleep 600".to_string()),
            (env::HOST_DISKS, disks.join(",")),
            (env::MARKER_PATH, self.marker.path().display().to_string()),
            (env::MARKER_TEXT, self.secret.clone()),
        ]
        .into_iter()
        .flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")])
        .collect()
    }
}

impl Drop for HostBait {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

/// Busybox, the probe, and device nodes in a layer of their own (char and block, see IMAGE_DEVICES).
fn import_probe_image(root: &Root) {
    let probe = std::fs::read(std::env::current_exe().expect("own path")).expect("own binary");
    let mut layer = LayerBuilder::new();
    layer
        .file(PROBE.trim_start_matches('/'), &probe, 0o755)
        .dir("hostile/", 0o755);
    for device in &IMAGE_DEVICES {
        let path = device.path.trim_start_matches('/');
        if device.block {
            layer.blockdev(path, device.major, device.minor);
        } else {
            layer.chardev(path, device.major, device.minor);
        }
    }
    // Uncompressed: gzip of a 20 MiB debug binary would cost more than it saves.
    let media = "application/vnd.oci.image.layer.v1.tar";
    let layers = [
        Layer::new(&busybox_layer(), media),
        Layer::new(&layer.finish(), media),
    ];
    let dir = tempfile::tempdir().expect("layout dir");
    write_layout(dir.path(), Some(IMAGE), &[Platform::amd64(&layers)]);
    root.ok(&["image", "import", dir.path().to_str().unwrap()]);
}

/// One default container (root, no extra flags) running every attempt; its rows, each attempt once.
fn run_probe(root: &Root, mode: Isolation, host: &HostBait) -> Vec<Row> {
    let env = host.env();
    let mut args = vec!["run", "--rm", mode.flag()];
    args.extend(env.iter().map(String::as_str));
    args.extend([IMAGE, PROBE]);
    let out = root.bh(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe in {} failed: {:?}\n{stdout}\n{}",
        mode.name(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Row> = stdout.lines().filter_map(Row::parse).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.attempt.as_str()).collect();
    let expected: Vec<&str> = ATTEMPTS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        expected,
        "{} made other attempts:\n{stdout}",
        mode.name()
    );
    rows
}

/// A privileged container in a VM (privileged only inside its own kernel) that floods the guest's
/// serial console; the host's log of that console must stay under its cap. Watched while it runs and
/// after, since QEMU may be stopped by the cap. An error if the flood never reached the log.
fn console_flood(root: &Root) -> Result<Row, String> {
    let bytes = FLOOD_BYTES.to_string();
    let id = root
        .ok(&[
            "create",
            "--isolation=vm",
            "--privileged",
            IMAGE,
            PROBE,
            "--flood-console",
            &bytes,
        ])
        .trim()
        .to_string();
    let run_dir = common::host::run_dir(&id);
    let logs = [run_dir.join("console.log"), run_dir.join("console.log.1")];
    let kept = || logs.iter().map(|log| file_size(log)).sum::<u64>();
    root.ok(&["start", &id]);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut largest = 0;
    loop {
        largest = largest.max(kept());
        let status = root.inspect(&id)["State"]["Status"].clone();
        if status != "running" && status != "created" || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    largest = largest.max(kept());
    let output = root.bh(&["logs", &id]);
    let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    root.ok(&["rm", "-f", &id]);
    if largest < FLOOD_ARRIVED {
        return Err(format!(
            "the console flood never reached {} ({largest} bytes): {said}",
            logs[0].display()
        ));
    }
    let detail = format!("host log reached {largest} bytes of {FLOOD_BYTES} written ({said})");
    Ok(if largest > CONSOLE_LOG_CAP {
        Row::escaped("console-flood", detail)
    } else {
        Row::blocked("console-flood", detail)
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn print_table(table: &[(Isolation, Row)]) {
    let width = table
        .iter()
        .map(|(_, row)| row.attempt.len())
        .max()
        .unwrap_or(0);
    println!("{:width$} | MODE    | RESULT  | DETAIL", "ATTEMPT");
    for (mode, row) in table {
        println!(
            "{:width$} | {:7} | {:7} | {}",
            row.attempt,
            mode.name(),
            row.outcome.to_string(),
            row.detail
        );
    }
}

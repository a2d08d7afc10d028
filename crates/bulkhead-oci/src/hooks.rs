//! The bundle's hooks, run by the runtime on the host as runc runs them: `prestart` and
//! `createRuntime` at the end of `create`, `poststart` after `start`, `poststop` at `delete`. Each gets
//! the container's state as JSON on stdin and ends within its timeout. A failing `prestart`,
//! `createRuntime` or `poststart` hook fails the command (and `create` leaves nothing behind); a failing
//! `poststop` hook is logged, as runc does. `createContainer` and `startContainer` run inside the
//! container's namespaces in runc; bulkhead refuses bundles that have them (the container may be in a VM).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The default when a hook sets no timeout: long enough for a CNI plugin, bounded all the same.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

pub enum Phase {
    Create,
    Poststart,
    Poststop,
}

/// Refuses hooks bulkhead cannot run where runc runs them.
pub fn check(hooks: Option<&Hooks>) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let inside = [
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
    ];
    for (name, list) in inside {
        if list.as_ref().is_some_and(|l| !l.is_empty()) {
            bail!(
                "{name} hooks are not supported: runc runs them inside the container's namespaces, \
                 which a VM container keeps in its guest"
            );
        }
    }
    Ok(())
}

pub fn run(hooks: Option<&Hooks>, phase: Phase, state: &[u8]) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let lists: Vec<(&str, &Option<Vec<Hook>>)> = match phase {
        #[allow(deprecated)]
        Phase::Create => vec![
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
        ],
        Phase::Poststart => vec![("poststart", hooks.poststart())],
        Phase::Poststop => vec![("poststop", hooks.poststop())],
    };
    for (name, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            run_one(hook, state).with_context(|| format!("{name} hook #{i} failed"))?;
        }
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<()> {
    let path = hook.path();
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args() {
        // runc passes args as the whole argv, argv[0] included.
        if let Some((first, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        if let Some((k, v)) = entry.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state still runs.
        let _ = stdin.write_all(state);
    }
    let timeout = hook
        .timeout()
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("{} {status}: {}", path.display(), err.trim());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} timed out after {timeout:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

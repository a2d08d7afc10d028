//! What other users of the host can reach of a bulkhead root (process mode): owner-only directories and
//! state files, logs without world access, `nosuid,nodev` host-side mounts of container content, and
//! monitor sockets that serve root and their own user only. The escape these close: a container makes a
//! setuid-root file and an unprivileged host user runs it through the host path of the container's
//! rootfs.

mod common;

use common::host::run_dir;
use common::{stderr, stdout, Root, IMAGE};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const NOBODY: &str = "65534";

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs the shell command `script` as uid/gid 65534 without supplementary groups. Through `sh`, as a
/// local user would: setpriv looks its own program up before it drops root.
fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .output()
        .expect("running setpriv")
}

/// Per-mount options (field 6) of the mount table lines whose mount point lies below `dir`.
fn mount_options_below(dir: &Path) -> Vec<(String, String)> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let (point, options) = (fields.get(4)?, fields.get(5)?);
            point
                .starts_with(&prefix)
                .then(|| (point.to_string(), options.to_string()))
        })
        .collect()
}

#[test]
fn host_users_reach_nothing_of_a_root() {
    let r = Root::new();
    let id = r.detached(&[
        "--name",
        "c",
        "--privileged",
        "-e",
        "SECRET=hunter2",
        IMAGE,
        "sleep",
        "1000",
    ]);
    // The container makes a setuid-root busybox (named so, as busybox picks its applet by name), and
    // tells busybox to keep euid 0 for `id`.
    r.ok(&[
        "exec",
        "c",
        "sh",
        "-c",
        "mkdir /suid && cp /bin/busybox /suid/busybox && chmod 4755 /suid/busybox \
         && printf '[SUID]\\nid = ssx 0.0\\n' > /etc/busybox.conf",
    ]);

    // Inside the container setuid still works, as under docker: a non-root user gets euid 0.
    let inside = r.ok(&["exec", "--user", "1000", "c", "/suid/busybox", "id"]);
    assert!(
        inside.contains("uid=1000") && inside.contains("euid=0"),
        "setuid inside the container: {inside}"
    );

    let root = r.path();
    let containers = root.join("containers");
    let dir = containers.join(&id);
    let mnt = dir.join("mnt");
    let suid_bb = mnt.join("rootfs/suid/busybox");
    assert_eq!(mode(&suid_bb), 0o4755);

    // An unprivileged host user cannot even reach it.
    let out = as_nobody(&format!("{} id", suid_bb.display()));
    assert!(
        !out.status.success(),
        "nobody ran {}: {}",
        suid_bb.display(),
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "nobody running {}: {}",
        suid_bb.display(),
        stderr(&out)
    );

    // Modes of everything a host user could read.
    for (path, want) in [
        (root.to_path_buf(), 0o700),
        (containers.clone(), 0o700),
        (dir.clone(), 0o700),
        (dir.join("config.json"), 0o600),
        (dir.join("state.json"), 0o600),
        (dir.join("container.log"), 0o640),
        (dir.join("monitor.log"), 0o640),
        (run_dir(&id), 0o700),
        (run_dir(&id).join("monitor.sock"), 0o600),
        (Path::new("/run/bulkhead").to_path_buf(), 0o700),
    ] {
        assert_eq!(mode(&path), want, "mode of {}", path.display());
    }
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("hunter2"), "the secret is in config.json");

    // Every host-side mount of the container's content is nosuid,nodev.
    // The image's erofs is one mount shared by its containers, under the root's `lowers/`.
    let mut mounts = mount_options_below(&mnt);
    let points: Vec<&str> = mounts.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(mounts.len(), 2, "rw and rootfs: {points:?}");
    let lowers = mount_options_below(&root.join("lowers"));
    assert_eq!(lowers.len(), 1, "the image's shared lower: {lowers:?}");
    mounts.extend(lowers);
    for (point, options) in &mounts {
        let options: Vec<&str> = options.split(',').collect();
        assert!(
            options.contains(&"nosuid") && options.contains(&"nodev"),
            "{point} is mounted {options:?}"
        );
    }

    // Defense in depth: with the directories opened by hand, a setuid-root file there still gives a
    // host user no root. coreutils' `id` (which, unlike busybox, never drops privileges itself)
    // reports the effective uid.
    let host_id = mnt.join("rootfs/host-id");
    std::fs::copy("/usr/bin/id", &host_id).unwrap();
    r.ok(&["exec", "c", "chmod", "4755", "/host-id"]);
    for d in [root, &containers, &dir, &mnt] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = as_nobody(&format!("{} -u", host_id.display()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), NOBODY, "nosuid on the host-side mount");

    // The peer-credential check: with the socket opened up by hand and reached through a leaked
    // descriptor, another user is refused by the monitor, with a reason.
    let sock = run_dir(&id).join("monitor.sock");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = connect_as_nobody(&sock);
    assert!(
        answer.contains("permission denied: uid 65534"),
        "the monitor's answer to uid 65534: {answer:?}"
    );
    r.ok(&["logs", "c"]);
}

/// Connects to the unix socket `path` from a child running as uid/gid 65534 and returns what the peer
/// sends until it closes the connection (lossy UTF-8). The child reaches the socket through an `O_PATH`
/// descriptor opened before it dropped root, as if one had leaked to it: the directories above the
/// socket would refuse it otherwise.
fn connect_as_nobody(path: &Path) -> String {
    use nix::fcntl::{open, OFlag};
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use nix::sys::stat::Mode;
    let leaked = open(path, OFlag::O_PATH, Mode::empty()).unwrap();
    let addr = UnixAddr::new(format!("/proc/self/fd/{leaked}").as_str()).unwrap();
    let (rx, tx) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only makes system calls (no allocation, no locks) and leaves with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let id = nix::unistd::Uid::from_raw(65534);
            let gid = nix::unistd::Gid::from_raw(65534);
            let ok = nix::unistd::setgroups(&[]).is_ok()
                && nix::unistd::setgid(gid).is_ok()
                && nix::unistd::setuid(id).is_ok();
            if ok {
                if let Ok(s) = socket(
                    AddressFamily::Unix,
                    SockType::Stream,
                    SockFlag::empty(),
                    None,
                ) {
                    // A monitor that wrongly accepted would wait for our Hello: do not hang on it.
                    let limit = nix::sys::time::TimeVal::new(10, 0);
                    let _ = nix::sys::socket::setsockopt(
                        &s,
                        nix::sys::socket::sockopt::ReceiveTimeout,
                        &limit,
                    );
                    if connect(s.as_raw_fd(), &addr).is_ok() {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = nix::unistd::read(s.as_raw_fd(), &mut buf) {
                            if n == 0 || nix::unistd::write(&tx, &buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(tx);
            nix::unistd::close(leaked).unwrap();
            let mut answer = Vec::new();
            std::fs::File::from(rx).read_to_end(&mut answer).unwrap();
            nix::sys::wait::waitpid(child, None).unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }
    }
}

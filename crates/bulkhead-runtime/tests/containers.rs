//! End-to-end tests as root against real kernels features: a busybox image as an erofs
//! lower layer plus an ext4 writable disk, assembled with `rootfs`, then containers.
//!
//! `spawn`/`exec` require a single-threaded caller, so this file has its own sequential
//! runner (`harness = false`). Run one test with `cargo test --test containers -- NAME`.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_runtime::{
    cgroups, exit_code, rootfs, spawn, ContainerSpec, IdMap, MountSpec, NamespaceKind,
    NamespacePath, NetworkMode, ProcessSpec, Resources, RuntimeError, SecuritySpec, Stdio,
    Workload,
};
use nix::sys::wait::waitpid;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nstaff:x:50:user\n";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A busybox image (erofs) shared by all tests.
struct Image {
    dir: tempfile::TempDir,
    erofs: PathBuf,
}

fn build_image() -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
        "mnt",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    fs::write(root.join("etc/group"), GROUP).unwrap();
    fs::write(root.join("etc/data.txt"), "not a program\n").unwrap();
    Command::new("chown")
        .args(["1000:1000"])
        .arg(root.join("home/user"))
        .status()
        .unwrap();
    Command::new("chmod")
        .arg("1777")
        .arg(root.join("tmp"))
        .status()
        .unwrap();
    let erofs = dir.path().join("image.erofs");
    let out = Command::new("mkfs.erofs")
        .arg(&erofs)
        .arg(&root)
        .output()
        .expect("mkfs.erofs");
    assert!(out.status.success(), "mkfs.erofs: {out:?}");
    Image { dir, erofs }
}

/// One container's root: the image plus a fresh writable disk, assembled.
struct Rootfs {
    dir: PathBuf,
    rootfs: PathBuf,
    loops: Vec<PathBuf>,
}

impl Rootfs {
    fn new(image: &Image) -> Rootfs {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = image.dir.path().join(format!("c{n}"));
        fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("rw.ext4");
        rootfs::create_writable_disk(&disk, 64 << 20).expect("writable disk");
        let lower = rootfs::attach_loop(&image.erofs, true).expect("loop lower");
        let upper = rootfs::attach_loop(&disk, false).expect("loop upper");
        let mnt = dir.join("mnt");
        let rootfs = rootfs::assemble(lower.path(), upper.path(), &mnt).expect("assemble");
        let loops = vec![lower.path().to_path_buf(), upper.path().to_path_buf()];
        Rootfs {
            dir: mnt,
            rootfs,
            loops,
        }
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        rootfs::disassemble(&self.dir).expect("disassemble");
    }
}

fn spec(root: &Rootfs, args: &[&str]) -> ContainerSpec {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let id = format!("t{}-{n}", std::process::id());
    ContainerSpec {
        id: id.clone(),
        rootfs: root.rootfs.clone(),
        workload: Workload {
            process: ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into(), "FOO=bar".into()],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
                rlimits: vec![],
                console_size: None,
            },
            hostname: "testhost".into(),
            readonly_rootfs: false,
            mounts: vec![],
            network: NetworkMode::None,
            userns: None,
            security: SecuritySpec::default(),
            resources: Resources::default(),
            sysctls: Default::default(),
            join_namespaces: Vec::new(),
        },
        cgroup_name: format!("bulkhead-test/{id}"),
        etc_hosts: "127.0.0.1 localhost testhost\n".into(),
        resolv_conf: "nameserver 192.0.2.1\n".into(),
        root_share: false,
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
    oom: bool,
}

fn pipes() -> (OwnedFd, OwnedFd, OwnedFd, OwnedFd, Stdio) {
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let stdio = Stdio::Pipes {
        stdin: None,
        stdout: out_w.try_clone().unwrap(),
        stderr: err_w.try_clone().unwrap(),
    };
    (out_r, out_w, err_r, err_w, stdio)
}

/// Runs a container to completion, returning its output; the cgroup is destroyed.
fn run(spec: &ContainerSpec) -> Result<Output, RuntimeError> {
    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    drop((out_w, err_w));
    let container = spawn(spec, stdio)?;
    let stdout = read_all(out_r);
    let stderr = read_all(err_r);
    let status = waitpid(container.pid, None).unwrap();
    let oom = container.oom_killed();
    container.destroy().expect("destroy");
    Ok(Output {
        code: exit_code(status),
        stdout,
        stderr,
        oom,
    })
}

fn run_ok(spec: &ContainerSpec) -> Output {
    run(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

fn sh(root: &Rootfs, script: &str) -> ContainerSpec {
    spec(root, &["sh", "-c", script])
}

fn output_exit_code_env(image: &Image) {
    let root = Rootfs::new(image);
    let out = run_ok(&sh(&root, "echo hello; echo $FOO; echo err >&2; exit 3"));
    assert_eq!(out.stdout, "hello\nbar\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.code, 3);
    // Killed from outside (init ignores even SIGKILL sent from inside its namespace).
    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    let container = spawn(&spec(&root, &["sleep", "30"]), stdio).unwrap();
    drop((out_w, err_w, out_r, err_r));
    container.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(exit_code(waitpid(container.pid, None).unwrap()), 137);
    container.destroy().unwrap();
}

fn identity_and_files(image: &Image) {
    let root = Rootfs::new(image);
    let out = run_ok(&sh(
        &root,
        "hostname; echo $$; cat /etc/hostname /etc/hosts /etc/resolv.conf; echo $HOME",
    ));
    assert_eq!(
        out.stdout,
        "testhost\n1\ntesthost\n127.0.0.1 localhost testhost\nnameserver 192.0.2.1\n/root\n"
    );
    // Those files are mounts in the container, as in docker: the rootfs (the writable layer's empty
    // mount points) is not written, and no staged copy is left in /dev.
    let out = run_ok(&sh(
        &root,
        "grep -c ' /etc/hosts ' /proc/self/mountinfo; ls -a /dev | grep -c etc- || true",
    ));
    assert_eq!(out.stdout, "1\n0\n");
    for name in ["hostname", "hosts", "resolv.conf"] {
        let on_disk = fs::read_to_string(root.rootfs.join("etc").join(name)).unwrap();
        assert_eq!(on_disk, "", "/etc/{name} in the rootfs");
    }
    let mut s = sh(&root, "id -u; id -g; id -G; echo $HOME");
    s.workload.process.user = "user".into();
    assert_eq!(run_ok(&s).stdout, "1000\n1000\n1000 50\n/home/user\n");
    s.workload.process.user = "1000:root".into();
    assert_eq!(run_ok(&s).stdout, "1000\n0\n0\n/home/user\n");
    s.workload.process.user = "4242".into();
    assert_eq!(run_ok(&s).stdout, "4242\n0\n0\n/\n");
    s.workload.process.user = "nobody".into();
    let err = run(&s).err().expect("unknown user must fail");
    assert!(matches!(err, RuntimeError::UnknownUser { .. }), "{err}");
    assert_eq!(err.exit_code_hint(), 125);
}

fn start_failures(image: &Image) {
    let root = Rootfs::new(image);
    let err = run(&spec(&root, &["no-such-command"]))
        .err()
        .expect("not found");
    assert_eq!(err.exit_code_hint(), 127, "{err}");
    let err = run(&spec(&root, &["/etc/data.txt"]))
        .err()
        .expect("not executable");
    assert_eq!(err.exit_code_hint(), 126, "{err}");
    let mut s = spec(&root, &["pwd"]);
    s.workload.process.cwd = "/etc/data.txt".into();
    let err = run(&s).err().expect("bad cwd");
    assert!(matches!(err, RuntimeError::BadCwd { .. }), "{err}");
    s.workload.process.cwd = "/work/dir".into();
    s.workload.process.user = "user".into();
    assert_eq!(run_ok(&s).stdout, "/work/dir\n");
}

fn isolation_of_mounts_and_fds(image: &Image) {
    let root = Rootfs::new(image);
    // A descriptor the test process leaks on purpose (not close-on-exec).
    let leak = fs::File::open("/etc/hostname").unwrap();
    let leaked = nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(&leak)).unwrap();
    let out = run_ok(&sh(&root, "ls /proc/self/fd"));
    nix::unistd::close(leaked).unwrap();
    // 0-2, plus the directory ls is reading.
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );

    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    let mut s = spec(&root, &["sh", "-c", "echo ready; sleep 30"]);
    s.workload.mounts.push(MountSpec::Tmpfs {
        target: "/scratch".into(),
        options: "size=1m".into(),
    });
    let container = spawn(&s, stdio).unwrap();
    drop((out_w, err_w));
    let mut buf = [0u8; 6];
    fs::File::from(out_r.try_clone().unwrap())
        .read_exact(&mut buf)
        .unwrap();
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = format!("{}/", root.rootfs.display());
    assert!(
        !host_mounts.contains(&prefix),
        "container mounts leaked to the host: {host_mounts}"
    );
    container.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    waitpid(container.pid, None).unwrap();
    container.destroy().unwrap();
    drop((out_r, err_r));
}

fn hostile_actions_fail(image: &Image) {
    let root = Rootfs::new(image);
    let attempts = [
        "mount -t tmpfs none /mnt",
        "unshare -U true",
        "unshare -r true",
        "unshare -m true",
        "reboot -f",
        "insmod /bin/busybox",
        "echo 1 > /proc/sys/kernel/ns_last_pid",
        "echo 1 > /proc/sysrq-trigger",
        "echo x > /sys/kernel/uevent_helper",
        "test -s /proc/kcore || exit 1; head -c 1 /proc/kcore",
        "test -s /proc/keys || exit 1",
        "ls /sys/firmware | grep -q . || exit 1",
        "hostname evil",
        "mknod /dev/null2 c 1 3 && echo x > /dev/null2",
        "mknod /tmp/null2 c 1 3 && echo x > /tmp/null2",
        "mknod /data/null2 c 1 3 && echo x > /data/null2",
    ];
    let shared = image
        .dir
        .path()
        .join(format!("dev{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    fs::create_dir_all(&shared).unwrap();
    for attempt in attempts {
        let mut s = sh(&root, attempt);
        s.workload.mounts.push(MountSpec::Bind {
            source: shared.clone(),
            target: "/data".into(),
            readonly: false,
        });
        let out = run_ok(&s);
        assert_ne!(out.code, 0, "{attempt:?} succeeded: {}", out.stdout);
    }
    let mut s = sh(&root, "cat /proc/1/environ");
    s.workload.process.user = "user".into();
    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    let init = spawn(&spec(&root, &["sleep", "30"]), stdio).unwrap();
    drop((out_w, err_w, out_r, err_r));
    let (o_r, o_w, e_r, e_w, stdio) = pipes();
    let p = init.exec(&s, &s.workload.process, stdio).unwrap();
    drop((o_w, e_w));
    let (out, err) = (read_all(o_r), read_all(e_r));
    let status = waitpid(p.pid, None).unwrap();
    assert_ne!(
        exit_code(status),
        0,
        "user read /proc/1/environ: {out}{err}"
    );
    init.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    waitpid(init.pid, None).unwrap();
    init.destroy().unwrap();
}

fn readonly_rootfs_and_mounts(image: &Image) {
    let root = Rootfs::new(image);
    let shared = image
        .dir
        .path()
        .join(format!("shared{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("in"), "from host\n").unwrap();
    let mut s = sh(
        &root,
        "cat /data/in; echo w > /rw/out; echo t > /scratch/t && cat /scratch/t; touch /x || echo rofs; echo n > /ro/n || echo robind",
    );
    s.workload.readonly_rootfs = true;
    s.workload.mounts = vec![
        MountSpec::Bind {
            source: shared.clone(),
            target: "/data".into(),
            readonly: false,
        },
        MountSpec::Bind {
            source: shared.clone(),
            target: "/rw".into(),
            readonly: false,
        },
        MountSpec::Bind {
            source: shared.clone(),
            target: "/ro".into(),
            readonly: true,
        },
        MountSpec::Tmpfs {
            target: "/scratch".into(),
            options: "size=1m".into(),
        },
    ];
    let out = run_ok(&s);
    assert_eq!(out.stdout, "from host\nt\nrofs\nrobind\n", "{}", out.stderr);
    assert_eq!(fs::read_to_string(shared.join("out")).unwrap(), "w\n");
    assert!(!shared.join("n").exists());
}

fn privileged_is_unconfined(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = sh(
        &root,
        "mount -t tmpfs none /mnt && echo mounted; grep CapEff /proc/self/status",
    );
    s.workload.security.privileged = true;
    let out = run_ok(&s);
    assert!(
        out.stdout.starts_with("mounted\n"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let mut s = sh(&root, "grep CapBnd /proc/self/status");
    s.workload.security.cap_drop = vec!["ALL".into()];
    s.workload.security.cap_add = vec!["CHOWN".into()];
    assert_eq!(run_ok(&s).stdout, "CapBnd:\t0000000000000001\n");
}

fn memory_hog_is_oom_killed(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = spec(
        &root,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
    );
    s.workload.resources.memory_bytes = Some(32 << 20);
    let out = run_ok(&s);
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert!(out.oom, "OOM kill not reported");
}

fn fork_bomb_is_capped(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = sh(
        &root,
        "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); echo $i; done; wait",
    );
    s.workload.resources.pids_limit = Some(10);
    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    let container = spawn(&s, stdio).unwrap();
    drop((out_w, err_w));
    let cg = match cgroups::version() {
        cgroups::CgroupVersion::V1 => PathBuf::from("/sys/fs/cgroup/pids").join(&s.cgroup_name),
        cgroups::CgroupVersion::V2 => PathBuf::from("/sys/fs/cgroup").join(&s.cgroup_name),
    };
    let max: u64 = fs::read_to_string(cg.join("pids.max"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(max, 10);
    let (stdout, stderr) = (read_all(out_r), read_all(err_r));
    waitpid(container.pid, None).unwrap();
    container.destroy().unwrap();
    // The shell counts the sleeps it started; it stops at the first failing fork.
    let started: u32 = stdout
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!((1..10).contains(&started), "{stdout}{stderr}");
    assert!(stderr.contains("fork"), "{stderr}");
    assert!(!cg.exists(), "cgroup left after destroy");
}

fn exec_joins_the_container(image: &Image) {
    let root = Rootfs::new(image);
    let (out_r, out_w, err_r, err_w, stdio) = pipes();
    let s = spec(&root, &["sleep", "30"]);
    let init = spawn(&s, stdio).unwrap();
    drop((out_w, err_w, out_r, err_r));
    let mut process = s.workload.process.clone();
    process.args = [
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'; id -u",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    process.user = "user".into();
    let (o_r, o_w, e_r, e_w, stdio) = pipes();
    let p = init.exec(&s, &process, stdio).unwrap();
    drop((o_w, e_w));
    let (out, err) = (read_all(o_r), read_all(e_r));
    assert_eq!(exit_code(waitpid(p.pid, None).unwrap()), 0, "{err}");
    // sleep (pid 1), sh, ls, grep: only the container's processes are visible.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "testhost");
    assert_eq!(lines[1], "sleep\u{0}30\u{0}");
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{out}");
    assert_eq!(lines[3], "1000");

    process.args = vec!["no-such".into()];
    let (_o_r, o_w, _e_r, e_w, stdio) = pipes();
    drop((o_w, e_w));
    let err = init
        .exec(&s, &process, stdio)
        .expect_err("exec of a missing command");
    assert_eq!(err.exit_code_hint(), 127, "{err}");

    process.args = ["sh", "-c", "tty"].iter().map(|a| a.to_string()).collect();
    process.terminal = true;
    let p = init.exec(&s, &process, Stdio::Pty).unwrap();
    let out = read_pty(p.pty_master.expect("pty master"));
    waitpid(p.pid, None).unwrap();
    assert!(out.starts_with("/dev/pts/"), "{out}");

    init.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    waitpid(init.pid, None).unwrap();
    init.destroy().unwrap();
}

/// Reads a pty master until the slave side is gone (EIO).
fn read_pty(master: OwnedFd) -> String {
    let mut f = fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pty_gives_a_terminal(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = sh(
        &root,
        "tty; test -t 0 && echo isatty; ls -l /dev/console | grep -c c",
    );
    s.workload.process.terminal = true;
    let container = spawn(&s, Stdio::Pty).unwrap();
    let master = container.pty_master.as_ref().unwrap().try_clone().unwrap();
    bulkhead_runtime::resize_pty(master.as_fd(), 40, 100).unwrap();
    let out = read_pty(master);
    waitpid(container.pid, None).unwrap();
    container.destroy().unwrap();
    assert_eq!(out.replace('\r', ""), "/dev/pts/0\nisatty\n1\n");
}

fn user_namespace(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = sh(
        &root,
        "id -u; cat /proc/self/uid_map; echo ok > /dev/null && echo devnull",
    );
    s.workload.userns = Some(IdMap {
        host_uid: 100000,
        host_gid: 100000,
        size: 65536,
    });
    let out = run_ok(&s);
    let normalized: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        normalized,
        ["0", "0 100000 65536", "devnull"],
        "{}",
        out.stderr
    );
}

fn cleanup_after_everything(image: &Image) {
    let root = Rootfs::new(image);
    let loops = root.loops.clone();
    let out = run_ok(&sh(&root, "true"));
    assert_eq!(out.code, 0);
    let cgroup_name = "bulkhead-test/cleanup";
    cgroups::cleanup(cgroup_name).unwrap();
    let rootfs_dir = root.dir.clone();
    drop(root);
    assert!(!rootfs_dir.join("rootfs").exists());
    for dev in loops {
        let name = dev.file_name().unwrap().to_string_lossy().into_owned();
        let backing = Path::new("/sys/block").join(name).join("loop/backing_file");
        assert!(!backing.exists(), "{} still attached", dev.display());
    }
}

/// Kernel parameters land in the container's namespaces only; those of the host are refused by name.
fn sysctls(image: &Image) {
    let root = Rootfs::new(image);
    let host_shmmax = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_port = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let mut s = sh(
        &root,
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start \
         /proc/sys/kernel/domainname /proc/sys/fs/mqueue/msg_max",
    );
    s.workload.sysctls = [
        ("kernel.shmmax", "123456789"),
        ("net/ipv4/ip_unprivileged_port_start", "99"),
        ("kernel.domainname", "example.org"),
        ("fs.mqueue.msg_max", "20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let out = run_ok(&s);
    assert_eq!(
        out.stdout, "123456789\n99\nexample.org\n20\n",
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port
    );
    let refused = |sysctl: &str, tweak: &dyn Fn(&mut ContainerSpec)| {
        let mut s = sh(&root, "true");
        s.workload.sysctls = [(sysctl.to_string(), "1".to_string())].into();
        tweak(&mut s);
        let err = run(&s).err().expect("sysctl must be refused").to_string();
        assert!(err.contains(&format!("sysctl {sysctl:?}")), "{err}");
        err
    };
    let err = refused("vm.swappiness", &|_| {});
    assert!(err.contains("not in a separate kernel namespace"), "{err}");
    refused("kernel.hostname", &|_| {});
    let err = refused("net.ipv4.ip_forward", &|s| {
        s.workload.network = NetworkMode::Host
    });
    assert!(err.contains("shares this namespace with the host"), "{err}");
    refused("kernel.shmmni", &|s| {
        s.workload.join_namespaces = vec![NamespacePath {
            kind: NamespaceKind::Ipc,
            path: "/proc/self/ns/ipc".into(),
        }]
    });
    refused("kernel.msgmax/../../x", &|_| {});
}

/// A process holding new IPC and UTS namespaces, as the OCI front end's relay does; killed on drop.
struct NamespaceHolder(std::process::Child);

impl NamespaceHolder {
    fn new() -> NamespaceHolder {
        let child = Command::new("unshare")
            .args([
                "--ipc",
                "--uts",
                "sh",
                "-c",
                "hostname podhost; exec sleep 60",
            ])
            .spawn()
            .expect("unshare (util-linux)");
        let holder = NamespaceHolder(child);
        // Wait until it runs sleep in its namespaces, with its hostname set.
        for _ in 0..200 {
            let comm = fs::read_to_string(format!("/proc/{}/comm", holder.pid())).unwrap();
            if comm == "sleep\n" {
                return holder;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the namespace holder never started");
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn ns(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{name}", self.pid()))
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// IPC and UTS namespaces given by path are joined (not unshared), and the caller stays in its own.
fn joined_namespaces(image: &Image) {
    let root = Rootfs::new(image);
    let holder = NamespaceHolder::new();
    let ours = |name: &str| fs::read_link(format!("/proc/self/ns/{name}")).unwrap();
    let before = (ours("ipc"), ours("uts"));
    let mut s = sh(
        &root,
        "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; cat /proc/sys/kernel/shmmni",
    );
    s.workload.hostname = String::new();
    s.workload.join_namespaces = vec![
        NamespacePath {
            kind: NamespaceKind::Ipc,
            path: holder.ns("ipc"),
        },
        NamespacePath {
            kind: NamespaceKind::Uts,
            path: holder.ns("uts"),
        },
    ];
    s.workload.sysctls = [("kernel.shmmni".to_string(), "1234".to_string())].into();
    let out = run_ok(&s);
    let expected = format!(
        "podhost\n{}\n{}\n1234\n",
        fs::read_link(holder.ns("ipc")).unwrap().display(),
        fs::read_link(holder.ns("uts")).unwrap().display()
    );
    assert_eq!(out.stdout, expected, "{}", out.stderr);
    assert_eq!((ours("ipc"), ours("uts")), before);
    // The container's hostname is set in the namespace it joined.
    s.workload.hostname = "fromspec".into();
    s.workload.sysctls.clear();
    assert!(run_ok(&s).stdout.starts_with("fromspec\n"));
    let holder_hostname = Command::new("nsenter")
        .arg(format!("--uts={}", holder.ns("uts").display()))
        .arg("hostname")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&holder_hostname.stdout),
        "fromspec\n"
    );
    // A path that is no namespace, or one of another kind, fails before anything runs.
    s.workload.join_namespaces[0].path = "/etc/hostname".into();
    let err = run(&s).err().expect("not a namespace").to_string();
    assert!(
        err.contains("joining the ipc namespace /etc/hostname"),
        "{err}"
    );
    s.workload.join_namespaces[0].path = holder.ns("uts");
    assert!(run(&s).is_err());
    assert_eq!((ours("ipc"), ours("uts")), before);
    // The caller's own (an OCI spec without an ipc entry: the host's).
    let mut s = sh(&root, "readlink /proc/self/ns/ipc");
    s.workload.join_namespaces = vec![NamespacePath {
        kind: NamespaceKind::Ipc,
        path: "/proc/self/ns/ipc".into(),
    }];
    assert_eq!(run_ok(&s).stdout, format!("{}\n", before.0.display()));
}

/// Masked and read-only paths given by the spec replace docker's lists.
fn masked_and_readonly_paths(image: &Image) {
    let root = Rootfs::new(image);
    let script = "cat /etc/data.txt; ls /home | wc -l; touch /tmp/x 2>/dev/null || echo rotmp; \
                  grep -c -E ' /proc/(keys|sys) ' /proc/self/mountinfo";
    let mut s = sh(&root, script);
    let out = run_ok(&s);
    assert_eq!(out.stdout, "not a program\n1\n2\n", "{}", out.stderr);
    s.workload.security.masked_paths = Some(vec!["/etc/data.txt".into(), "/home".into()]);
    s.workload.security.readonly_paths = Some(vec!["/tmp".into(), "/no/such/path".into()]);
    let out = run_ok(&s);
    assert_eq!(out.stdout, "0\nrotmp\n0\n", "{}", out.stderr);
    s.workload.security.masked_paths = Some(vec!["relative".into()]);
    let err = run(&s).err().expect("relative path").to_string();
    assert!(err.contains("\"relative\" is not absolute"), "{err}");
}

/// An OCI user (`uid:gid:groups`) and binds of single files (as CRI makes for /etc/hosts).
fn oci_user_and_file_binds(image: &Image) {
    let root = Rootfs::new(image);
    let files = image
        .dir
        .path()
        .join(format!("files{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("hosts"), "10.0.0.1 pod\n").unwrap();
    fs::write(files.join("log"), "").unwrap();
    // Written by the container's user 1000.
    fs::set_permissions(
        files.join("log"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let mut s = sh(
        &root,
        "id -u; id -g; id -G; echo $HOME; cat /etc/hosts; echo x > /dev/termination-log; \
         echo y > /etc/hosts || echo ro",
    );
    s.workload.process.user = "1000:1000:50,60".into();
    s.workload.mounts = vec![
        MountSpec::Bind {
            source: files.join("hosts"),
            target: "/etc/hosts".into(),
            readonly: true,
        },
        MountSpec::Bind {
            source: files.join("log"),
            target: "/dev/termination-log".into(),
            readonly: false,
        },
    ];
    let out = run_ok(&s);
    assert_eq!(
        out.stdout, "1000\n1000\n1000 50 60\n/home/user\n10.0.0.1 pod\nro\n",
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(files.join("log")).unwrap(), "x\n");
}

/// A tmpfs with `tmpcopyup` (podman's) starts with the directory's content, owners and modes kept.
fn tmpfs_copy_up(image: &Image) {
    let root = Rootfs::new(image);
    let mut s = sh(
        &root,
        "stat -c '%u %a' /home/user; readlink /bin/cat; cat /etc/passwd | wc -l; \
         grep -c ' /etc ' /proc/self/mountinfo; touch /home/x 2>/dev/null || echo ro",
    );
    s.workload.mounts = vec![
        MountSpec::Tmpfs {
            target: "/home".into(),
            options: "tmpcopyup,ro".into(),
        },
        MountSpec::Tmpfs {
            target: "/bin".into(),
            options: "tmpcopyup,exec".into(),
        },
        MountSpec::Tmpfs {
            target: "/etc".into(),
            options: "tmpcopyup,size=1m".into(),
        },
    ];
    let out = run_ok(&s);
    assert_eq!(
        out.stdout, "1000 755\nbusybox\n2\n1\nro\n",
        "{}",
        out.stderr
    );
}

type Test = fn(&Image);

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, Test)] = &[
        ("output_exit_code_env", output_exit_code_env),
        ("identity_and_files", identity_and_files),
        ("start_failures", start_failures),
        ("isolation_of_mounts_and_fds", isolation_of_mounts_and_fds),
        ("hostile_actions_fail", hostile_actions_fail),
        ("readonly_rootfs_and_mounts", readonly_rootfs_and_mounts),
        ("privileged_is_unconfined", privileged_is_unconfined),
        ("memory_hog_is_oom_killed", memory_hog_is_oom_killed),
        ("fork_bomb_is_capped", fork_bomb_is_capped),
        ("exec_joins_the_container", exec_joins_the_container),
        ("pty_gives_a_terminal", pty_gives_a_terminal),
        ("user_namespace", user_namespace),
        ("sysctls", sysctls),
        ("joined_namespaces", joined_namespaces),
        ("masked_and_readonly_paths", masked_and_readonly_paths),
        ("oci_user_and_file_binds", oci_user_and_file_binds),
        ("tmpfs_copy_up", tmpfs_copy_up),
        ("cleanup_after_everything", cleanup_after_everything),
    ];
    let image = build_image();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let result = std::panic::catch_unwind(|| test(&image));
        println!(
            "test {name} ... {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if result.is_err() {
            failed.push(*name);
        } else {
            passed += 1;
        }
    }
    // The closing line libtest would print, so runners and CI logs count these tests too.
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

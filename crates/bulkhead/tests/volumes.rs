//! Volumes and binds end to end, as root through the CLI: named and anonymous volumes and their
//! commands, copy-up from the image, bad input that leaves nothing behind, host code that walks volume
//! data without following a symlink planted there, and (VM tests, few: each boot costs seconds) a
//! volume's data across isolation switches both ways, read-only binds and symlinks in a VM's 9p share.
//! Every container runs with `--network none`.

mod common;

use bulkhead_testkit::{busybox_layer, vm_lock, write_layout, Layer, LayerBuilder, Platform};
use common::{stderr, Root, IMAGE};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

fn data(r: &Root, volume: &str) -> PathBuf {
    r.path().join("volumes").join(volume).join("_data")
}

fn volumes(r: &Root) -> Vec<String> {
    r.ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

fn run(r: &Root, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    r.ok(&all).trim_end().to_string()
}

#[test]
fn volume_commands_follow_docker() {
    let r = Root::new();
    assert_eq!(
        r.ok(&["volume", "create", "--label", "tier=db", "db"])
            .trim(),
        "db"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["volume", "inspect", "db"])).unwrap();
    assert_eq!(inspect[0]["Driver"], "local");
    assert_eq!(inspect[0]["Anonymous"], false);
    assert_eq!(inspect[0]["Labels"]["tier"], "db");
    assert_eq!(
        inspect[0]["Mountpoint"].as_str().unwrap(),
        data(&r, "db").to_str().unwrap()
    );
    assert!(data(&r, "db").is_dir());
    // Used by a stopped container: refused, even with -f.
    r.ok(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "db:/db",
        IMAGE,
        "true",
    ]);
    let mounts = &r.inspect("user")["Mounts"];
    assert_eq!(mounts[0]["Type"], "volume", "{mounts}");
    assert_eq!(mounts[0]["Name"], "db");
    assert_eq!(mounts[0]["Destination"], "/db");
    for args in [&["volume", "rm", "db"][..], &["volume", "rm", "-f", "db"]] {
        let out = r.bh(args);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            stderr(&out).contains("in use by container(s) user"),
            "{}",
            stderr(&out)
        );
    }
    r.ok(&["rm", "user"]);
    // Prune: anonymous unused volumes only, every unused one with -a.
    let anon = r.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    r.ok(&["create", "--network", "none", "-v", "/anon", IMAGE, "true"]);
    let used_anon: Vec<String> = volumes(&r)
        .into_iter()
        .filter(|v| v != "db" && *v != anon)
        .collect();
    assert_eq!(used_anon.len(), 1);
    r.ok(&["volume", "prune", "-f"]);
    let left = volumes(&r);
    assert!(left.contains(&"db".to_string()) && left.contains(&anon));
    assert!(left.contains(&used_anon[0]), "in use: kept");
    r.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(volumes(&r), used_anon);
    r.ok(&["volume", "rm", "-f", "no-such-volume"]);
    assert_ne!(
        r.bh(&["volume", "rm", "no-such-volume"]).status.code(),
        Some(0)
    );
}

#[test]
fn bad_mounts_are_named_and_leave_nothing() {
    let r = Root::new();
    let cases: [(&[&str], &str); 7] = [
        (&["-v", "a/b:/x"], "a/b"),
        (&["--mount", "type=nope,target=/x"], "type=nope"),
        (
            &["--mount", "type=volume,source=made"],
            "target is required",
        ),
        (&["-v", "made:relative"], "\"relative\""),
        (&["-v", "made:/x:zz"], "\"zz\""),
        (
            &["--mount", "type=bind,source=/no/such/dir,target=/x"],
            "/no/such/dir",
        ),
        (
            &["-v", "made:/x", "-v", "/y", "--mount", "target=/x/"],
            "duplicate mount point /x",
        ),
    ];
    for (flags, names) in cases {
        let mut args = vec!["create", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend([IMAGE, "true"]);
        let out = r.bh(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        assert!(stderr(&out).contains(names), "{flags:?}: {}", stderr(&out));
    }
    // Bound files are copied into one share together: two files and three volumes fit a VM...
    let mut args = vec!["create", "--network", "none", "--isolation=vm"];
    args.extend(["-v", "/etc/hostname:/x", "-v", "/etc/hosts:/y:ro"]);
    for target in ["/1", "/2", "/3"] {
        args.extend(["-v", target]);
    }
    args.extend([IMAGE, "true"]);
    let out = r.bh(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    r.ok(&["rm", "-v", &id]);
    // ...but more shares than a VM has device slots for are refused before anything is made.
    for files in [&[][..], &["-v", "/etc/hostname:/x"]] {
        let mut args = vec!["create", "--network", "none", "--isolation=vm"];
        args.extend(files);
        for target in ["/1", "/2", "/3", "/4", "/5"][files.len() / 2..].iter() {
            args.extend(["-v", target]);
        }
        args.extend([IMAGE, "true"]);
        let out = r.bh(&args);
        assert_eq!(out.status.code(), Some(125));
        assert!(
            stderr(&out).contains("take 5 shared directories") && stderr(&out).contains("(4)"),
            "{}",
            stderr(&out)
        );
    }
    let out = r.bh(&["volume", "create", "a/b"]);
    assert!(
        stderr(&out).contains("invalid volume name \"a/b\""),
        "{}",
        stderr(&out)
    );
    // A valid mount with an invalid rest of the definition creates no volume either.
    let out = r.bh(&[
        "create",
        "--network",
        "none",
        "-v",
        "made:/x",
        "-v",
        "/anon",
        "-w",
        "relative",
        IMAGE,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(r.all_ids().is_empty());
    assert!(volumes(&r).is_empty(), "{:?}", volumes(&r));
}

#[test]
fn named_volumes_outlive_containers_and_anonymous_ones_do_not() {
    let r = Root::new();
    run(
        &r,
        &["-v", "keep:/data", IMAGE, "sh", "-c", "echo kept > /data/f"],
    );
    assert_eq!(
        run(
            &r,
            &[
                "-v",
                "keep:/data:ro",
                IMAGE,
                "sh",
                "-c",
                "cat /data/f; touch /data/g 2>&1 || true"
            ]
        ),
        "kept\ntouch: /data/g: Read-only file system"
    );
    assert!(!data(&r, "keep").join("g").exists());
    // --rm takes the anonymous volume with it, not the named one.
    run(&r, &["-v", "keep:/k", "-v", "/anon", IMAGE, "true"]);
    assert_eq!(volumes(&r), ["keep"]);
    // rm -v likewise; plain rm keeps it.
    for (rm, left) in [(&["rm", "-v"][..], 1), (&["rm"], 2)] {
        let id = r.ok(&[
            "create",
            "--network",
            "none",
            "--mount",
            "target=/anon",
            IMAGE,
            "true",
        ]);
        let mut args = rm.to_vec();
        args.push(id.trim());
        r.ok(&args);
        assert_eq!(volumes(&r).len(), left, "after {rm:?}");
    }
}

#[test]
fn copy_up_fills_only_an_empty_volume() {
    let r = Root::new();
    // The image's /bin: busybox and its applets as symlinks, with owners and modes.
    run(&r, &["-v", "bin:/bin", IMAGE, "true"]);
    let bin = data(&r, "bin");
    let sh = fs::symlink_metadata(bin.join("sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    let busybox = fs::metadata(bin.join("busybox")).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o777, 0o755);
    assert_eq!((busybox.uid(), busybox.gid()), (0, 0));
    assert_eq!(
        run(
            &r,
            &[
                "--mount",
                "source=etc,target=/etc",
                IMAGE,
                "cat",
                "/etc/motd"
            ]
        ),
        fs::read_to_string(data(&r, "etc").join("motd"))
            .unwrap()
            .trim_end()
    );
    // A volume with content keeps it; nocopy leaves an empty one empty.
    r.ok(&["volume", "create", "own"]);
    fs::write(data(&r, "own").join("mine"), "x").unwrap();
    assert_eq!(run(&r, &["-v", "own:/etc", IMAGE, "ls", "/etc"]), "mine");
    run(&r, &["-v", "bare:/etc:nocopy", IMAGE, "true"]);
    assert_eq!(fs::read_dir(data(&r, "bare")).unwrap().count(), 0);
}

/// An image's `VOLUME` paths get anonymous volumes, filled from the image, unless a mount covers them.
#[test]
fn image_volumes_become_anonymous_volumes() {
    let r = Root::new();
    let mut layer = LayerBuilder::new();
    layer
        .dir("declared/", 0o750)
        .file("declared/seed", b"seed", 0o640);
    let media = "application/vnd.oci.image.layer.v1.tar";
    let layers = [
        Layer::new(&busybox_layer(), media),
        Layer::new(&layer.finish(), media),
    ];
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform {
        volumes: &["/declared", "/covered"],
        ..Platform::amd64(&layers)
    };
    write_layout(dir.path(), Some("local.test/withvolumes:1"), &[platform]);
    r.ok(&["image", "import", dir.path().to_str().unwrap()]);
    let id = r.ok(&[
        "create",
        "--network",
        "none",
        "-v",
        "mine:/covered",
        "local.test/withvolumes:1",
        "cat",
        "/declared/seed",
    ]);
    let anon: Vec<String> = volumes(&r).into_iter().filter(|v| v != "mine").collect();
    assert_eq!(anon.len(), 1, "{:?}", volumes(&r));
    let seed = data(&r, &anon[0]).join("seed");
    assert_eq!(fs::read_to_string(&seed).unwrap(), "seed");
    assert_eq!(fs::metadata(&seed).unwrap().mode() & 0o777, 0o640);
    assert_eq!(
        fs::metadata(data(&r, &anon[0])).unwrap().mode() & 0o777,
        0o750
    );
    assert_eq!(r.ok(&["start", "-a", id.trim()]), "seed");
    r.ok(&["rm", "-v", id.trim()]);
    assert_eq!(volumes(&r), ["mine"]);
}

/// What a VM guest may leave in a volume (symlinks to the host's directories, absolute and relative):
/// removing and pruning volumes deletes the links, never what they point at.
#[test]
fn host_walks_of_volume_data_follow_no_symlink() {
    let r = Root::new();
    let outside = r.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), "keep me").unwrap();
    for (name, prune) in [("byrm", false), ("byprune", true)] {
        r.ok(&["volume", "create", name]);
        let d = data(&r, name);
        fs::create_dir(d.join("dir")).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", d.join("dir/rel")).unwrap();
        assert!(
            d.join("dir/rel/precious").exists(),
            "the link resolves on the host"
        );
        if prune {
            r.ok(&["volume", "prune", "-a"]);
        } else {
            r.ok(&["volume", "rm", name]);
        }
        assert!(!r.path().join("volumes").join(name).exists());
        assert_eq!(
            fs::read_to_string(outside.join("precious")).unwrap(),
            "keep me"
        );
    }
}

/// A volume's data survives a switch of isolation both ways, with owners and modes: written in process
/// mode and read in a VM, written in the VM and read back in process mode.
#[test]
fn vm_volume_data_crosses_isolation_switches() {
    let _vm = vm_lock();
    let r = Root::new();
    let id = r.ok(&[
        "create",
        "--network",
        "none",
        "-v",
        "switch:/data",
        IMAGE,
        "sh",
        "/data/step.sh",
    ]);
    let id = id.trim();
    let step = |script: &str| fs::write(data(&r, "switch").join("step.sh"), script).unwrap();
    step("echo process > /data/p; chown 1000:1000 /data/p; chmod 640 /data/p; echo ok");
    assert_eq!(r.ok(&["start", "-a", id]).trim(), "ok");
    r.ok(&["update", "--isolation", "vm", id]);
    step(
        "cat /data/p; stat -c '%u:%g %a' /data/p; mkdir /data/fromvm; \
         echo vm > /data/fromvm/v; chown 33:44 /data/fromvm/v; chmod 600 /data/fromvm/v",
    );
    assert_eq!(r.ok(&["start", "-a", id]).trim(), "process\n1000:1000 640");
    let v = data(&r, "switch").join("fromvm/v");
    let meta = fs::metadata(&v).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (33, 44, 0o600)
    );
    r.ok(&["update", "--isolation", "process", id]);
    step("cat /data/fromvm/v; stat -c '%u:%g %a' /data/fromvm/v");
    assert_eq!(r.ok(&["start", "-a", id]).trim(), "vm\n33:44 600");
    r.ok(&["rm", id]);
    assert_eq!(volumes(&r), ["switch"]);
}

/// A VM sees a bind's directory and nothing beyond it: symlinks in it resolve in the guest (to the
/// guest's /etc, the guest's root), never to the host's files; a read-only bind stays read-only even
/// for a privileged guest that remounts it. QEMU serves the shares from its jail with exactly the 9p
/// server's capabilities, read-only where the share is.
#[test]
fn vm_binds_stay_inside_their_directory_and_read_only() {
    let _vm = vm_lock();
    let r = Root::new();
    let canary = r.path().join("shadow-canary");
    fs::write(&canary, "CANARY-FROM-THE-HOST\n").unwrap();
    let shared = r.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("inside"), "inside\n").unwrap();
    std::os::unix::fs::symlink("/etc", shared.join("escape")).unwrap();
    std::os::unix::fs::symlink("../..", shared.join("up")).unwrap();
    std::os::unix::fs::symlink(&canary, shared.join("abs")).unwrap();
    let bind = format!("{}:/b:ro", shared.display());
    r.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "none",
        "--isolation=vm",
        "--privileged",
        "-v",
        &bind,
        "-v",
        "rw:/rw",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let jail = &r.inspect("b")["State"]["Qemu"];
    assert_eq!(
        jail["Capabilities"],
        serde_json::json!(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"])
    );
    let pid = jail["Pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(line.ends_with("000000000000000b"), "{line}");
    }
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let options = |point: &str| -> Vec<String> {
        let line = mountinfo
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no {point} in\n{mountinfo}"));
        line.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .map(String::from)
            .collect()
    };
    for (point, mode) in [
        ("/shares/0", "ro"),
        ("/shares/1", "rw"),
        ("/proc/self/fd", "ro"),
    ] {
        let o = options(point);
        for want in [mode, "nosuid", "nodev", "noexec"] {
            assert!(o.iter().any(|x| x == want), "{point}: {o:?}");
        }
    }
    let canary_name = canary.file_name().unwrap().to_str().unwrap();
    let script = format!(
        "cat /b/inside; cat /b/escape/{c} /b/up/{c} /b/abs /b/../{c} 2>/dev/null; \
         ls /b/escape/motd; echo x > /b/new 2>/dev/null || echo refused; \
         mount -o remount,rw /b 2>/dev/null; echo y > /b/new 2>/dev/null || echo still-refused",
        c = canary_name
    );
    let out = r.ok(&["exec", "b", "sh", "-c", &script]);
    assert_eq!(
        out.trim_end(),
        "inside\n/b/escape/motd\nrefused\nstill-refused"
    );
    assert!(!shared.join("new").exists());
    assert_eq!(
        fs::read_to_string(&canary).unwrap(),
        "CANARY-FROM-THE-HOST\n"
    );
    // No setuid or setgid program reaches a host directory through QEMU: setting such a mode is
    // refused, and a write clears the bit of one the host made.
    let rw = data(&r, "rw");
    fs::write(rw.join("host-suid"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(rw.join("host-suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    let out = r.ok(&[
        "exec",
        "b",
        "sh",
        "-c",
        "cd /rw; touch p; chmod 4755 p || echo suid-refused; chmod 2755 p || echo sgid-refused; \
         mkdir d; chmod g+s d || echo dir-sgid-refused; echo >> host-suid; chmod 755 p; echo done",
    ]);
    assert_eq!(
        out.trim_end(),
        "suid-refused\nsgid-refused\ndir-sgid-refused\ndone"
    );
    for name in ["p", "d", "host-suid"] {
        let mode = fs::metadata(rw.join(name)).unwrap().mode();
        assert_eq!(mode & 0o6000, 0, "{name}: {mode:o}");
    }
    r.ok(&["rm", "-f", "b"]);
}

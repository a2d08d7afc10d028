//! The isolation policy (`<root>/policy.json`) through the real binary: it decides `run`, `create`,
//! `update --isolation` and `start`, whatever isolation the caller asked for, and a malformed file stops
//! every command with a clear error. No VM is booted here: which isolation a container got is read from
//! `inspect`, and the VM backend itself is covered by `vm.rs`.

mod common;

use common::{stderr, stdout, Root};

fn write_policy(root: &Root, json: &str) {
    std::fs::write(root.path().join("policy.json"), json).unwrap();
}

fn isolation_of(root: &Root, key: &str) -> String {
    root.inspect(key)["HostConfig"]["Isolation"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_force_vm_rule_decides_create_and_refuses_explicit_process() {
    let root = Root::new();
    // The demo image is `docker.io/library/demo`; give it an untrusted name too. A rule follows the name
    // the caller uses.
    root.ok(&["tag", "demo", "untrusted.example.com/ci/job:1"]);
    write_policy(&root, r#"{"force_vm": ["untrusted.example.com/*"]}"#);

    // Without a choice, the rule puts the untrusted name in a VM and leaves the trusted one alone.
    let forced = root.ok(&["create", "untrusted.example.com/ci/job:1", "true"]);
    assert_eq!(isolation_of(&root, forced.trim()), "vm");
    let trusted = root.ok(&["create", "demo", "true"]);
    assert_eq!(isolation_of(&root, trusted.trim()), "process");

    // An explicit process request for the untrusted image is refused, naming the rule, for run and
    // create alike, and nothing is created.
    let before = root.all_ids().len();
    for cmd in ["create", "run"] {
        let out = root.bh(&[
            cmd,
            "--rm",
            "--isolation",
            "process",
            "untrusted.example.com/ci/job:1",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{cmd}: {}", stderr(&out));
        let msg = stderr(&out);
        assert!(
            msg.contains("force_vm rule \"untrusted.example.com/*\"")
                && msg.contains("policy.json"),
            "{cmd}: {msg}"
        );
    }
    assert_eq!(root.all_ids().len(), before);

    // By its image id, the image answers to every name the store has for it, so the rule holds.
    let image_id = root.inspect(forced.trim())["Image"]
        .as_str()
        .unwrap()
        .to_string();
    let out = root.bh(&["create", "--isolation", "process", &image_id, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("force_vm rule"), "{}", stderr(&out));
}

#[test]
fn an_allow_list_keeps_process_isolation_for_listed_images_only() {
    let root = Root::new();
    root.ok(&["tag", "demo", "ghcr.io/someone/tool:1"]);
    write_policy(
        &root,
        r#"{"process_allowed": ["docker.io/library/*"], "default_isolation": "process"}"#,
    );
    // Allow-listed: runs in process mode, for real.
    let out = root.bh(&[
        "run",
        "--rm",
        "--isolation",
        "process",
        "demo",
        "echo",
        "hi",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    // Not on the list: a VM by default, and an explicit process request is refused.
    let id = root.ok(&["create", "ghcr.io/someone/tool:1", "true"]);
    assert_eq!(isolation_of(&root, id.trim()), "vm");
    let out = root.bh(&["create", "--isolation=process", "ghcr.io/someone/tool:1"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("no process_allowed pattern"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn update_and_start_follow_the_policy_in_force() {
    let root = Root::new();
    // Made under the built-in policy (no file): process isolation.
    let id = root
        .ok(&["create", "demo", "echo", "ran"])
        .trim()
        .to_string();
    assert_eq!(isolation_of(&root, &id), "process");

    write_policy(&root, r#"{"force_vm": ["docker.io/library/demo"]}"#);
    // A process container whose image the policy now forces into a VM does not start on the host.
    let out = root.bh(&["start", &id]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("force_vm rule"), "{}", stderr(&out));
    assert_eq!(root.state(&id)["status"], "created");
    // Switching it to process explicitly is refused; switching it to vm is what the rule asks for.
    let out = root.bh(&["update", "--isolation", "process", &id]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("force_vm rule"), "{}", stderr(&out));
    root.ok(&["update", "--isolation", "vm", &id]);
    assert_eq!(isolation_of(&root, &id), "vm");
    let out = root.bh(&["update", "--isolation", "hyperv", &id]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Without the rule, process isolation is allowed again and the container runs on the host.
    std::fs::remove_file(root.path().join("policy.json")).unwrap();
    root.ok(&["update", "--isolation", "process", &id]);
    let out = root.bh(&["start", "-a", &id]);
    assert_eq!(stdout(&out), "ran\n", "{}", stderr(&out));
}

#[test]
fn default_isolation_comes_from_the_policy_and_info_shows_it() {
    let root = Root::new();
    let info = root.ok(&["info"]);
    assert!(info.contains("Default Isolation: process"), "{info}");
    assert!(info.contains("Isolation Policy: none"), "{info}");

    write_policy(
        &root,
        r#"{"default_isolation": "vm", "force_vm": ["untrusted.example.com/*"]}"#,
    );
    let id = root.ok(&["create", "demo", "true"]);
    assert_eq!(isolation_of(&root, id.trim()), "vm");
    let id = root.ok(&["create", "--isolation", "process", "demo", "true"]);
    assert_eq!(isolation_of(&root, id.trim()), "process");
    let info = root.ok(&["info"]);
    assert!(info.contains("Default Isolation: vm"), "{info}");
    assert!(
        info.contains("policy.json") && info.contains("untrusted.example.com/*"),
        "{info}"
    );
}

#[test]
fn a_malformed_policy_stops_every_command_with_a_clear_error() {
    let root = Root::new();
    let id = root.ok(&["create", "demo", "true"]).trim().to_string();
    for (json, cause) in [
        (r#"{"force_vm": ["a/*"#, "EOF"),
        (r#"{"force-vm": ["a/*"]}"#, "unknown field `force-vm`"),
        (
            r#"{"default_isolation": "sandbox"}"#,
            "unknown variant `sandbox`",
        ),
        (r#"{"force_vm": [""]}"#, "invalid image pattern"),
    ] {
        write_policy(&root, json);
        for args in [vec!["ps", "-a"], vec!["create", "demo"], vec!["start", &id]] {
            let out = root.bh(&args);
            assert_eq!(out.status.code(), Some(125), "{args:?} with {json}");
            let msg = stderr(&out);
            assert!(
                msg.contains("isolation policy")
                    && msg.contains("policy.json")
                    && msg.contains(cause),
                "{args:?} with {json}: {msg}"
            );
        }
    }
    // Nothing was created or started meanwhile.
    write_policy(&root, "{}");
    assert_eq!(root.all_ids(), vec![id.clone()]);
    assert_eq!(root.state(&id)["status"], "created");
}

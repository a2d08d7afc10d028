//! The engine's records that the Docker API serves, through the real binary as root (process isolation):
//! the event log (order, attributes, following), docker's wait conditions, labels, rename (a running
//! container answers by its new name on its network), and create's all-or-nothing staging directory.

mod common;

use common::net::{subnet, Network};
use common::{stderr, stdout, wait_output, Root, IMAGE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Every event of the root so far, as `events --format json` prints them.
fn all_events(r: &Root) -> Vec<Value> {
    parse_events(&r.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &now(),
        "--format",
        "json",
    ]))
}

fn parse_events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The container events of `id`: (action, attributes).
fn container_events(r: &Root, id: &str) -> Vec<(String, Value)> {
    all_events(r)
        .into_iter()
        .filter(|e| e["Type"] == "container" && e["Actor"]["ID"] == id)
        .map(|e| {
            let action = e["Action"].as_str().unwrap().to_string();
            (action, e["Actor"]["Attributes"].clone())
        })
        .collect()
}

fn actions(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(a, _)| a.as_str()).collect()
}

#[test]
fn events_record_a_containers_life_in_order_with_its_attributes() {
    let r = Root::new();
    let out = r.bh(&[
        "run",
        "--rm",
        "--name",
        "ev",
        "--label",
        "team=blue",
        IMAGE,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let created = all_events(&r)
        .into_iter()
        .find(|e| e["Action"] == "create" && e["Actor"]["Attributes"]["name"] == "ev")
        .expect("a create event for ev");
    let id = created["Actor"]["ID"].as_str().unwrap().to_string();
    assert_eq!(created["id"], id.as_str(), "docker's older fields too");
    let events = container_events(&r, &id);
    // --rm: the die (with the exit code) comes before the container is removed.
    assert_eq!(actions(&events), ["create", "start", "die", "destroy"]);
    for (action, attributes) in &events {
        assert_eq!(attributes["name"], "ev", "{action}");
        assert_eq!(attributes["image"], IMAGE, "{action}");
        assert_eq!(
            attributes["team"], "blue",
            "{action}: the container's labels"
        );
    }
    assert_eq!(events[2].1["exitCode"], "3");

    // stop: the stop signal is a kill event, then the die, then the stop. Renamed while it runs (and
    // `--rm`), its die and destroy name it by its new name.
    let id = r.detached(&["--rm", "--name", "before", IMAGE, "sleep", "100"]);
    r.ok(&["rename", "before", "after"]);
    r.ok(&["stop", "-t", "1", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.all_ids().contains(&id) {
        assert!(Instant::now() < deadline, "--rm never removed it");
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = container_events(&r, &id);
    let seen = actions(&events);
    assert_eq!(seen[..4], ["create", "start", "rename", "kill"], "{seen:?}");
    assert_eq!(events[3].1["signal"], "15");
    let at = |action: &str| seen.iter().position(|a| *a == action).unwrap();
    // The monitor's destroy (--rm) and the stop command's stop both follow the die, in either order.
    assert!(
        at("die") < at("stop") && at("die") < at("destroy"),
        "{seen:?}"
    );
    let die = &events[at("die")].1;
    assert!(
        die["exitCode"] == "143" || die["exitCode"] == "137",
        "{die}"
    );
    for action in ["die", "destroy"] {
        assert_eq!(events[at(action)].1["name"], "after", "{action}");
    }

    // Images are recorded too: the demo image's import made the first event.
    let first = &all_events(&r)[0];
    assert_eq!(
        (&first["Type"], &first["Action"]),
        (&"image".into(), &"import".into())
    );
}

#[test]
fn following_events_shows_new_ones_until_the_until_time() {
    let r = Root::new();
    let since = now();
    let until = (chrono::Utc::now() + chrono::Duration::seconds(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let follower = r
        .cmd(&[
            "events", "--since", &since, "--until", &until, "--format", "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Made after the follower started reading: it sees them only by following the file.
    std::thread::sleep(Duration::from_millis(500));
    let id = r.ok(&["create", "--name", "late", IMAGE, "true"]);
    r.ok(&["volume", "create", "latevol"]);
    let started = Instant::now();
    let out = wait_output(follower, "events --until");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the follower ends once --until passes"
    );
    let events = parse_events(&stdout(&out));
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["Action"].as_str().unwrap().into(),
                e["Actor"]["ID"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("create".into(), id.trim().to_string()),
            ("create".into(), "latevol".into())
        ]
    );
    assert_eq!(events[1]["Type"], "volume");
}

/// `bulkhead wait --condition CONDITION KEY`, started and left running.
fn waiter(r: &Root, condition: &str, key: &str) -> Child {
    r.cmd(&["wait", "--condition", condition, key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Asserts the waiter is still waiting after a while, then that it prints `code` once `act` is done.
fn assert_waits_then_prints(mut waiter: Child, act: impl FnOnce(), code: &str) {
    std::thread::sleep(Duration::from_millis(400));
    assert!(waiter.try_wait().unwrap().is_none(), "the wait ended early");
    act();
    let out = wait_output(waiter, "wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), code);
}

#[test]
fn next_exit_waits_for_the_run_of_a_created_or_exited_container() {
    let r = Root::new();
    let id = r
        .ok(&["create", IMAGE, "sh", "-c", "exit 5"])
        .trim()
        .to_string();
    // not-running: a created container is not running, so at once.
    assert_eq!(r.ok(&["wait", &id]).trim(), "0");
    let w = waiter(&r, "next-exit", &id);
    assert_waits_then_prints(w, || drop(r.ok(&["start", &id])), "5");
    // Exited now: next-exit is about the next run, not the last one.
    r.wait_status(&id, "exited");
    let w = waiter(&r, "next-exit", &id);
    assert_waits_then_prints(w, || drop(r.ok(&["start", &id])), "5");
    assert!(!r
        .bh(&["wait", "--condition", "later", &id])
        .status
        .success());
}

#[test]
fn removed_reports_the_exit_code_of_a_container_that_removed_itself() {
    let r = Root::new();
    let id = r
        .ok(&["create", "--rm", IMAGE, "sh", "-c", "sleep 0.3; exit 7"])
        .trim()
        .to_string();
    let w = waiter(&r, "removed", &id);
    assert_waits_then_prints(w, || drop(r.ok(&["start", &id])), "7");
    assert!(!r.all_ids().contains(&id), "it is gone");
}

#[test]
fn labels_round_trip_on_containers_and_networks() {
    let r = Root::new();
    // The image's labels, overlaid by the caller's.
    let dir = tempfile::tempdir().unwrap();
    let media = "application/vnd.oci.image.layer.v1.tar";
    let layers = [bulkhead_testkit::Layer::new(
        &bulkhead_testkit::busybox_layer(),
        media,
    )];
    let platform = bulkhead_testkit::Platform {
        labels: &[("maintainer", "them"), ("tier", "image")],
        ..bulkhead_testkit::Platform::amd64(&layers)
    };
    bulkhead_testkit::write_layout(dir.path(), Some("local.test/labelled:1"), &[platform]);
    r.ok(&["image", "import", dir.path().to_str().unwrap()]);
    r.ok(&[
        "create",
        "--name",
        "over",
        "-l",
        "tier=mine",
        "local.test/labelled:1",
        "true",
    ]);
    let labels = &r.inspect("over")["Config"]["Labels"];
    assert_eq!(
        labels,
        &serde_json::json!({"maintainer": "them", "tier": "mine"})
    );

    r.ok(&[
        "create", "--name", "lab", "-l", "a=1", "--label", "flag", IMAGE, "true",
    ]);
    let labels = &r.inspect("lab")["Config"]["Labels"];
    assert_eq!(labels, &serde_json::json!({"a": "1", "flag": ""}));
    let out = r.bh(&["create", "--label", "=x", IMAGE, "true"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid label"));
    let network = Network::create_with(&r, "lab", &subnet(234), &["--label", "tier=db"]);
    let v: Value = serde_json::from_str(&r.ok(&["network", "inspect", &network.name])).unwrap();
    assert_eq!(v[0]["Labels"], serde_json::json!({"tier": "db"}));
}

#[test]
fn rename_follows_dockers_rules_and_the_new_name_resolves_on_the_network() {
    let r = Root::new();
    let network = Network::create(&r, "rn", &subnet(235));
    let net = network.name.clone();
    r.ok(&["create", "--name", "taken", IMAGE, "true"]);
    let id = r.detached(&["--name", "old", "--network", &net, IMAGE, "sleep", "100"]);
    for (new, why) in [
        ("taken", "already in use"),
        ("bad/name", "invalid container name"),
        ("old", "same name"),
    ] {
        let out = r.bh(&["rename", "old", new]);
        assert!(!out.status.success(), "rename to {new}");
        assert!(stderr(&out).contains(why), "{new}: {}", stderr(&out));
    }
    r.ok(&["rename", "old", "new"]);
    let v = r.inspect("new");
    assert_eq!(
        (v["Id"].as_str(), v["Name"].as_str()),
        (Some(id.as_str()), Some("/new"))
    );
    assert!(!r.bh(&["inspect", "old"]).status.success());
    let ip = v["NetworkSettings"]["Networks"][&net]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // The responder answers the new name and no longer the old one; other names go to --dns, here a
    // loopback port where nothing listens, so they fail at once and nothing leaves the machine.
    let out = r.bh(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--dns",
        "127.0.0.1",
        IMAGE,
        "sh",
        "-c",
        "nslookup new; nslookup old",
    ]);
    let text = stdout(&out);
    assert_eq!(text.matches(&format!("Address: {ip}")).count(), 1, "{text}");
    assert!(text.contains("can't find old"), "{text}");
    let renamed = container_events(&r, &id);
    let (_, attributes) = renamed.iter().find(|(a, _)| a == "rename").unwrap();
    assert_eq!(
        (&attributes["name"], &attributes["oldName"]),
        (&"new".into(), &"/old".into())
    );
}

/// The `.new-*` staging directories under the root's containers directory.
fn staging_dirs(r: &Root) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(r.path().join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".new-"))
        .map(|e| e.path())
        .collect()
}

fn assert_whole(r: &Root, id: &str) {
    let dir = r.path().join("containers").join(id);
    for file in ["config.json", "state.json", "rw.img"] {
        assert!(dir.join(file).exists(), "{id} is listed without {file}");
    }
    assert_eq!(r.inspect(id)["State"]["Status"], "created");
}

fn make_old(dir: &Path) {
    let status = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_create_killed_at_any_point_leaves_a_whole_container_or_none() {
    let r = Root::new();
    // Timed once the root's disk template exists, as for every create after the first.
    r.ok(&["create", "--name", "first", IMAGE, "true"]);
    let t0 = Instant::now();
    r.ok(&["create", "--name", "probe", IMAGE, "true"]);
    let full = t0.elapsed();
    r.ok(&["rm", "first", "probe"]);
    // kill -9 at points spread over a whole create (process start included) and a bit beyond.
    let points = 16;
    for i in 0..points {
        let mut child = r
            .cmd(&["create", IMAGE, "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * i / (points - 2));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        child.wait().unwrap();
        for id in r.all_ids() {
            assert_whole(&r, &id);
        }
    }

    // A staging directory, however complete, is never listed; a young one is left to its create.
    let id = r.ok(&["create", IMAGE, "true"]).trim().to_string();
    let fake = "f".repeat(64);
    let staged = r.path().join("containers").join(format!(".new-{fake}"));
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(r.path().join("containers").join(&id))
        .arg(&staged)
        .status()
        .unwrap();
    assert!(copied.success());
    assert!(!r.all_ids().iter().any(|i| i == &fake));
    assert!(staged.exists(), "a young staging directory is kept");
    // Older than a minute, it is a crash's leftover: the next listing sweeps it (and any the kills
    // above left).
    for dir in staging_dirs(&r) {
        make_old(&dir);
    }
    r.ok(&["ps", "-a"]);
    assert_eq!(staging_dirs(&r), Vec::<std::path::PathBuf>::new());
    assert_whole(&r, &id);
}

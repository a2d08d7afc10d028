//! The image, network, volume and system endpoints of the Engine API, driven by the real docker CLI:
//! `pull` from a real registry with docker's progress, `images`, `tag`, `rmi`, `image inspect`,
//! `history`, `save | load`, `import`, `image prune`, networks, volumes, `info` and `system df`, and
//! bad archives that are refused while the store stays intact.

use bulkhead_testkit::{
    assert_blobs_intact, demo_rootfs_tar, Account, ApiServer, Auth, Registry, Root,
};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn demo_root() -> Root {
    Root::with_demo_image(BIN, "demo")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn image_tags(server: &ApiServer) -> Vec<String> {
    let mut tags: Vec<String> = server
        .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(String::from)
        .collect();
    tags.sort();
    tags
}

fn image_id(server: &ApiServer, reference: &str) -> String {
    server
        .docker_ok(&["image", "inspect", "--format", "{{.Id}}", reference])
        .trim()
        .to_string()
}

#[test]
fn pull_shows_docker_progress_then_tag_inspect_history_rmi() {
    let registry = Registry::start(Auth::Anonymous);
    let source = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    source.ok(&["image", "export", "demo", archive.to_str().unwrap()]);
    registry.push_archive(&archive, "team/demo:1.0");

    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let reference = format!("{}/team/demo:1.0", registry.host());
    let out = server.docker_ok(&["pull", &reference]);
    for expected in [
        "1.0: Pulling from team/demo",
        "Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {reference}"),
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(image_tags(&server), std::slice::from_ref(&reference));
    let again = server.docker_ok(&["pull", &reference]);
    assert!(again.contains("Image is up to date"), "{again}");
    // A tag the registry does not have: docker's one-line error, nothing added.
    let missing = server.docker_out(&["pull", &format!("{}/team/demo:nope", registry.host())]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("nope"), "{}", stderr(&missing));

    server.docker_ok(&["tag", &reference, "mine:v1"]);
    assert_eq!(image_id(&server, "mine:v1"), image_id(&server, &reference));
    let by_name = server.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "mine"]);
    assert_eq!(by_name.trim(), "mine:v1");
    let inspect: serde_json::Value =
        serde_json::from_str(&server.docker_ok(&["image", "inspect", "mine:v1"])).unwrap();
    assert_eq!(inspect[0]["Os"], "linux");
    assert_eq!(inspect[0]["RootFS"]["Type"], "layers");
    assert!(inspect[0]["RepoTags"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("mine:v1")));
    assert_eq!(inspect[0]["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    let history = server.docker_ok(&["history", "--no-trunc", "mine:v1"]);
    assert!(history.contains("import-rootfs"), "{history}");

    let untag = server.docker_ok(&["rmi", "mine:v1"]);
    assert!(untag.contains("Untagged: mine:v1"), "{untag}");
    let gone = server.docker_ok(&["rmi", &reference]);
    assert!(gone.contains("Deleted: sha256:"), "{gone}");
    assert!(image_tags(&server).is_empty());
    // `docker run` of an image the store lacks pulls it through POST /images/create first.
    let run = server.docker_out(&["run", "--rm", &reference, "cat", "/etc/motd"]);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("bulkhead demo image"),
        "{}",
        stderr(&run)
    );
    assert!(stderr(&run).contains("Pull complete"), "{}", stderr(&run));
    let absent = server.docker_out(&["rmi", "mine:v1"]);
    assert!(!absent.status.success());
    assert!(stderr(&absent).contains("mine:v1"), "{}", stderr(&absent));
}

/// `docker login` goes through the engine's credential store, which later pulls use.
#[test]
fn login_stores_credentials_that_pulls_use() {
    let account = Account {
        user: "tester",
        password: "s3cret-pw",
    };
    let registry = Registry::start(Auth::Htpasswd(&account));
    let source = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    source.ok(&["image", "export", "demo", archive.to_str().unwrap()]);
    registry.push_archive(&archive, "private/demo:1");
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let reference = format!("{}/private/demo:1", registry.host());
    let denied = server.docker_out(&["pull", &reference]);
    assert!(!denied.status.success());
    let wrong = server.docker_out(&["login", "-u", "tester", "-p", "wrong", &registry.host()]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("authentication"),
        "{}",
        stderr(&wrong)
    );
    let login = server.docker_ok(&["login", "-u", "tester", "-p", "s3cret-pw", &registry.host()]);
    assert!(login.contains("Login Succeeded"), "{login}");
    server.docker_ok(&["pull", &reference]);
    assert_eq!(image_tags(&server), [reference]);
}

/// The pull goes on when its client leaves after the first message: the image arrives whole.
#[test]
fn a_client_that_leaves_mid_pull_leaves_a_whole_image() {
    let registry = Registry::start(Auth::Anonymous);
    let source = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    source.ok(&["image", "export", "demo", archive.to_str().unwrap()]);
    registry.push_archive(&archive, "team/left:2");
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let mut s = UnixStream::connect(server.socket()).unwrap();
    let head = format!(
        "POST /v1.47/images/create?fromImage={}%2Fteam%2Fleft&tag=2 HTTP/1.1\r\nHost: docker\r\n\
         Content-Length: 0\r\n\r\n",
        registry.host()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut first = [0u8; 64];
    let n = s.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    drop(s);
    let reference = format!("{}/team/left:2", registry.host());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while image_tags(&server) != [reference.clone()] {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_blobs_intact(root.path());
    server.docker_ok(&[
        "save",
        "-o",
        dir.path().join("left.tar").to_str().unwrap(),
        &reference,
    ]);
}

#[test]
fn save_load_round_trip_and_import() {
    let root = demo_root();
    let server = ApiServer::start(&root);
    let id = image_id(&server, "demo");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.tar");
    server.docker_ok(&["save", "-o", archive.to_str().unwrap(), "demo"]);
    server.docker_ok(&["rmi", "demo"]);
    assert!(image_tags(&server).is_empty());
    let loaded = server.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: demo:latest"), "{loaded}");
    assert_eq!(image_id(&server, "demo"), id);

    let tar = demo_rootfs_tar().to_str().unwrap();
    let imported = server.docker_ok(&["import", tar, "imported:1"]);
    assert!(imported.trim().starts_with("sha256:"), "{imported}");
    assert_eq!(image_tags(&server), ["demo:latest", "imported:1"]);
    let both = dir.path().join("both.tar");
    let two = server.docker_out(&["save", "-o", both.to_str().unwrap(), "demo", "imported:1"]);
    assert!(
        stderr(&two).contains("one image per archive"),
        "{}",
        stderr(&two)
    );
    for (method, path) in [
        ("POST", "/v1.47/images/demo/push"),
        ("GET", "/v1.47/images/search?term=x"),
        ("POST", "/v1.47/build"),
        ("POST", "/v1.47/commit?container=x"),
    ] {
        let (status, body) = server.request(method, path, b"");
        assert_eq!(status, 501, "{method} {path}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(path.split('?').next().unwrap()), "{body}");
    }
    let refused = server.docker_out(&["import", "--change", "CMD ls", tar, "x:1"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--change"),
        "{}",
        stderr(&refused)
    );
}

/// A request whose body streams `body` after a head declaring `length` bytes; the answer's status.
fn raw_upload(server: &ApiServer, path: &str, length: u64, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(server.socket()).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[test]
fn malformed_and_oversized_archives_are_refused_and_the_store_is_intact() {
    let root = demo_root();
    // What a server killed mid-upload left (no process has this pid): removed at the first transfer.
    let orphan = root.path().join("api-tmp/load-4194305-0.tar");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"partial").unwrap();
    let server = ApiServer::start(&root);
    let before = image_tags(&server);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x5au8; 300_000]).unwrap();
    let out = server.docker_out(&["load", "-i", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid image archive"),
        "{}",
        stderr(&out)
    );
    // A cut archive: the first half of a real one.
    let archive = dir.path().join("demo.tar");
    server.docker_ok(&["save", "-o", archive.to_str().unwrap(), "demo"]);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&junk, &bytes[..bytes.len() / 2]).unwrap();
    let out = server.docker_out(&["load", "-i", junk.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A declared size past the cap is refused before any byte is stored.
    let (status, response) = raw_upload(&server, "/v1.47/images/load", 1 << 40, b"x");
    assert_eq!(status, 413, "{response}");
    assert!(response.contains("limit"), "{response}");
    let (status, response) = raw_upload(&server, "/v1.47/images/load", 0, b"");
    assert_eq!(status, 400, "{response}");
    assert_eq!(image_tags(&server), before);
    assert_blobs_intact(root.path());
    let leftovers = std::fs::read_dir(root.path().join("api-tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "temporary uploads left behind");
}

#[test]
fn image_prune_removes_dangling_then_unused_images() {
    let root = demo_root();
    let server = ApiServer::start(&root);
    let tar = demo_rootfs_tar().to_str().unwrap();
    server.docker_ok(&["import", tar, "app:1"]);
    let old = image_id(&server, "app:1");
    // Moving the tag leaves the imported image without a name: dangling.
    server.docker_ok(&["tag", "demo", "app:1"]);
    let dangling = server.docker_ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), old);
    let report = server.docker_ok(&["image", "prune", "-f"]);
    assert!(report.contains(&format!("deleted: {old}")), "{report}");
    assert!(report.contains("Total reclaimed space"), "{report}");
    assert_eq!(image_tags(&server), ["app:1", "demo:latest"]);
    // `prune -a`: every image no container uses; one a container was made from stays.
    server.docker_ok(&["import", tar, "unused:1"]);
    root.ok(&["create", "--name", "user", "demo", "true"]);
    let report = server.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(report.contains("untagged: unused:1"), "{report}");
    assert_eq!(image_tags(&server), ["app:1", "demo:latest"]);
    assert!(server
        .docker_ok(&["images", "-q", "--filter", "dangling=true"])
        .trim()
        .is_empty());
    assert_blobs_intact(root.path());
}

/// Bridges and their firewall rules are host-global: a failed test must not leave its network behind.
struct NetworkCleanup<'a> {
    server: &'a ApiServer,
    name: &'a str,
}

impl Drop for NetworkCleanup<'_> {
    fn drop(&mut self) {
        let _ = self.server.docker_out(&["rm", "-f", "nc"]);
        let _ = self.server.docker_out(&["network", "rm", self.name]);
    }
}

#[test]
fn networks_create_ls_inspect_connect_rm_prune_and_refusals() {
    let root = demo_root();
    let server = ApiServer::start(&root);
    let name = format!("bhapi{}", std::process::id());
    let _cleanup = NetworkCleanup {
        server: &server,
        name: &name,
    };
    let octet = std::process::id() % 250;
    let (subnet, gateway) = (format!("10.238.{octet}.0/24"), format!("10.238.{octet}.1"));
    let id = server.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "--gateway",
        &gateway,
        &name,
    ]);
    let listed = server.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(listed.contains(&format!("{name} bridge")), "{listed}");
    assert!(listed.contains("bridge bridge"), "{listed}");
    let filtered = server.docker_ok(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("name={name}"),
    ]);
    assert_eq!(filtered.trim(), id.trim());
    let ipam = server.docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Scope}}",
        &name,
    ]);
    assert_eq!(ipam.trim(), format!("{subnet} {gateway} local"));
    let dup = server.docker_out(&["network", "create", &name]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    for (flag, named) in [("--internal", "Internal"), ("--ipv6", "EnableIPv6")] {
        let out = server.docker_out(&["network", "create", flag, "refused-net"]);
        assert!(!out.status.success(), "{flag}");
        assert!(stderr(&out).contains(named), "{flag}: {}", stderr(&out));
    }
    let overlay = server.docker_out(&["network", "create", "-d", "overlay", "refused-net"]);
    assert!(
        stderr(&overlay).contains("bridge networks only"),
        "{}",
        stderr(&overlay)
    );
    let default_rm = server.docker_out(&["network", "rm", "bridge"]);
    assert!(!default_rm.status.success());
    server.docker_ok(&["network", "rm", &name]);
    assert!(!server
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains(&name));
    let missing = server.docker_out(&["network", "inspect", &name]);
    assert!(!missing.status.success());
    // prune removes user-defined networks nobody uses, never the default one.
    server.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.239.{octet}.0/24"),
        "--label",
        "team=a",
        &name,
    ]);
    let labelled = server.docker_ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "label=team=a",
    ]);
    assert_eq!(labelled.trim(), name);
    let labels = server.docker_ok(&["network", "inspect", "--format", "{{json .Labels}}", &name]);
    assert_eq!(labels.trim(), r#"{"team":"a"}"#);
    // A container connected to it (stopped: the engine's rule) keeps it from prune until disconnected.
    server.docker_ok(&[
        "create",
        "--name",
        "nc",
        "--network",
        "none",
        "demo",
        "true",
    ]);
    server.docker_ok(&["network", "connect", "--alias", "web", &name, "nc"]);
    let again = server.docker_out(&["network", "connect", &name, "nc"]);
    assert!(
        stderr(&again).contains("already connected"),
        "{}",
        stderr(&again)
    );
    let kept = server.docker_ok(&["network", "prune", "-f"]);
    assert!(!kept.contains(&name), "{kept}");
    let in_use = server.docker_out(&["network", "rm", &name]);
    assert!(stderr(&in_use).contains("in use"), "{}", stderr(&in_use));
    server.docker_ok(&["network", "disconnect", &name, "nc"]);
    server.docker_ok(&["rm", "nc"]);
    let pruned = server.docker_ok(&["network", "prune", "-f"]);
    assert!(pruned.contains(&name), "{pruned}");
    assert_eq!(
        server
            .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
            .trim(),
        "bridge"
    );
}

#[test]
fn volumes_create_ls_inspect_rm_prune() {
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    server.docker_ok(&["volume", "create", "--label", "team=a", "data1"]);
    server.docker_ok(&["volume", "create", "data2"]);
    let labelled = server.docker_ok(&["volume", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(labelled.trim(), "data1");
    let all = server.docker_ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(all.trim(), "data1 local\ndata2 local");
    let mountpoint =
        server.docker_ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "data1"]);
    let mountpoint = std::path::PathBuf::from(mountpoint.trim());
    assert!(mountpoint.starts_with(root.path()) && mountpoint.is_dir());
    std::fs::write(mountpoint.join("f"), vec![1u8; 64 * 1024]).unwrap();
    let df = server.docker_ok(&["system", "df", "-v"]);
    assert!(df.contains("data1"), "{df}");
    let refused = server.docker_out(&["volume", "create", "-d", "nfs", "x"]);
    assert!(
        stderr(&refused).contains("local driver only"),
        "{}",
        stderr(&refused)
    );
    server.docker_ok(&["volume", "rm", "data2"]);
    let missing = server.docker_out(&["volume", "rm", "data2"]);
    assert!(
        stderr(&missing).contains("no such volume"),
        "{}",
        stderr(&missing)
    );
    // Named volumes survive a plain prune (anonymous ones only), not `prune -a`.
    server.docker_ok(&["volume", "prune", "-f"]);
    assert_eq!(server.docker_ok(&["volume", "ls", "-q"]).trim(), "data1");
    let pruned = server.docker_ok(&["volume", "prune", "-a", "-f"]);
    assert!(pruned.contains("data1"), "{pruned}");
    assert!(!pruned.contains("Total reclaimed space: 0B"), "{pruned}");
    assert!(server.docker_ok(&["volume", "ls", "-q"]).trim().is_empty());
}

#[test]
fn info_shows_the_default_isolation_and_system_df_the_store() {
    let root = demo_root();
    std::fs::write(
        root.path().join("policy.json"),
        r#"{"default_isolation": "vm"}"#,
    )
    .unwrap();
    let server = ApiServer::start(&root);
    let info = server.docker_ok(&[
        "info",
        "--format",
        "{{.Isolation}} {{.OSType}} {{.Images}} {{.DockerRootDir}}",
    ]);
    assert_eq!(
        info.trim(),
        format!("hyperv linux 1 {}", root.path().display())
    );
    let text = server.docker_ok(&["info"]);
    assert!(text.contains("Server Version"), "{text}");
    let df = server.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Images 1"), "{df}");
    assert!(df.contains("Local Volumes 0"), "{df}");

    let plain = demo_root();
    let server = ApiServer::start(&plain);
    let isolation = server.docker_ok(&["info", "--format", "{{.Isolation}}"]);
    assert_eq!(isolation.trim(), "process");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn events_show_a_container_life_and_stream_new_ones() {
    let root = demo_root();
    let server = ApiServer::start(&root);
    // Follow: only new events, as they happen.
    let mut follower = server
        .docker(&[
            "events",
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap());
    // The follower is subscribed once its request is in; a volume made before would not show.
    std::thread::sleep(std::time::Duration::from_millis(500));
    server.docker_ok(&["volume", "create", "evvol"]);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut lines, &mut first).unwrap();
    assert_eq!(first.trim(), "create evvol");
    let _ = follower.kill();
    let _ = follower.wait();

    let since = (unix_now() - 1).to_string();
    server.docker_ok(&["run", "-d", "--name", "ev", "demo", "sh", "-c", "exit 7"]);
    assert_eq!(server.docker_ok(&["wait", "ev"]).trim(), "7");
    server.docker_ok(&["rm", "ev"]);
    let until = (unix_now() + 1).to_string();
    let out = server.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev",
        "--format",
        "{{.Type}} {{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    let seen: Vec<&str> = out.lines().map(str::trim).collect();
    let position = |wanted: &str| {
        seen.iter()
            .position(|l| *l == wanted)
            .unwrap_or_else(|| panic!("no {wanted:?} in {seen:?}"))
    };
    let order = [
        position("container create"),
        position("container start"),
        position("container die 7"),
        position("container destroy"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

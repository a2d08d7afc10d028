//! The documented layering stays true: docs/ARCHITECTURE.md lists every crate of the workspace with its
//! layer and kind, and this test checks the real dependency graph (`cargo metadata`) against that list.
//!
//! Rules: every crate of the workspace is listed, and nothing else is; a crate depends (normal or build
//! dependencies) only on crates of strictly lower layers; a front end depends on no bulkhead crate but
//! the engine facade (and the wire protocol, for relaying a terminal); a dev-only crate appears only as a
//! dev-dependency.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, PartialEq)]
struct Listed {
    /// `None` for dev-only crates, which have no layer.
    layer: Option<u32>,
    kind: String,
}

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The crate table of docs/ARCHITECTURE.md: lines `L<layer> <crate> <kind> ...` or `-  <crate> dev-only`.
fn documented() -> BTreeMap<String, Listed> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let mut words = line.split_whitespace();
        let (Some(layer), Some(name), Some(kind)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if !name.starts_with("bulkhead") {
            continue;
        }
        let layer = match layer {
            "-" => None,
            l => match l.strip_prefix('L').and_then(|n| n.parse().ok()) {
                Some(n) => Some(n),
                None => continue,
            },
        };
        let kind = kind.to_string();
        assert!(
            ["binary", "front-end", "facade", "library", "dev-only"].contains(&kind.as_str()),
            "ARCHITECTURE.md: unknown kind {kind} for {name}"
        );
        assert_eq!(layer.is_none(), kind == "dev-only", "{line}");
        let previous = out.insert(name.to_string(), Listed { layer, kind });
        assert!(previous.is_none(), "ARCHITECTURE.md lists {name} twice");
    }
    out
}

/// Each workspace crate with its dependencies on other workspace crates: (name, dependency kind).
fn actual() -> BTreeMap<String, Vec<(String, String)>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| names.contains(&d["name"].as_str().unwrap()))
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (d["name"].as_str().unwrap().to_string(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn the_dependency_graph_matches_the_documented_layers() {
    let doc = documented();
    let graph = actual();
    let listed: Vec<&String> = doc.keys().collect();
    let members: Vec<&String> = graph.keys().collect();
    assert_eq!(
        listed, members,
        "docs/ARCHITECTURE.md must list exactly the workspace's crates"
    );
    let mut violations = Vec::new();
    for (name, deps) in &graph {
        let me = &doc[name];
        if me.kind == "dev-only" {
            continue;
        }
        for (dep, kind) in deps {
            let them = &doc[dep];
            if kind == "dev" {
                continue;
            }
            if them.kind == "dev-only" {
                violations.push(format!("{name} has dev-only {dep} as a {kind} dependency"));
                continue;
            }
            if me.kind == "front-end" && them.kind != "facade" && dep != "bulkhead-proto" {
                violations.push(format!(
                    "front end {name} reaches past the engine facade to {dep}"
                ));
            }
            if me.layer <= them.layer {
                violations.push(format!(
                    "{name} (L{}) depends on {dep} (L{}), which is not below it",
                    me.layer.unwrap_or_default(),
                    them.layer.unwrap_or_default()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

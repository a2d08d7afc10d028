//! `spec` (a starting config.json, as `runc spec` writes it) and `features` (what this runtime
//! supports, in the runtime spec's features format, which callers such as containerd read).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use serde_json::json;

pub fn spec(a: &liboci_cli::Spec) -> Result<()> {
    let dir = a.bundle.clone().unwrap_or_else(|| ".".into());
    let path = dir.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = if a.rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn features() -> Result<()> {
    let capabilities: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut capabilities = capabilities;
    capabilities.sort();
    let features = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::status::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "size", "mode"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": capabilities,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false }
        },
        "annotations": {
            crate::isolation::ANNOTATION: "process, vm or hyperv: the isolation the container asks for (the operator's policy has the last word)"
        }
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}

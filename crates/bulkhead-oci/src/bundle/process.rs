//! `process`: the command, its environment, user, terminal and limits, and its capabilities.

use std::collections::BTreeSet;

use bulkhead_engine::{ProcessSpec, Rlimit};
use oci_spec::runtime::{Capabilities, Capability, Process};

use super::BundleError;

/// The umask bulkhead's containers start with (the runtime does not change it), which podman also asks for.
const DEFAULT_UMASK: u32 = 0o022;

/// The process a container (or an exec, `--process FILE`) runs.
pub fn process(p: &Process) -> Result<ProcessSpec, BundleError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(BundleError::MissingField("process.args"));
    }
    let cwd = p.cwd().to_str().unwrap_or_default();
    if !cwd.starts_with('/') {
        return Err(BundleError::invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", p.cwd()),
        ));
    }
    if p.io_priority().is_some() {
        return Err(BundleError::unsupported(
            "process.ioPriority",
            "I/O priorities",
        ));
    }
    if p.scheduler().is_some() {
        return Err(BundleError::unsupported(
            "process.scheduler",
            "scheduling policies",
        ));
    }
    if p.exec_cpu_affinity().is_some() {
        return Err(BundleError::unsupported(
            "process.execCPUAffinity",
            "CPU affinity",
        ));
    }
    let terminal = p.terminal().unwrap_or(false);
    Ok(ProcessSpec {
        args,
        env: p.env().clone().unwrap_or_default(),
        cwd: cwd.to_string(),
        user: user(p)?,
        terminal,
        rlimits: rlimits(p)?,
        console_size: p
            .console_size()
            .filter(|_| terminal)
            .and_then(|b| {
                Some((
                    u16::try_from(b.height()).ok()?,
                    u16::try_from(b.width()).ok()?,
                ))
            })
            .filter(|&(rows, cols)| rows > 0 && cols > 0),
    })
}

/// `uid:gid`, or `uid:gid:g1,g2` with supplementary groups (the runtime's form for an OCI user).
fn user(p: &Process) -> Result<String, BundleError> {
    let user = p.user();
    if let Some(umask) = user.umask() {
        if umask != DEFAULT_UMASK {
            return Err(BundleError::unsupported(
                "process.user.umask",
                format!("umask {umask:#o} (containers start with {DEFAULT_UMASK:#o})"),
            ));
        }
    }
    let (uid, gid) = (user.uid(), user.gid());
    let groups: BTreeSet<u32> = user
        .additional_gids()
        .iter()
        .flatten()
        .copied()
        .filter(|g| *g != gid)
        .collect();
    if groups.is_empty() {
        return Ok(format!("{uid}:{gid}"));
    }
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    Ok(format!("{uid}:{gid}:{}", groups.join(",")))
}

fn rlimits(p: &Process) -> Result<Vec<Rlimit>, BundleError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let kind = enum_name(&r.typ());
        if !seen.insert(kind.clone()) {
            return Err(BundleError::invalid(
                format!("process.rlimits[{i}]"),
                format!("{kind} is given twice"),
            ));
        }
        if r.soft() > r.hard() {
            return Err(BundleError::invalid(
                format!("process.rlimits[{i}]"),
                format!(
                    "{kind}: soft limit {} above hard limit {}",
                    r.soft(),
                    r.hard()
                ),
            ));
        }
        out.push(Rlimit {
            kind,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(out)
}

/// The name serde gives a unit variant (`RLIMIT_NOFILE`, `SCMP_ACT_ALLOW`).
pub(super) fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// The container's capabilities as the runtime expresses them: every default dropped, the permitted set
/// added. The runtime gives its processes one set as bounding, permitted and effective, clears
/// inheritable and ambient (docker's behaviour since CVE-2022-24769: a non-root user keeps no
/// capability across execve), and always sets no_new_privs, so no execve gains a capability the bounding
/// set would otherwise have limited. Permitted is thus what the process can use: effective ones it
/// already holds, the others it could raise itself. Returns `(cap_drop, cap_add)`.
pub(super) fn capabilities(p: &Process) -> Result<(Vec<String>, Vec<String>), BundleError> {
    let drop_all = vec!["ALL".to_string()];
    let Some(caps) = p.capabilities() else {
        return Ok((drop_all, Vec::new()));
    };
    let set = |c: &Option<Capabilities>| -> BTreeSet<String> {
        c.iter().flatten().map(Capability::to_string).collect()
    };
    let bounding = set(caps.bounding());
    let effective = set(caps.effective());
    let permitted = set(caps.permitted());
    let ambient = set(caps.ambient());
    for (field, subset, of, superset) in [
        ("effective", &effective, "permitted", &permitted),
        ("permitted", &permitted, "bounding", &bounding),
        ("ambient", &ambient, "permitted", &permitted),
    ] {
        if !subset.is_subset(superset) {
            let extra: BTreeSet<String> = subset.difference(superset).cloned().collect();
            return Err(BundleError::invalid(
                format!("process.capabilities.{field}"),
                format!("[{}] not in the {of} set", join(&extra)),
            ));
        }
    }
    // Root's capabilities come from the permitted set at every execve; ambient ones would only carry
    // capabilities across execve for another user, which the runtime does not do.
    if !ambient.is_empty() && p.user().uid() != 0 {
        return Err(BundleError::unsupported(
            "process.capabilities.ambient",
            format!(
                "ambient capabilities [{}] for non-root user {}",
                join(&ambient),
                p.user().uid()
            ),
        ));
    }
    Ok((drop_all, permitted.into_iter().collect()))
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

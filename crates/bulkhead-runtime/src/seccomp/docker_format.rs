//! Docker-format JSON seccomp profiles (`--security-opt seccomp=FILE`): the default action and
//! `defaultErrnoRet`, `architectures` or Docker's `archMap`, and rules with their `errnoRet`, argument
//! comparisons and capability/architecture conditions.

use std::collections::HashMap;

use caps::{Capability, CapsHashSet};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use serde::Deserialize;

use super::{seccomp_err, syscall};
use crate::error::RuntimeError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<i32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMapEntry>,
    #[serde(default)]
    syscalls: Vec<ProfileRule>,
}

/// Docker's `archMap`: the architectures a filter covers when the native one is `architecture`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileRule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<i32>,
    #[serde(default)]
    args: Vec<ProfileArg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn parse_action(name: &str, errno: Option<i32>) -> Result<ScmpAction, RuntimeError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(libc::EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(0).clamp(0, u16::MAX as i32) as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => {
            return Err(RuntimeError::SeccompProfile(format!(
                "unsupported action {other:?}"
            )))
        }
    })
}

fn parse_op(arg: &ProfileArg) -> Result<ScmpArgCompare, RuntimeError> {
    let (op, datum) = match arg.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, arg.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, arg.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, arg.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, arg.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, arg.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, arg.value),
        // Docker's format: `value` is the mask, `valueTwo` the expected result.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
        other => {
            return Err(RuntimeError::SeccompProfile(format!(
                "unsupported operator {other:?}"
            )))
        }
    };
    if arg.index > 5 {
        return Err(RuntimeError::SeccompProfile(format!(
            "argument index {} out of range",
            arg.index
        )));
    }
    Ok(ScmpArgCompare::new(arg.index, op, datum))
}

fn parse_arch(name: &str) -> Option<ScmpArch> {
    let arches: HashMap<&str, ScmpArch> = [
        ("SCMP_ARCH_X86_64", ScmpArch::X8664),
        ("SCMP_ARCH_X86", ScmpArch::X86),
        ("SCMP_ARCH_X32", ScmpArch::X32),
        ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
        ("SCMP_ARCH_ARM", ScmpArch::Arm),
    ]
    .into_iter()
    .collect();
    arches.get(name).copied()
}

/// The docker name of the native architecture used in `includes.arches`.
fn native_docker_arch() -> &'static str {
    match ScmpArch::native() {
        ScmpArch::X8664 => "amd64",
        ScmpArch::Aarch64 => "arm64",
        ScmpArch::X86 => "386",
        _ => "unknown",
    }
}

fn filter_matches(includes: &Filter, excludes: &Filter, caps: &CapsHashSet) -> bool {
    let has_cap = |name: &String| {
        name.parse::<Capability>()
            .map(|c| caps.contains(&c))
            .unwrap_or(false)
    };
    let arch = native_docker_arch();
    let included = includes.caps.iter().all(has_cap)
        && (includes.arches.is_empty() || includes.arches.iter().any(|a| a == arch));
    let excluded = excludes.caps.iter().any(has_cap) || excludes.arches.iter().any(|a| a == arch);
    included && !excluded
}

/// The architectures the filter covers: `architectures`, or the `archMap` entry of the native one
/// with its sub-architectures (as Docker does; naming both is an error there too).
fn profile_arches(profile: &Profile) -> Result<Vec<ScmpArch>, RuntimeError> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(RuntimeError::SeccompProfile(
            "both architectures and archMap are given".to_string(),
        ));
    }
    let native = ScmpArch::native();
    let names = profile.architectures.iter().cloned().chain(
        profile
            .arch_map
            .iter()
            .filter(|entry| parse_arch(&entry.architecture) == Some(native))
            .flat_map(|entry| {
                std::iter::once(entry.architecture.clone())
                    .chain(entry.sub_architectures.iter().flatten().cloned())
            }),
    );
    Ok(names.filter_map(|name| parse_arch(&name)).collect())
}

pub(super) fn profile_filter(
    json: &str,
    caps: &CapsHashSet,
) -> Result<ScmpFilterContext, RuntimeError> {
    let profile: Profile = serde_json::from_str(json)
        .map_err(|e| RuntimeError::SeccompProfile(format!("invalid JSON: {e}")))?;
    let default = parse_action(&profile.default_action, profile.default_errno_ret)?;
    let mut ctx = ScmpFilterContext::new_filter(default)
        .map_err(|e| seccomp_err("creating the filter", e))?;
    for arch in profile_arches(&profile)? {
        if arch != ScmpArch::native() {
            ctx.add_arch(arch)
                .map_err(|e| seccomp_err(format!("adding arch {arch:?}"), e))?;
        }
    }
    for rule in &profile.syscalls {
        if !filter_matches(&rule.includes, &rule.excludes, caps) {
            continue;
        }
        let action = parse_action(&rule.action, rule.errno_ret)?;
        if action == default {
            continue;
        }
        let cmps = rule
            .args
            .iter()
            .map(parse_op)
            .collect::<Result<Vec<_>, _>>()?;
        for name in rule.names.iter().chain(rule.name.iter()) {
            let Some(sc) = syscall(name) else { continue };
            ctx.add_rule_conditional(action, sc, &cmps)
                .map_err(|e| seccomp_err(format!("rule for {name}"), e))?;
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_profile_parses() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write", "nosuchcall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#;
        assert!(profile_filter(json, &CapsHashSet::new()).is_ok());
        assert!(matches!(
            profile_filter("{", &CapsHashSet::new()),
            Err(RuntimeError::SeccompProfile(_))
        ));
        let bad_op = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"BOGUS"}]}]}"#;
        assert!(profile_filter(bad_op, &CapsHashSet::new()).is_err());
        let both = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":null}]}"#;
        assert!(matches!(
            profile_filter(both, &CapsHashSet::new()),
            Err(RuntimeError::SeccompProfile(_))
        ));
    }
}

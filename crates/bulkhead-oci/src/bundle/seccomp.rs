//! `linux.seccomp`: passed to the runtime as a docker-format profile, whose fields it shares
//! (`defaultAction`, `defaultErrnoRet`, `architectures`, `syscalls[].names/action/errnoRet/args`, with
//! `args[].value/valueTwo/op` read alike, `SCMP_CMP_MASKED_EQ` included). What docker's format lacks is
//! checked here: a listener (user notification) is refused, and of the flags only TSYNC is accepted (the
//! runtime loads the filter in a single-threaded process, where it changes nothing).

use bulkhead_engine::SeccompPolicy;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

use super::process::enum_name;
use super::BundleError;

/// The highest argument index of a syscall.
const MAX_ARG_INDEX: usize = 5;

/// No seccomp section means no filter, as with runc.
pub(super) fn seccomp(s: Option<&LinuxSeccomp>) -> Result<SeccompPolicy, BundleError> {
    let Some(s) = s else {
        return Ok(SeccompPolicy::Unconfined);
    };
    if s.listener_path().is_some() {
        return Err(BundleError::unsupported(
            "linux.seccomp.listenerPath",
            "a seccomp listener (SCMP_ACT_NOTIFY)",
        ));
    }
    for flag in s.flags().iter().flatten() {
        if *flag != LinuxSeccompFilterFlag::SeccompFilterFlagTsync {
            return Err(BundleError::unsupported(
                "linux.seccomp.flags",
                format!("filter flag {}", enum_name(flag)),
            ));
        }
    }
    check_action("linux.seccomp.defaultAction", s.default_action())?;
    check_errno("linux.seccomp.defaultErrnoRet", s.default_errno_ret())?;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        check_action(
            &format!("linux.seccomp.syscalls[{i}].action"),
            rule.action(),
        )?;
        check_errno(
            &format!("linux.seccomp.syscalls[{i}].errnoRet"),
            rule.errno_ret(),
        )?;
        for (j, arg) in rule.args().iter().flatten().enumerate() {
            if arg.index() > MAX_ARG_INDEX {
                return Err(BundleError::invalid(
                    format!("linux.seccomp.syscalls[{i}].args[{j}].index"),
                    format!("{} is above {MAX_ARG_INDEX}", arg.index()),
                ));
            }
        }
    }
    let mut profile = serde_json::to_value(s)
        .map_err(|e| BundleError::invalid("linux.seccomp", format!("cannot be re-encoded: {e}")))?;
    if let Some(map) = profile.as_object_mut() {
        // Checked above; docker's format has no such fields.
        map.remove("flags");
        map.remove("listenerPath");
        map.remove("listenerMetadata");
    }
    Ok(SeccompPolicy::Profile(profile.to_string()))
}

fn check_action(field: &str, action: LinuxSeccompAction) -> Result<(), BundleError> {
    if action == LinuxSeccompAction::ScmpActNotify {
        return Err(BundleError::unsupported(
            field,
            "SCMP_ACT_NOTIFY (seccomp user notification)",
        ));
    }
    Ok(())
}

fn check_errno(field: &str, errno: Option<u32>) -> Result<(), BundleError> {
    match errno {
        Some(e) if i32::try_from(e).is_err() => Err(BundleError::invalid(
            field,
            format!("{e} is not an errno value"),
        )),
        _ => Ok(()),
    }
}

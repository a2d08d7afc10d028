//! Errors of the runtime, including failures that happen inside the container's setup
//! stages and are shipped back to the caller over the setup channel.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("unknown rlimit {0:?}")]
    UnknownRlimit(String),
    #[error("capabilities: {0}")]
    Capabilities(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("seccomp profile: {0}")]
    SeccompProfile(String),
    #[error("cgroup {path}: {reason}")]
    Cgroup { path: PathBuf, reason: String },
    #[error("{command}: command not found in the container")]
    CommandNotFound { command: String },
    #[error("{path}: not executable: {reason}")]
    NotExecutable { path: String, reason: String },
    #[error("unable to find user {user:?}: {reason}")]
    UnknownUser { user: String, reason: String },
    #[error("working directory {cwd:?}: {reason}")]
    BadCwd { cwd: String, reason: String },
    #[error("container setup failed ({stage}): {reason}")]
    Setup { stage: String, reason: String },
    #[error("{program} failed on {path}: {reason}")]
    Tool {
        program: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("sysctl {key:?}: {reason}")]
    Sysctl { key: String, reason: String },
    #[error("setup channel with the container process: {0}")]
    Channel(String),
}

impl RuntimeError {
    /// The exit status docker uses when starting the process failed with this error:
    /// 127 command not found, 126 not executable, 125 anything else.
    pub fn exit_code_hint(&self) -> i32 {
        match self {
            RuntimeError::CommandNotFound { .. } => 127,
            RuntimeError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The serialisable form of an error raised in a container setup stage.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ChildFailure {
    CommandNotFound { command: String },
    NotExecutable { path: String, reason: String },
    UnknownUser { user: String, reason: String },
    BadCwd { cwd: String, reason: String },
    Other { reason: String },
}

impl From<&RuntimeError> for ChildFailure {
    fn from(e: &RuntimeError) -> Self {
        match e {
            RuntimeError::CommandNotFound { command } => ChildFailure::CommandNotFound {
                command: command.clone(),
            },
            RuntimeError::NotExecutable { path, reason } => ChildFailure::NotExecutable {
                path: path.clone(),
                reason: reason.clone(),
            },
            RuntimeError::UnknownUser { user, reason } => ChildFailure::UnknownUser {
                user: user.clone(),
                reason: reason.clone(),
            },
            RuntimeError::BadCwd { cwd, reason } => ChildFailure::BadCwd {
                cwd: cwd.clone(),
                reason: reason.clone(),
            },
            other => ChildFailure::Other {
                reason: other.to_string(),
            },
        }
    }
}

impl ChildFailure {
    pub(crate) fn into_error(self, stage: &str) -> RuntimeError {
        match self {
            ChildFailure::CommandNotFound { command } => RuntimeError::CommandNotFound { command },
            ChildFailure::NotExecutable { path, reason } => {
                RuntimeError::NotExecutable { path, reason }
            }
            ChildFailure::UnknownUser { user, reason } => {
                RuntimeError::UnknownUser { user, reason }
            }
            ChildFailure::BadCwd { cwd, reason } => RuntimeError::BadCwd { cwd, reason },
            ChildFailure::Other { reason } => RuntimeError::Setup {
                stage: stage.to_string(),
                reason,
            },
        }
    }
}

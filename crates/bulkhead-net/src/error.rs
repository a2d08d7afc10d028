use std::io;
use std::path::PathBuf;

/// A failure of the host's network plumbing, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("netlink: {what}: {message}")]
    Netlink { what: String, message: String },
    #[error("nftables: {0}")]
    Firewall(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no free address left in {subnet} (bridge {bridge})")]
    PoolExhausted { subnet: String, bridge: String },
    #[error("cannot publish {addr}: the port is already in use on the host")]
    PortInUse { addr: String },
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
        let what = what.into();
        move |source| NetError::Io { what, source }
    }

    pub(crate) fn path(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> NetError {
        let path = path.into();
        move |source| NetError::Path { path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> NetError {
        let what = what.into();
        move |e| NetError::Io {
            what,
            source: io::Error::from(e),
        }
    }
}

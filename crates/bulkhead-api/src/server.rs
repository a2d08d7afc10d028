//! The listeners: unix sockets (mode 0660, owner root and an optional group, as dockerd's) and TCP on
//! loopback only, each connection served by hyper on its own task, with upgrades for attach and exec.

use crate::ctx::Ctx;
use crate::router;
use bulkhead_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// Where dockerd's clients look by default is `/var/run/docker.sock`; bulkhead's socket is its own.
pub const DEFAULT_SOCKET: &str = "/run/bulkhead/docker.sock";

/// A client must send its request head within this time (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// `unix://PATH` or `tcp://127.0.0.1:PORT` (dockerd's `-H` spelling); empty: the default socket.
    pub hosts: Vec<String>,
    /// The group that owns the unix sockets (members may use the API: root-equivalent, as docker's group).
    pub group: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("-H {0}: expected unix://PATH or tcp://127.0.0.1:PORT")]
    BadHost(String),
    #[error(
        "-H {0}: the API gives root on this host, so TCP is served on loopback addresses only \
         (there is no TLS)"
    )]
    NotLoopback(String),
    #[error("{0}: another server is listening on this socket")]
    InUse(PathBuf),
    #[error("group {0}: no such group")]
    NoSuchGroup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// Serves the Engine API until SIGINT or SIGTERM. Containers are not the server's children: they keep
/// running when it stops, and the next server finds them.
pub fn serve(engine: Engine, config: ServeConfig) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bulkhead-api")
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    runtime.block_on(run(Arc::new(Ctx::new(engine)), config))
}

async fn run(ctx: Arc<Ctx>, config: ServeConfig) -> Result<(), ServeError> {
    let hosts = if config.hosts.is_empty() {
        vec![format!("unix://{DEFAULT_SOCKET}")]
    } else {
        config.hosts.clone()
    };
    let gid = match &config.group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ServeError::NoSuchGroup(name.clone()))?
                .gid,
        ),
        None => None,
    };
    let mut listeners = Vec::new();
    for host in &hosts {
        listeners.push(bind(host, gid).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept_loop(ctx.clone(), listener));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("installing the SIGTERM handler"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        Some(done) = tasks.join_next() => {
            if let Ok(Err(e)) = done { return Err(e); }
        }
    }
    for host in &hosts {
        if let Some(path) = host.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
    }
    tracing::info!("stopped; containers keep running");
    Ok(())
}

async fn bind(host: &str, gid: Option<nix::unistd::Gid>) -> Result<Listener, ServeError> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if path.as_os_str().is_empty() {
            return Err(ServeError::BadHost(host.into()));
        }
        remove_stale_socket(&path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
        }
        let listener = UnixListener::bind(&path).map_err(io(path.display().to_string()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(io(path.display().to_string()))?;
        if let Some(gid) = gid {
            nix::unistd::chown(&path, None, Some(gid))
                .map_err(|e| io(path.display().to_string())(e.into()))?;
        }
        tracing::info!("listening on unix://{}", path.display());
        return Ok(Listener::Unix(listener, path));
    }
    let addr = host
        .strip_prefix("tcp://")
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| ServeError::BadHost(host.into()))?;
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(host.into()));
    }
    let listener = TcpListener::bind(addr).await.map_err(io(host))?;
    tracing::info!(
        "listening on tcp://{}",
        listener.local_addr().map_err(io(host))?
    );
    Ok(Listener::Tcp(listener))
}

/// A socket file left by a server that is gone is replaced; one a live server answers on is not.
fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServeError::InUse(path.to_path_buf()));
    }
    std::fs::remove_file(path).map_err(io(path.display().to_string()))
}

async fn accept_loop(ctx: Arc<Ctx>, listener: Listener) -> Result<(), ServeError> {
    loop {
        let accepted = match &listener {
            Listener::Unix(l, path) => l
                .accept()
                .await
                .map(|(s, _)| tokio::spawn(serve_connection(ctx.clone(), s)))
                .map_err(io(path.display().to_string())),
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, _)| tokio::spawn(serve_connection(ctx.clone(), s)))
                .map_err(io("tcp accept")),
        };
        if let Err(e) = accepted {
            // Out of descriptors and the like: keep serving the connections there are.
            tracing::warn!("{e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn serve_connection<S>(ctx: Arc<Ctx>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| router::handle(ctx.clone(), req));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("connection: {e}");
    }
}

//! The command line, docker-shaped. Values are parsed here; meaning is given by the engine.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Containers with per-container process or VM isolation"
)]
pub struct Cli {
    /// Directory that holds all of bulkhead's state.
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_ROOT",
        default_value = "/var/lib/bulkhead"
    )]
    pub root: PathBuf,
    /// Log filter: error, warn, info, debug, trace.
    #[arg(long, global = true, env = "BULKHEAD_LOG", default_value = "warn")]
    pub log_level: String,
    /// Most bytes one image may unpack to (guard against tar and gzip bombs), e.g. 16g.
    #[arg(long, global = true, value_parser = parse_size)]
    pub max_unpacked_size: Option<u64>,
    /// Subnet of the default `bridge` network when this root first makes it (default 172.17.0.0/16,
    /// or the next free /16 of 172.17-31).
    #[arg(long, global = true, env = "BULKHEAD_BRIDGE_SUBNET")]
    pub bridge_subnet: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create and start a container.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(CreateArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop running containers (stop signal, then SIGKILL).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Freeze the processes of running containers (their VMs, in VM isolation).
    Pause(NamesArgs),
    /// Thaw paused containers.
    Unpause(NamesArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(WaitArgs),
    /// Rename a container (running ones too).
    Rename(RenameArgs),
    /// Show events (container, image, network, volume): past ones, then new ones as they happen.
    Events(EventsArgs),
    /// Show containers' details as JSON.
    Inspect(NamesArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Change resources or (while stopped) the isolation of containers.
    Update(UpdateArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// List images.
    Images,
    /// Give an image another name.
    Tag(TagArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Save credentials for a registry.
    Login(LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(LogoutArgs),
    /// Show system-wide information.
    Info,
    /// Show the version.
    Version,
    /// Build or show the VM guest kernel.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// List a container's published ports.
    Port(PortArgs),
    /// Show the processes of a running container.
    Top(TopArgs),
    /// Show running containers' resource usage.
    Stats(StatsArgs),
    /// Copy files between a running container and the host (CONTAINER:PATH either side; `-` is a tar
    /// on stdin or stdout).
    Cp(CpArgs),
    /// Serve the Docker Engine API (foreground), for the docker CLI, the Docker SDKs and docker-compose.
    Serve(ServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to listen: unix://PATH or tcp://127.0.0.1:PORT (repeatable; default
    /// unix:///run/bulkhead/docker.sock).
    #[arg(short = 'H', long = "host")]
    pub host: Vec<String>,
    /// Group owning the unix sockets (mode 0660): its members can use the API, which is root on this host.
    #[arg(short = 'G', long)]
    pub group: Option<String>,
}

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name if none is given).
    Create {
        name: Option<String>,
        /// Set metadata: KEY=VALUE.
        #[arg(long)]
        label: Vec<String>,
    },
    /// List volumes.
    Ls {
        /// Only print names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes' details as JSON.
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses them).
    Rm {
        /// A missing volume is no error.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with --all).
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask (nothing asks here; accepted as in docker).
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks' details as JSON.
    Inspect(NetworkNamesArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(NetworkNamesArgs),
    /// Connect a stopped container to a network.
    Connect(NetworkConnectArgs),
    /// Disconnect a stopped container from a network.
    Disconnect(NetworkDisconnectArgs),
}

#[derive(Args)]
pub struct NetworkCreateArgs {
    /// Subnet in CIDR notation (default: a free /16 of 172.18-31).
    #[arg(long)]
    pub subnet: Option<String>,
    /// Gateway address (default: the subnet's first address).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Driver: only bridge.
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Set metadata: KEY=VALUE.
    #[arg(long)]
    pub label: Vec<String>,
    pub name: String,
}

#[derive(Args)]
pub struct NetworkNamesArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Args)]
pub struct NetworkConnectArgs {
    /// More names of the container on this network.
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Args)]
pub struct NetworkDisconnectArgs {
    pub network: String,
    pub container: String,
}

#[derive(Args)]
pub struct PortArgs {
    pub container: String,
    /// Only this container port: PORT[/PROTO].
    pub port: Option<String>,
}

#[derive(Args, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help (-h is --hostname, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy this shell's).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from files.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Override the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Mount a volume or host directory: NAME:PATH, /HOST:PATH or PATH (anonymous), with :ro, :rw, :nocopy.
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Mount: type=volume|bind|tmpfs,source=,target=,readonly,volume-nocopy,tmpfs-size=,tmpfs-mode=.
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Container host name.
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Memory limit (e.g. 512m); in vm isolation also the guest's RAM.
    #[arg(short, long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPUs (e.g. 1.5); in vm isolation rounded up to vCPUs.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Network: bridge (default), none, host, container:NAME, a network's name, or ns:PATH to join a
    /// network namespace prepared elsewhere (a bind-mounted netns file with eth0 configured, as
    /// `ip netns add` or a CRI runtime makes it).
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Another name for the container on a user-defined network.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Publish a port: [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Add a line to /etc/hosts: HOST:IP (IP may be host-gateway, the network's gateway).
    #[arg(long)]
    pub add_host: Vec<String>,
    /// DNS server for /etc/resolv.conf (replaces the host's).
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain ("." for none).
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Resolver option for /etc/resolv.conf (e.g. ndots:2).
    #[arg(long, alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Isolation: process, vm, or hyperv (same as vm); default: the isolation policy's (process unless
    /// the root's policy.json says otherwise).
    #[arg(long)]
    pub isolation: Option<String>,
    /// VM accelerator: auto, kvm or tcg.
    #[arg(long)]
    pub accel: Option<String>,
    /// User namespace: host (default), auto, or HOSTUID:HOSTGID:SIZE.
    #[arg(long)]
    pub userns: Option<String>,
    /// Add Linux capabilities.
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined|FILE, no-new-privileges.
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Turn off the security defaults (all capabilities, no seccomp, writable /sys).
    #[arg(long)]
    pub privileged: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Set metadata: KEY=VALUE (over the image's labels).
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds to wait before killing on stop.
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Resource limits NAME=SOFT[:HARD].
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of the container's writable layer (default 10g; sparse).
    #[arg(long, value_parser = parse_size)]
    pub disk_size: Option<u64>,
    /// Image to run.
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output (and exit with its code).
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin.
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short, long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    /// Also remove the container's anonymous volumes.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only print ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow new output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines (records) from the end, or "all".
    #[arg(long, short = 'n', default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

#[derive(Args)]
pub struct WaitArgs {
    /// not-running (at once if it is not running), next-exit (the exit of its next run, or of the
    /// current one), or removed (until it is removed; still prints the exit code of its last run).
    #[arg(long, default_value = "not-running")]
    pub condition: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Events from this time on: RFC 3339 or unix seconds (default: with --until, the oldest kept;
    /// without, only new events, as docker).
    #[arg(long, value_parser = parse_time_arg)]
    pub since: Option<DateTime<Utc>>,
    /// Events up to this time (without it, new events are shown as they happen).
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// `json`: one docker-shaped JSON message per line.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct TopArgs {
    pub container: String,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Print one sample and exit (else a new table every second).
    #[arg(long)]
    pub no_stream: bool,
    /// Default: every running container.
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct CpArgs {
    /// CONTAINER:PATH, a host path, or `-` (a tar on stdin).
    pub src: String,
    /// CONTAINER:PATH, a host path, or `-` (a tar to stdout).
    pub dest: String,
}

#[derive(Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(short, long, value_parser = parse_size)]
    pub memory: Option<u64>,
    #[arg(long)]
    pub cpus: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// process, vm or hyperv; only while the container is stopped.
    #[arg(long)]
    pub isolation: Option<String>,
    /// Switch isolation even when settings a VM confined (privileged, added capabilities, no seccomp,
    /// tmpfs with device nodes) would become privileges on the host.
    #[arg(long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct PullArgs {
    /// os/arch[/variant] to pick from a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
    /// Registry to reach over plain HTTP (repeatable); localhost and 127.0.0.1 always are.
    #[arg(long)]
    pub insecure_registry: Vec<String>,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    pub reference: String,
}

#[derive(Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Remove even if containers use it.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images.
    Ls,
    /// Show images' details as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import an OCI layout directory, an OCI archive, or a `docker save` tar.
    Import { path: PathBuf },
    /// Import a plain root filesystem tarball as a one-layer image.
    ImportRootfs {
        tar: PathBuf,
        #[arg(long)]
        tag: String,
    },
    /// Write an image as an OCI archive.
    Export { image: String, file: PathBuf },
    /// Remove blobs no image uses.
    Prune,
    /// Remove images.
    Rm(RmiArgs),
    /// Name an image.
    Tag(TagArgs),
    /// Pull an image.
    Pull(PullArgs),
}

#[derive(Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: String,
    /// Password (or use --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    #[arg(long)]
    pub password_stdin: bool,
    /// Use plain HTTP.
    #[arg(long)]
    pub insecure: bool,
    pub registry: String,
}

#[derive(Args)]
pub struct LogoutArgs {
    pub registry: String,
}

#[derive(Subcommand)]
pub enum KernelCommand {
    /// Build (or reuse) the cached guest kernel.
    Build,
    /// Show the cached guest kernel.
    Info,
}

/// `--since`/`--until` for clap: the engine's reading of docker's time spellings.
fn parse_time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    bulkhead_engine::parse_time(s).map_err(|e| e.to_string())
}

/// `--label` values as a map: `KEY=VALUE`, or a bare `KEY` with an empty value, as docker.
pub fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, String> {
    labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            if k.is_empty() {
                Err(format!("invalid label {l:?}: expected KEY=VALUE"))
            } else {
                Ok((k.to_string(), v.to_string()))
            }
        })
        .collect()
}

/// Parses docker sizes: `1024`, `512k`, `64m`, `2g` (binary units, optional trailing `b`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 512m or 2g)"))?;
    if n < 0.0 || !n.is_finite() {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }
}

//! runc's command line: youki's `liboci-cli` structs for the commands, and the global flags runc has that
//! `liboci-cli` leaves out.

use clap::{Parser, Subcommand};
use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};

#[derive(Parser, Debug)]
#[command(
    name = "bulkhead-runc",
    version,
    about = "bulkhead's OCI runtime (runc's command line)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    /// runc's rootless mode (`true`, `false`, `auto`). Accepted: bulkhead runs as root and makes its own
    /// cgroups either way.
    #[arg(long)]
    pub rootless: Option<String>,
    /// The criu binary, for checkpoints: accepted, but `checkpoint` is not supported.
    #[arg(long)]
    pub criu: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
    /// runc's `checkpoint` (liboci-cli spells it `checkpointt`): not supported.
    Checkpoint(liboci_cli::Checkpoint),
}

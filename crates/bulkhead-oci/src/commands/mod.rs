//! One module per group of runc commands; `run` dispatches.

mod create;
mod exec;
mod lifecycle;
mod query;
mod spec;
mod update;

use crate::cli::{Cli, Command};
use crate::record::{Record, RelayInfo};
use anyhow::{bail, Result};
use bulkhead_engine::{Container, Engine, EngineConfig, EngineError, IsolationPolicy};
use liboci_cli::{CommonCmd, StandardCmd};
use std::path::{Path, PathBuf};

/// runc's default `--root` is /run/runc; bulkhead's keeps its own.
const DEFAULT_ROOT: &str = "/run/bulkhead-runc";
/// bulkhead's main root, whose `policy.json` is the operator's isolation policy.
const MAIN_ROOT: &str = "/var/lib/bulkhead";

/// What every command needs: the state root and how to open the engine on it.
pub struct Ctx {
    pub root: PathBuf,
    pub vm_default: bool,
    engine: EngineConfig,
}

impl Ctx {
    fn new(root: Option<&Path>, vm_default: bool) -> Result<Ctx> {
        let root = root.unwrap_or(Path::new(DEFAULT_ROOT)).to_path_buf();
        let main_root = std::env::var_os("BULKHEAD_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(MAIN_ROOT));
        let policy = IsolationPolicy::load(&bulkhead_engine::policy_path(&main_root))?;
        Ok(Ctx {
            engine: EngineConfig {
                root: root.clone(),
                max_unpacked_bytes: None,
                policy,
                bridge_subnet: None,
            },
            root,
            vm_default,
        })
    }

    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine
    }

    pub fn engine(&self) -> Result<Engine> {
        Ok(Engine::open(self.engine.clone())?)
    }

    pub fn record(&self, id: &str) -> Result<Record> {
        Record::new(&self.root, id)
    }

    /// The record, the relay and (but for a sandbox) the engine's container of `id`.
    pub fn load(&self, id: &str) -> Result<Loaded> {
        let record = self.record(id)?;
        let relay = record.load()?;
        let container = if relay.sandbox {
            None
        } else {
            match self.engine()?.find(id) {
                Ok(c) => Some(c),
                Err(EngineError::NoSuchContainer(_)) => {
                    bail!("container does not exist: {id} (its record has no engine container)")
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Loaded {
            record,
            relay,
            container,
        })
    }
}

pub struct Loaded {
    pub record: Record,
    pub relay: RelayInfo,
    pub container: Option<Container>,
}

impl Loaded {
    pub fn status(&self) -> crate::status::Status {
        crate::status::of(&self.record, &self.relay, self.container.as_ref())
    }

    pub fn state(&self) -> crate::status::State {
        crate::status::state(&self.record, &self.relay, self.container.as_ref())
    }

    pub fn state_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state()).unwrap_or_default()
    }
}

fn checkpoint() -> Result<u8> {
    bail!("checkpoint is not supported by bulkhead-runc (no CRIU; VM snapshots are not exposed)")
}

/// Runs the command; returns the process's exit code.
pub fn run(cli: Cli, vm_default: bool) -> Result<u8> {
    let ctx = || Ctx::new(cli.global.root.as_deref(), vm_default);
    match cli.command {
        Command::Standard(cmd) => match *cmd {
            StandardCmd::Create(a) => create::create(&ctx()?, &a.into()).map(|_| 0),
            StandardCmd::Start(a) => lifecycle::start(&ctx()?, &a.container_id).map(|()| 0),
            StandardCmd::State(a) => query::state(&ctx()?, &a.container_id).map(|()| 0),
            StandardCmd::Kill(a) => lifecycle::kill(&ctx()?, &a).map(|()| 0),
            StandardCmd::Delete(a) => lifecycle::delete(&ctx()?, &a).map(|()| 0),
        },
        Command::Common(cmd) => match *cmd {
            CommonCmd::Run(a) => lifecycle::run(&ctx()?, &a),
            CommonCmd::Exec(a) => exec::exec(&ctx()?, &a),
            CommonCmd::Ps(a) => query::ps(&ctx()?, &a).map(|()| 0),
            CommonCmd::List(a) => query::list(&ctx()?, &a).map(|()| 0),
            CommonCmd::Update(a) => update::update(&ctx()?, &a).map(|()| 0),
            CommonCmd::Spec(a) => spec::spec(&a).map(|()| 0),
            CommonCmd::Features(_) => spec::features().map(|()| 0),
            CommonCmd::Pause(a) => lifecycle::pause(&ctx()?, &a.container_id, true).map(|()| 0),
            CommonCmd::Resume(a) => lifecycle::pause(&ctx()?, &a.container_id, false).map(|()| 0),
            CommonCmd::Events(_) => bail!("events is not supported by bulkhead-runc"),
            CommonCmd::Checkpointt(_) => checkpoint(),
        },
        Command::Checkpoint(_) => checkpoint(),
    }
}

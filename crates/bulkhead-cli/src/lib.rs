//! The docker-shaped command line: clap arguments, output formatting and the terminal relay, over the
//! engine facade.

mod args;
mod container_cmds;
mod cp;
mod cp_host;
mod format;
mod image_cmds;
mod inspect;
mod introspect_cmds;
mod network_cmds;
mod pull_progress;
mod system_cmds;
mod volume_cmds;

use args::{Cli, Command};
use bulkhead_engine::{Engine, EngineConfig, EngineError};
use clap::Parser;
use std::process::ExitCode;

pub use args::ServeArgs;

/// How the binary serves the Engine API for `bulkhead serve`: the API server is a front end of its own,
/// which this crate parses the arguments for but does not depend on.
pub type ServeFn = fn(Engine, &ServeArgs) -> anyhow::Result<()>;

/// Runs the command line of this process.
pub fn main(serve: ServeFn) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors are engine errors (125), as in docker; help and version are not errors.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    init_logging(&cli.log_level);
    let code = match dispatch(cli, serve) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            e.downcast_ref::<EngineError>()
                .map(|e| e.exit_code())
                .unwrap_or(125)
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `level` is `LEVEL` or `target=LEVEL,...` directives (`Targets` syntax: no regex engine in the binary,
/// which is also every VM guest's /init).
pub fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = level.parse().unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .init();
}

fn dispatch(cli: Cli, serve: ServeFn) -> anyhow::Result<i32> {
    // Commands that need no engine root.
    match cli.command {
        Command::Version => return system_cmds::version(),
        Command::Kernel(a) => return system_cmds::kernel(a),
        _ => {}
    }
    let mut config = EngineConfig::load(&cli.root)?;
    config.max_unpacked_bytes = cli.max_unpacked_size;
    config.bridge_subnet = cli
        .bridge_subnet
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: bulkhead_engine::NetError| anyhow::anyhow!("--bridge-subnet: {e}"))?;
    let engine = Engine::open(config)?;
    if let Command::Serve(a) = &cli.command {
        serve(engine, a)?;
        return Ok(0);
    }
    let engine = &engine;
    match cli.command {
        Command::Run(a) => container_cmds::run(engine, a),
        Command::Create(a) => container_cmds::create(engine, a),
        Command::Start(a) => container_cmds::start(engine, a),
        Command::Stop(a) => container_cmds::stop(engine, a),
        Command::Kill(a) => container_cmds::kill(engine, a),
        Command::Restart(a) => container_cmds::restart(engine, a),
        Command::Pause(a) => container_cmds::pause(engine, a, true),
        Command::Unpause(a) => container_cmds::pause(engine, a, false),
        Command::Rm(a) => container_cmds::rm(engine, a),
        Command::Ps(a) => container_cmds::ps(engine, a),
        Command::Logs(a) => container_cmds::logs(engine, a),
        Command::Wait(a) => container_cmds::wait(engine, a),
        Command::Rename(a) => container_cmds::rename(engine, a),
        Command::Events(a) => system_cmds::events(engine, a),
        Command::Inspect(a) => container_cmds::inspect(engine, a),
        Command::Exec(a) => container_cmds::exec(engine, a),
        Command::Update(a) => container_cmds::update(engine, a),
        Command::Pull(a) => image_cmds::pull(engine, a),
        Command::Images => image_cmds::images(engine),
        Command::Tag(a) => image_cmds::tag(engine, a),
        Command::Rmi(a) => image_cmds::rmi(engine, a),
        Command::Image(a) => image_cmds::image(engine, a),
        Command::Login(a) => image_cmds::login(engine, a),
        Command::Logout(a) => image_cmds::logout(engine, a),
        Command::Info => system_cmds::info(engine),
        Command::Volume(a) => volume_cmds::volume(engine, a),
        Command::Network(a) => network_cmds::network(engine, a),
        Command::Port(a) => container_cmds::port(engine, a),
        Command::Top(a) => introspect_cmds::top(engine, a),
        Command::Stats(a) => introspect_cmds::stats(engine, a),
        Command::Cp(a) => cp::cp(engine, a),
        Command::Version | Command::Kernel(_) | Command::Serve(_) => {
            unreachable!("dispatched above")
        }
    }
}

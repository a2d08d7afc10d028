//! The docker-shaped command line: clap arguments, output formatting and the terminal relay, over the
//! engine facade.

mod args;
mod container_cmds;
mod format;
mod image_cmds;
mod pull_progress;
mod system_cmds;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors are engine errors (125), as in docker; help and version are not errors.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    init_logging(&cli.log_level);
    if let Some(bytes) = cli.max_unpacked_size {
        // Through the environment, so the monitors this process starts apply the same limit.
        std::env::set_var(
            bulkhead_engine::lifecycle::MAX_UNPACKED_ENV,
            bytes.to_string(),
        );
    }
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            e.downcast_ref::<bulkhead_engine::EngineError>()
                .map(|e| e.exit_code())
                .unwrap_or(125)
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `level` is `LEVEL` or `target=LEVEL,...` directives (`Targets` syntax: no regex engine in the binary,
/// which is also every VM guest's /init).
fn init_logging(level: &str) {
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

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root;
    match cli.command {
        Command::Run(a) => container_cmds::run(&root, a),
        Command::Create(a) => container_cmds::create(&root, a),
        Command::Start(a) => container_cmds::start(&root, a),
        Command::Stop(a) => container_cmds::stop(&root, a),
        Command::Kill(a) => container_cmds::kill(&root, a),
        Command::Restart(a) => container_cmds::restart(&root, a),
        Command::Rm(a) => container_cmds::rm(&root, a),
        Command::Ps(a) => container_cmds::ps(&root, a),
        Command::Logs(a) => container_cmds::logs(&root, a),
        Command::Wait(a) => container_cmds::wait(&root, a),
        Command::Inspect(a) => container_cmds::inspect(&root, a),
        Command::Exec(a) => container_cmds::exec(&root, a),
        Command::Update(a) => container_cmds::update(&root, a),
        Command::Pull(a) => image_cmds::pull(&root, a),
        Command::Images => image_cmds::images(&root),
        Command::Tag(a) => image_cmds::tag(&root, a),
        Command::Rmi(a) => image_cmds::rmi(&root, a),
        Command::Image(a) => image_cmds::image(&root, a),
        Command::Login(a) => image_cmds::login(&root, a),
        Command::Logout(a) => image_cmds::logout(&root, a),
        Command::Info => system_cmds::info(&root),
        Command::Version => system_cmds::version(),
        Command::Kernel(a) => system_cmds::kernel(a),
        Command::Monitor(a) => system_cmds::monitor(&root, a),
    }
}

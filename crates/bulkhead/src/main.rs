//! `bulkhead`: one static binary with several roles, each owned by a library crate. This file only
//! decides which role the process plays.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::process::id() == 1 {
        // PID 1 of a bulkhead VM guest: the initramfs /init is this binary.
        bulkhead_guest::main();
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == bulkhead_engine::monitor::launch::ROLE_ARG)
    {
        // A container's monitor, started by the engine.
        bulkhead_cli::init_logging(
            &std::env::var("BULKHEAD_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let code = bulkhead_engine::monitor::launch::main(&args[2..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    if args
        .first()
        .is_some_and(|a| bulkhead_oci::is_runtime_name(a))
    {
        // The OCI runtime (runc's command line), called through a `bulkhead-runc` link.
        return bulkhead_oci::main();
    }
    bulkhead_cli::main(serve_api)
}

/// `bulkhead serve`: the Docker Engine API front end.
fn serve_api(
    engine: bulkhead_engine::Engine,
    args: &bulkhead_cli::ServeArgs,
) -> anyhow::Result<()> {
    let config = bulkhead_api::ServeConfig {
        hosts: args.host.clone(),
        group: args.group.clone(),
    };
    Ok(bulkhead_api::serve(engine, config)?)
}

//! runc's logging contract: errors go to stderr and to `--log`, as JSON lines (`{"level":"error","msg":
//! ...,"time":...}`) with `--log-format json`, which is what containerd and podman read back and show
//! their users. `--debug` turns on the engine's tracing, on stderr.

use liboci_cli::GlobalOpts;
use std::io::Write;
use std::path::PathBuf;

pub struct Log {
    file: Option<PathBuf>,
    json: bool,
}

pub fn init(global: &GlobalOpts) -> Log {
    if global.debug {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = tracing_subscriber::filter::Targets::new().with_default(tracing::Level::DEBUG);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init();
    }
    Log {
        file: global.log.clone(),
        json: global.log_format.as_deref() == Some("json"),
    }
}

impl Log {
    pub fn error(&self, msg: &str) {
        let _ = writeln!(std::io::stderr(), "{msg}");
        let Some(path) = &self.file else { return };
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = if self.json {
            serde_json::json!({ "level": "error", "msg": msg, "time": time }).to_string()
        } else {
            format!("time=\"{time}\" level=error msg={msg:?}")
        };
        // The log is the caller's; if it cannot be written, stderr has the message.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

//! `pull` progress on stderr, drawn from the registry's typed events: `indicatif` bars on a
//! terminal, one plain line per event otherwise (CI logs, pipes), nothing when quiet.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use bulkhead_engine::{PullEvent as EngineEvent, RegistryEvent as PullEvent};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const BAR_TEMPLATE: &str = "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";

/// Where the events of one pull go. Shared by the pull's download threads.
pub enum PullProgress {
    Bars {
        multi: MultiProgress,
        /// The bar of each blob being downloaded, by digest hex.
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
    Lines,
    Quiet,
}

impl PullProgress {
    /// Bars when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        if quiet {
            PullProgress::Quiet
        } else if std::io::stderr().is_terminal() {
            PullProgress::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            PullProgress::Lines
        }
    }

    /// Shows an engine pull event, as the docker CLI does.
    pub fn show_engine_event(&self, event: &EngineEvent) {
        match event {
            EngineEvent::NotFoundLocally { reference } => {
                eprintln!("Unable to find image '{reference}' locally")
            }
            EngineEvent::Registry(e) => self.show(e),
        }
    }

    /// Shows one event of the registry client.
    fn show(&self, event: &PullEvent) {
        match self {
            PullProgress::Bars { multi, bars } => draw(multi, bars, event),
            PullProgress::Lines => {
                if let Some(line) = line(event) {
                    eprintln!("{line}");
                }
            }
            PullProgress::Quiet => {}
        }
    }
}

fn draw(multi: &MultiProgress, bars: &Mutex<HashMap<String, ProgressBar>>, event: &PullEvent) {
    let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
    match event {
        PullEvent::BlobStarted { digest, size } => {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = multi.add(
                ProgressBar::new(*size)
                    .with_style(style)
                    .with_prefix(short(digest.hex()).to_owned()),
            );
            bar.set_message("downloading");
            bars.insert(digest.hex().to_owned(), bar);
        }
        PullEvent::BlobProgress { digest, downloaded } => {
            if let Some(bar) = bars.get(digest.hex()) {
                bar.set_position(*downloaded);
            }
        }
        PullEvent::BlobRetrying { digest, .. } => {
            if let Some(bar) = bars.get(digest.hex()) {
                bar.set_position(0);
                bar.set_message("retrying");
            }
            print_above(multi, event);
        }
        PullEvent::BlobDone { digest } => {
            if let Some(bar) = bars.remove(digest.hex()) {
                bar.finish_with_message("done");
            }
        }
        PullEvent::BlobFailed { digest } => {
            if let Some(bar) = bars.remove(digest.hex()) {
                bar.abandon_with_message("failed");
            }
        }
        _ => print_above(multi, event),
    }
}

fn print_above(multi: &MultiProgress, event: &PullEvent) {
    if let Some(line) = line(event) {
        // Drawing fails only when stderr is gone; there is nobody to tell then.
        let _ = multi.println(line);
    }
}

/// The plain line of an event; `None` for those shown only by bars or not at all.
fn line(event: &PullEvent) -> Option<String> {
    Some(match event {
        PullEvent::Resolving { reference } => format!("Pulling {reference}"),
        PullEvent::BlobPresent { digest } => format!("{}: already exists", short(digest.hex())),
        PullEvent::BlobStarted { digest, size } => {
            format!("{}: downloading {}", short(digest.hex()), HumanBytes(*size))
        }
        PullEvent::BlobRetrying { digest, reason, .. } => {
            format!("{}: retrying: {reason}", short(digest.hex()))
        }
        PullEvent::BlobDone { digest } => format!("{}: done", short(digest.hex())),
        PullEvent::BlobFailed { digest } => format!("{}: failed", short(digest.hex())),
        PullEvent::Done { digest, .. } => format!("Digest: {digest}"),
        PullEvent::ManifestChosen { .. } | PullEvent::BlobProgress { .. } => return None,
    })
}

/// The first 12 hex digits, as docker prints layer ids.
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

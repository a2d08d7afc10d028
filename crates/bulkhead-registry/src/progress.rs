//! Pull progress on stderr: `indicatif` bars on a terminal, one plain line per event
//! otherwise (CI logs, pipes), nothing when quiet.

use std::io::IsTerminal;

use bulkhead_image::Digest;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a pull reports progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// Progress bars when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// No output.
    Quiet,
}

const BAR_TEMPLATE: &str = "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";

/// Progress sink of one pull.
pub(crate) enum Reporter {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

impl Reporter {
    pub(crate) fn new(progress: Progress) -> Self {
        match progress {
            Progress::Quiet => Reporter::Quiet,
            Progress::Auto if std::io::stderr().is_terminal() => {
                Reporter::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            Progress::Auto => Reporter::Lines,
        }
    }

    /// A status line not tied to one blob.
    pub(crate) fn message(&self, text: &str) {
        match self {
            Reporter::Bars(multi) => {
                // Drawing fails only when stderr is gone; there is nobody to tell then.
                let _ = multi.println(text);
            }
            Reporter::Lines => eprintln!("{text}"),
            Reporter::Quiet => {}
        }
    }

    pub(crate) fn skipped(&self, digest: &Digest) {
        self.message(&format!("{}: already exists", short(digest)));
    }

    /// Starts reporting the download of one blob of `size` bytes.
    pub(crate) fn blob(&self, digest: &Digest, size: u64) -> BlobProgress {
        let label = short(digest);
        match self {
            Reporter::Bars(multi) => {
                let style = ProgressStyle::with_template(BAR_TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                let bar = multi.add(ProgressBar::new(size).with_style(style).with_prefix(label));
                bar.set_message("downloading");
                BlobProgress::Bar(bar)
            }
            Reporter::Lines => {
                eprintln!("{label}: downloading {}", HumanBytes(size));
                BlobProgress::Line(label)
            }
            Reporter::Quiet => BlobProgress::Quiet,
        }
    }
}

/// Progress of one blob download.
pub(crate) enum BlobProgress {
    Bar(ProgressBar),
    Line(String),
    Quiet,
}

impl BlobProgress {
    pub(crate) fn advance(&self, bytes: u64) {
        if let BlobProgress::Bar(bar) = self {
            bar.inc(bytes);
        }
    }

    /// The download restarts from zero after `reason`.
    pub(crate) fn retrying(&self, reason: &str) {
        match self {
            BlobProgress::Bar(bar) => {
                bar.set_position(0);
                bar.set_message("retrying");
                bar.println(format!("{}: retrying: {reason}", bar.prefix()));
            }
            BlobProgress::Line(label) => eprintln!("{label}: retrying: {reason}"),
            BlobProgress::Quiet => {}
        }
    }

    pub(crate) fn finished(&self) {
        match self {
            BlobProgress::Bar(bar) => bar.finish_with_message("done"),
            BlobProgress::Line(label) => eprintln!("{label}: done"),
            BlobProgress::Quiet => {}
        }
    }

    pub(crate) fn failed(&self) {
        match self {
            BlobProgress::Bar(bar) => bar.abandon_with_message("failed"),
            BlobProgress::Line(label) => eprintln!("{label}: failed"),
            BlobProgress::Quiet => {}
        }
    }
}

/// The first 12 hex digits, as docker prints layer ids.
fn short(digest: &Digest) -> String {
    digest.hex().chars().take(12).collect()
}

//! Human output: aligned tables, relative times, sizes, docker-style status lines.

use bulkhead_engine::{ContainerState, Status};
use chrono::{DateTime, Utc};
use std::io::Write;

/// Prints rows with columns padded to the widest cell, three spaces apart (docker's look).
pub fn table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// "5 seconds", "3 minutes", "2 hours", "4 days".
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (n, unit) = match secs {
        0..=1 => return "Less than a second".into(),
        2..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

pub fn ago(t: DateTime<Utc>) -> String {
    format!("{} ago", duration((Utc::now() - t).num_seconds()))
}

/// docker ps STATUS column.
pub fn status(s: &ContainerState) -> String {
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let since = s
                .started_at
                .map(|t| (Utc::now() - t).num_seconds())
                .unwrap_or(0);
            let paused = if s.paused { " (Paused)" } else { "" };
            format!("Up {}{paused}", duration(since))
        }
        Status::Exited => {
            let when = s.finished_at.map(ago).unwrap_or_default();
            format!("Exited ({}) {when}", s.exit_code.unwrap_or(0))
        }
    }
}

/// Decimal units, as docker prints image sizes.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let (v, i) = scaled(bytes, 1000.0, UNITS.len());
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[i]
    }
}

/// Binary units with four significant digits, as docker stats prints memory: `1.5MiB`, `7.633GiB`.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (v, i) = scaled(bytes, 1024.0, UNITS.len());
    let decimals = match v {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let mut n = format!("{v:.decimals$}");
    if n.contains('.') {
        n = n.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    n + UNITS[i]
}

/// `bytes` divided by `step` until below it (at most `units - 1` times), and how many times.
fn scaled(bytes: u64, step: f64, units: usize) -> (f64, usize) {
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= step && i + 1 < units {
        v /= step;
        i += 1;
    }
    (v, i)
}

/// The PORTS column of `ps`: `0.0.0.0:8080->80/tcp, 127.0.0.1:9000->90/udp`.
pub fn ports(s: &ContainerState) -> String {
    s.network
        .iter()
        .flat_map(|n| &n.ports)
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(size(999), "999B");
        assert_eq!(size(1_500_000), "1.5MB");
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(3 << 19), "1.5MiB");
        assert_eq!(binary_size(8_196_000_000), "7.633GiB");
        assert_eq!(duration(120), "2 minutes");
        assert_eq!(truncate("abcdef", 4), "abc…");
        let mut out = Vec::new();
        table(
            &mut out,
            &[
                vec!["A".into(), "B".into()],
                vec!["long".into(), "x".into()],
            ],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A      B\nlong   x\n");
    }
}

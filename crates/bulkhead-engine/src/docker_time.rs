//! Docker's spelling of a point in time, as `--since`/`--until` and the API's `since`/`until` take it:
//! RFC 3339, or unix seconds with an optional fraction of up to nine digits (what the docker CLI sends
//! for `10m` or a date).

use crate::EngineError;
use chrono::{DateTime, Utc};

pub fn parse_time(s: &str) -> Result<DateTime<Utc>, EngineError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad =
        || EngineError::InvalidOption(format!("invalid time {s:?} (use RFC 3339 or unix seconds)"));
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else if frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()) {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    DateTime::from_timestamp(secs, nanos).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = parse_time("1700000000.5").unwrap();
        assert_eq!(
            (t.timestamp(), t.timestamp_subsec_nanos()),
            (1700000000, 500_000_000)
        );
        let t = parse_time("2023-11-14T22:13:20.25+00:00").unwrap();
        assert_eq!(
            (t.timestamp(), t.timestamp_subsec_nanos()),
            (1700000000, 250_000_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("1.2.3").is_err());
    }
}

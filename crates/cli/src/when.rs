//! Points in the journal as a person writes them: a sequence number
//! (`1234`), a time (`2026-11-25 08:00:00`, RFC 3339, UTC unless it says
//! otherwise with `Z` or an offset such as `+01:00`), seconds since 1970
//! (`@1795597856`), or a time ago (`90m`, `2h`, `7days`, `1h ago`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Seq(u64),
    /// Nanoseconds since 1970.
    Time(u64),
}

impl When {
    /// Reads `text`, with `now` for times ago.
    pub fn parse(text: &str, now: SystemTime) -> Result<When, String> {
        let text = text.trim();
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(When::Seq(seq));
        }
        let time = if let Some(secs) = text.strip_prefix('@').and_then(|s| s.parse().ok()) {
            UNIX_EPOCH + Duration::from_secs(secs)
        } else if let Ok(ago) = humantime::parse_duration(text.trim_end_matches(" ago")) {
            now.checked_sub(ago).unwrap_or(UNIX_EPOCH)
        } else {
            rfc3339(text).ok_or_else(|| {
                format!(
                    "{text:?} is neither a sequence number, a time (2026-11-25 08:00:00, UTC, or with Z or +01:00), @seconds, nor a time ago (90m, 2h, 7days)"
                )
            })?
        };
        Ok(When::Time(nanos(time)))
    }

    /// A time only (uptime windows are times).
    pub fn time(text: &str, now: SystemTime) -> Result<u64, String> {
        match When::parse(text, now)? {
            When::Time(t) => Ok(t),
            When::Seq(_) => Err(format!(
                "{text:?}: give a time or a time ago, not a sequence number"
            )),
        }
    }
}

/// RFC 3339, with an offset or without (UTC); a space may stand for `T`.
fn rfc3339(text: &str) -> Option<SystemTime> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Some(time);
    }
    // An offset: +HH:MM or -HH:MM after the time.
    let (local, offset) = text.split_at(text.len().checked_sub(6)?);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let offset = (hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?) * 60;
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let utc = local.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64 - sign * offset;
    let subsec = local.duration_since(UNIX_EPOCH).ok()?.subsec_nanos();
    Some(UNIX_EPOCH + Duration::new(u64::try_from(utc).ok()?, subsec))
}

pub fn nanos(time: SystemTime) -> u64 {
    ddm_proto::model::unix_ns(time)
}

/// A duration as a person reads it: `3d 4h`, `12m 5s`, `40ms`.
pub fn span(nanos: u64) -> String {
    let d = Duration::from_nanos(nanos);
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_sequences_and_the_rest_times() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(When::parse("42", now), Ok(When::Seq(42)));
        assert_eq!(
            When::parse("1h", now),
            Ok(When::Time(6_400 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("1970-01-01 01:00:00", now),
            Ok(When::Time(3_600 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("1970-01-01T01:00:00Z", now),
            Ok(When::Time(3_600 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("1970-01-01T02:00:00+01:00", now),
            Ok(When::Time(3_600 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("1970-01-01 00:30:00-00:30", now),
            Ok(When::Time(3_600 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("@3600", now),
            Ok(When::Time(3_600 * 1_000_000_000))
        );
        assert_eq!(
            When::parse("10s ago", now),
            Ok(When::Time(9_990 * 1_000_000_000))
        );
        assert!(When::parse("yesterday-ish", now).is_err());
        assert!(When::time("42", now).is_err());
    }

    #[test]
    fn spans_read_like_a_person_writes_them() {
        assert_eq!(span(40_000_000), "40ms");
        assert_eq!(span(65 * 1_000_000_000), "1m 5s");
        assert_eq!(span((3 * 86_400 + 4 * 3600 + 7) * 1_000_000_000), "3d 4h");
        assert_eq!(span(3600 * 1_000_000_000), "1h");
    }
}

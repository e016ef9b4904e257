//! Attendance export: the decision log as CSV (time, person, door, outcome, score), filtered by
//! time and person, for a school office or a time sheet.

use std::io::Write;

use crate::terminal::events::{EventOutcome, LogContents};

/// Which decisions to export.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only decisions at or after this time (milliseconds since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only decisions before this time.
    pub until_ms: Option<u64>,
    /// Only this person (compared ignoring case).
    pub name: Option<String>,
}

impl Filter {
    fn keeps(&self, unix_ms: u64, name: Option<&str>) -> bool {
        self.since_ms.is_none_or(|t| unix_ms >= t)
            && self.until_ms.is_none_or(|t| unix_ms < t)
            && self.name.as_ref().is_none_or(|want| {
                name.is_some_and(|n| n.to_lowercase() == want.trim().to_lowercase())
            })
    }
}

/// Write the header and one line per kept decision; returns how many were written.
pub fn write_csv(
    contents: &LogContents,
    filter: &Filter,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    writeln!(out, "time,person,door,outcome,score")?;
    let mut n = 0;
    for (e, door) in contents.events.iter().zip(&contents.doors) {
        if !filter.keeps(e.unix_ms, e.name.as_deref()) {
            continue;
        }
        let outcome = match e.outcome {
            EventOutcome::Accepted => "accepted",
            EventOutcome::Unknown => "unknown",
            EventOutcome::Spoof => "spoof",
        };
        writeln!(
            out,
            "{},{},{},{outcome},{:.4}",
            rfc3339(e.unix_ms),
            field(e.name.as_deref().unwrap_or("")),
            field(door),
            e.similarity
        )?;
        n += 1;
    }
    Ok(n)
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). A leading `=`,
/// `+`, `-` or `@` is prefixed with `'` so a spreadsheet does not run a name as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC, an optional trailing `Z`) or Unix seconds, as
/// milliseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("{s:?} is not a time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) or Unix seconds")
    };
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|v| v.checked_mul(1000))
            .ok_or_else(bad);
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || d[0].len() != 4 || !(2..=3).contains(&t.len()) {
        return Err(bad());
    }
    let (y, m, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (h, min) = (num(t[0])?, num(t[1])?);
    let sec = t.get(2).map_or(Ok(0), |p| num(p))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(y), m, day);
    let secs = days * 86_400 + i64::from(h * 3600 + min * 60 + sec);
    u64::try_from(secs).map(|s| s * 1000).map_err(|_| bad())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch.
pub fn rfc3339(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print_round_trip() {
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert_eq!(parse_time("2000-02-29T00:00:00Z").unwrap(), 951_782_400_000);
        assert_eq!(
            parse_time("2026-11-23T23:00:15").unwrap(),
            1_795_474_815_000
        );
        assert_eq!(parse_time("2026-11-23 23:00").unwrap(), 1_795_474_800_000);
        assert_eq!(parse_time("1795474815").unwrap(), 1_795_474_815_000);
        for bad in [
            "",
            "2026-13-01",
            "26-01-01",
            "2026-01-01T25:00",
            "yesterday",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        for t in [0u64, 951_782_400_000, 1_795_474_815_000, 4_102_444_800_000] {
            assert_eq!(parse_time(&rfc3339(t)[..19]).unwrap(), t);
        }
    }

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(field("Ada"), "Ada");
        assert_eq!(field("Berg, Åsa"), "\"Berg, Åsa\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
    }
}

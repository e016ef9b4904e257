//! `facegate log`: print the decision log (and its rotated files), oldest first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use facegate::events::{read_log, EventOutcome};

use super::Context;

#[derive(Debug, Parser)]
pub struct LogArgs {
    /// Decision log file [default: [log] path]
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
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

pub fn run(ctx: &Context, args: LogArgs) -> Result<ExitCode> {
    let mut params = ctx.config.log.clone();
    if let Some(f) = args.log_file {
        params.path = f;
    }
    let contents = read_log(&params)?;
    for (file, bytes) in &contents.damaged {
        eprintln!(
            "facegate: warning: {}: {bytes} unreadable byte(s) at the end skipped (a record torn by a power cut?)",
            file.display()
        );
    }
    for e in &contents.events {
        if ctx.json {
            println!(
                "{}",
                json!({
                    "time": rfc3339(e.unix_ms),
                    "unix_ms": e.unix_ms,
                    "frame_s": e.frame_ms as f64 / 1000.0,
                    "track": e.track,
                    "outcome": e.outcome,
                    "person_id": e.person_id,
                    "name": e.name,
                    "similarity": e.similarity,
                    "frames_used": e.frames_used,
                })
            );
        } else {
            let who = match (e.outcome, &e.name, e.person_id) {
                (EventOutcome::Accepted, Some(n), Some(id)) => format!("accepted {n} (id {id})"),
                (EventOutcome::Accepted, _, _) => "accepted".to_string(),
                (EventOutcome::Unknown, _, _) => "unknown".to_string(),
                (EventOutcome::Spoof, _, _) => "spoof (liveness failed)".to_string(),
            };
            println!(
                "{} {who} similarity {:.3} frames {} track {}",
                rfc3339(e.unix_ms),
                e.similarity,
                e.frames_used,
                e.track
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            super::rfc3339(1_795_474_815_000),
            "2026-11-23T23:00:15.000Z"
        );
    }
}

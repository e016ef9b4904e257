//! `facegate log`: print the decision log (and its rotated files), oldest first; `--verify`
//! checks its MAC chain, `--csv` exports attendance.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use facegate::keys::KeyFile;
use facegate::terminal::attendance::{self, Filter};
use facegate::terminal::event_chain::{self, LogKey};
use facegate::terminal::events::{read_log, EventOutcome};

use super::Context;

#[derive(Debug, Parser)]
pub struct LogArgs {
    /// Decision log file [default: [log] path]
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Check the log's MAC chain (needs the key file): name the first changed, missing,
    /// reordered or cut-off record; exit status 1 if there is one
    #[arg(long, conflicts_with = "csv")]
    verify: bool,
    /// Export attendance as CSV: time, person, door, outcome, score
    #[arg(long)]
    csv: bool,
    /// With --csv: only decisions at or after this time (YYYY-MM-DD[THH:MM[:SS]] UTC, or Unix
    /// seconds)
    #[arg(long, requires = "csv", value_parser = attendance::parse_time)]
    since: Option<u64>,
    /// With --csv: only decisions before this time
    #[arg(long, requires = "csv", value_parser = attendance::parse_time)]
    until: Option<u64>,
    /// With --csv: only this person's decisions
    #[arg(long, requires = "csv")]
    name: Option<String>,
}

pub use facegate::terminal::attendance::rfc3339;

pub fn run(ctx: &Context, args: LogArgs) -> Result<ExitCode> {
    let mut params = ctx.config.log.clone();
    if let Some(f) = args.log_file {
        params.path = f;
    }
    if args.verify {
        return verify(ctx, &params);
    }
    let contents = read_log(&params)?;
    for (file, bytes) in &contents.damaged {
        eprintln!(
            "facegate: warning: {}: {bytes} unreadable byte(s) at the end skipped (a record torn by a power cut?)",
            file.display()
        );
    }
    if args.csv {
        let filter = Filter {
            since_ms: args.since,
            until_ms: args.until,
            name: args.name,
        };
        let mut out = std::io::stdout().lock();
        attendance::write_csv(&contents, &filter, &mut out)?;
        return Ok(ExitCode::SUCCESS);
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
    // Face-login attempts (pam_facegate), after the door's decisions.
    for l in &contents.logins {
        if ctx.json {
            println!(
                "{}",
                json!({ "time": rfc3339(l.unix_ms), "kind": "login", "login": l })
            );
        } else {
            let score = l.score.map_or("none".into(), |s| format!("{s:.3}"));
            println!(
                "{} login {} {} score {score} frames {} uid {} ({} ms{})",
                rfc3339(l.unix_ms),
                l.user,
                l.outcome,
                l.frames,
                l.peer_uid,
                l.duration_ms,
                if l.liveness { "" } else { ", without liveness" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Context, params: &facegate::terminal::events::LogParams) -> Result<ExitCode> {
    let key_file = KeyFile::new(ctx.config.key_file());
    let key = LogKey::new(&key_file.load()?);
    let v = event_chain::verify(params, &key)?;
    let problem = v.first_problem.as_ref().map(|p| p.to_string());
    if ctx.json {
        println!(
            "{}",
            json!({
                "ok": problem.is_none(),
                "records": v.records,
                "decisions": v.decisions,
                "files": v.files,
                "legacy_files": v.legacy_files,
                "torn_tail_bytes": v.torn_tail_bytes,
                "first_problem": problem,
            })
        );
    } else {
        for f in &v.legacy_files {
            println!(
                "{}: written before the chain existed: read, but cannot be verified",
                f.display()
            );
        }
        if v.torn_tail_bytes > 0 {
            println!(
                "{} byte(s) of a record torn at the end (a power cut before it was complete)",
                v.torn_tail_bytes
            );
        }
        match &problem {
            None => println!(
                "ok: {} records ({} decisions) in {} file(s), chain intact",
                v.records,
                v.decisions,
                v.files.len()
            ),
            Some(p) => println!("BROKEN: {p} ({} records verified before it)", v.records),
        }
    }
    Ok(if problem.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

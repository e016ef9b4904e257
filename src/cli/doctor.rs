//! `facegate doctor`: run the health checks and print them, OK / WARN / FAIL with a fix each.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use facegate::config::SYSTEM_CONFIG;
use facegate::health::{self, fail, ok, Check, Status};

use super::Args;

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut checks = Vec::new();
    let file = args.config.clone().or_else(|| {
        Path::new(SYSTEM_CONFIG)
            .is_file()
            .then(|| SYSTEM_CONFIG.into())
    });
    match super::load_config(args) {
        Ok(config) => {
            checks.push(ok(
                "config",
                match &file {
                    Some(f) => format!("{} parses", f.display()),
                    None => format!("no {SYSTEM_CONFIG}: built-in defaults"),
                },
            ));
            health::check_all(&config, &mut checks);
        }
        Err(e) => checks.push(fail(
            "config",
            // toml's message spans lines (a source excerpt): one line per check here.
            format!("{e:#}")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            "correct the file (every key is listed in /etc/facegate/config.toml as shipped); \
             the other checks need a config that parses",
        )),
    }
    report(&checks, args.json);
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn report(checks: &[Check], as_json: bool) {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (oks, warns, fails) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    if as_json {
        println!(
            "{}",
            json!({ "checks": checks, "ok": oks, "warn": warns, "fail": fails })
        );
        return;
    }
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for c in checks {
        let tag = match c.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{tag:<5} {:<width$} {}", c.check, c.detail);
        if let Some(fix) = &c.fix {
            println!("{:<w$} fix: {fix}", "", w = width + 6);
        }
    }
    println!("facegate doctor: {oks} OK, {warns} warning(s), {fails} failure(s)");
}

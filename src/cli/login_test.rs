//! `facegate login-test USER`: the check pam_facegate makes, through the running service, with
//! every step printed and timed (what the service said, when, and the answer).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::{json, Value};

use facegate::service::client::{Client, ClientError};

use super::Context;

#[derive(Debug, Parser)]
pub struct LoginTestArgs {
    /// The Unix account to verify (its person was enrolled with `facegate enroll --user`)
    user: String,
    /// How long the camera may be looked at, in seconds (pam_facegate: timeout= less a margin)
    #[arg(long, default_value_t = 3.2)]
    timeout: f32,
    /// Ask without liveness (as the PAM option `nolive`; the service must allow it)
    #[arg(long)]
    nolive: bool,
}

pub fn run(ctx: &Context, args: LoginTestArgs) -> Result<ExitCode> {
    let socket = &ctx.config.service.socket;
    let started = Instant::now();
    let ms = || started.elapsed().as_secs_f64() * 1000.0;
    let mut steps: Vec<Value> = Vec::new();
    let step = |what: String, steps: &mut Vec<Value>| {
        if !ctx.json {
            println!("{:>7.0} ms  {what}", ms());
        }
        steps.push(json!({ "ms": ms(), "step": what }));
    };
    let Some(mut client) = Client::connect(socket)? else {
        bail!(
            "no facegate service answers on {}: face login needs `facegate run` (pam_facegate \
             would return PAM_AUTHINFO_UNAVAIL and the password prompt follows)",
            socket.display()
        );
    };
    step(format!("connected to {}", socket.display()), &mut steps);
    let request = json!({
        "user": args.user,
        "timeout_ms": (args.timeout.max(0.0) * 1000.0) as u64,
        "liveness": !args.nolive,
    });
    step(format!("verify_user {request}"), &mut steps);
    let mut prompts = Vec::new();
    let answer = client.call_with_events("verify_user", request, &mut |event| {
        prompts.push((ms(), event));
    });
    for (at, event) in prompts {
        let text = event["prompt"]
            .as_str()
            .map_or(event.to_string(), str::to_string);
        if !ctx.json {
            println!("{at:>7.0} ms  service: {text}");
        }
        steps.push(json!({ "ms": at, "step": format!("service: {text}") }));
    }
    let (line, accepted, result) = match answer {
        Ok(r) => {
            let outcome = r["outcome"].as_str().unwrap_or("?").to_string();
            let score = r["score"]
                .as_f64()
                .map_or("none".into(), |s| format!("{s:.3}"));
            let who = r["person"]
                .as_str()
                .map_or(String::new(), |p| format!(" as {p}"));
            let line = format!(
                "{outcome}{who} (score {score}, {} frames): PAM would return {}",
                r["frames"],
                if outcome == "accepted" {
                    "PAM_SUCCESS"
                } else {
                    "PAM_AUTH_ERR"
                }
            );
            (line, outcome == "accepted", r)
        }
        Err(ClientError::Api(e)) => {
            let code = serde_json::to_value(e.code).unwrap_or_default();
            let line = format!(
                "not tried: {} ({}): PAM would return PAM_AUTHINFO_UNAVAIL",
                e.message,
                code.as_str().unwrap_or("?")
            );
            (
                line,
                false,
                json!({ "error": { "code": code, "message": e.message } }),
            )
        }
        Err(e) => return Err(e.into()),
    };
    step(line, &mut steps);
    if ctx.json {
        println!(
            "{}",
            json!({ "user": args.user, "result": result, "steps": steps, "total_ms": ms() })
        );
    }
    Ok(if accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

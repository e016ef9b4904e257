//! `facegate list`, `remove` and `clear`: gallery administration (no model is loaded). Through
//! the running service when it answers, else on the file under its lock.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::{json, Value};

use facegate::service::client::Via;
use facegate::service::ops;

use super::{via_text, Context};

#[derive(Debug, Parser)]
pub struct RemoveArgs {
    /// A person's numeric id or their name (names are matched case-insensitively)
    who: String,
}

#[derive(Debug, Parser)]
pub struct ClearArgs {
    /// Confirm that every enrolled person is to be removed
    #[arg(long)]
    yes: bool,
}

pub fn list(ctx: &Context) -> Result<ExitCode> {
    let (mut listed, via) = match ctx.service()? {
        Some(mut client) => (client.call("list", json!({}))?, Via::Service),
        None => (
            ops::list_json(&ctx.load_gallery(&ctx.gallery_id()?)?, &ctx.door_rule()?),
            Via::File,
        ),
    };
    let people = listed["people"].as_array().cloned().unwrap_or_default();
    if ctx.json {
        listed["via"] = json!(via);
        println!("{listed}");
    } else if people.is_empty() {
        println!(
            "no one is enrolled in {} ({})",
            ctx.config.gallery.display(),
            via_text(via, ctx)
        );
    } else {
        println!("{:>5}  {:<32} {:>9}  user", "id", "name", "templates");
        for p in &people {
            println!(
                "{:>5}  {:<32} {:>9}  {}",
                p["id"].as_u64().unwrap_or(0),
                p["name"].as_str().unwrap_or(""),
                p["templates"].as_u64().unwrap_or(0),
                p["user"].as_str().unwrap_or("-")
            );
        }
        let templates: u64 = people.iter().filter_map(|p| p["templates"].as_u64()).sum();
        println!(
            "{} people, {templates} templates ({}; {})",
            people.len(),
            listed["embedder"].as_str().unwrap_or(""),
            via_text(via, ctx)
        );
        if listed["operating_point"].is_object() {
            println!(
                "{}",
                ops::describe_operating_point(&listed["operating_point"])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(ctx: &Context, args: RemoveArgs) -> Result<ExitCode> {
    let (removed, via) = match ctx.service()? {
        // Answered only once the running matcher no longer holds the person.
        Some(mut client) => {
            let r = client.call("remove", json!({ "person": args.who }))?;
            (r["removed"].clone(), Via::Service)
        }
        None => {
            let selector = ops::selector(&args.who);
            let p = ctx.update_gallery(|g| anyhow::Ok(g.remove(&selector)?))?;
            (json!({ "id": p.id, "name": p.name.as_str() }), Via::File)
        }
    };
    if ctx.json {
        println!("{}", json!({ "removed": removed, "via": via }));
    } else {
        println!(
            "removed {} (id {}) {}",
            removed["name"].as_str().unwrap_or(""),
            removed["id"],
            via_text(via, ctx)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn clear(ctx: &Context, args: ClearArgs) -> Result<ExitCode> {
    if !args.yes {
        bail!("clear removes every enrolled person; run it again with --yes to confirm");
    }
    let (count, via) = match ctx.service()? {
        Some(mut client) => (
            client.call("clear", json!({}))?["removed"].clone(),
            Via::Service,
        ),
        None => {
            let n = ctx.update_gallery(|g| {
                let n = g.len();
                g.clear();
                anyhow::Ok(n)
            })?;
            (Value::from(n), Via::File)
        }
    };
    if ctx.json {
        println!("{}", json!({ "removed": count, "via": via }));
    } else {
        println!(
            "removed {count} people ({}); the previous gallery is kept as the backup",
            via_text(via, ctx)
        );
    }
    Ok(ExitCode::SUCCESS)
}

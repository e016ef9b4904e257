//! `facegate list`, `remove` and `clear`: gallery administration (no model is loaded).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::json;

use facegate::gallery::Selector;

use super::Context;

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
    let gallery = ctx.load_gallery(&ctx.gallery_id()?)?;
    let operating_point = ctx.door_rule()?.at(gallery.template_count());
    if ctx.json {
        let people: Vec<_> = gallery
            .people()
            .iter()
            .map(|p| {
                json!({
                    "id": p.id,
                    "name": p.name.as_str(),
                    "templates": p.templates.len(),
                    "created": p.created_unix,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "embedder": gallery.embedder().id.as_str(),
                "threshold": operating_point.threshold,
                "operating_point": operating_point,
                "people": people,
            })
        );
    } else if gallery.is_empty() {
        println!("no one is enrolled in {}", ctx.config.gallery.display());
    } else {
        println!("{:>5}  {:<32} {:>9}", "id", "name", "templates");
        for p in gallery.people() {
            println!(
                "{:>5}  {:<32} {:>9}",
                p.id,
                p.name.as_str(),
                p.templates.len()
            );
        }
        println!(
            "{} people, {} templates ({})",
            gallery.len(),
            gallery.template_count(),
            gallery.embedder()
        );
        println!("{}", super::describe(&operating_point));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(ctx: &Context, args: RemoveArgs) -> Result<ExitCode> {
    let mut gallery = ctx.load_gallery(&ctx.gallery_id()?)?;
    let selector = match args.who.parse::<u32>() {
        Ok(id) => Selector::Id(id),
        Err(_) => Selector::Name(args.who.clone()),
    };
    let person = gallery.remove(&selector)?;
    ctx.store().save(&gallery)?;
    if ctx.json {
        println!(
            "{}",
            json!({ "removed": { "id": person.id, "name": person.name.as_str() } })
        );
    } else {
        println!("removed {} (id {})", person.name.as_str(), person.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn clear(ctx: &Context, args: ClearArgs) -> Result<ExitCode> {
    if !args.yes {
        bail!("clear removes every enrolled person; run it again with --yes to confirm");
    }
    let mut gallery = ctx.load_gallery(&ctx.gallery_id()?)?;
    let count = gallery.len();
    gallery.clear();
    ctx.store().save(&gallery)?;
    if ctx.json {
        println!("{}", json!({ "removed": count }));
    } else {
        println!("removed {count} people; the previous gallery is kept as the backup");
    }
    Ok(ExitCode::SUCCESS)
}

//! `facegate identify IMAGE...`: who is in these photos? Open-set: below the threshold a face is
//! unknown, never "the nearest person". Through the running service when it answers (no model
//! load here), else with the models and the gallery file loaded by this command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use clap::Parser;
use serde_json::{json, Map, Value};

use facegate::media::image_io::load_rgb;
use facegate::service::client::{Client, Via};
use facegate::service::ops;

use super::Context;

#[derive(Debug, Parser)]
pub struct IdentifyArgs {
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Skip the liveness check even when `[liveness] enabled`
    #[arg(long)]
    no_liveness: bool,
}

/// Where the faces are matched.
enum Matcher {
    Service(Client),
    Local {
        pipeline: Box<facegate::vision::pipeline::Pipeline>,
        gallery: facegate::gallery::Gallery,
        /// The door's rule, applied to this gallery's size.
        door: facegate::gallery::operating_point::Rule,
    },
}

impl Matcher {
    fn identify(&mut self, path: &Path) -> Result<Map<String, Value>> {
        match self {
            Matcher::Service(client) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let image = base64::engine::general_purpose::STANDARD.encode(bytes);
                let found = client.call("identify", json!({ "image": image }))?;
                match found {
                    Value::Object(m) => Ok(m),
                    other => anyhow::bail!("the service's identify answer: {other}"),
                }
            }
            Matcher::Local {
                pipeline,
                gallery,
                door,
            } => {
                let image = load_rgb(path)?;
                let op = door.at(gallery.template_count());
                ops::identify(pipeline, &op, &image, |e| {
                    gallery.best_match(e, op.threshold)
                })
                .map_err(anyhow::Error::msg)
            }
        }
    }
}

pub fn run(ctx: &Context, args: IdentifyArgs) -> Result<ExitCode> {
    let (mut matcher, via) = match ctx.service()? {
        Some(client) => (Matcher::Service(client), Via::Service),
        None => {
            let pipeline = ctx.pipeline_live(args.no_liveness)?;
            let gallery = ctx.load_gallery(&pipeline.gallery_id()?)?;
            if gallery.is_empty() {
                eprintln!(
                    "facegate: warning: no one is enrolled in {}: every face will be unknown",
                    ctx.config.gallery.display()
                );
            }
            let door = ctx.door_rule()?;
            (
                Matcher::Local {
                    pipeline: Box::new(pipeline),
                    gallery,
                    door,
                },
                Via::File,
            )
        }
    };
    if !ctx.json {
        eprintln!("facegate: identifying {}", super::via_text(via, ctx));
    }
    let mut failed = false;
    for path in &args.images {
        let found = match matcher.identify(path) {
            Ok(f) => f,
            Err(err) => {
                failed = true;
                eprintln!("facegate: {err:#}");
                if ctx.json {
                    println!(
                        "{}",
                        json!({ "image": path, "error": format!("{err:#}"), "faces": [], "via": via })
                    );
                }
                continue;
            }
        };
        if ctx.json {
            let mut out = Map::new();
            out.insert("image".into(), json!(path));
            out.extend(found.into_iter().filter(|(k, _)| k != "image"));
            out.insert("via".into(), json!(via));
            println!("{}", Value::Object(out));
            continue;
        }
        let faces = found["faces"].as_array().cloned().unwrap_or_default();
        if faces.is_empty() {
            println!("{}: no face found", path.display());
        }
        for face in &faces {
            let (m, best) = (&face["match"], &face["best"]);
            let who = if !m.is_null() {
                format!(
                    "{} (id {}, similarity {:.3})",
                    m["name"].as_str().unwrap_or(""),
                    m["id"],
                    m["similarity"].as_f64().unwrap_or(f64::NAN)
                )
            } else if !best.is_null() {
                format!(
                    "unknown (closest: {} at {:.3})",
                    best["name"].as_str().unwrap_or(""),
                    best["similarity"].as_f64().unwrap_or(f64::NAN)
                )
            } else {
                "unknown".to_string()
            };
            let b: Vec<f64> = face["box"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let b = |i: usize| b.get(i).copied().unwrap_or(f64::NAN);
            let l = &face["liveness"];
            let live = match l["score"].as_f64() {
                Some(score) => {
                    let verdict = if l["live"] == json!(true) {
                        "live"
                    } else {
                        "SPOOF"
                    };
                    format!(" [liveness {score:.3}: {verdict}]")
                }
                None => String::new(),
            };
            println!(
                "{}: face at [{:.0}, {:.0}, {:.0}, {:.0}]: {who}{live}",
                path.display(),
                b(0),
                b(1),
                b(2),
                b(3)
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

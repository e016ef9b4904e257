//! `facegate identify IMAGE...`: who is in these photos? Open-set: below the threshold a face is
//! unknown, never "the nearest person".

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde_json::{json, Value};

use facegate::gallery::{Candidate, Match};
use facegate::media::image_io::load_rgb;
use facegate::vision::pipeline::StageTimes;

use super::Context;

#[derive(Debug, Parser)]
pub struct IdentifyArgs {
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Skip the liveness check even when `[liveness] enabled`
    #[arg(long)]
    no_liveness: bool,
}

pub fn run(ctx: &Context, args: IdentifyArgs) -> Result<ExitCode> {
    let pipeline = ctx.pipeline_live(args.no_liveness)?;
    let threshold = ctx.threshold()?;
    let gallery = ctx.load_gallery(&pipeline.gallery_id()?)?;
    if gallery.is_empty() {
        eprintln!(
            "facegate: warning: no one is enrolled in {}: every face will be unknown",
            ctx.config.gallery.display()
        );
    }
    let mut times = StageTimes::default();
    let mut failed = false;
    for path in &args.images {
        let analysis = match load_rgb(path)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(pipeline.analyse(&img, &mut times)?))
        {
            Ok(a) => a,
            Err(err) => {
                failed = true;
                eprintln!("facegate: {err:#}");
                if ctx.json {
                    println!(
                        "{}",
                        json!({ "image": path, "error": format!("{err:#}"), "faces": [] })
                    );
                }
                continue;
            }
        };
        let mut faces = Vec::new();
        for face in &analysis.faces {
            let decision = gallery.best_match(&face.embedding, threshold)?;
            let (known, best) = match decision {
                Match::Known(c) => (Some(c.clone()), Some(c)),
                Match::Unknown { best } => (None, best),
            };
            if !ctx.json {
                let who = match (&known, &best) {
                    (Some(c), _) => format!(
                        "{} (id {}, similarity {:.3})",
                        c.name.as_str(),
                        c.person_id,
                        c.similarity
                    ),
                    (None, Some(b)) => format!(
                        "unknown (closest: {} at {:.3})",
                        b.name.as_str(),
                        b.similarity
                    ),
                    (None, None) => "unknown".to_string(),
                };
                let b = face.detection.bbox;
                let live = face.liveness.map_or(String::new(), |l| {
                    let verdict = if l.live { "live" } else { "SPOOF" };
                    format!(" [liveness {:.3}: {verdict}]", l.score)
                });
                println!(
                    "{}: face at [{:.0}, {:.0}, {:.0}, {:.0}]: {who}{live}",
                    path.display(),
                    b[0],
                    b[1],
                    b[2],
                    b[3]
                );
            }
            faces.push(json!({
                "box": face.detection.bbox,
                "score": face.detection.score,
                "landmarks": face.detection.landmarks,
                "quality": face.quality,
                "liveness": face.liveness,
                "match": known.as_ref().map(candidate_json),
                "best": best.as_ref().map(candidate_json),
            }));
        }
        if ctx.json {
            println!(
                "{}",
                json!({
                    "image": path,
                    "enhanced": analysis.enhanced,
                    "threshold": threshold,
                    "faces": faces,
                })
            );
        } else if analysis.faces.is_empty() {
            println!("{}: no face found", path.display());
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn candidate_json(c: &Candidate) -> Value {
    json!({ "id": c.person_id, "name": c.name.as_str(), "similarity": c.similarity })
}

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
}

pub fn run(ctx: &Context, args: IdentifyArgs) -> Result<ExitCode> {
    let pipeline = ctx.pipeline()?;
    let gallery = ctx.load_gallery(&pipeline.gallery_id()?)?;
    // The threshold for this gallery's size (see gallery::operating_point).
    let operating_point = ctx.door_rule()?.at(gallery.template_count());
    let threshold = operating_point.threshold;
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
                println!(
                    "{}: face at [{:.0}, {:.0}, {:.0}, {:.0}]: {who}",
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
                "decision": if known.is_some() { "known" } else { "unknown" },
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
                    "operating_point": operating_point,
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

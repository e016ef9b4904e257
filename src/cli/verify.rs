//! `facegate verify A B`: are the central faces of two images the same person?

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::json;

use facegate::media::image_io::load_rgb;
use facegate::vision::embed::cosine;
use facegate::vision::pipeline::{Face, Pipeline, StageTimes};

use super::Context;

#[derive(Debug, Parser)]
pub struct VerifyArgs {
    image_a: PathBuf,
    image_b: PathBuf,
    /// Override the similarity threshold for this comparison
    #[arg(long)]
    threshold: Option<f32>,
}

pub fn run(ctx: &Context, args: VerifyArgs) -> Result<ExitCode> {
    let pipeline = ctx.pipeline()?;
    let threshold = match args.threshold {
        Some(t) => t,
        None => ctx.threshold()?,
    };
    let a = central_face(&pipeline, &args.image_a)?;
    let b = central_face(&pipeline, &args.image_b)?;
    let similarity = cosine(&a.embedding, &b.embedding);
    let same = similarity >= threshold;
    if ctx.json {
        println!(
            "{}",
            json!({
                "image_a": args.image_a,
                "image_b": args.image_b,
                "similarity": similarity,
                "threshold": threshold,
                "same": same,
                "embedder": pipeline.embedder().manifest().id,
            })
        );
    } else {
        println!(
            "{}: similarity {similarity:.4} (threshold {threshold:.4})",
            if same {
                "same person"
            } else {
                "different people"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The face nearest the image centre, or an error naming the image.
pub fn central_face(pipeline: &Pipeline, path: &Path) -> Result<Face> {
    let image = load_rgb(path)?;
    let analysis = pipeline.analyse(&image, &mut StageTimes::default())?;
    match analysis.faces.into_iter().next() {
        Some(face) => Ok(face),
        None => bail!("{}: no face found", path.display()),
    }
}

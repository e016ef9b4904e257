//! `facegate embed IMAGE...`: one JSON line per image with every face and its embedding.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use facegate::media::image_io::load_rgb;
use facegate::vision::pipeline::StageTimes;

use super::Context;

#[derive(Debug, Parser)]
pub struct EmbedArgs {
    /// Images to embed
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Skip the liveness check even when `[liveness] enabled`
    #[arg(long)]
    no_liveness: bool,
}

pub fn run(ctx: &Context, args: EmbedArgs) -> Result<ExitCode> {
    let pipeline = ctx.pipeline_live(args.no_liveness)?;
    let embedder = pipeline.embedder().manifest().id.clone();
    let mut times = StageTimes::default();
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.images {
        // One bad file must not stop a batch: report it on its own line and go on.
        let line = match load_rgb(path)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(pipeline.analyse(&img, &mut times)?))
        {
            Ok(analysis) => json!({
                "image": path,
                "embedder": embedder,
                "enhanced": analysis.enhanced,
                "faces": analysis.faces,
            }),
            Err(err) => {
                failed = true;
                eprintln!("facegate: {err:#}");
                json!({ "image": path, "embedder": embedder, "error": format!("{err:#}"), "faces": [] })
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

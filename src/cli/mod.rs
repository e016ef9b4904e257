//! One file per subcommand; this file holds the shared options and the context they load.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use facegate::config::Config;
use facegate::models::ModelDir;
use facegate::pipeline::Pipeline;

mod bench;
mod embed;
mod verify;

#[derive(Debug, Parser)]
#[command(
    name = "facegate",
    version,
    about = "Offline face recognition for door and login terminals"
)]
pub struct Args {
    /// Gallery file of enrolled people [default: from the config, else ./gallery.fg]
    #[arg(long, global = true, env = "FACEGATE_GALLERY")]
    gallery: Option<PathBuf>,
    /// Config file [default: /etc/facegate/config.toml when it exists]
    #[arg(long, global = true, env = "FACEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Embedder: mobilefacenet (default) or dlib
    #[arg(long, global = true, env = "FACEGATE_EMBEDDER")]
    embedder: Option<String>,
    /// Folder with the ONNX models and manifests [default: found next to the binary]
    #[arg(long, global = true, env = "FACEGATE_MODELS")]
    models: Option<PathBuf>,
    /// Machine-readable JSON output (schema in the README)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the faces and embeddings of images, one JSON line per image
    Embed(embed::EmbedArgs),
    /// Compare the central faces of two images
    Verify(verify::VerifyArgs),
    /// Time each pipeline stage over images
    Bench(bench::BenchArgs),
}

/// What every command may need, loaded on demand.
pub struct Context {
    pub config: Config,
    pub json: bool,
    models: ModelDir,
}

impl Context {
    fn new(args: &Args) -> Result<Self> {
        let mut config = Config::load(args.config.as_deref())?;
        if let Some(g) = &args.gallery {
            config.gallery = g.clone();
        }
        if let Some(e) = &args.embedder {
            config.embedder = e.clone();
        }
        if let Some(m) = &args.models {
            config.models_dir = Some(m.clone());
        }
        let models = ModelDir::locate(config.models_dir.as_deref())?;
        Ok(Self {
            config,
            json: args.json,
            models,
        })
    }

    /// Load and optimise the detector and embedder (verifying their checksums).
    pub fn pipeline(&self) -> Result<Pipeline> {
        Pipeline::load(
            &self.models,
            &self.config.embedder,
            self.config.detector.clone(),
            self.config.low_light.clone(),
        )
        .with_context(|| format!("loading models from {}", self.models.root().display()))
    }

    /// The open-set threshold: the config's, else the embedder's calibrated default.
    pub fn threshold(&self, pipeline: &Pipeline) -> f32 {
        self.config
            .matching
            .threshold
            .unwrap_or(pipeline.embedder().manifest().threshold)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ctx = Context::new(&args)?;
    match args.command {
        Command::Embed(a) => embed::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Bench(a) => bench::run(&ctx, a),
    }
}

//! One file per subcommand; this file holds the shared options and the context they load.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use facegate::config::Config;
use facegate::runtime::precision::PrecisionSetting;
use facegate::service::client::Via;
use facegate::setup::{Overrides, Setup};

mod bench;
mod calibrate;
mod doctor;
mod embed;
mod enroll;
mod eval;
mod identify;
mod log;
mod login_test;
mod people;
mod run;
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
    /// Model precision: fp32, int8, f16, or auto (fastest within 0.2 LFW points of fp32, timed
    /// once on this device) [default: from the config, else fp32]
    #[arg(long, global = true, env = "FACEGATE_PRECISION")]
    precision: Option<PrecisionSetting>,
    /// Key file the gallery and decision log are sealed with [default: [security] key_file,
    /// else ~/.config/facegate/gallery.key]
    #[arg(long, global = true, env = "FACEGATE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Folder with the ONNX models and manifests [default: found next to the binary]
    #[arg(long, global = true, env = "FACEGATE_MODELS")]
    models: Option<PathBuf>,
    /// The running service's API socket: enroll, remove, clear, list and identify go through
    /// it when it answers [default: [service] socket, /run/facegate/api.sock]
    #[arg(long, global = true, env = "FACEGATE_SOCKET")]
    socket: Option<PathBuf>,
    /// Machine-readable JSON output (schema in the README)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll one person from photos (one template per photo)
    Enroll(enroll::EnrollArgs),
    /// Recognise the faces in images against the gallery
    Identify(identify::IdentifyArgs),
    /// Print the faces and embeddings of images, one JSON line per image
    Embed(embed::EmbedArgs),
    /// Compare the central faces of two images
    Verify(verify::VerifyArgs),
    /// List enrolled people
    List,
    /// Remove one enrolled person by id or name
    Remove(people::RemoveArgs),
    /// Remove everyone from the gallery
    Clear(people::ClearArgs),
    /// Choose the match threshold for a target false accept rate (or, with --liveness-*, the
    /// liveness threshold for a target APCER)
    Calibrate(calibrate::CalibrateArgs),
    /// Time each pipeline stage over images
    Bench(bench::BenchArgs),
    /// Measure accuracy on your own data: pairs, open-set 1:N, conditions, heatmap, liveness
    Eval(eval::EvalArgs),
    /// Run the terminal: camera frames in, accept / unknown / spoof out (LEDs, relay, display,
    /// log)
    Run(run::RunArgs),
    /// Print the decision log
    Log(log::LogArgs),
    /// Run the face-login check pam_facegate makes for USER through the service, step by step
    LoginTest(login_test::LoginTestArgs),
    /// Check that this machine can run the terminal as configured, and say what to fix
    Doctor,
}

/// What every command may need: the library's [`Setup`] (config, models, gallery), and how to
/// print.
pub struct Context {
    pub json: bool,
    setup: Setup,
}

impl std::ops::Deref for Context {
    type Target = Setup;
    fn deref(&self) -> &Setup {
        &self.setup
    }
}

impl Context {
    fn new(args: &Args) -> Result<Self> {
        Ok(Self {
            json: args.json,
            setup: Setup::new(&args.overrides())?,
        })
    }

    /// The same context with another embedder (see [`Setup::with_embedder`]).
    pub fn with_embedder(&self, embedder: &str) -> Result<Self> {
        Ok(Self {
            json: self.json,
            setup: self.setup.with_embedder(embedder)?,
        })
    }
}

impl Args {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            gallery: self.gallery.clone(),
            embedder: self.embedder.clone(),
            models: self.models.clone(),
            precision: self.precision,
            key_file: self.key_file.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// The config file with the command line's overrides applied.
fn load_config(args: &Args) -> Result<Config> {
    Ok(args.overrides().load_config()?)
}

pub fn run(args: Args) -> Result<ExitCode> {
    // The doctor reports a broken config or model folder instead of stopping at it.
    if let Command::Doctor = args.command {
        return doctor::run(&args);
    }
    let ctx = Context::new(&args)?;
    match args.command {
        Command::Enroll(a) => enroll::run(&ctx, a),
        Command::Identify(a) => identify::run(&ctx, a),
        Command::List => people::list(&ctx),
        Command::Remove(a) => people::remove(&ctx, a),
        Command::Clear(a) => people::clear(&ctx, a),
        Command::Embed(a) => embed::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Calibrate(a) => calibrate::run(&ctx, a),
        Command::Bench(a) => bench::run(&ctx, a),
        Command::Eval(a) => eval::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Log(a) => log::run(&ctx, a),
        Command::LoginTest(a) => login_test::run(&ctx, a),
        Command::Doctor => unreachable!("handled above"),
    }
}

/// How a command's text output names the path it took.
pub fn via_text(via: Via, ctx: &Context) -> String {
    match via {
        Via::Service => format!("via the service at {}", ctx.config.service.socket.display()),
        Via::File => format!("directly in {}", ctx.config.gallery.display()),
    }
}

//! One file per subcommand; this file holds the shared options and the context they load.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use facegate::config::Config;
use facegate::gallery::operating_point::{ImpostorTail, Rule};
use facegate::gallery::{EmbedderId, Gallery, GalleryStore, LoadSource};
use facegate::runtime::models::{DetectorManifest, EmbedderManifest, ModelDir, ModelError};
use facegate::runtime::precision::{self, Precision, PrecisionSetting};
use facegate::vision::pipeline::{gallery_id, Pipeline};

// Moved out of cli/; the next commit turns it into library code.
#[path = "../perf/bench.rs"]
mod bench;
// Moved out of cli/; the next commit turns it into library code.
#[path = "../eval/calibrate.rs"]
mod calibrate;
// Moved out of cli/; the next commit turns it into library code.
#[path = "../perf/compare.rs"]
mod compare;
// Moved out of cli/; the next commit turns it into library code.
#[path = "../health/mod.rs"]
mod doctor;
mod embed;
mod enroll;
// Moved out of cli/; the next commit turns it into library code.
#[path = "../eval/protocols.rs"]
mod eval;
mod identify;
mod log;
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
    /// Choose the match threshold for a target false accept rate
    Calibrate(calibrate::CalibrateArgs),
    /// Time each pipeline stage over images
    Bench(bench::BenchArgs),
    /// Measure accuracy on your own data: pairs, open-set 1:N, conditions, heatmap
    Eval(eval::EvalArgs),
    /// Run the terminal: camera frames in, accept / unknown out (LEDs, relay, display, log)
    Run(run::RunArgs),
    /// Print the decision log
    Log(log::LogArgs),
    /// Check that this machine can run the terminal as configured, and say what to fix
    Doctor,
}

/// What every command may need, loaded on demand.
pub struct Context {
    pub config: Config,
    pub json: bool,
    models: ModelDir,
    /// The embedder and detector in the configured precision, resolved on first use.
    variants: std::sync::OnceLock<(EmbedderManifest, DetectorManifest)>,
}

impl Context {
    fn new(args: &Args) -> Result<Self> {
        let config = load_config(args)?;
        let models = ModelDir::locate(config.models_dir.as_deref())?;
        Ok(Self {
            config,
            json: args.json,
            models,
            variants: std::sync::OnceLock::new(),
        })
    }

    /// Load and optimise the detector and embedder (verifying their checksums).
    pub fn pipeline(&self) -> Result<Pipeline> {
        let (embedder, detector) = self.variants()?;
        Pipeline::load_variants(
            &self.models,
            embedder.clone(),
            detector,
            self.config.detector.clone(),
            self.config.low_light.clone(),
        )
        .with_context(|| format!("loading models from {}", self.models.root().display()))
    }

    /// The same context with another embedder. A threshold set in the config belongs to the
    /// configured embedder, so another embedder falls back to its own calibrated default.
    pub fn with_embedder(&self, embedder: &str) -> Result<Self> {
        let mut config = self.config.clone();
        let current = self.models.embedder_manifest(&self.config.embedder)?.id;
        let other = self.models.embedder_manifest(embedder)?.id;
        if other != current {
            config.embedder = other;
            config.matching.threshold = None;
        }
        Ok(Self {
            config,
            json: self.json,
            models: self.models.clone(),
            variants: std::sync::OnceLock::new(),
        })
    }

    /// The folder the ONNX models and manifests are loaded from.
    pub fn models_root(&self) -> &std::path::Path {
        self.models.root()
    }

    /// The manifests of the embedder and detector in the configured precision.
    pub fn variants(&self) -> Result<&(EmbedderManifest, DetectorManifest)> {
        if let Some(v) = self.variants.get() {
            return Ok(v);
        }
        let resolved = match self.config.precision.fixed() {
            Some(p) => (
                self.models.embedder_variant(&self.config.embedder, p)?,
                detector_or_fp32(&self.models, p)?,
            ),
            None => self.auto_variants()?,
        };
        Ok(self.variants.get_or_init(|| resolved))
    }

    /// `precision = "auto"`: the cached choice for this device, else time the variants now. An
    /// existing gallery keeps the embedder variant it was enrolled with.
    fn auto_variants(&self) -> Result<(EmbedderManifest, DetectorManifest)> {
        let dir = &self.models;
        let candidates = precision::Candidates::find(dir, &self.config.embedder)?;
        let path = precision::cache_path(&self.config.gallery);
        let choice = match precision::cached(&path, &candidates.key()) {
            Some(c) => c,
            None => {
                eprintln!(
                    "facegate: precision auto: timing the model variants once on this device \
                     (cached in {})",
                    path.display()
                );
                let choice = precision::choose(
                    &candidates,
                    &path,
                    |m| time_embedder(dir, m),
                    |m| time_detector(dir, m, &self.config.detector),
                )?;
                for t in &choice.timings {
                    let ms = if t.eligible {
                        format!("{:.1} ms", t.ms)
                    } else {
                        "not timed (accuracy not within 0.2 points of fp32, or no f16 \
                         arithmetic on this CPU)"
                            .to_string()
                    };
                    eprintln!("facegate:   {} ({}): {ms}", t.model, t.precision);
                }
                eprintln!(
                    "facegate: precision auto: embedder {}, detector {}",
                    choice.embedder, choice.detector
                );
                choice
            }
        };
        let mut embedder = dir.embedder_variant(&self.config.embedder, choice.embedder)?;
        // Never switch a gallery's templates to another variant behind the user's back.
        if let Ok(header) = facegate::gallery::store::inspect(&self.config.gallery) {
            if let Some(m) = candidates
                .embedders
                .iter()
                .find(|m| gallery_id(m).is_ok_and(|id| id == header.embedder))
            {
                if m.id != embedder.id {
                    eprintln!(
                        "facegate: precision auto: the gallery was enrolled with {} ({}); \
                         using it rather than {} (re-enroll to switch)",
                        m.id, m.precision, embedder.id
                    );
                }
                embedder = m.clone();
            }
        }
        Ok((embedder, dir.detector_variant(choice.detector)?))
    }

    /// The gallery's store, at the configured path.
    pub fn store(&self) -> GalleryStore {
        GalleryStore::new(&self.config.gallery)
    }

    /// The gallery identity of the configured embedder, without loading the model.
    pub fn gallery_id(&self) -> Result<EmbedderId> {
        Ok(gallery_id(&self.variants()?.0)?)
    }

    /// Load the gallery for `expected`, saying so on stderr when the backup had to be used.
    pub fn load_gallery(&self, expected: &EmbedderId) -> Result<Gallery> {
        let store = self.store();
        let loaded = store.load(expected)?;
        if let LoadSource::Backup { main_error } = &loaded.source {
            eprintln!(
                "facegate: warning: {} is unusable ({main_error}); loaded the backup {}",
                store.path().display(),
                store.backup_path().display()
            );
        }
        Ok(loaded.gallery)
    }

    /// The 1:1 (login) threshold: the config's fixed one, else derived for
    /// `login_accept_rate` against one template, else the embedder's manifest default.
    pub fn threshold(&self) -> Result<f32> {
        Ok(self
            .rule(self.config.matching.login_accept_rate)?
            .at(1)
            .threshold)
    }

    /// The door (1:N) threshold rule: a stranger's attempt against the whole gallery.
    pub fn door_rule(&self) -> Result<Rule> {
        self.rule(self.config.matching.stranger_accept_rate)
    }

    /// The threshold rule for a target rate: a fixed `[matching] threshold` wins, then the
    /// embedder's shipped impostor tail, then its manifest threshold.
    fn rule(&self, target: f64) -> Result<Rule> {
        if let Some(t) = self.config.matching.threshold {
            return Ok(Rule::Fixed(t));
        }
        let manifest = &self.variants()?.0;
        let Some(file) = &manifest.impostors else {
            return Ok(Rule::Manifest(manifest.threshold));
        };
        let tail = ImpostorTail::load(&self.models.root().join(file), &manifest.sha256)?;
        Ok(Rule::derived(target, tail)?)
    }
}

/// One line saying which threshold applies and why.
pub fn describe(op: &facegate::gallery::operating_point::OperatingPoint) -> String {
    match (op.target, op.predicted_rate) {
        (Some(target), Some(p)) => format!(
            "door threshold {:.4}: derived for a stranger accept rate of {target:.0e} per attempt \
             against {} templates (predicted {p:.1e})",
            op.threshold, op.comparisons
        ),
        _ => format!("door threshold {:.4} ({})", op.threshold, op.rule),
    }
}

/// The config file with the command line's overrides applied.
fn load_config(args: &Args) -> Result<Config> {
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
    if let Some(p) = args.precision {
        config.precision = p;
    }
    Ok(config)
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
        Command::Doctor => unreachable!("handled above"),
    }
}

/// The images (of a batch embedded together) in which no face was found, for reports.
pub fn missed(images: &[PathBuf], embeddings: &[Option<Vec<f32>>]) -> Vec<String> {
    images
        .iter()
        .zip(embeddings)
        .filter(|(_, e)| e.is_none())
        .map(|(p, _)| p.display().to_string())
        .collect()
}

/// The detector in `precision`; fp32 where that variant does not exist for the detector but is
/// a precision only embedders have (f16).
fn detector_or_fp32(dir: &ModelDir, precision: Precision) -> Result<DetectorManifest> {
    match dir.detector_variant(precision) {
        Err(ModelError::NoVariant { .. }) if precision == Precision::F16 => {
            Ok(dir.detector_variant(Precision::Fp32)?)
        }
        other => Ok(other?),
    }
}

/// Median time of one embedding with this variant (a synthetic chip: timing does not depend on
/// the picture).
fn time_embedder(dir: &ModelDir, m: &EmbedderManifest) -> Result<std::time::Duration, String> {
    let embedder = facegate::vision::embed::Embedder::from_manifest(dir, m.clone())
        .map_err(|e| e.to_string())?;
    let (w, h) = embedder.chip_size();
    let chip = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) & 0xff) as u8])
    });
    precision::median_time(10, || {
        embedder.embed(&chip).map(|_| ()).map_err(|e| e.to_string())
    })
}

/// Median time of detection in a 640×480 frame with this variant. The synthetic frame holds no
/// face, so this times the P-Net pyramid, the bulk of MTCNN's work on a camera frame.
fn time_detector(
    dir: &ModelDir,
    m: &DetectorManifest,
    params: &facegate::vision::detect::DetectorParams,
) -> Result<std::time::Duration, String> {
    let mtcnn = facegate::vision::detect::Mtcnn::from_manifest(dir, m, params.clone())
        .map_err(|e| e.to_string())?;
    let frame = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x ^ y) & 0xff) as u8])
    });
    let mut times = Default::default();
    precision::median_time(5, || {
        mtcnn
            .detect(&frame, &mut times)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

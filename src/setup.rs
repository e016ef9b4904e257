//! What every command loads, on demand: the config (with the command line's overrides), the
//! model folder, the model variants in the configured precision (timed once per device for
//! `precision = "auto"`), and the gallery file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::gallery::operating_point::{ImpostorTail, OperatingPointError, Rule};
use crate::gallery::{EmbedderId, Gallery, GalleryError, GalleryStore, LoadSource, Saved};
use crate::runtime::models::{DetectorManifest, EmbedderManifest, ModelDir, ModelError};
use crate::runtime::precision::{self, Precision, PrecisionError, PrecisionSetting};
use crate::service::client::{Client, ClientError};
use crate::vision::detect::{DetectorParams, Mtcnn};
use crate::vision::embed::Embedder;
use crate::vision::liveness::{Liveness, LivenessError};
use crate::vision::pipeline::{gallery_id, Pipeline, PipelineError};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error(transparent)]
    OperatingPoint(#[from] OperatingPointError),
    #[error("loading models from {}: {error}", root.display())]
    Pipeline { root: PathBuf, error: PipelineError },
    #[error(
        "loading the liveness models from {}: {error} (set [liveness] enabled = false to run \
         without)",
        root.display()
    )]
    Liveness { root: PathBuf, error: LivenessError },
}

/// Values given on the command line (or in the environment) that replace the config's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub gallery: Option<PathBuf>,
    pub embedder: Option<String>,
    pub models: Option<PathBuf>,
    pub precision: Option<PrecisionSetting>,
    pub key_file: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

impl Overrides {
    /// The config file with these overrides applied.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(g) = &self.gallery {
            config.gallery = g.clone();
        }
        if let Some(e) = &self.embedder {
            config.embedder = e.clone();
        }
        if let Some(m) = &self.models {
            config.models_dir = Some(m.clone());
        }
        if let Some(p) = self.precision {
            config.precision = p;
        }
        if let Some(k) = &self.key_file {
            config.security.key_file = Some(k.clone());
        }
        if let Some(s) = &self.socket {
            config.service.socket = s.clone();
        }
        Ok(config)
    }
}

/// The loaded config and model folder; models and the gallery are loaded when asked for.
pub struct Setup {
    pub config: Config,
    models: ModelDir,
    /// The embedder and detector in the configured precision, resolved on first use.
    variants: OnceLock<(EmbedderManifest, DetectorManifest)>,
}

impl Setup {
    pub fn new(overrides: &Overrides) -> Result<Self, SetupError> {
        Self::from_config(overrides.load_config()?)
    }

    pub fn from_config(config: Config) -> Result<Self, SetupError> {
        let models = ModelDir::locate(config.models_dir.as_deref())?;
        Ok(Self {
            config,
            models,
            variants: OnceLock::new(),
        })
    }

    /// Load and optimise the detector and embedder (verifying their checksums).
    pub fn pipeline(&self) -> Result<Pipeline, SetupError> {
        let (embedder, detector) = self.variants()?;
        let mut pipeline = Pipeline::load_variants(
            &self.models,
            embedder.clone(),
            detector,
            self.config.detector.clone(),
            self.config.low_light.clone(),
        )
        .map_err(|error| SetupError::Pipeline {
            root: self.models.root().to_path_buf(),
            error,
        })?;
        pipeline.set_mirrored_embedding(self.config.matching.mirrored_embedding);
        Ok(pipeline)
    }

    /// [`Setup::pipeline`] with the liveness check when `[liveness] enabled` (and not
    /// `disabled` here, e.g. by `--no-liveness`).
    pub fn pipeline_live(&self, disabled: bool) -> Result<Pipeline, SetupError> {
        let mut pipeline = self.pipeline()?;
        if self.config.liveness.enabled && !disabled {
            pipeline.set_liveness(Some(self.liveness()?));
        }
        Ok(pipeline)
    }

    /// The liveness nets the config names (checksums verified).
    pub fn liveness(&self) -> Result<Liveness, SetupError> {
        Liveness::load(&self.models, self.config.liveness.clone()).map_err(|error| {
            SetupError::Liveness {
                root: self.models.root().to_path_buf(),
                error,
            }
        })
    }

    /// The same setup with another embedder. A threshold set in the config belongs to the
    /// configured embedder, so another embedder falls back to its own calibrated default.
    pub fn with_embedder(&self, embedder: &str) -> Result<Self, SetupError> {
        let mut config = self.config.clone();
        let current = self.models.embedder_manifest(&self.config.embedder)?.id;
        let other = self.models.embedder_manifest(embedder)?.id;
        if other != current {
            config.embedder = other;
            config.matching.threshold = None;
        }
        Ok(Self {
            config,
            models: self.models.clone(),
            variants: OnceLock::new(),
        })
    }

    /// The folder the ONNX models and manifests are loaded from.
    pub fn models_root(&self) -> &Path {
        self.models.root()
    }

    /// The model folder.
    pub fn model_dir(&self) -> &ModelDir {
        &self.models
    }

    /// The manifests of the embedder and detector in the configured precision.
    pub fn variants(&self) -> Result<&(EmbedderManifest, DetectorManifest), SetupError> {
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
    fn auto_variants(&self) -> Result<(EmbedderManifest, DetectorManifest), SetupError> {
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
        if let Ok(header) = crate::gallery::store::inspect(&self.config.gallery) {
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

    /// The gallery's store, at the configured path, with the configured key file.
    pub fn store(&self) -> GalleryStore {
        GalleryStore::new(&self.config.gallery).with_key_file(self.config.key_file())
    }

    /// Change the gallery file directly (no service runs): load, change and save under the
    /// writers' lock, telling the user about a backup used, a new key file or a migration.
    pub fn update_gallery<T, E>(
        &self,
        change: impl FnOnce(&mut Gallery) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<GalleryError> + From<SetupError>,
    {
        let store = self.store();
        let (out, source, saved) = store.update(&self.gallery_id()?, change)?;
        if let LoadSource::Backup { main_error } = &source {
            eprintln!(
                "facegate: warning: {} was unusable ({main_error}); changed the backup {} and \
                 saved it as the gallery",
                store.path().display(),
                store.backup_path().display()
            );
        }
        self.report_saved(&store, &saved);
        Ok(out)
    }

    fn report_saved(&self, store: &GalleryStore, saved: &Saved) {
        if saved.key_created {
            eprintln!(
                "facegate: created the key file {} (mode 0600): keep a copy of it somewhere \
                 safe; without it the gallery cannot be read",
                store.key_file().path().display()
            );
        }
        if saved.migrated_plain {
            eprintln!(
                "facegate: the gallery {} is now encrypted; the previous, unencrypted version \
                 is kept as {} until the next change (delete it once you have checked the \
                 new one)",
                store.path().display(),
                store.backup_path().display()
            );
        }
    }

    /// The gallery identity of the configured embedder, without loading the model.
    pub fn gallery_id(&self) -> Result<EmbedderId, SetupError> {
        Ok(gallery_id(&self.variants()?.0)?)
    }

    /// Load the gallery for `expected`, saying so on stderr when the backup had to be used.
    pub fn load_gallery(&self, expected: &EmbedderId) -> Result<Gallery, SetupError> {
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

    /// The service that owns the configured gallery, if one answers on the socket.
    pub fn service(&self) -> Result<Option<Client>, ClientError> {
        Client::for_gallery(&self.config.service.socket, &self.config.gallery)
    }

    /// The models as `status` reports them: (file, sha256).
    pub fn model_files(&self) -> Result<Vec<(String, String)>, SetupError> {
        let (e, d) = self.variants()?;
        Ok([
            (&e.file, &e.sha256),
            (&d.pnet.file, &d.pnet.sha256),
            (&d.rnet.file, &d.rnet.sha256),
            (&d.onet.file, &d.onet.sha256),
        ]
        .into_iter()
        .map(|(f, s)| (f.clone(), s.clone()))
        .collect())
    }

    /// The 1:1 (login, `verify`) threshold: the config's fixed one, else derived for
    /// `login_accept_rate` against one template, else the embedder's manifest default.
    pub fn threshold(&self) -> Result<f32, SetupError> {
        Ok(self
            .rule(self.config.matching.login_accept_rate)?
            .at(1)
            .threshold)
    }

    /// The door (1:N) threshold rule: a stranger's attempt against the whole gallery. Apply it
    /// to the gallery's template count ([`Rule::at`]) whenever the gallery changes.
    pub fn door_rule(&self) -> Result<Rule, SetupError> {
        self.rule(self.config.matching.stranger_accept_rate)
    }

    /// The threshold rule for a target rate: a fixed `[matching] threshold` wins, then the
    /// embedder's shipped impostor tail (never below its manifest threshold), then its manifest
    /// threshold.
    fn rule(&self, target: f64) -> Result<Rule, SetupError> {
        if let Some(t) = self.config.matching.threshold {
            return Ok(Rule::Fixed(t));
        }
        let manifest = &self.variants()?.0;
        let Some(file) = &manifest.impostors else {
            return Ok(Rule::Manifest(manifest.threshold));
        };
        let tail = ImpostorTail::load(&self.models.root().join(file), &manifest.sha256)?;
        Ok(Rule::derived(target, tail)?.with_floor(manifest.threshold))
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
fn detector_or_fp32(dir: &ModelDir, precision: Precision) -> Result<DetectorManifest, ModelError> {
    match dir.detector_variant(precision) {
        Err(ModelError::NoVariant { .. }) if precision == Precision::F16 => {
            dir.detector_variant(Precision::Fp32)
        }
        other => other,
    }
}

/// Median time of one embedding with this variant (a synthetic chip: timing does not depend on
/// the picture).
fn time_embedder(dir: &ModelDir, m: &EmbedderManifest) -> Result<Duration, String> {
    let embedder = Embedder::from_manifest(dir, m.clone()).map_err(|e| e.to_string())?;
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
    params: &DetectorParams,
) -> Result<Duration, String> {
    let mtcnn = Mtcnn::from_manifest(dir, m, params.clone()).map_err(|e| e.to_string())?;
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

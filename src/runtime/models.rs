//! Model manifests, finding the model folder, checksum verification and tract plan building.
//!
//! Every ONNX file ships with a TOML manifest written by `models/convert_*.py`. facegate refuses a
//! file whose sha256 differs from its manifest: a half-copied or swapped model must never produce
//! embeddings that silently mismatch the enrolled gallery.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

/// A runnable, optimised tract plan.
pub type Plan = Arc<TypedRunnableModel>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model folder not found (looked in: {looked}); pass --models DIR or set FACEGATE_MODELS"
    )]
    FolderNotFound { looked: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is invalid: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("unknown embedder '{name}' (available: {available})")]
    UnknownEmbedder { name: String, available: String },
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, file has {actual} \
         (the file is damaged or not the model the manifest describes; regenerate with models/convert)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "there is no {precision} variant of {model} in {}: make it with models/convert \
         (models/quantize.py), or set precision = \"fp32\"",
        dir.display()
    )]
    NoVariant {
        model: String,
        precision: Precision,
        dir: PathBuf,
    },
    #[error("loading model {path}: {message}")]
    Tract { path: PathBuf, message: String },
}

/// Where a converted model came from, as recorded by the conversion script.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceInfo {
    pub package: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub licence: String,
}

/// The manifest of a face embedder (`models/<id>.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct EmbedderManifest {
    pub id: String,
    pub file: String,
    pub sha256: String,
    pub input_shape: [usize; 4],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub template_size: [u32; 2],
    pub template: [[f32; 2]; 5],
    pub output_dim: usize,
    pub metric: String,
    /// Default open-set threshold on cosine similarity; the config may override it.
    pub threshold: f32,
    pub source: SourceInfo,
    /// fp32 unless the file is a variant made by `models/quantize.py`.
    #[serde(default)]
    pub precision: Precision,
    /// The id of the fp32 model a variant was made from.
    #[serde(default)]
    pub variant_of: Option<String>,
    /// LFW dev folds 1-2 k-fold accuracy in percent, measured by `facegate eval pairs`.
    #[serde(default)]
    pub lfw_accuracy: Option<f32>,
    /// The impostor score tail measured for this model (`<id>.impostors.toml`), from which the
    /// threshold for a gallery's size is derived; without it the fixed `threshold` is used.
    #[serde(default)]
    pub impostors: Option<String>,
}

/// One of the three MTCNN networks inside `models/mtcnn.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct NetFile {
    pub file: String,
    pub sha256: String,
}

/// The manifest of the MTCNN detector (`models/mtcnn.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorManifest {
    pub id: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub pnet: NetFile,
    pub rnet: NetFile,
    pub onet: NetFile,
    #[serde(default)]
    pub precision: Precision,
    /// LFW dev folds 1-2 k-fold accuracy in percent of the whole pipeline with this detector and
    /// the fp32 default embedder, measured by `facegate eval pairs`.
    #[serde(default)]
    pub lfw_accuracy: Option<f32>,
}

/// The manifest of the liveness nets, written by `models/convert_minifasnet.py`.
pub const LIVENESS_MANIFEST: &str = "minifasnet.toml";

/// One liveness net inside `models/minifasnet.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct LivenessNet {
    pub file: String,
    pub sha256: String,
    /// The crop is this many times the face box.
    pub scale: f32,
    pub source: SourceInfo,
}

/// The manifest of the liveness nets (`models/minifasnet.toml`): the nets by name.
#[derive(Debug, Clone, Deserialize)]
pub struct LivenessManifest {
    pub id: String,
    pub kind: String,
    pub channel_order: String,
    pub input_size: [u32; 2],
    pub real_class: usize,
    #[serde(flatten)]
    pub nets: BTreeMap<String, LivenessNet>,
}

/// The folder holding the ONNX files and their manifests.
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// Use `explicit` if given, otherwise the first folder that holds `mtcnn.toml` among: next to
    /// the binary (`models/`), the installed location (`../share/facegate/models`), the system
    /// location (`/usr/share/facegate/models`) and the source checkout the binary was built from.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, ModelError> {
        if let Some(dir) = explicit {
            return Ok(Self {
                root: dir.to_path_buf(),
            });
        }
        let mut candidates = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            if let Some(bin_dir) = exe.parent() {
                candidates.push(bin_dir.join("models"));
                candidates.push(bin_dir.join("../share/facegate/models"));
            }
        }
        candidates.push(PathBuf::from("/usr/share/facegate/models"));
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
        for dir in &candidates {
            if dir.join("mtcnn.toml").is_file() {
                return Ok(Self { root: dir.clone() });
            }
        }
        Err(ModelError::FolderNotFound {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn detector_manifest(&self) -> Result<DetectorManifest, ModelError> {
        read_manifest(&self.root.join("mtcnn.toml"))
    }

    /// The detector in `precision` (`mtcnn.toml`, `mtcnn-int8.toml`, ...).
    pub fn detector_variant(&self, precision: Precision) -> Result<DetectorManifest, ModelError> {
        if precision == Precision::Fp32 {
            return self.detector_manifest();
        }
        let path = self.root.join(format!("mtcnn-{precision}.toml"));
        if !path.is_file() {
            return Err(ModelError::NoVariant {
                model: "the MTCNN detector".into(),
                precision,
                dir: self.root.clone(),
            });
        }
        let manifest: DetectorManifest = read_manifest(&path)?;
        check_precision(&path, manifest.precision, precision)?;
        Ok(manifest)
    }

    /// The manifest of the liveness nets (`minifasnet.toml`).
    pub fn liveness_manifest(&self) -> Result<LivenessManifest, ModelError> {
        let path = self.liveness_manifest_path();
        let manifest: LivenessManifest = read_manifest(&path)?;
        if manifest.channel_order != "bgr" {
            return Err(ModelError::Manifest {
                path,
                message: format!("unsupported channel_order '{}'", manifest.channel_order),
            });
        }
        Ok(manifest)
    }

    pub fn liveness_manifest_path(&self) -> PathBuf {
        self.root.join(LIVENESS_MANIFEST)
    }

    /// The embedder `name` in `precision`: `<id>-<precision>.toml` beside the fp32 `<id>.toml`.
    /// A name that states a variant (`mobilefacenet-arcface-int8`, or `...-fp32` for the fp32
    /// file) is used as named, whatever `precision` says: that is how one measures a variant of
    /// the embedder alone, with the detector in another precision.
    pub fn embedder_variant(
        &self,
        name: &str,
        precision: Precision,
    ) -> Result<EmbedderManifest, ModelError> {
        if let Some(fp32) = name.strip_suffix("-fp32") {
            return self.embedder_manifest(fp32);
        }
        let base = self.embedder_manifest(name)?;
        if base.precision == precision || base.variant_of.is_some() {
            return Ok(base);
        }
        let id = base.variant_of.as_deref().unwrap_or(&base.id);
        let path = self.root.join(format!("{id}-{precision}.toml"));
        if precision == Precision::Fp32 {
            return self.embedder_manifest(id);
        }
        if !path.is_file() {
            return Err(ModelError::NoVariant {
                model: id.to_string(),
                precision,
                dir: self.root.clone(),
            });
        }
        let manifest = self.embedder_manifest(&format!("{id}-{precision}"))?;
        check_precision(&path, manifest.precision, precision)?;
        Ok(manifest)
    }

    /// The manifest of the embedder called `name` (its id, e.g. `mobilefacenet-arcface`, or the
    /// short aliases `mobilefacenet` and `dlib`).
    pub fn embedder_manifest(&self, name: &str) -> Result<EmbedderManifest, ModelError> {
        let id = match name {
            "mobilefacenet" | "mfn" => "mobilefacenet-arcface",
            "dlib" => "dlib-resnet",
            other => other,
        };
        let path = self.root.join(format!("{id}.toml"));
        if !path.is_file() {
            return Err(ModelError::UnknownEmbedder {
                name: name.to_string(),
                available: self.embedder_ids().join(", "),
            });
        }
        let manifest: EmbedderManifest = read_manifest(&path)?;
        if manifest.metric != "cosine" {
            return Err(ModelError::Manifest {
                path,
                message: format!("unsupported metric '{}'", manifest.metric),
            });
        }
        Ok(manifest)
    }

    /// Ids of the embedders whose manifests are present.
    pub fn embedder_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let text = std::fs::read_to_string(&path).ok()?;
                (path.extension()? == "toml" && text.contains("kind = \"embedder\""))
                    .then(|| path.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        ids.sort();
        ids
    }

    /// Read `file` and check it against `sha256`; the bytes when they match.
    pub fn read_verified(&self, file: &str, sha256: &str) -> Result<Vec<u8>, ModelError> {
        let path = self.root.join(file);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(ModelError::Checksum {
                path,
                expected: sha256.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Read `file`, check it against `sha256` and parse it as ONNX.
    pub fn load_verified(&self, file: &str, sha256: &str) -> Result<InferenceModel, ModelError> {
        let path = self.root.join(file);
        let bytes = self.read_verified(file, sha256)?;
        crate::runtime::onnx_ops::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| ModelError::Tract {
                path,
                message: format!("{e:#}"),
            })
    }
}

fn check_precision(path: &Path, found: Precision, wanted: Precision) -> Result<(), ModelError> {
    if found == wanted {
        return Ok(());
    }
    Err(ModelError::Manifest {
        path: path.to_path_buf(),
        message: format!("precision is {found}, the file name says {wanted}"),
    })
}

fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ModelError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Pin the input shape of `model`, optimise it once and make it runnable.
///
/// `shape` may use the symbol `N` for a free batch dimension.
pub fn optimise(model: InferenceModel, shape: &[TDim], origin: &Path) -> Result<Plan, ModelError> {
    let tract_err = |e: TractError| ModelError::Tract {
        path: origin.to_path_buf(),
        message: format!("{e:#}"),
    };
    let fact = InferenceFact::dt_shape(
        f32::datum_type(),
        shape.iter().cloned().collect::<TVec<_>>(),
    );
    model
        .with_input_fact(0, fact)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(tract_err)
}

/// Fill an NCHW f32 buffer from packed RGB8 pixels: `(p - mean) / std` per channel.
pub fn normalise_rgb_into(rgb: &[u8], mean: &[f32; 3], std: &[f32; 3], out: &mut [f32]) {
    let plane = rgb.len() / 3;
    debug_assert!(out.len() >= plane * 3);
    let inv = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        r[i] = (px[0] as f32 - mean[0]) * inv[0];
        g[i] = (px[1] as f32 - mean[1]) * inv[1];
        b[i] = (px[2] as f32 - mean[2]) * inv[2];
    }
}

/// The f32 contents of a plan output.
pub fn f32_slice(value: &TValue) -> TractResult<&[f32]> {
    value.try_as_plain_ram()?.as_slice::<f32>()
}

/// The numeric format a model file computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Int8,
    F16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Int8, Precision::F16];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

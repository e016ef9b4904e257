//! The face embedder: an aligned chip in, an L2-normalised identity vector out.

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::runtime::models::{
    f32_slice, normalise_rgb_into, optimise, EmbedderManifest, ModelDir, ModelError, Plan,
};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedder failed: {0}")]
    Inference(String),
    #[error("embedder produced a degenerate vector (norm {0})")]
    Degenerate(f32),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A loaded embedder and the facts about it that a gallery must record.
pub struct Embedder {
    manifest: EmbedderManifest,
    plan: Plan,
    /// Embed the mirrored chip too (flip test-time augmentation).
    mirrored: bool,
}

impl Embedder {
    /// Load `name` (an id or alias, see [`ModelDir::embedder_manifest`]) and optimise it once.
    pub fn load(dir: &ModelDir, name: &str) -> Result<Self, EmbedError> {
        Self::from_manifest(dir, dir.embedder_manifest(name)?)
    }

    /// Load the model `manifest` describes (e.g. a precision variant) and optimise it once.
    pub fn from_manifest(dir: &ModelDir, manifest: EmbedderManifest) -> Result<Self, EmbedError> {
        let model = dir.load_verified(&manifest.file, &manifest.sha256)?;
        let [_, c, h, w] = manifest.input_shape;
        let shape = [1.to_dim(), c.to_dim(), h.to_dim(), w.to_dim()];
        let plan = optimise(model, &shape, &dir.root().join(&manifest.file))?;
        Ok(Self {
            manifest,
            plan,
            mirrored: false,
        })
    }

    pub fn manifest(&self) -> &EmbedderManifest {
        &self.manifest
    }

    /// The sha256 of the ONNX file, as raw bytes (galleries store it).
    pub fn model_sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // The manifest's checksum was verified against the file at load.
        let _ = hex::decode_to_slice(&self.manifest.sha256, &mut out);
        out
    }

    /// `(width, height)` of the aligned chip this embedder expects.
    pub fn chip_size(&self) -> (u32, u32) {
        (
            self.manifest.template_size[0],
            self.manifest.template_size[1],
        )
    }

    pub fn template(&self) -> &[[f32; 2]; 5] {
        &self.manifest.template
    }

    pub fn dim(&self) -> usize {
        self.manifest.output_dim
    }

    /// Also embed the mirrored chip, and return the normalised mean of both vectors.
    pub fn set_mirrored(&mut self, mirrored: bool) {
        self.mirrored = mirrored;
    }

    pub fn mirrored(&self) -> bool {
        self.mirrored
    }

    /// Embed one aligned chip (and its mirror image, when set); the result has unit L2 norm.
    pub fn embed(&self, chip: &RgbImage) -> Result<Vec<f32>, EmbedError> {
        let direct = self.embed_once(chip)?;
        if !self.mirrored {
            return Ok(direct);
        }
        let mirror = self.embed_once(&image::imageops::flip_horizontal(chip))?;
        let sum: Vec<f32> = direct.iter().zip(&mirror).map(|(a, b)| a + b).collect();
        l2_normalised(&sum)
    }

    fn embed_once(&self, chip: &RgbImage) -> Result<Vec<f32>, EmbedError> {
        let (w, h) = (chip.width() as usize, chip.height() as usize);
        let mut input = vec![0.0f32; 3 * w * h];
        normalise_rgb_into(
            chip.as_raw(),
            &self.manifest.mean,
            &self.manifest.std,
            &mut input,
        );
        let tensor = Tensor::from_shape(&[1, 3, h, w], &input)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| EmbedError::Inference(format!("{e:#}")))?;
        let raw = f32_slice(&outputs[0]).map_err(|e| EmbedError::Inference(e.to_string()))?;
        l2_normalised(raw)
    }
}

/// `v / |v|`, refusing vectors that carry no direction.
pub fn l2_normalised(v: &[f32]) -> Result<Vec<f32>, EmbedError> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm < 1e-6 {
        return Err(EmbedError::Degenerate(norm));
    }
    Ok(v.iter().map(|x| x / norm).collect())
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

//! Passive liveness (presentation-attack detection): is the detected face a live person or a
//! printed photo held up to the camera?
//!
//! Two MiniFASNet nets (Silent-Face-Anti-Spoofing, converted by `models/convert_minifasnet.py`)
//! each look at an 80×80 crop around the face box, enlarged 2.7× and 4.0× so the print's edge,
//! the hand and the background are in view. Each gives a softmax over {attack, real, attack};
//! the score is the mean "real" probability of the nets. The crops are made as the nets were
//! trained: the enlarged box centred on the face, the enlargement reduced until the window fits
//! the image, then the window shifted inside the image edge (never padded), bilinear to 80×80.

use std::path::PathBuf;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::runtime::models::{f32_slice, optimise, LivenessManifest, ModelDir, ModelError, Plan};

#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("liveness model '{name}' is not in {manifest} (it has: {available})")]
    UnknownNet {
        name: String,
        manifest: PathBuf,
        available: String,
    },
    #[error("[liveness] models is empty: name at least one of the nets in {0}")]
    NoNets(PathBuf),
    #[error("liveness net failed: {0}")]
    Inference(String),
}

/// The `[liveness]` section of the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessParams {
    /// Run the liveness check (in `run`, `enroll`, `identify`, `embed`, `bench`).
    pub enabled: bool,
    /// A face is live when its score (mean "real" probability) is at least this; a track when
    /// the mean over its deciding window is.
    pub threshold: f32,
    /// No single frame of an accepted track may score below this.
    pub floor: f32,
    /// The nets of `minifasnet.toml` to average.
    pub models: Vec<String>,
}

impl Default for LivenessParams {
    fn default() -> Self {
        Self {
            enabled: true,
            // Measured on nuaa_dev (docs/liveness.md); `facegate calibrate liveness` sets it.
            threshold: 0.5,
            floor: 0.1,
            models: vec!["v2".into(), "v1se".into()],
        }
    }
}

/// The liveness verdict on one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LivenessScore {
    /// Mean "real" probability of the nets, 0..1.
    pub score: f32,
    /// `score >= threshold`.
    pub live: bool,
}

struct Net {
    name: String,
    scale: f32,
    plan: Plan,
}

/// The loaded nets and the per-frame threshold.
pub struct Liveness {
    params: LivenessParams,
    manifest: LivenessManifest,
    nets: Vec<Net>,
}

impl Liveness {
    /// Load the nets `params.models` names from `minifasnet.toml` (checksums verified).
    pub fn load(dir: &ModelDir, params: LivenessParams) -> Result<Self, LivenessError> {
        let path = dir.liveness_manifest_path();
        let manifest = dir.liveness_manifest()?;
        if params.models.is_empty() {
            return Err(LivenessError::NoNets(path));
        }
        let [w, h] = manifest.input_size;
        let mut nets = Vec::with_capacity(params.models.len());
        for name in &params.models {
            let Some(net) = manifest.nets.get(name) else {
                return Err(LivenessError::UnknownNet {
                    name: name.clone(),
                    manifest: path,
                    available: manifest.nets.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            let model = dir.load_verified(&net.file, &net.sha256)?;
            let shape = [
                1.to_dim(),
                3.to_dim(),
                (h as usize).to_dim(),
                (w as usize).to_dim(),
            ];
            let plan = optimise(model, &shape, &dir.root().join(&net.file))?;
            nets.push(Net {
                name: name.clone(),
                scale: net.scale,
                plan,
            });
        }
        Ok(Self {
            params,
            manifest,
            nets,
        })
    }

    pub fn params(&self) -> &LivenessParams {
        &self.params
    }

    pub fn manifest(&self) -> &LivenessManifest {
        &self.manifest
    }

    /// The names of the loaded nets, in averaging order.
    pub fn net_names(&self) -> Vec<&str> {
        self.nets.iter().map(|n| n.name.as_str()).collect()
    }

    /// The crops of `bbox` (`[x1, y1, x2, y2]`) each net sees, as NCHW BGR 0..255 tensors.
    pub fn inputs(&self, image: &RgbImage, bbox: &[f32; 4]) -> Vec<Vec<f32>> {
        let [w, h] = self.manifest.input_size;
        self.nets
            .iter()
            .map(|net| {
                let window = crop_window(bbox, net.scale, image.width(), image.height());
                bgr_planes(image, window, w, h)
            })
            .collect()
    }

    /// The "real" probability of each net for one face.
    pub fn net_scores(&self, image: &RgbImage, bbox: &[f32; 4]) -> Result<Vec<f32>, LivenessError> {
        let [w, h] = self.manifest.input_size;
        let (w, h) = (w as usize, h as usize);
        let inputs = self.inputs(image, bbox);
        let mut out = Vec::with_capacity(self.nets.len());
        for (net, input) in self.nets.iter().zip(inputs) {
            let tensor = Tensor::from_shape(&[1, 3, h, w], &input)
                .map_err(|e| LivenessError::Inference(e.to_string()))?;
            let result = net
                .plan
                .run(tvec!(tensor.into()))
                .map_err(|e| LivenessError::Inference(format!("{e:#}")))?;
            let logits =
                f32_slice(&result[0]).map_err(|e| LivenessError::Inference(e.to_string()))?;
            let p = softmax(logits);
            let real = p.get(self.manifest.real_class).copied().ok_or_else(|| {
                LivenessError::Inference(format!("{} outputs {} classes", net.name, p.len()))
            })?;
            out.push(real);
        }
        Ok(out)
    }

    /// The liveness of the face at `bbox` in `image`.
    pub fn check(&self, image: &RgbImage, bbox: &[f32; 4]) -> Result<LivenessScore, LivenessError> {
        let scores = self.net_scores(image, bbox)?;
        let score = scores.iter().sum::<f32>() / scores.len().max(1) as f32;
        Ok(LivenessScore {
            score,
            live: score >= self.params.threshold,
        })
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// The integer window `(left, top, right, bottom)` (right/bottom inclusive) of `scale` × the
/// face box: centred on the box, the scale reduced so the window fits inside the image, then
/// shifted back inside where it crosses an edge.
pub fn crop_window(bbox: &[f32; 4], scale: f32, width: u32, height: u32) -> [u32; 4] {
    let (iw, ih) = ((width.max(1) - 1) as f32, (height.max(1) - 1) as f32);
    let bw = (bbox[2] - bbox[0]).max(1.0);
    let bh = (bbox[3] - bbox[1]).max(1.0);
    let scale = scale.min(ih / bh).min(iw / bw);
    let (nw, nh) = (bw * scale, bh * scale);
    let (cx, cy) = (bbox[0] + bw / 2.0, bbox[1] + bh / 2.0);
    let (mut l, mut t, mut r, mut b) = (cx - nw / 2.0, cy - nh / 2.0, cx + nw / 2.0, cy + nh / 2.0);
    if l < 0.0 {
        r -= l;
        l = 0.0;
    }
    if t < 0.0 {
        b -= t;
        t = 0.0;
    }
    if r > iw {
        l -= r - iw;
        r = iw;
    }
    if b > ih {
        t -= b - ih;
        b = ih;
    }
    // Truncation toward zero, as the training code's int(); clamped against float rounding.
    let clamp = |v: f32, max: f32| v.clamp(0.0, max) as u32;
    [clamp(l, iw), clamp(t, ih), clamp(r, iw), clamp(b, ih)]
}

/// Bilinear resize of `window` of `image` to `w`×`h` (half-pixel centres, edge samples clamped,
/// rounded to 8 bits as an 8-bit resize would), as B, G, R planes of 0..255 floats.
pub fn bgr_planes(image: &RgbImage, window: [u32; 4], w: u32, h: u32) -> Vec<f32> {
    let [l, t, r, b] = window;
    let (sw, sh) = ((r - l + 1) as usize, (b - t + 1) as usize);
    let axis = |n_in: usize, n_out: u32| -> Vec<(usize, usize, f32)> {
        let ratio = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|i| {
                let s = ((i as f32 + 0.5) * ratio - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                (i0, (i0 + 1).min(n_in - 1), s - i0 as f32)
            })
            .collect()
    };
    let (xs, ys) = (axis(sw, w), axis(sh, h));
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    let stride = image.width() as usize * 3;
    let raw = image.as_raw();
    let px = |x: usize, y: usize, c: usize| {
        raw[(t as usize + y) * stride + (l as usize + x) * 3 + c] as f32
    };
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                let bot = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                let v = (top * (1.0 - fy) + bot * fy).round();
                // RGB in, BGR planes out.
                out[(2 - c) * plane + oy * w as usize + ox] = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_centred_and_scaled() {
        // A 100x100 face in the middle of a 640x480 frame, 2x: a 200x200 window around it.
        let w = crop_window(&[270.0, 190.0, 370.0, 290.0], 2.0, 640, 480);
        assert_eq!(w, [220, 140, 420, 340]);
    }

    #[test]
    fn the_scale_shrinks_to_fit_the_image() {
        // 4x a 200-high face would be 800 high in a 480-high frame: the scale becomes 479/200.
        let w = crop_window(&[220.0, 140.0, 420.0, 340.0], 4.0, 640, 480);
        assert_eq!(w[3] - w[1], 479);
        assert_eq!((w[2] - w[0]) as f32, (200.0f32 * 479.0 / 200.0).trunc());
    }

    #[test]
    fn a_window_over_the_edge_is_shifted_inside_not_padded() {
        // A face at the left edge: the window starts at 0 and keeps its width.
        let w = crop_window(&[0.0, 190.0, 100.0, 290.0], 2.0, 640, 480);
        assert_eq!(w, [0, 140, 200, 340]);
        // And at the bottom-right corner.
        let w = crop_window(&[560.0, 400.0, 639.0, 479.0], 2.0, 640, 480);
        assert_eq!([w[2], w[3]], [639, 479]);
        assert_eq!(w[2] - w[0], 158);
    }

    #[test]
    fn planes_are_bgr_and_a_flat_image_stays_flat() {
        let image = RgbImage::from_pixel(50, 40, image::Rgb([10, 20, 30]));
        let p = bgr_planes(&image, [5, 5, 44, 34], 8, 8);
        assert_eq!(p.len(), 3 * 64);
        assert!(p[..64].iter().all(|&v| v == 30.0));
        assert!(p[64..128].iter().all(|&v| v == 20.0));
        assert!(p[128..].iter().all(|&v| v == 10.0));
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
    }
}

//! MTCNN face detection (P-Net → R-Net → O-Net), following the contract in `models.md`
//! (the facenet-pytorch `detect_face` cascade, with zero-padded crops as in the original MTCNN).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::runtime::models::{
    f32_slice, normalise_rgb_into, optimise, DetectorManifest, ModelDir, ModelError, Plan,
};

/// P-Net cell size and stride: each output cell sees a 12×12 window, 2 pixels apart.
const CELL: f32 = 12.0;
const STRIDE: f32 = 2.0;
/// Distinct P-Net input sizes kept optimised at once (a camera needs ~10; photos of many sizes
/// must not grow memory without bound).
const MAX_CACHED_PLANS: usize = 96;

/// Detector settings; defaults are the MTCNN paper's / facenet-pytorch's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorParams {
    /// Smallest face side in pixels the pyramid looks for. Door cameras see large faces, so a
    /// larger value there means fewer pyramid scales and a faster frame.
    pub min_face: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Scale step between pyramid levels.
    pub scale_factor: f32,
    /// Final score a face needs to be reported. The cascade thresholds above are MTCNN's, tuned
    /// for benchmark recall; measured here, raising the bar from 0.7 to 0.9 cut detections on
    /// the MOT20 crowd frames (no visible faces) from 104 to 15 while the lowest score of the
    /// 1,544 central faces of the disjoint LFW set was 0.974 (see docs in README).
    pub min_score: f32,
    /// Threads one frame may use: P-Net pyramid levels, R-Net/O-Net batch slices and the
    /// embeddings of several faces run in parallel (the results are the same as on one thread).
    /// 1 (default) keeps a frame on one core, which suits commands that already run one image per
    /// core (`eval`, `calibrate`); 0 means all cores.
    pub threads: usize,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self {
            min_face: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            scale_factor: 0.709,
            min_score: 0.9,
            threads: 1,
        }
    }
}

/// One detected face in image pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corner (image left/right), `[x, y]` each.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
    pub fn centre(&self) -> (f32, f32) {
        (
            (self.bbox[0] + self.bbox[2]) / 2.0,
            (self.bbox[1] + self.bbox[3]) / 2.0,
        )
    }
}

/// Time spent in each detector stage, added to by every call.
#[derive(Debug, Default, Clone, Copy)]
pub struct DetectTimes {
    pub pnet: Duration,
    pub rnet: Duration,
    pub onet: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{stage} failed: {message}")]
    Inference {
        stage: &'static str,
        message: String,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Per-thread working memory of the cascade, kept between frames so that a frame allocates none
/// of its own buffers (tract still allocates its input and output tensors).
struct Scratch {
    resizer: Resizer,
    /// A resized pyramid level or a cropped window, packed RGB.
    pixels: Vec<u8>,
    /// A crop resized to the R-Net / O-Net input side.
    chip: Vec<u8>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            pixels: Vec::new(),
            chip: Vec::new(),
        }
    }
}

/// The most crops R-Net and O-Net take in one run. tract's time per crop grows once a batch's
/// im2col buffers leave the cache: on x86-64 (examples/profile_ops.rs and a batch sweep),
/// R-Net costs 0.092 ms a crop up to 32 crops and 0.12 ms from 64, O-Net 0.56 ms up to 8 and
/// 0.65–0.78 ms from 32. Larger sets run as several batches (on several threads if allowed).
const RNET_BATCH: usize = 32;
const ONET_BATCH: usize = 8;

/// A candidate box through the cascade.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
    landmarks: [[f32; 2]; 5],
}

impl Candidate {
    fn new(b: [f32; 4], score: f32, reg: [f32; 4]) -> Self {
        Self {
            b,
            score,
            reg,
            landmarks: [[0.0; 2]; 5],
        }
    }
}

/// The MTCNN cascade with its optimised plans.
pub struct Mtcnn {
    params: DetectorParams,
    mean: [f32; 3],
    std: [f32; 3],
    pnet_model: InferenceModel,
    pnet_origin: std::path::PathBuf,
    /// One optimised P-Net plan per input size: a pinned shape optimises far better in tract than
    /// a symbolic one, and a camera only ever needs the same handful of pyramid sizes.
    pnet_plans: Mutex<HashMap<(usize, usize), Plan>>,
    rnet: Plan,
    onet: Plan,
    /// Scratch buffers of finished calls, one per thread that has run the cascade.
    scratch: Mutex<Vec<Scratch>>,
}

impl Mtcnn {
    pub fn load(dir: &ModelDir, params: DetectorParams) -> Result<Self, DetectError> {
        Self::from_manifest(dir, &dir.detector_manifest()?, params)
    }

    /// Load the three nets `manifest` names (e.g. a precision variant).
    pub fn from_manifest(
        dir: &ModelDir,
        manifest: &DetectorManifest,
        params: DetectorParams,
    ) -> Result<Self, DetectError> {
        let pnet_model = dir.load_verified(&manifest.pnet.file, &manifest.pnet.sha256)?;
        let batch_plan = |file: &str, sha: &str, side: usize| -> Result<Plan, ModelError> {
            let model = dir.load_verified(file, sha)?;
            let n = model.sym("N");
            let shape = [n.to_dim(), 3.to_dim(), side.to_dim(), side.to_dim()];
            optimise(model, &shape, &dir.root().join(file))
        };
        let rnet = batch_plan(&manifest.rnet.file, &manifest.rnet.sha256, 24)?;
        let onet = batch_plan(&manifest.onet.file, &manifest.onet.sha256, 48)?;
        Ok(Self {
            params,
            mean: manifest.mean,
            std: manifest.std,
            pnet_model,
            pnet_origin: dir.root().join(&manifest.pnet.file),
            pnet_plans: Mutex::new(HashMap::new()),
            rnet,
            onet,
            scratch: Mutex::new(Vec::new()),
        })
    }

    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// Threads one frame may use (see [`DetectorParams::threads`]; 0 = all cores).
    pub fn set_threads(&mut self, threads: usize) {
        self.params.threads = threads;
    }

    /// Threads one frame uses, 0 resolved to the number of cores.
    pub fn threads(&self) -> usize {
        match self.params.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    fn take_scratch(&self) -> Scratch {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop().unwrap_or_else(Scratch::new)
    }

    fn return_scratch(&self, scratch: Scratch) {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(scratch);
    }

    /// `f(i)` for every item, items shared out over the threads by `weights` (largest first onto
    /// the least loaded thread); results in item order, so the outcome never depends on threads.
    fn map_balanced<T: Send>(
        &self,
        weights: &[usize],
        f: impl Fn(usize, &mut Scratch) -> Result<T, DetectError> + Sync,
    ) -> Result<Vec<T>, DetectError> {
        let threads = self.threads().min(weights.len()).max(1);
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); threads];
        let mut load = vec![0usize; threads];
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
        for i in order {
            let least = (0..threads).min_by_key(|&t| load[t]).unwrap_or(0);
            load[least] += weights[i];
            groups[least].push(i);
        }
        let run_group = |group: &[usize]| -> Result<Vec<(usize, T)>, DetectError> {
            let mut scratch = self.take_scratch();
            let out = group
                .iter()
                .map(|&i| Ok((i, f(i, &mut scratch)?)))
                .collect::<Result<Vec<_>, DetectError>>();
            self.return_scratch(scratch);
            out
        };
        let mut done: Vec<(usize, T)> = if threads == 1 {
            run_group(&groups[0])?
        } else {
            std::thread::scope(|s| -> Result<Vec<(usize, T)>, DetectError> {
                let handles: Vec<_> = groups[1..]
                    .iter()
                    .map(|g| s.spawn(|| run_group(g)))
                    .collect();
                let mut done = run_group(&groups[0])?;
                for h in handles {
                    done.extend(h.join().expect("detector thread panicked")?);
                }
                Ok(done)
            })?
        };
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, t)| t).collect())
    }

    /// The pyramid scales for an image of this size.
    pub fn scales(&self, width: u32, height: u32) -> Vec<f32> {
        let m = CELL / self.params.min_face.max(CELL);
        let mut min_side = width.min(height) as f32 * m;
        let mut scale = m;
        let mut scales = Vec::new();
        while min_side >= CELL {
            scales.push(scale);
            scale *= self.params.scale_factor;
            min_side *= self.params.scale_factor;
        }
        scales
    }

    /// Build (once) the P-Net plans an image of this size needs, e.g. at camera start.
    pub fn prepare(&self, width: u32, height: u32) -> Result<(), DetectError> {
        for scale in self.scales(width, height) {
            let (w, h) = scaled_size(width, height, scale);
            self.pnet_plan(w, h)?;
        }
        Ok(())
    }

    fn pnet_plan(&self, w: usize, h: usize) -> Result<Plan, DetectError> {
        let mut plans = self.pnet_plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(&(w, h)) {
            return Ok(plan.clone());
        }
        if plans.len() >= MAX_CACHED_PLANS {
            plans.clear();
        }
        let shape = [1.to_dim(), 3.to_dim(), h.to_dim(), w.to_dim()];
        let plan = optimise(self.pnet_model.clone(), &shape, &self.pnet_origin)?;
        plans.insert((w, h), plan.clone());
        Ok(plan)
    }

    /// Detect faces, best score first.
    pub fn detect(
        &self,
        image: &RgbImage,
        times: &mut DetectTimes,
    ) -> Result<Vec<Detection>, DetectError> {
        let (width, height) = image.dimensions();
        if width < CELL as u32 || height < CELL as u32 {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let boxes = self.stage_pnet(image)?;
        times.pnet += started.elapsed();
        if boxes.is_empty() {
            return Ok(Vec::new());
        }

        let started = Instant::now();
        let boxes = self.stage_rnet(image, boxes)?;
        times.rnet += started.elapsed();
        if boxes.is_empty() {
            return Ok(Vec::new());
        }

        let started = Instant::now();
        let faces = self.stage_onet(image, boxes)?;
        times.onet += started.elapsed();

        Ok(faces
            .into_iter()
            .filter(|c| c.score >= self.params.min_score)
            .map(|c| Detection {
                bbox: c.b,
                score: c.score,
                landmarks: c.landmarks,
            })
            .collect())
    }

    /// P-Net over the pyramid: candidate windows, regressed and squared.
    fn stage_pnet(&self, image: &RgbImage) -> Result<Vec<Candidate>, DetectError> {
        let (width, height) = image.dimensions();
        let scales = self.scales(width, height);
        let pixels: Vec<usize> = scales
            .iter()
            .map(|&s| {
                let (w, h) = scaled_size(width, height, s);
                w * h
            })
            .collect();
        let levels = self.map_balanced(&pixels, |i, scratch| {
            self.pnet_level(image, scales[i], scratch)
        })?;
        let mut boxes = nms(levels.concat(), 0.7, Overlap::Union);
        for c in &mut boxes {
            // The first-stage regression is relative to the box size without the +1.
            let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
            c.b = [
                c.b[0] + c.reg[0] * w,
                c.b[1] + c.reg[1] * h,
                c.b[2] + c.reg[2] * w,
                c.b[3] + c.reg[3] * h,
            ];
            c.b = square(c.b);
        }
        Ok(boxes)
    }

    /// P-Net on one pyramid level: its candidate windows after the per-level NMS.
    fn pnet_level(
        &self,
        image: &RgbImage,
        scale: f32,
        scratch: &mut Scratch,
    ) -> Result<Vec<Candidate>, DetectError> {
        let (w, h) = scaled_size(image.width(), image.height(), scale);
        scratch.pixels.resize(3 * w * h, 0);
        let mut resized =
            FirImage::from_slice_u8(w as u32, h as u32, &mut scratch.pixels, PixelType::U8x3)
                .map_err(|e| inference_error("pyramid resize", e))?;
        scratch
            .resizer
            .resize(image, &mut resized, &area_resize())
            .map_err(|e| inference_error("pyramid resize", e))?;
        let mut tensor =
            Tensor::zero::<f32>(&[1, 3, h, w]).map_err(|e| inference_error("P-Net", e))?;
        normalise_rgb_into(
            resized.buffer(),
            &self.mean,
            &self.std,
            tensor_f32_mut(&mut tensor, "P-Net")?,
        );
        let outputs = self
            .pnet_plan(w, h)?
            .run(tvec!(tensor.into()))
            .map_err(|e| inference_error("P-Net", e))?;
        let reg = f32_slice(&outputs[0]).map_err(|e| inference_error("P-Net", e))?;
        let prob = f32_slice(&outputs[1]).map_err(|e| inference_error("P-Net", e))?;
        let shape = outputs[1].shape();
        let (oh, ow) = (shape[2], shape[3]);
        let plane = oh * ow;
        let mut level = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let i = y * ow + x;
                let score = prob[plane + i];
                if score < self.params.thresholds[0] {
                    continue;
                }
                let (fx, fy) = (x as f32, y as f32);
                let b = [
                    ((STRIDE * fx + 1.0) / scale).floor(),
                    ((STRIDE * fy + 1.0) / scale).floor(),
                    ((STRIDE * fx + CELL) / scale).floor(),
                    ((STRIDE * fy + CELL) / scale).floor(),
                ];
                let r = [
                    reg[i],
                    reg[plane + i],
                    reg[2 * plane + i],
                    reg[3 * plane + i],
                ];
                level.push(Candidate::new(b, score, r));
            }
        }
        Ok(nms(level, 0.5, Overlap::Union))
    }

    /// R-Net over 24×24 crops of the P-Net candidates.
    fn stage_rnet(
        &self,
        image: &RgbImage,
        boxes: Vec<Candidate>,
    ) -> Result<Vec<Candidate>, DetectError> {
        let (boxes, outputs) =
            self.run_on_crops(image, boxes, (&self.rnet, RNET_BATCH), 24, "R-Net")?;
        let (reg, prob) = (&outputs[0], &outputs[1]);
        let kept: Vec<Candidate> = boxes
            .iter()
            .enumerate()
            .filter(|&(k, _)| prob[2 * k + 1] > self.params.thresholds[1])
            .map(|(k, c)| Candidate::new(c.b, prob[2 * k + 1], row4(reg, k)))
            .collect();
        let mut kept = nms(kept, 0.7, Overlap::Union);
        for c in &mut kept {
            c.b = square(regress(c.b, c.reg));
        }
        Ok(kept)
    }

    /// O-Net over 48×48 crops: final boxes, scores and landmarks.
    fn stage_onet(
        &self,
        image: &RgbImage,
        boxes: Vec<Candidate>,
    ) -> Result<Vec<Candidate>, DetectError> {
        let (boxes, outputs) =
            self.run_on_crops(image, boxes, (&self.onet, ONET_BATCH), 48, "O-Net")?;
        let (reg, marks, prob) = (&outputs[0], &outputs[1], &outputs[2]);
        let mut kept = Vec::new();
        for (k, c) in boxes.iter().enumerate() {
            let score = prob[2 * k + 1];
            if score <= self.params.thresholds[2] {
                continue;
            }
            // Landmarks are relative to the box before its final regression.
            let (w, h) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
            let lm = &marks[10 * k..10 * k + 10];
            let mut landmarks = [[0.0; 2]; 5];
            for (i, point) in landmarks.iter_mut().enumerate() {
                *point = [w * lm[i] + c.b[0] - 1.0, h * lm[5 + i] + c.b[1] - 1.0];
            }
            kept.push(Candidate {
                b: regress(c.b, row4(reg, k)),
                score,
                reg: [0.0; 4],
                landmarks,
            });
        }
        Ok(nms(kept, 0.7, Overlap::Min))
    }

    /// Crop every box (zero-padded where it leaves the image), resize to `side`², run `plan` on
    /// the crops in batches of at most `max_batch`, of even sizes, spread over the threads.
    /// Boxes with no area are dropped, so the returned boxes match the rows; each output comes
    /// back as one flat vector.
    fn run_on_crops(
        &self,
        image: &RgbImage,
        boxes: Vec<Candidate>,
        (plan, max_batch): (&Plan, usize),
        side: usize,
        stage: &'static str,
    ) -> Result<(Vec<Candidate>, Vec<Vec<f32>>), DetectError> {
        let boxes: Vec<Candidate> = boxes
            .into_iter()
            .filter(|c| crop_window(c.b).is_some())
            .collect();
        if boxes.is_empty() {
            return Ok((boxes, Vec::new()));
        }
        let batches = boxes
            .len()
            .div_ceil(max_batch)
            .next_multiple_of(self.threads())
            .min(boxes.len());
        let per_slice = boxes.len().div_ceil(batches);
        let chunks: Vec<&[Candidate]> = boxes.chunks(per_slice).collect();
        let weights: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        let parts = self.map_balanced(&weights, |i, scratch| {
            self.run_batch(image, chunks[i], plan, side, stage, scratch)
        })?;
        let mut outputs: Vec<Vec<f32>> = Vec::new();
        for part in parts {
            if outputs.is_empty() {
                outputs = part;
            } else {
                for (all, more) in outputs.iter_mut().zip(part) {
                    all.extend(more);
                }
            }
        }
        Ok((boxes, outputs))
    }

    /// Crop, resize and normalise `boxes` into one batch and run `plan` on it.
    fn run_batch(
        &self,
        image: &RgbImage,
        boxes: &[Candidate],
        plan: &Plan,
        side: usize,
        stage: &'static str,
        scratch: &mut Scratch,
    ) -> Result<Vec<Vec<f32>>, DetectError> {
        let per = 3 * side * side;
        let mut tensor = Tensor::zero::<f32>(&[boxes.len(), 3, side, side])
            .map_err(|e| inference_error(stage, e))?;
        let batch = tensor_f32_mut(&mut tensor, stage)?;
        scratch.chip.resize(per, 0);
        for (k, c) in boxes.iter().enumerate() {
            let (x0, y0, cw, ch) = crop_window(c.b).expect("filtered by the caller");
            copy_padded(image, x0, y0, cw, ch, &mut scratch.pixels);
            let src =
                FirImage::from_slice_u8(cw as u32, ch as u32, &mut scratch.pixels, PixelType::U8x3)
                    .map_err(|e| inference_error(stage, e))?;
            let mut chip = FirImage::from_slice_u8(
                side as u32,
                side as u32,
                &mut scratch.chip,
                PixelType::U8x3,
            )
            .map_err(|e| inference_error(stage, e))?;
            scratch
                .resizer
                .resize(&src, &mut chip, &area_resize())
                .map_err(|e| inference_error(stage, e))?;
            normalise_rgb_into(
                chip.buffer(),
                &self.mean,
                &self.std,
                &mut batch[k * per..(k + 1) * per],
            );
        }
        let outputs = plan
            .run(tvec!(tensor.into()))
            .map_err(|e| inference_error(stage, e))?;
        outputs
            .iter()
            .map(|o| Ok(slice(o, stage)?.to_vec()))
            .collect()
    }
}

/// The f32 contents of a freshly made input tensor, to fill in place.
fn tensor_f32_mut<'a>(
    tensor: &'a mut Tensor,
    stage: &'static str,
) -> Result<&'a mut [f32], DetectError> {
    tensor
        .to_plain_array_view_mut::<f32>()
        .map_err(|e| inference_error(stage, e))?
        .into_slice()
        .ok_or_else(|| inference_error(stage, "input tensor is not contiguous"))
}

/// P-Net input size for a scale: `int(side · scale + 1)`, as the reference does.
fn scaled_size(width: u32, height: u32, scale: f32) -> (usize, usize) {
    (
        (width as f32 * scale + 1.0) as usize,
        (height as f32 * scale + 1.0) as usize,
    )
}

/// Area-like downscaling (a box filter), the resampling the reference cascade uses.
fn area_resize() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box))
}

fn inference_error(stage: &'static str, e: impl std::fmt::Display) -> DetectError {
    DetectError::Inference {
        stage,
        message: e.to_string(),
    }
}

fn slice<'a>(value: &'a TValue, stage: &'static str) -> Result<&'a [f32], DetectError> {
    f32_slice(value).map_err(|e| inference_error(stage, e))
}

fn row4(data: &[f32], k: usize) -> [f32; 4] {
    [
        data[4 * k],
        data[4 * k + 1],
        data[4 * k + 2],
        data[4 * k + 3],
    ]
}

/// Apply a box regression whose offsets are relative to the inclusive box size.
fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// Grow the shorter side so the box is square around the same centre ("rerec").
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// The pixel window of a box in the reference's 1-based inclusive convention:
/// columns `trunc(x1)-1 ..= trunc(x2)-1`. `None` when it has no area.
fn crop_window(b: [f32; 4]) -> Option<(i64, i64, usize, usize)> {
    let (x, y) = (b[0].trunc() as i64, b[1].trunc() as i64);
    let (ex, ey) = (b[2].trunc() as i64, b[3].trunc() as i64);
    let (w, h) = (ex - x + 1, ey - y + 1);
    (w > 0 && h > 0 && w < 1 << 15 && h < 1 << 15).then_some((x - 1, y - 1, w as usize, h as usize))
}

/// Copy a `w`×`h` window starting at (`x0`, `y0`) into `out`, zero where it leaves the image.
fn copy_padded(image: &RgbImage, x0: i64, y0: i64, w: usize, h: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(3 * w * h, 0);
    let (iw, ih) = (image.width() as i64, image.height() as i64);
    let cols = (x0.max(0), (x0 + w as i64).min(iw));
    if cols.0 >= cols.1 {
        return;
    }
    let raw = image.as_raw();
    for row in 0..h as i64 {
        let sy = y0 + row;
        if sy < 0 || sy >= ih {
            continue;
        }
        let src = (3 * (sy * iw + cols.0)) as usize;
        let len = 3 * (cols.1 - cols.0) as usize;
        let dst = 3 * (row as usize * w + (cols.0 - x0) as usize);
        out[dst..dst + len].copy_from_slice(&raw[src..src + len]);
    }
}

#[derive(Clone, Copy)]
enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller box: removes a small box inside a larger one.
    Min,
}

/// Greedy non-maximum suppression; returns the kept candidates, best score first.
///
/// As in the reference: IoU on continuous box sizes for `Union` (torchvision), inclusive pixel
/// sizes (+1) for the final `Min`.
fn nms(mut boxes: Vec<Candidate>, threshold: f32, mode: Overlap) -> Vec<Candidate> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let one = match mode {
        Overlap::Union => 0.0,
        Overlap::Min => 1.0,
    };
    let area = |b: &[f32; 4]| (b[2] - b[0] + one) * (b[3] - b[1] + one);
    let mut kept: Vec<Candidate> = Vec::with_capacity(boxes.len());
    'next: for c in boxes {
        for k in &kept {
            let iw = (c.b[2].min(k.b[2]) - c.b[0].max(k.b[0]) + one).max(0.0);
            let ih = (c.b[3].min(k.b[3]) - c.b[1].max(k.b[1]) + one).max(0.0);
            let inter = iw * ih;
            let overlap = match mode {
                Overlap::Union => inter / (area(&c.b) + area(&k.b) - inter),
                Overlap::Min => inter / area(&c.b).min(area(&k.b)),
            };
            if overlap > threshold {
                continue 'next;
            }
        }
        kept.push(c);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(b: [f32; 4], score: f32) -> Candidate {
        Candidate::new(b, score, [0.0; 4])
    }

    #[test]
    fn nms_keeps_best_of_overlapping_boxes() {
        let kept = nms(
            vec![
                cand([0.0, 0.0, 9.0, 9.0], 0.8),
                cand([1.0, 1.0, 10.0, 10.0], 0.9),
                cand([50.0, 50.0, 59.0, 59.0], 0.7),
            ],
            0.5,
            Overlap::Union,
        );
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }

    #[test]
    fn nms_min_removes_box_inside_another() {
        let boxes = vec![
            cand([0.0, 0.0, 99.0, 99.0], 0.9),
            cand([10.0, 10.0, 29.0, 29.0], 0.95),
        ];
        // IoU is small (0.04) so Union keeps both; Min overlap is 1.0 so it keeps one.
        assert_eq!(nms(boxes.clone(), 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(boxes, 0.7, Overlap::Min).len(), 1);
    }

    #[test]
    fn square_keeps_centre_and_uses_longer_side() {
        let b = square([10.0, 20.0, 30.0, 60.0]);
        assert_eq!(b, [0.0, 20.0, 40.0, 60.0]);
    }

    #[test]
    fn crop_window_is_inclusive_and_one_based() {
        assert_eq!(crop_window([1.0, 1.0, 24.0, 24.0]), Some((0, 0, 24, 24)));
        assert_eq!(crop_window([-3.7, 2.2, 5.9, 2.0]), Some((-4, 1, 9, 1)));
        assert_eq!(crop_window([5.0, 5.0, 3.0, 9.0]), None);
    }

    #[test]
    fn padded_copy_fills_outside_with_zero() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        let mut out = Vec::new();
        copy_padded(&image, -1, -1, 3, 3, &mut out);
        let expected: Vec<u8> = [0, 0, 0, 0, 9, 9, 0, 9, 9]
            .iter()
            .flat_map(|&v| [v; 3])
            .collect();
        assert_eq!(out, expected);
    }
}

//! Detection around faces already found: what a video frame needs once a face is tracked.
//!
//! A face seen in the last analysed frame is rarely more than a fraction of its size away in
//! the next one, so the full P-Net pyramid over the whole frame (two thirds of the detector's
//! time at `min_face` 20) is wasted on it. First O-Net alone is run on the last box, squared as
//! R-Net would have handed it over: O-Net's own regression follows the face, and its score says
//! whether the face is still there. Where it is not, P-Net runs only over a region around the
//! last box (resized to one fixed size, so its few pyramid plans are optimised once), then R-Net
//! and O-Net on the full-resolution frame as usual.

use std::time::Instant;

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::PixelType;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{
    area_resize, copy_padded, inference_error, nms, square, Candidate, DetectError, DetectTimes,
    Detection, Mtcnn, Overlap, CELL,
};

/// Side of the square region P-Net searches around a lost face, in multiples of its last box.
const REGION_MARGIN: f32 = 2.0;
/// The region is resized to this side before P-Net: the last face is then 24 px, and the
/// pyramid (down to P-Net's 12 px cell) covers faces from half to twice its last size.
const REGION_SIDE: u32 = 48;
/// Overlap with its last box above which a new box is the same face.
const SAME_FACE_IOU: f32 = 0.3;

/// When to detect around tracked faces instead of over the whole frame (`[detector.tracking]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingParams {
    pub enabled: bool,
    /// Every n-th analysed frame is searched whole anyway, so a face that newly arrives is found
    /// within n frames.
    pub full_every: u32,
}

impl Default for TrackingParams {
    fn default() -> Self {
        Self {
            enabled: true,
            full_every: 8,
        }
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - w * h;
    if union <= 0.0 {
        0.0
    } else {
        w * h / union
    }
}

impl Mtcnn {
    /// The faces of `previous` (the last frame's detections) in `image`, best score first; a
    /// face that left is simply missing. Never finds a face that was not in `previous`.
    pub fn detect_tracked(
        &self,
        image: &RgbImage,
        previous: &[Detection],
        times: &mut DetectTimes,
    ) -> Result<Vec<Detection>, DetectError> {
        if previous.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let predicted: Vec<Candidate> = previous
            .iter()
            .map(|d| Candidate::new(square(d.bbox), d.score, [0.0; 4]))
            .collect();
        let mut found = self.final_faces(self.stage_onet(image, predicted)?);
        times.onet += started.elapsed();
        let lost: Vec<&Detection> = previous
            .iter()
            .filter(|p| !found.iter().any(|f| iou(&p.bbox, &f.b) >= SAME_FACE_IOU))
            .collect();
        for p in lost {
            found.extend(self.detect_in_region(image, p, times)?);
        }
        let found = nms(found, 0.7, Overlap::Min);
        Ok(found
            .into_iter()
            .map(|c| Detection {
                bbox: c.b,
                score: c.score,
                landmarks: c.landmarks,
            })
            .collect())
    }

    /// The O-Net output that passes `min_score`.
    fn final_faces(&self, faces: Vec<Candidate>) -> Vec<Candidate> {
        faces
            .into_iter()
            .filter(|c| c.score >= self.params.min_score)
            .collect()
    }

    /// The full cascade, P-Net restricted to a region around `last`.
    fn detect_in_region(
        &self,
        image: &RgbImage,
        last: &Detection,
        times: &mut DetectTimes,
    ) -> Result<Vec<Candidate>, DetectError> {
        let started = Instant::now();
        let side = (last.width().max(last.height()) * REGION_MARGIN).max(CELL);
        let (cx, cy) = last.centre();
        let (x0, y0) = ((cx - side / 2.0).round(), (cy - side / 2.0).round());
        let n = side.round() as usize;
        let mut pixels = Vec::new();
        copy_padded(image, x0 as i64, y0 as i64, n, n, &mut pixels);
        let src = FirImage::from_vec_u8(n as u32, n as u32, pixels, PixelType::U8x3)
            .map_err(|e| inference_error("region resize", e))?;
        let mut region = RgbImage::new(REGION_SIDE, REGION_SIDE);
        fast_image_resize::Resizer::new()
            .resize(&src, &mut region, &area_resize())
            .map_err(|e| inference_error("region resize", e))?;
        let mut scales = Vec::new();
        let (mut scale, mut s) = (1.0f32, REGION_SIDE as f32);
        while s >= CELL {
            scales.push(scale);
            scale *= self.params.scale_factor;
            s *= self.params.scale_factor;
        }
        let k = n as f32 / REGION_SIDE as f32;
        let boxes: Vec<Candidate> = self
            .stage_pnet_at(&region, &scales)?
            .into_iter()
            .map(|mut c| {
                c.b = square([
                    x0 + c.b[0] * k,
                    y0 + c.b[1] * k,
                    x0 + c.b[2] * k,
                    y0 + c.b[3] * k,
                ]);
                c
            })
            .collect();
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
        let faces = self.final_faces(self.stage_onet(image, boxes)?);
        times.onet += started.elapsed();
        Ok(faces)
    }
}

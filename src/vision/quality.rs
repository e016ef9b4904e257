//! Simple per-face quality figures, so that a terminal can ask a person to come closer, find more
//! light or face the camera instead of deciding on a poor frame.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::detect::Detection;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Shorter side of the face box, in image pixels.
    pub face_size: f32,
    /// Mean luma of the aligned chip, 0–255.
    pub brightness: f32,
    /// Variance of the Laplacian of the chip's luma: low means blurred.
    pub sharpness: f32,
    /// Head turn estimated from the landmarks, in degrees (negative: towards image left).
    pub yaw_deg: f32,
}

impl Quality {
    pub fn measure(face: &Detection, chip: &RgbImage) -> Self {
        let luma = luma_plane(chip);
        Self {
            face_size: face.width().min(face.height()),
            brightness: luma.iter().sum::<f32>() / luma.len().max(1) as f32,
            sharpness: laplacian_variance(&luma, chip.width() as usize, chip.height() as usize),
            yaw_deg: yaw_from_landmarks(&face.landmarks),
        }
    }
}

/// ITU-R BT.601 luma of every pixel.
pub fn luma_plane(image: &RgbImage) -> Vec<f32> {
    image
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect()
}

fn laplacian_variance(luma: &[f32], w: usize, h: usize) -> f32 {
    if w < 3 || h < 3 {
        return 0.0;
    }
    let mut values = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            values.push(luma[i - 1] + luma[i + 1] + luma[i - w] + luma[i + w] - 4.0 * luma[i]);
        }
    }
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / values.len() as f32
}

/// The nose's horizontal offset from the eyes' midpoint, relative to half the eye distance, read
/// as the sine of the yaw angle. Crude, but enough to tell "facing" from "turned away".
fn yaw_from_landmarks(lm: &[[f32; 2]; 5]) -> f32 {
    let eye_mid = (lm[0][0] + lm[1][0]) / 2.0;
    let half_eye_dist =
        ((lm[1][0] - lm[0][0]).powi(2) + (lm[1][1] - lm[0][1]).powi(2)).sqrt() / 2.0;
    if half_eye_dist < 1e-3 {
        return 0.0;
    }
    ((lm[2][0] - eye_mid) / half_eye_dist)
        .clamp(-1.0, 1.0)
        .asin()
        .to_degrees()
}

/// Which faces are good enough to decide on. A face failing a gate gives a hint instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityGates {
    /// Faces smaller than this (shorter box side, pixels) are people in the background: not
    /// tracked, no hint. A face already tracked stays tracked below it (the terminal's
    /// `Decider::continues_track`), so a face at about this size does not come and go.
    pub ignore_below_px: f32,
    /// Smallest face decided on; smaller ones are asked to come closer.
    pub min_face_px: f32,
    /// Mean luma (0–255) of the aligned face below which more light is asked for.
    pub min_brightness: f32,
    /// Laplacian variance of the aligned face below which it counts as blurred.
    pub min_sharpness: f32,
    /// Head turn beyond which the person is asked to look at the camera.
    pub max_yaw_deg: f32,
}

impl Default for QualityGates {
    fn default() -> Self {
        Self {
            ignore_below_px: 40.0,
            min_face_px: 60.0,
            min_brightness: 40.0,
            min_sharpness: 20.0,
            max_yaw_deg: 35.0,
        }
    }
}

/// What to tell the person in front of the camera instead of deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hint {
    MoveCloser,
    MoreLight,
    LookAtCamera,
    HoldStill,
}

impl QualityGates {
    /// The first gate `q` fails, in the order a person can best act on.
    pub fn check(&self, q: &Quality) -> Option<Hint> {
        if q.face_size < self.min_face_px {
            Some(Hint::MoveCloser)
        } else if q.brightness < self.min_brightness {
            Some(Hint::MoreLight)
        } else if q.yaw_deg.abs() > self.max_yaw_deg {
            Some(Hint::LookAtCamera)
        } else if q.sharpness < self.min_sharpness {
            Some(Hint::HoldStill)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontal_face_has_near_zero_yaw() {
        let lm = [
            [40.0, 50.0],
            [70.0, 50.0],
            [55.0, 70.0],
            [43.0, 90.0],
            [67.0, 90.0],
        ];
        assert!(yaw_from_landmarks(&lm).abs() < 1e-3);
        let turned = [
            [40.0, 50.0],
            [70.0, 50.0],
            [68.0, 70.0],
            [43.0, 90.0],
            [67.0, 90.0],
        ];
        assert!(yaw_from_landmarks(&turned) > 45.0);
    }

    #[test]
    fn flat_image_is_not_sharp_and_edges_are() {
        let flat = vec![100.0; 100];
        assert_eq!(laplacian_variance(&flat, 10, 10), 0.0);
        let stripes: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 0.0 } else { 255.0 })
            .collect();
        assert!(laplacian_variance(&stripes, 10, 10) > 1000.0);
    }
}

//! Low-light help: a dark frame whose faces the detector misses gets one retry on a copy whose
//! luma histogram is equalised (colours keep their ratios).

use image::RgbImage;

/// Mean luma (0–255) of a whole image.
pub fn mean_luma(image: &RgbImage) -> f32 {
    let sum: f64 = image
        .pixels()
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .sum();
    (sum / (image.width() as f64 * image.height() as f64).max(1.0)) as f32
}

/// A copy with the luma histogram equalised, each pixel's RGB scaled by the same gain.
pub fn equalise(image: &RgbImage) -> RgbImage {
    let luma = |p: &image::Rgb<u8>| {
        (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() as usize
    };
    let mut hist = [0u64; 256];
    for p in image.pixels() {
        hist[luma(p).min(255)] += 1;
    }
    let total: u64 = hist.iter().sum();
    let first = hist.iter().position(|&c| c > 0).unwrap_or(0);
    let below_first = hist[first];
    let mut map = [0f32; 256];
    let mut cumulative = 0u64;
    for (level, count) in hist.iter().enumerate() {
        cumulative += count;
        let span = (total - below_first).max(1) as f32;
        map[level] = (cumulative.saturating_sub(below_first)) as f32 / span * 255.0;
    }
    let mut out = image.clone();
    for p in out.pixels_mut() {
        let y = luma(p).min(255);
        let gain = if y == 0 { 0.0 } else { map[y] / y as f32 };
        for c in 0..3 {
            p[c] = (p[c] as f32 * gain).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalising_a_dark_image_brightens_it() {
        let dark = RgbImage::from_fn(32, 32, |x, y| {
            let v = ((x + y) % 40) as u8;
            image::Rgb([v, v, v / 2])
        });
        let bright = equalise(&dark);
        assert!(mean_luma(&bright) > mean_luma(&dark) * 2.0);
    }
}

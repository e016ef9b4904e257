//! Face alignment: the least-squares similarity transform (rotation, uniform scale, translation;
//! no reflection) that maps the five detected landmarks onto the embedder's template, and the
//! bilinear warp that cuts the aligned chip out of the image.

use image::RgbImage;

/// `[a, -b, tx; b, a, ty]`: maps source (image) points to destination (chip) points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares fit of `dst ≈ s·R·src + t` over corresponding points (Umeyama's method,
    /// which for 2-D points without reflection has this closed form).
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Self> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts[..n].iter().fold((0.0f64, 0.0f64), |(x, y), p| {
                (x + p[0] as f64, y + p[1] as f64)
            });
            (sx / n as f64, sy / n as f64)
        };
        let (mx, my) = mean(src);
        let (nx, ny) = mean(dst);
        let (mut dot, mut cross, mut var) = (0.0f64, 0.0f64, 0.0f64);
        for (p, q) in src[..n].iter().zip(&dst[..n]) {
            let (px, py) = (p[0] as f64 - mx, p[1] as f64 - my);
            let (qx, qy) = (q[0] as f64 - nx, q[1] as f64 - ny);
            dot += px * qx + py * qy;
            cross += px * qy - py * qx;
            var += px * px + py * py;
        }
        if var < 1e-9 {
            return None;
        }
        let (a, b) = (dot / var, cross / var);
        Some(Self {
            a: a as f32,
            b: b as f32,
            tx: (nx - (a * mx - b * my)) as f32,
            ty: (ny - (b * mx + a * my)) as f32,
        })
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform (chip → image), used to sample the chip.
    pub fn inverse(&self) -> Self {
        let det = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / det, -self.b / det);
        Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }

    /// The scale factor (chip pixels per image pixel).
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Warp `image` into a `width`×`height` chip so that `landmarks` land on `template`.
/// Pixels that fall outside the image are black, as in the reference (`warpAffine`, border 0).
pub fn align_face(
    image: &RgbImage,
    landmarks: &[[f32; 2]; 5],
    template: &[[f32; 2]; 5],
    width: u32,
    height: u32,
) -> Option<RgbImage> {
    let to_image = Similarity::estimate(landmarks, template)?.inverse();
    let mut chip = RgbImage::new(width, height);
    warp_into(image, &to_image, &mut chip);
    Some(chip)
}

/// Compiled once more for SSE4.1 and picked at run time: a baseline x86-64 build has no
/// rounding instruction, and `floor` / `round` became library calls, five per pixel.
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn warp_into(image: &RgbImage, to_image: &Similarity, chip: &mut RgbImage) {
    for (x, y, px) in chip.enumerate_pixels_mut() {
        let [sx, sy] = to_image.apply([x as f32, y as f32]);
        px.0 = bilinear(image, sx, sy);
    }
}

/// Bilinear sample at a sub-pixel position; neighbours outside the image count as black.
#[inline(always)]
fn bilinear(image: &RgbImage, x: f32, y: f32) -> [u8; 3] {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (w, h) = (image.width() as i64, image.height() as i64);
    let pixel = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            return [0.0; 3];
        }
        let p = image.get_pixel(xi as u32, yi as u32).0;
        [p[0] as f32, p[1] as f32, p[2] as f32]
    };
    let (p00, p10) = (pixel(x0, y0), pixel(x0 + 1, y0));
    let (p01, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * fx;
        let bottom = p01[c] + (p11[c] - p01[c]) * fx;
        out[c] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: [[f32; 2]; 5] = [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ];

    #[test]
    fn recovers_a_known_similarity() {
        let truth = Similarity {
            a: 0.8 * 0.3f32.cos(),
            b: 0.8 * 0.3f32.sin(),
            tx: 12.0,
            ty: -7.0,
        };
        let src: Vec<[f32; 2]> = TEMPLATE.iter().map(|p| [p[0] * 2.0, p[1] * 1.5]).collect();
        let dst: Vec<[f32; 2]> = src.iter().map(|&p| truth.apply(p)).collect();
        let fit = Similarity::estimate(&src, &dst).unwrap();
        assert!((fit.a - truth.a).abs() < 1e-4 && (fit.b - truth.b).abs() < 1e-4);
        assert!((fit.tx - truth.tx).abs() < 1e-2 && (fit.ty - truth.ty).abs() < 1e-2);
    }

    #[test]
    fn never_reflects() {
        // Mirror-image points: the best similarity cannot flip them, so the fit is poor but the
        // transform keeps a positive determinant by construction.
        let src: Vec<[f32; 2]> = TEMPLATE.iter().map(|p| [-p[0], p[1]]).collect();
        let fit = Similarity::estimate(&src, &TEMPLATE).unwrap();
        assert!(fit.a * fit.a + fit.b * fit.b > 0.0);
    }

    #[test]
    fn inverse_round_trips() {
        let t = Similarity::estimate(
            &TEMPLATE,
            &[
                [0.0, 0.0],
                [10.0, 1.0],
                [5.0, 6.0],
                [1.0, 11.0],
                [9.0, 12.0],
            ],
        )
        .unwrap();
        let p = [33.0, 44.0];
        let q = t.inverse().apply(t.apply(p));
        assert!((q[0] - p[0]).abs() < 1e-3 && (q[1] - p[1]).abs() < 1e-3);
    }

    #[test]
    fn degenerate_points_are_refused() {
        assert!(Similarity::estimate(&[[1.0, 1.0]; 5], &TEMPLATE).is_none());
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let image = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let chip = align_face(&image, &TEMPLATE_SMALL, &TEMPLATE_SMALL, 8, 8).unwrap();
        assert_eq!(chip, image);
    }

    const TEMPLATE_SMALL: [[f32; 2]; 5] =
        [[1.0, 1.0], [6.0, 1.0], [3.5, 4.0], [2.0, 6.0], [5.0, 6.0]];
}

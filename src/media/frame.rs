//! The one frame type every source produces, and the pixel conversions cameras need
//! (YUYV, GREY, MJPEG → RGB8). The raw conversions write into a caller's buffer so a stream
//! reuses one image instead of allocating per frame.

use std::time::Duration;

use image::RgbImage;

/// One camera frame: RGB8 pixels and when it was taken.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Capture time on the source's own monotonic clock (zero at its first frame or at start).
    /// Decisions run on these timestamps, so a recorded stream decides the same way however
    /// fast it is replayed.
    pub timestamp: Duration,
    /// Position in the stream, counting every frame the source produced.
    pub index: u64,
}

impl Frame {
    /// A frame to read into; sources size its buffer on the first read.
    pub fn empty() -> Self {
        Self {
            image: RgbImage::new(0, 0),
            timestamp: Duration::ZERO,
            index: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{format} frame of {got} bytes, expected {expected} for {width}×{height}")]
    Size {
        format: &'static str,
        got: usize,
        expected: usize,
        width: u32,
        height: u32,
    },
    #[error("MJPEG frame is not a complete JPEG: {0}")]
    Jpeg(String),
}

/// Make `out` `width`×`height`, reusing its allocation when it already has that size.
fn ensure_size(out: &mut RgbImage, width: u32, height: u32) {
    if out.dimensions() != (width, height) {
        *out = RgbImage::new(width, height);
    }
}

fn check_len(
    format: &'static str,
    data: &[u8],
    expected: usize,
    width: u32,
    height: u32,
) -> Result<(), ConvertError> {
    // Drivers may pad the buffer; fewer bytes than a frame is a torn frame.
    if data.len() < expected {
        return Err(ConvertError::Size {
            format,
            got: data.len(),
            expected,
            width,
            height,
        });
    }
    Ok(())
}

/// YUYV 4:2:2 (Y0 U Y1 V per two pixels, BT.601 limited range, as UVC cameras send it) → RGB8.
pub fn yuyv_to_rgb_into(
    data: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), ConvertError> {
    let expected = width as usize * height as usize * 2;
    check_len("YUYV", data, expected, width, height)?;
    ensure_size(out, width, height);
    let px = out.as_mut();
    for (src, dst) in data[..expected].chunks_exact(4).zip(px.chunks_exact_mut(6)) {
        let (u, v) = (src[1] as i32 - 128, src[3] as i32 - 128);
        for (k, y) in [src[0], src[2]].into_iter().enumerate() {
            let c = 298 * (y as i32 - 16);
            let r = (c + 409 * v + 128) >> 8;
            let g = (c - 100 * u - 208 * v + 128) >> 8;
            let b = (c + 516 * u + 128) >> 8;
            dst[k * 3] = r.clamp(0, 255) as u8;
            dst[k * 3 + 1] = g.clamp(0, 255) as u8;
            dst[k * 3 + 2] = b.clamp(0, 255) as u8;
        }
    }
    Ok(())
}

/// 8-bit grey → RGB8.
pub fn grey_to_rgb_into(
    data: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), ConvertError> {
    let expected = width as usize * height as usize;
    check_len("GREY", data, expected, width, height)?;
    ensure_size(out, width, height);
    for (&g, dst) in data[..expected]
        .iter()
        .zip(out.as_mut().chunks_exact_mut(3))
    {
        dst.fill(g);
    }
    Ok(())
}

/// Decode one MJPEG frame (a complete JPEG) to RGB8. A frame cut short is an error rather than
/// a half-grey picture.
pub fn mjpeg_to_rgb(data: &[u8]) -> Result<RgbImage, ConvertError> {
    if !crate::media::image_io::jpeg_is_complete(data) {
        return Err(ConvertError::Jpeg(format!(
            "{} bytes without a complete scan and end marker",
            data.len()
        )));
    }
    image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map(|i| i.into_rgb8())
        .map_err(|e| ConvertError::Jpeg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_greys_and_primaries_convert() {
        // Two pixels per 4 bytes: black and white at neutral chroma, then pure red-ish chroma.
        let data = [16, 128, 235, 128, 81, 90, 81, 240];
        let mut out = RgbImage::new(1, 1);
        yuyv_to_rgb_into(&data, 4, 1, &mut out).unwrap();
        assert_eq!(out.dimensions(), (4, 1));
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255]);
        let red = out.get_pixel(2, 0).0;
        assert!(red[0] > 240 && red[1] < 20 && red[2] < 20, "{red:?}");
    }

    #[test]
    fn short_buffers_are_refused_and_the_buffer_is_reused() {
        let mut out = RgbImage::new(2, 2);
        let ptr = out.as_ptr();
        assert!(grey_to_rgb_into(&[1, 2, 3], 2, 2, &mut out).is_err());
        grey_to_rgb_into(&[1, 2, 3, 4], 2, 2, &mut out).unwrap();
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.get_pixel(1, 1).0, [4, 4, 4]);
        assert!(yuyv_to_rgb_into(&[0; 7], 2, 2, &mut out).is_err());
    }

    #[test]
    fn mjpeg_frames_decode_and_cut_ones_are_refused() {
        let image = RgbImage::from_fn(32, 16, |x, _| image::Rgb([x as u8 * 8, 100, 50]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&image)
            .unwrap();
        assert_eq!(mjpeg_to_rgb(&jpeg).unwrap().dimensions(), (32, 16));
        assert!(mjpeg_to_rgb(&jpeg[..jpeg.len() - 2]).is_err());
    }
}

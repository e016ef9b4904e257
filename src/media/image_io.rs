//! Reading photos from disk into RGB8, with errors that say what is wrong with which file.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum ImageLoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a supported image format (JPEG, PNG, GIF, BMP, PNM)")]
    Unsupported { path: PathBuf },
    #[error("{path}: corrupt or truncated image ({message})")]
    Corrupt { path: PathBuf, message: String },
}

/// Decode an image file (format sniffed from its bytes), apply its EXIF orientation and convert
/// to RGB8 (alpha dropped, grey expanded).
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageLoadError> {
    let bytes = std::fs::read(path).map_err(|source| ImageLoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes, path)
}

/// [`load_rgb`] for bytes already in memory (e.g. sent over the local API); `path` only names
/// them in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage, ImageLoadError> {
    let io = |source| ImageLoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(io)?;
    if reader.format().is_none() {
        return Err(ImageLoadError::Unsupported {
            path: path.to_path_buf(),
        });
    }
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Unsupported(_) => ImageLoadError::Unsupported {
            path: path.to_path_buf(),
        },
        image::ImageError::IoError(source)
            if source.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            ImageLoadError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
        other => ImageLoadError::Corrupt {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    };
    // The JPEG decoder fills a cut-off scan with grey instead of failing; a face "found" in
    // half a photo is worse than an error, so check the data is complete first.
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageLoadError::Corrupt {
            path: path.to_path_buf(),
            message: "JPEG data ends before its end-of-image marker".to_string(),
        });
    }
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Walk the JPEG marker segments to the first scan, then look for the end-of-image marker after
/// it. Entropy-coded data never contains `FF D9` (0xFF bytes are stuffed), and segments before
/// the scan (EXIF thumbnails included) are skipped by their lengths.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = (i + 2 + len).min(bytes.len());
            return bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_cut_jpegs_are_told_apart() {
        let mut encoded = Vec::new();
        let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]));
        image::codecs::jpeg::JpegEncoder::new(&mut encoded)
            .encode_image(&image)
            .unwrap();
        assert!(jpeg_is_complete(&encoded));
        for cut in [encoded.len() - 1, encoded.len() / 2, 100, 3] {
            assert!(!jpeg_is_complete(&encoded[..cut]), "cut at {cut}");
        }
    }
}

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
    let io = |source| ImageLoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .map_err(io)?
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
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

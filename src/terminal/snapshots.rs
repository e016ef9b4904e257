//! JPEG snapshots of failed attempts (an unknown face), so an admin can see who was refused —
//! and spot a printed photo held up to the camera. Off unless a folder is configured: these are
//! pictures of people. The folder is capped: the oldest files go first.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding snapshot {path}: {message}")]
    Encode { path: PathBuf, message: String },
}

/// Where snapshots go and how many are kept.
pub struct Snapshots {
    dir: PathBuf,
    keep: usize,
}

/// File names are `<unix ms>-track<N>.jpg`: name order is time order.
const SUFFIX: &str = ".jpg";

impl Snapshots {
    /// Create the folder (0700: pictures of people) if needed.
    pub fn open(dir: &Path, keep: usize) -> Result<Self, SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            keep,
        })
    }

    /// Write one frame as JPEG (through a temporary name, so a power cut leaves no half file
    /// under a real name), then delete the oldest beyond the limit.
    pub fn save(
        &self,
        frame: &RgbImage,
        unix_ms: u64,
        track: u64,
    ) -> Result<PathBuf, SnapshotError> {
        let path = self.dir.join(format!("{unix_ms:013}-track{track}{SUFFIX}"));
        let tmp = self.dir.join(format!(".{unix_ms:013}-track{track}.tmp"));
        let io = |source| SnapshotError::Io {
            path: tmp.clone(),
            source,
        };
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(frame)
            .map_err(|e| SnapshotError::Encode {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        self.prune()?;
        Ok(path)
    }

    /// The snapshots, oldest first.
    pub fn list(&self) -> Result<Vec<PathBuf>, SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && n.ends_with(SUFFIX))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn prune(&self) -> Result<(), SnapshotError> {
        let files = self.list()?;
        let excess = files.len().saturating_sub(self.keep);
        for old in &files[..excess] {
            std::fs::remove_file(old).map_err(|source| SnapshotError::Io {
                path: old.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_writes_real_jpegs() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = Snapshots::open(&dir.path().join("snaps"), 3).unwrap();
        let frame = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        for t in 0..5u64 {
            snaps.save(&frame, 1_700_000_000_000 + t, t).unwrap();
        }
        let kept = snaps.list().unwrap();
        let names: Vec<String> = kept
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "1700000000002-track2.jpg",
                "1700000000003-track3.jpg",
                "1700000000004-track4.jpg"
            ]
        );
        let back = image::open(&kept[2]).unwrap();
        assert_eq!((back.width(), back.height()), (64, 48));
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("snaps")).unwrap().count(),
            3
        );
    }
}

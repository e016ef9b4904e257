//! The TOML configuration. Every threshold lives here with its default; a missing file means
//! all defaults, an unknown key is an error (a typo must not silently change behaviour).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::LowLightParams;
use crate::vision::detect::DetectorParams;

/// Where a door terminal keeps its configuration.
pub const SYSTEM_CONFIG: &str = "/etc/facegate/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder with the ONNX models and their manifests; found automatically when unset.
    pub models_dir: Option<PathBuf>,
    /// The enrolled gallery file.
    pub gallery: PathBuf,
    /// Embedder id or alias: `mobilefacenet` (default) or `dlib`.
    pub embedder: String,
    pub detector: DetectorParams,
    pub matching: MatchParams,
    pub low_light: LowLightParams,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            models_dir: None,
            gallery: PathBuf::from("gallery.fg"),
            embedder: "mobilefacenet-arcface".to_string(),
            detector: DetectorParams::default(),
            matching: MatchParams::default(),
            low_light: LowLightParams::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchParams {
    /// Cosine similarity at or above which a face is the enrolled person. Unset: the embedder
    /// manifest's calibrated default.
    pub threshold: Option<f32>,
}

impl Config {
    /// Read `path` if given (it must exist), else the system config if present, else defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(SYSTEM_CONFIG).is_file() => PathBuf::from(SYSTEM_CONFIG),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // Relative paths in a config file are relative to that file, not to the caller's cwd.
        let base = path.parent().unwrap_or(Path::new("."));
        if config.gallery.is_relative() && config.gallery != Self::default().gallery {
            config.gallery = base.join(&config.gallery);
        }
        if let Some(dir) = config.models_dir.as_mut().filter(|d| d.is_relative()) {
            *dir = base.join(&*dir);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[detector]\nmin_fase = 40\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("min_fase"), "{err}");
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "gallery = \"g.fg\"\n[detector]\nmin_face = 40\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.detector.min_face, 40.0);
        assert_eq!(c.detector.thresholds, [0.6, 0.7, 0.7]);
        assert_eq!(c.gallery, dir.path().join("g.fg"));
    }
}

//! Embeddings cached by image content and model, so re-running an evaluation only embeds the
//! images it has not seen. One postcard file per cache; a cache made by another embedder, model
//! file or pipeline setting is ignored and replaced (its vectors would not be comparable).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::vision::pipeline::{central_embeddings, Pipeline, PipelineError};

/// Bumped when the file layout changes.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the embedding cache: {0}")]
    Encode(postcard::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What made the cached embeddings: they are reused only when all of it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub embedder: String,
    pub model_sha256: [u8; 32],
    /// sha256 of the detector and alignment settings (which face is found changes the vector).
    pub settings_sha256: [u8; 32],
}

impl CacheKey {
    pub fn new(pipeline: &Pipeline, settings: &str) -> Self {
        Self {
            embedder: pipeline.embedder().manifest().id.clone(),
            model_sha256: pipeline.embedder().model_sha256(),
            settings_sha256: Sha256::digest(settings.as_bytes()).into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    key: CacheKey,
    /// sha256 of the image file → embedding of its central face (`None`: no face found).
    entries: Vec<([u8; 32], Option<Vec<f32>>)>,
}

/// How a lookup went, for the report.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct CacheStats {
    pub hits: usize,
    pub misses: usize,
}

/// One central-face embedding per image; `None` where no face was found.
pub type Embeddings = Vec<Option<Vec<f32>>>;

pub struct EmbeddingCache {
    path: Option<PathBuf>,
    key: CacheKey,
    entries: HashMap<[u8; 32], Option<Vec<f32>>>,
    dirty: bool,
}

impl EmbeddingCache {
    /// Open the cache at `path` (`None`: in memory only). A missing, unreadable or foreign file
    /// starts an empty cache: the cache only saves time, it never decides a result.
    pub fn open(path: Option<&Path>, key: CacheKey) -> Self {
        let entries = path
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| postcard::from_bytes::<CacheFile>(&bytes).ok())
            .filter(|f| f.version == VERSION && f.key == key)
            .map(|f| f.entries.into_iter().collect())
            .unwrap_or_default();
        Self {
            path: path.map(Path::to_path_buf),
            key,
            entries,
            dirty: false,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The central-face embedding of every image, from the cache where the same bytes were seen
    /// before, else from the pipeline on `threads` threads. `progress` is called once per image.
    pub fn central_embeddings(
        &mut self,
        pipeline: &Pipeline,
        images: &[PathBuf],
        threads: usize,
        progress: &(dyn Fn() + Sync),
    ) -> Result<(Embeddings, CacheStats), CacheError> {
        let hashes = images
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|bytes| <[u8; 32]>::from(Sha256::digest(&bytes)))
                    .map_err(|source| CacheError::Io {
                        op: "reading",
                        path: p.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let missing: Vec<usize> = (0..images.len())
            .filter(|&i| !self.entries.contains_key(&hashes[i]))
            .collect();
        for _ in 0..images.len() - missing.len() {
            progress();
        }
        let todo: Vec<PathBuf> = missing.iter().map(|&i| images[i].clone()).collect();
        let computed = central_embeddings(pipeline, &todo, threads, progress)?;
        for (&i, e) in missing.iter().zip(computed) {
            self.entries.insert(hashes[i], e);
            self.dirty = true;
        }
        let stats = CacheStats {
            hits: images.len() - missing.len(),
            misses: missing.len(),
        };
        let out = hashes.iter().map(|h| self.entries[h].clone()).collect();
        Ok((out, stats))
    }

    /// Write the cache if anything was added (to a temporary file, then renamed into place).
    pub fn save(&mut self) -> Result<(), CacheError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { op, path, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        let file = CacheFile {
            version: VERSION,
            key: self.key.clone(),
            entries: self.entries.iter().map(|(k, v)| (*k, v.clone())).collect(),
        };
        let bytes = postcard::to_allocvec(&file).map_err(CacheError::Encode)?;
        let tmp = path.with_extension("bin.tmp");
        std::fs::write(&tmp, bytes).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("replacing", path))?;
        self.dirty = false;
        Ok(())
    }
}

/// The default cache file for an embedder: `$XDG_CACHE_HOME/facegate/embeddings-<id>.bin`, else
/// `~/.cache/facegate/…`; `None` when neither variable is set.
pub fn default_path(embedder: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(
        base.join("facegate")
            .join(format!("embeddings-{embedder}.bin")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(embedder: &str) -> CacheKey {
        CacheKey {
            embedder: embedder.into(),
            model_sha256: [1; 32],
            settings_sha256: [2; 32],
        }
    }

    #[test]
    fn round_trips_and_refuses_another_models_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.bin");
        let mut cache = EmbeddingCache::open(Some(&path), key("a"));
        cache.entries.insert([7; 32], Some(vec![0.5, -0.5]));
        cache.entries.insert([8; 32], None);
        cache.dirty = true;
        cache.save().unwrap();
        let again = EmbeddingCache::open(Some(&path), key("a"));
        assert_eq!(again.entries, cache.entries);
        assert!(EmbeddingCache::open(Some(&path), key("b")).is_empty());
        // A damaged file is an empty cache, not an error.
        std::fs::write(&path, b"\xff\xff garbage").unwrap();
        assert!(EmbeddingCache::open(Some(&path), key("a")).is_empty());
    }
}

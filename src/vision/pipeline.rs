//! detect → align → embed for one image: the recognition core every command shares.

use std::time::{Duration, Instant};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::gallery::{EmbedderId, GalleryError};
use crate::runtime::models::{DetectorManifest, EmbedderManifest, ModelDir};
use crate::vision::align::align_face;
use crate::vision::detect::{DetectError, DetectTimes, Detection, DetectorParams, Mtcnn};
use crate::vision::embed::{EmbedError, Embedder};
use crate::vision::enhance;
use crate::vision::liveness::{Liveness, LivenessError, LivenessScore};
use crate::vision::quality::Quality;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Image(#[from] crate::media::image_io::ImageLoadError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Liveness(#[from] LivenessError),
}

/// When to retry a dark image on an equalised copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LowLightParams {
    pub enabled: bool,
    /// Mean luma (0–255) below which an image with no face found counts as dark.
    pub dark_luma: f32,
}

impl Default for LowLightParams {
    fn default() -> Self {
        Self {
            enabled: true,
            dark_luma: 70.0,
        }
    }
}

/// A detected face with its quality figures and unit-norm embedding.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    #[serde(flatten)]
    pub detection: Detection,
    pub quality: Quality,
    /// Present when the pipeline has a liveness check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<LivenessScore>,
    pub embedding: Vec<f32>,
}

/// Every face of one image, nearest to the image centre first.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub faces: Vec<Face>,
    /// The faces were found on a brightened copy of a dark image.
    pub enhanced: bool,
}

/// Time spent per stage; every call adds to it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageTimes {
    pub detect: DetectTimes,
    pub align: Duration,
    pub liveness: Duration,
    pub embed: Duration,
}

pub struct Pipeline {
    detector: Mtcnn,
    embedder: Embedder,
    low_light: LowLightParams,
    liveness: Option<Liveness>,
}

impl Pipeline {
    pub fn load(
        dir: &ModelDir,
        embedder: &str,
        detector: DetectorParams,
        low_light: LowLightParams,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            detector: Mtcnn::load(dir, detector)?,
            embedder: Embedder::load(dir, embedder)?,
            low_light,
            liveness: None,
        })
    }

    /// Load the detector and embedder these manifests name (e.g. int8 or f16 variants).
    pub fn load_variants(
        dir: &ModelDir,
        embedder: EmbedderManifest,
        detector_manifest: &DetectorManifest,
        detector: DetectorParams,
        low_light: LowLightParams,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            detector: Mtcnn::from_manifest(dir, detector_manifest, detector)?,
            embedder: Embedder::from_manifest(dir, embedder)?,
            low_light,
            liveness: None,
        })
    }

    /// The identity of the embedder as galleries record it: templates from another model (or
    /// another file of the same model) must never be compared with this one's.
    pub fn gallery_id(&self) -> Result<EmbedderId, GalleryError> {
        let e = &self.embedder;
        let dim = u16::try_from(e.dim())
            .map_err(|_| GalleryError::InvalidEmbedderId(e.manifest().id.clone()))?;
        EmbedderId::new(&e.manifest().id, e.model_sha256(), dim)
    }

    /// Threads one frame may use (`detector.threads` of the config; 0 = all cores).
    pub fn set_threads(&mut self, threads: usize) {
        self.detector.set_threads(threads);
    }

    pub fn detector(&self) -> &Mtcnn {
        &self.detector
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// See [`Embedder::set_mirrored`].
    pub fn set_mirrored_embedding(&mut self, mirrored: bool) {
        self.embedder.set_mirrored(mirrored);
    }

    /// Check every described face for liveness (`None`: no check).
    pub fn set_liveness(&mut self, liveness: Option<Liveness>) {
        self.liveness = liveness;
    }

    pub fn liveness(&self) -> Option<&Liveness> {
        self.liveness.as_ref()
    }

    /// The liveness of the face at `detection` in `image` (`None` without a check).
    pub fn check_liveness(
        &self,
        image: &RgbImage,
        detection: &Detection,
        times: &mut StageTimes,
    ) -> Result<Option<LivenessScore>, PipelineError> {
        let Some(l) = &self.liveness else {
            return Ok(None);
        };
        let started = Instant::now();
        let score = l.check(image, &detection.bbox)?;
        times.liveness += started.elapsed();
        Ok(Some(score))
    }

    /// Find faces, retrying once on an equalised copy when none is found in a dark image.
    /// Returns the image the faces were found in (the copy, if it was used).
    pub fn detect<'a>(
        &self,
        image: &'a RgbImage,
        times: &mut StageTimes,
    ) -> Result<(Vec<Detection>, std::borrow::Cow<'a, RgbImage>), PipelineError> {
        let faces = self.detector.detect(image, &mut times.detect)?;
        if faces.is_empty()
            && self.low_light.enabled
            && enhance::mean_luma(image) < self.low_light.dark_luma
        {
            let brighter = enhance::equalise(image);
            let faces = self.detector.detect(&brighter, &mut times.detect)?;
            if !faces.is_empty() {
                return Ok((faces, std::borrow::Cow::Owned(brighter)));
            }
        }
        Ok((faces, std::borrow::Cow::Borrowed(image)))
    }

    /// Align and embed one detected face of `image`.
    pub fn describe(
        &self,
        image: &RgbImage,
        detection: Detection,
        times: &mut StageTimes,
    ) -> Result<Option<Face>, PipelineError> {
        let started = Instant::now();
        let (w, h) = self.embedder.chip_size();
        let chip = align_face(image, &detection.landmarks, self.embedder.template(), w, h);
        times.align += started.elapsed();
        let Some(chip) = chip else {
            return Ok(None);
        };
        let liveness = self.check_liveness(image, &detection, times)?;
        let started = Instant::now();
        let embedding = self.embedder.embed(&chip)?;
        times.embed += started.elapsed();
        Ok(Some(Face {
            detection,
            quality: Quality::measure(&detection, &chip),
            liveness,
            embedding,
        }))
    }

    /// detect → align → embed every face, nearest to the image centre first.
    pub fn analyse(
        &self,
        image: &RgbImage,
        times: &mut StageTimes,
    ) -> Result<Analysis, PipelineError> {
        let (mut detections, used) = self.detect(image, times)?;
        sort_by_centre_distance(&mut detections, image.width(), image.height());
        let threads = self.detector.threads().min(detections.len());
        let faces = if threads <= 1 {
            let mut faces = Vec::with_capacity(detections.len());
            for detection in detections {
                if let Some(face) = self.describe(&used, detection, times)? {
                    faces.push(face);
                }
            }
            faces
        } else {
            self.describe_parallel(&used, &detections, threads, times)?
        };
        Ok(Analysis {
            faces,
            enhanced: matches!(used, std::borrow::Cow::Owned(_)),
        })
    }
}

impl Pipeline {
    /// [`Pipeline::describe`] every detection on `threads` threads, results in detection order.
    /// The wall time is what `times` gets, split between align and embed as the threads spent it.
    fn describe_parallel(
        &self,
        image: &RgbImage,
        detections: &[Detection],
        threads: usize,
        times: &mut StageTimes,
    ) -> Result<Vec<Face>, PipelineError> {
        let started = Instant::now();
        let per = detections.len().div_ceil(threads);
        let run = |chunk: &[Detection]| -> Result<(Vec<Face>, StageTimes), PipelineError> {
            let mut t = StageTimes::default();
            let mut faces = Vec::with_capacity(chunk.len());
            for &d in chunk {
                faces.extend(self.describe(image, d, &mut t)?);
            }
            Ok((faces, t))
        };
        let parts = std::thread::scope(|s| {
            let mut chunks = detections.chunks(per);
            let first = chunks.next().unwrap_or(&[]);
            let handles: Vec<_> = chunks.map(|c| s.spawn(move || run(c))).collect();
            let mut parts = vec![run(first)];
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("embedding thread panicked")),
            );
            parts
        });
        let (mut faces, mut busy) = (Vec::with_capacity(detections.len()), StageTimes::default());
        for part in parts {
            let (f, t) = part?;
            faces.extend(f);
            busy.align += t.align;
            busy.liveness += t.liveness;
            busy.embed += t.embed;
        }
        let wall = started.elapsed();
        let spent = (busy.align + busy.liveness + busy.embed).as_secs_f64();
        let share = |d: Duration| {
            if spent > 0.0 {
                d.as_secs_f64() / spent
            } else {
                0.0
            }
        };
        times.align += wall.mul_f64(share(busy.align));
        times.liveness += wall.mul_f64(share(busy.liveness));
        times.embed += wall.mul_f64(share(busy.embed));
        Ok(faces)
    }
}

/// The embedding of the face nearest the centre of each image (`None` where no face was found),
/// computed on `threads` threads; `progress` is called once per finished image.
pub fn central_embeddings(
    pipeline: &Pipeline,
    images: &[std::path::PathBuf],
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Option<Vec<f32>>>, PipelineError> {
    map_images(images, threads, progress, |image, times| {
        let analysis = pipeline.analyse(image, times)?;
        Ok(analysis.faces.into_iter().next().map(|f| f.embedding))
    })
}

/// `per_image` of each decoded image, on `threads` threads, results in the order of `images`;
/// `progress` is called once per finished image.
pub fn map_images<T: Send>(
    images: &[std::path::PathBuf],
    threads: usize,
    progress: &(dyn Fn() + Sync),
    per_image: impl Fn(&RgbImage, &mut StageTimes) -> Result<Option<T>, PipelineError> + Sync,
) -> Result<Vec<Option<T>>, PipelineError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<T>>> =
        images.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| -> Result<(), PipelineError> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<(), PipelineError> {
                    let mut times = StageTimes::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = images.get(i) else {
                            return Ok(());
                        };
                        let image = crate::media::image_io::load_rgb(path)?;
                        let value = per_image(&image, &mut times)?;
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = value;
                        progress();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker panicked")?;
        }
        Ok(())
    })?;
    Ok(results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect())
}

/// The gallery identity of an embedder, from its manifest alone (no need to load the model to
/// list or edit a gallery).
pub fn gallery_id(manifest: &EmbedderManifest) -> Result<EmbedderId, GalleryError> {
    let invalid = || GalleryError::InvalidEmbedderId(manifest.id.clone());
    let dim = u16::try_from(manifest.output_dim).map_err(|_| invalid())?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(&manifest.sha256, &mut sha).map_err(|_| invalid())?;
    EmbedderId::new(&manifest.id, sha, dim)
}

/// Order faces by the distance of their box centre from the image centre, nearest first: the
/// face of interest in a photo or at a door is the one in the middle.
pub fn sort_by_centre_distance(faces: &mut [Detection], width: u32, height: u32) {
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let dist = |d: &Detection| {
        let (x, y) = d.centre();
        (x - cx).powi(2) + (y - cy).powi(2)
    };
    faces.sort_by(|a, b| dist(a).total_cmp(&dist(b)));
}

//! Which numeric variant of the models runs: fp32, int8 or f16, fixed by the config or chosen
//! once per device (`auto`) by timing the variants whose measured accuracy is close enough.
//!
//! The variants are separate ONNX files with their own manifests (`models/quantize.py`). An int8
//! embedder has its own id and sha256, so a gallery enrolled with fp32 refuses it (templates of
//! two variants must never be compared).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::runtime::models::Precision;
use crate::runtime::models::{DetectorManifest, EmbedderManifest, ModelDir, ModelError};

/// The largest LFW dev accuracy loss, in percentage points, that `auto` accepts from a variant
/// (the goal of issue 6).
pub const AUTO_TOLERANCE_POINTS: f32 = 0.2;

/// The config's `precision`: a fixed variant, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionSetting {
    Auto,
    #[default]
    Fp32,
    Int8,
    F16,
}

impl PrecisionSetting {
    pub fn fixed(self) -> Option<Precision> {
        match self {
            PrecisionSetting::Auto => None,
            PrecisionSetting::Fp32 => Some(Precision::Fp32),
            PrecisionSetting::Int8 => Some(Precision::Int8),
            PrecisionSetting::F16 => Some(Precision::F16),
        }
    }
}

impl FromStr for PrecisionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "fp32" => Ok(Self::Fp32),
            "int8" => Ok(Self::Int8),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown precision '{other}' (expected auto, fp32, int8 or f16)"
            )),
        }
    }
}

/// Whether this CPU has f16 arithmetic (ARMv8.2 FP16, e.g. the Pi 5's Cortex-A76). Elsewhere
/// tract emulates f16, 10–90× slower than fp32, so `auto` never considers it.
pub fn native_f16() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("fp16")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// A short description of this CPU for the cache key: architecture and model name.
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |names: &[&str]| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            names
                .contains(&k.trim())
                .then(|| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
    };
    let model = field(&["model name", "Model", "Hardware"])
        .or_else(|| field(&["CPU part"]).map(|p| format!("CPU part {p}")))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{} {model} ({cores} cores)", std::env::consts::ARCH)
}

#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("timing the {precision} variant of {model}: {message}")]
    Timing {
        model: String,
        precision: Precision,
        message: String,
    },
    #[error("writing the precision choice {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One model variant and how long it took on this device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub model: String,
    pub precision: Precision,
    /// Median time of one run, in milliseconds.
    pub ms: f64,
    /// Measured LFW dev accuracy (%) from the manifest, if recorded.
    pub lfw_accuracy: Option<f32>,
    /// Whether its accuracy is within the tolerance of fp32 (and, for f16, the CPU has f16).
    pub eligible: bool,
}

/// What `auto` chose on this device, cached in a small TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoChoice {
    /// sha256 over the CPU description and the sha256 of every candidate model file.
    pub key: String,
    pub cpu: String,
    pub embedder: Precision,
    pub detector: Precision,
    pub timings: Vec<Timing>,
}

/// The variants of the configured models on disk, with their manifests.
pub struct Candidates {
    pub embedders: Vec<EmbedderManifest>,
    pub detectors: Vec<DetectorManifest>,
}

impl Candidates {
    /// Every precision of `embedder` and of the detector present in `dir` (fp32 first).
    pub fn find(dir: &ModelDir, embedder: &str) -> Result<Self, ModelError> {
        let mut embedders = Vec::new();
        let mut detectors = Vec::new();
        for p in Precision::ALL {
            match dir.embedder_variant(embedder, p) {
                // A name that states a variant gives that one for every precision: once.
                Ok(m) if embedders.iter().any(|e: &EmbedderManifest| e.id == m.id) => {}
                Ok(m) => embedders.push(m),
                Err(ModelError::NoVariant { .. }) => {}
                Err(e) => return Err(e),
            }
            match dir.detector_variant(p) {
                Ok(m) => detectors.push(m),
                Err(ModelError::NoVariant { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            embedders,
            detectors,
        })
    }

    /// The cache key: this CPU and every candidate file's checksum.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(cpu_description().as_bytes());
        for e in &self.embedders {
            h.update(format!("|{}:{}", e.id, e.sha256).as_bytes());
        }
        for d in &self.detectors {
            for net in [&d.pnet, &d.rnet, &d.onet] {
                h.update(format!("|{}:{}", d.id, net.sha256).as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// Whether a variant may be chosen by `auto`: fp32 always; another precision only with a
/// recorded LFW accuracy within [`AUTO_TOLERANCE_POINTS`] of fp32's, and f16 only on a CPU with
/// f16 arithmetic.
pub fn eligible(precision: Precision, accuracy: Option<f32>, fp32_accuracy: Option<f32>) -> bool {
    match precision {
        Precision::Fp32 => true,
        Precision::F16 if !native_f16() => false,
        _ => match (accuracy, fp32_accuracy) {
            // A hair of slack for the decimal digits of the manifests.
            (Some(a), Some(base)) => a >= base - AUTO_TOLERANCE_POINTS - 1e-3,
            _ => false,
        },
    }
}

/// The file the choice is cached in: next to the gallery, `<gallery>.precision.toml`.
pub fn cache_path(gallery: &Path) -> PathBuf {
    let mut name = gallery.file_name().unwrap_or_default().to_os_string();
    name.push(".precision.toml");
    gallery.with_file_name(name)
}

/// The cached choice at `path` if it was made for these candidates on this CPU.
pub fn cached(path: &Path, key: &str) -> Option<AutoChoice> {
    let text = std::fs::read_to_string(path).ok()?;
    let choice: AutoChoice = toml::from_str(&text).ok()?;
    (choice.key == key).then_some(choice)
}

/// Choose the fastest eligible variant of the embedder and of the detector, given a function
/// that times one variant (median milliseconds), and save the choice to `path`.
pub fn choose(
    candidates: &Candidates,
    path: &Path,
    mut time_embedder: impl FnMut(&EmbedderManifest) -> Result<Duration, String>,
    mut time_detector: impl FnMut(&DetectorManifest) -> Result<Duration, String>,
) -> Result<AutoChoice, PrecisionError> {
    let mut timings = Vec::new();
    let embedder = |m: &EmbedderManifest| (m.id.clone(), m.precision, m.lfw_accuracy);
    let detector = |m: &DetectorManifest| (m.id.clone(), m.precision, m.lfw_accuracy);
    time_variants(
        &candidates.embedders,
        embedder,
        &mut time_embedder,
        &mut timings,
    )?;
    time_variants(
        &candidates.detectors,
        detector,
        &mut time_detector,
        &mut timings,
    )?;
    let fastest = |ids: Vec<&str>| {
        timings
            .iter()
            .filter(|t| t.eligible && ids.contains(&t.model.as_str()))
            .min_by(|a, b| a.ms.total_cmp(&b.ms))
            .map_or(Precision::Fp32, |t| t.precision)
    };
    let choice = AutoChoice {
        key: candidates.key(),
        cpu: cpu_description(),
        embedder: fastest(candidates.embedders.iter().map(|m| m.id.as_str()).collect()),
        detector: fastest(candidates.detectors.iter().map(|m| m.id.as_str()).collect()),
        timings,
    };
    let text = format!(
        "# facegate: `precision = \"auto\"` measured these on this device; delete the file to \
         measure again.\n{}",
        toml::to_string(&choice).expect("the choice serialises")
    );
    std::fs::write(path, text).map_err(|source| PrecisionError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(choice)
}

/// Time each variant of one model that is eligible against its fp32 accuracy; `describe` gives
/// a variant's id, precision and measured LFW accuracy.
fn time_variants<M>(
    variants: &[M],
    describe: impl Fn(&M) -> (String, Precision, Option<f32>),
    time: &mut impl FnMut(&M) -> Result<Duration, String>,
    timings: &mut Vec<Timing>,
) -> Result<(), PrecisionError> {
    let fp32_acc = variants
        .iter()
        .map(&describe)
        .find(|(_, p, _)| *p == Precision::Fp32)
        .and_then(|(_, _, acc)| acc);
    for m in variants {
        let (model, precision, lfw_accuracy) = describe(m);
        let ok = eligible(precision, lfw_accuracy, fp32_acc);
        // An ineligible variant is not timed: f16 emulated on x86 takes seconds to load and run.
        let ms = if ok {
            let d = time(m).map_err(|message| PrecisionError::Timing {
                model: model.clone(),
                precision,
                message,
            })?;
            d.as_secs_f64() * 1e3
        } else {
            f64::NAN
        };
        timings.push(Timing {
            model,
            precision,
            ms,
            lfw_accuracy,
            eligible: ok,
        });
    }
    Ok(())
}

/// Median of `runs` calls of `f`, after one untimed warm-up call.
pub fn median_time(
    runs: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<Duration, String> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(
            "auto".parse::<PrecisionSetting>(),
            Ok(PrecisionSetting::Auto)
        );
        assert_eq!(
            "int8".parse::<PrecisionSetting>().unwrap().fixed(),
            Some(Precision::Int8)
        );
        assert!("int4".parse::<PrecisionSetting>().is_err());
    }

    #[test]
    fn eligibility_follows_the_tolerance() {
        assert!(eligible(Precision::Fp32, None, None));
        assert!(eligible(Precision::Int8, Some(99.3), Some(99.42)));
        assert!(!eligible(Precision::Int8, Some(99.1), Some(99.42)));
        assert!(!eligible(Precision::Int8, None, Some(99.42)));
        assert_eq!(
            eligible(Precision::F16, Some(99.42), Some(99.42)),
            native_f16()
        );
    }

    #[test]
    fn cache_file_sits_next_to_the_gallery() {
        assert_eq!(
            cache_path(Path::new("/var/lib/facegate/gallery.fg")),
            PathBuf::from("/var/lib/facegate/gallery.fg.precision.toml")
        );
    }
}

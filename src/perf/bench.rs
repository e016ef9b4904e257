//! Per-stage latency of the real pipeline over images (`facegate bench IMAGE|DIR`): median and
//! spread, and a Markdown row to paste board results into docs/performance.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::media::image_io::load_rgb;
use crate::vision::pipeline::StageTimes;

use super::{machine, peak_rss_kb, synthetic_gallery};
use crate::setup::Setup;

const STAGES: [&str; 9] = [
    "decode", "pnet", "rnet", "onet", "align", "liveness", "embed", "search", "total",
];

#[derive(Serialize)]
pub struct StageStats {
    pub stage: &'static str,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub images: usize,
    pub runs: usize,
    pub faces_per_pass: usize,
    pub gallery_people: usize,
    pub embedder: String,
    pub threads: usize,
    pub machine: String,
    pub load_ms: f64,
    pub peak_rss_kb: Option<u64>,
    pub stages: Vec<StageStats>,
}

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// An image, or a folder whose images are all used.
    pub input: PathBuf,
    /// Timed passes over the images (after one untimed warm-up pass).
    pub runs: usize,
    /// People in the synthetic gallery the search stage is timed on (5 templates each).
    pub gallery_size: usize,
    /// Threads per frame (overrides detector.threads of the config; 0 = all cores).
    pub threads: Option<usize>,
    /// Include the liveness stage when the config enables it (as `run` does).
    pub liveness: bool,
}

pub fn run(setup: &Setup, args: &BenchOptions) -> Result<Report> {
    let input = &args.input;
    let images = image_files(input)?;
    let load_started = Instant::now();
    let mut pipeline = setup.pipeline_live(!args.liveness)?;
    let load_time = load_started.elapsed();
    if let Some(t) = args.threads {
        pipeline.set_threads(t);
    }
    let gallery_size = args.gallery_size;
    let gallery = synthetic_gallery(&pipeline, gallery_size)?;

    // samples[stage] holds one duration per image per timed run.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); STAGES.len()];
    let mut faces_per_pass = 0;
    for run in 0..=args.runs {
        faces_per_pass = 0;
        for path in &images {
            let started = Instant::now();
            let image = load_rgb(path)?;
            let decode = started.elapsed();
            let mut t = StageTimes::default();
            let analysis = pipeline.analyse(&image, &mut t)?;
            let search_started = Instant::now();
            for face in &analysis.faces {
                std::hint::black_box(gallery.search(&face.embedding)?);
            }
            let search = search_started.elapsed();
            faces_per_pass += analysis.faces.len();
            if run == 0 {
                continue; // warm-up: caches, lazily built plans
            }
            let stage = [
                decode,
                t.detect.pnet,
                t.detect.rnet,
                t.detect.onet,
                t.align,
                t.liveness,
                t.embed,
                search,
            ];
            let total = started.elapsed();
            for (i, d) in stage.iter().chain([&total]).enumerate() {
                samples[i].push(*d);
            }
        }
    }
    let report = Report {
        images: images.len(),
        runs: args.runs,
        faces_per_pass,
        gallery_people: gallery_size,
        embedder: pipeline.embedder().manifest().id.clone(),
        threads: pipeline.detector().threads(),
        machine: machine(),
        load_ms: load_time.as_secs_f64() * 1e3,
        peak_rss_kb: peak_rss_kb(),
        stages: STAGES
            .iter()
            .zip(samples.iter_mut())
            .map(|(stage, s)| stats(stage, s))
            .collect(),
    };
    Ok(report)
}

fn stats(stage: &'static str, samples: &mut [Duration]) -> StageStats {
    samples.sort();
    let pick = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i].as_secs_f64() * 1e3
    };
    StageStats {
        stage,
        median_ms: pick(0.5),
        p10_ms: pick(0.1),
        p90_ms: pick(0.9),
    }
}

fn image_files(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)
        .with_context(|| format!("reading {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "gif" | "bmp" | "pgm" | "ppm"
                )
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no images found", input.display());
    }
    Ok(files)
}

//! `facegate bench IMAGE|DIR`: per-stage latency of the real pipeline, median and spread.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Serialize;

use facegate::gallery::Gallery;
use facegate::image_io::load_rgb;
use facegate::pipeline::StageTimes;

use super::Context;

#[derive(Debug, Parser)]
pub struct BenchArgs {
    /// An image, or a folder whose images are all used
    input: PathBuf,
    /// Timed passes over the images (after one untimed warm-up pass)
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// People in the synthetic gallery the search stage is timed on (5 templates each)
    #[arg(long, default_value_t = 1000)]
    gallery_size: usize,
}

const STAGES: [&str; 8] = [
    "decode", "pnet", "rnet", "onet", "align", "embed", "search", "total",
];

#[derive(Serialize)]
struct StageStats {
    stage: &'static str,
    median_ms: f64,
    p10_ms: f64,
    p90_ms: f64,
}

#[derive(Serialize)]
struct Report {
    images: usize,
    runs: usize,
    faces_per_pass: usize,
    gallery_people: usize,
    embedder: String,
    threads: usize,
    stages: Vec<StageStats>,
}

pub fn run(ctx: &Context, args: BenchArgs) -> Result<ExitCode> {
    let images = image_files(&args.input)?;
    let load_started = Instant::now();
    let pipeline = ctx.pipeline()?;
    let load_time = load_started.elapsed();
    let gallery = synthetic_gallery(&pipeline, args.gallery_size)?;

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
        gallery_people: args.gallery_size,
        embedder: pipeline.embedder().manifest().id.clone(),
        threads: 1,
        stages: STAGES
            .iter()
            .zip(samples.iter_mut())
            .map(|(stage, s)| stats(stage, s))
            .collect(),
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "facegate bench: {} image(s) × {} runs, {} face(s) per pass, embedder {}, search over {} people × 5 templates",
            report.images, report.runs, report.faces_per_pass, report.embedder, report.gallery_people
        );
        println!(
            "model load + optimise: {:.1} ms",
            load_time.as_secs_f64() * 1e3
        );
        println!(
            "{:<8} {:>10} {:>10} {:>10}   (ms per image)",
            "stage", "median", "p10", "p90"
        );
        for s in &report.stages {
            println!(
                "{:<8} {:>10.2} {:>10.2} {:>10.2}",
                s.stage, s.median_ms, s.p10_ms, s.p90_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// A gallery of random unit vectors: search cost depends on its size, not on who is in it.
fn synthetic_gallery(pipeline: &facegate::pipeline::Pipeline, people: usize) -> Result<Gallery> {
    let dim = pipeline.embedder().dim();
    let mut gallery = Gallery::new(pipeline.gallery_id()?);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift: deterministic filler, no need for a crypto RNG here
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for p in 0..people {
        let templates: Vec<Vec<f32>> = (0..5).map(|_| (0..dim).map(|_| next()).collect()).collect();
        gallery.add_person(&format!("person-{p}"), &templates, 0)?;
    }
    Ok(gallery)
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

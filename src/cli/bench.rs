//! `facegate bench IMAGE|DIR`: per-stage latency of the real pipeline, median and spread, and a
//! Markdown row to paste board results into docs/performance.md. `facegate bench --compare`:
//! the same against onnxruntime (see `compare.rs`).

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
    /// An image, or a folder whose images are all used (not with --compare)
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    input: Option<PathBuf>,
    /// Compare with onnxruntime: a Python implementation of the same pipeline
    /// (bench/ort_pipeline.py, installed into bench/.venv on first use), interleaved frame by
    /// frame on 640×480 frames from --data, one thread and all cores
    #[arg(long)]
    compare: bool,
    /// Timed passes over the images (after one untimed warm-up pass)
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// People in the synthetic gallery the search stage is timed on (5 templates each)
    /// [default: 1000, or 10000 with --compare]
    #[arg(long)]
    gallery_size: Option<usize>,
    /// Threads per frame (overrides detector.threads of the config; 0 = all cores). With
    /// --compare: the threads of the all-cores round
    #[arg(long)]
    threads: Option<usize>,
    /// --compare: frames of the one-face video to use (the several-face set is always whole,
    /// except with 1, which uses one frame of each)
    #[arg(long, default_value_t = 10)]
    frames: usize,
    /// --compare: the shared data folder (video/hamilton/frames, hard/many_faces)
    #[arg(long, default_value_os_t = default_data())]
    data: PathBuf,
    /// --compare: the folder holding ort_pipeline.py and requirements.txt
    #[arg(long, default_value_os_t = default_bench_dir())]
    bench_dir: PathBuf,
    /// --compare: the python that creates bench/.venv
    #[arg(long, default_value = "python3")]
    python: String,
    /// Time the pipeline without the liveness stage (on by default, as in `run`)
    #[arg(long)]
    no_liveness: bool,
}

fn default_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

fn default_bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench")
}

const STAGES: [&str; 9] = [
    "decode", "pnet", "rnet", "onet", "align", "liveness", "embed", "search", "total",
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
    machine: String,
    load_ms: f64,
    peak_rss_kb: Option<u64>,
    stages: Vec<StageStats>,
}

pub fn run(ctx: &Context, args: BenchArgs) -> Result<ExitCode> {
    if args.compare {
        super::compare::run(
            ctx,
            super::compare::CompareArgs {
                data: args.data,
                bench_dir: args.bench_dir,
                python: args.python,
                one_face_frames: args.frames,
                runs: args.runs,
                gallery_people: args.gallery_size.unwrap_or(10_000),
                threads: args.threads.unwrap_or(0),
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let input = args.input.context("an image or folder is needed")?;
    let images = image_files(&input)?;
    let load_started = Instant::now();
    let mut pipeline = ctx.pipeline_live(args.no_liveness)?;
    let load_time = load_started.elapsed();
    if let Some(t) = args.threads {
        pipeline.set_threads(t);
    }
    let gallery_size = args.gallery_size.unwrap_or(1000);
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
        print_board_row(&report, &input);
    }
    Ok(ExitCode::SUCCESS)
}

/// A Markdown row for the board table of docs/performance.md (median ms per image).
fn print_board_row(r: &Report, input: &Path) {
    let median = |name: &str| {
        r.stages
            .iter()
            .find(|s| s.stage == name)
            .map_or(f64::NAN, |s| s.median_ms)
    };
    println!();
    println!("paste into docs/performance.md (board results):");
    println!(
        "| machine | threads | embedder | input | pnet | rnet | onet | align | embed | search ({}k×5) | total | load ms | peak RSS MB | facegate |",
        r.gallery_people / 1000
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} ({} img, {} faces/pass) | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.0} | {} | {} |",
        r.machine,
        r.threads,
        r.embedder,
        input.file_name().map_or_else(|| input.display().to_string(), |n| n.to_string_lossy().into_owned()),
        r.images,
        r.faces_per_pass,
        median("pnet"),
        median("rnet"),
        median("onet"),
        median("align"),
        median("embed"),
        median("search"),
        median("total"),
        r.load_ms,
        r.peak_rss_kb.map_or("n/a".to_string(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
        env!("CARGO_PKG_VERSION"),
    );
}

/// The board or CPU: the device-tree model on a Pi ("Raspberry Pi 4 Model B Rev 1.4"), else the
/// CPU model name, with the core count.
pub(super) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let board = std::fs::read_to_string("/proc/device-tree/model")
        .ok()
        .map(|s| s.trim_end_matches('\0').trim().to_string())
        .filter(|s| !s.is_empty());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
    let name = board
        .or(cpu)
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{name}, {cores} cores")
}

/// Peak resident memory of this process (Linux `VmHWM`), in kB.
pub(super) fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
pub(super) fn synthetic_gallery(
    pipeline: &facegate::pipeline::Pipeline,
    people: usize,
) -> Result<Gallery> {
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

//! `facegate bench IMAGE|DIR`: per-stage latency (`facegate::perf::bench`); `--compare`: the same
//! against onnxruntime (`facegate::perf::compare`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;

use facegate::perf::bench::{self, BenchOptions, Report};
use facegate::perf::compare::{self, CompareOptions};

use super::Context;

#[derive(Debug, Parser)]
pub struct BenchArgs {
    /// An image, or a folder whose images are all used (not with --compare or --video)
    #[arg(required_unless_present_any = ["compare", "video"], conflicts_with_all = ["compare", "video"])]
    input: Option<PathBuf>,
    /// Time to decision per track on a recorded clip (a frames folder or an MJPEG file),
    /// replayed as a live camera would deliver it
    #[arg(long, value_name = "SOURCE", conflicts_with = "compare")]
    video: Option<PathBuf>,
    /// --video: also estimate the times on this board (pi4) from its cost range
    #[arg(long, requires = "video")]
    board: Option<String>,
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
    /// Time the pipeline without the liveness stage (on by default, as in `run`; with
    /// --compare, on both sides)
    #[arg(long)]
    no_liveness: bool,
}

fn default_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

fn default_bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench")
}

pub fn run(ctx: &Context, args: BenchArgs) -> Result<ExitCode> {
    if let Some(video) = &args.video {
        return super::bench_video::run(
            ctx,
            video,
            args.board.as_deref(),
            args.threads,
            !args.no_liveness,
        );
    }
    if args.compare {
        let options = CompareOptions {
            data: args.data,
            bench_dir: args.bench_dir,
            python: args.python,
            one_face_frames: args.frames,
            runs: args.runs,
            gallery_people: args.gallery_size.unwrap_or(10_000),
            threads: args.threads.unwrap_or(0),
            liveness: !args.no_liveness,
        };
        let report = compare::run(ctx, &options)?;
        if ctx.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.text());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let input = args.input.context("an image or folder is needed")?;
    let options = BenchOptions {
        input: input.clone(),
        runs: args.runs,
        gallery_size: args.gallery_size.unwrap_or(1000),
        threads: args.threads,
        liveness: !args.no_liveness,
    };
    let report = bench::run(ctx, &options)?;
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "facegate bench: {} image(s) × {} runs, {} face(s) per pass, embedder {}, search over {} people × 5 templates",
            report.images, report.runs, report.faces_per_pass, report.embedder, report.gallery_people
        );
        println!("model load + optimise: {:.1} ms", report.load_ms);
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

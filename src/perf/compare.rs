//! The comparison behind `facegate bench --compare`: facegate against a Python + onnxruntime implementation of the same
//! pipeline (`bench/ort_pipeline.py`), on the same 640×480 frames and ONNX files, interleaved
//! frame by frame so that machine load hits both sides alike; one thread, then all cores.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use image::RgbImage;
use serde::Serialize;
use serde_json::Value;

use crate::gallery::Gallery;
use crate::media::image_io::load_rgb;
use crate::vision::detect::Detection;
use crate::vision::embed::cosine;
use crate::vision::pipeline::{Pipeline, StageTimes};

use super::{machine, peak_rss_kb, synthetic_gallery};
use crate::setup::Setup;

/// Camera-like frame size both sides run on.
const FRAME: (u32, u32) = (640, 480);
const STAGES: [&str; 9] = [
    "decode", "pnet", "rnet", "onet", "align", "liveness", "embed", "search", "total",
];

/// What `--compare` needs beyond the plain bench's options.
pub struct CompareOptions {
    pub data: PathBuf,
    pub bench_dir: PathBuf,
    pub python: String,
    pub one_face_frames: usize,
    pub runs: usize,
    pub gallery_people: usize,
    pub threads: usize,
    /// Time the liveness stage on both sides when the config enables it (as `run` does).
    pub liveness: bool,
}

/// A prepared frame and the group it reports under.
struct Frame {
    path: PathBuf,
    group: &'static str,
}

/// Per group, per stage, per side: one sample (ms) per frame per run.
#[derive(Default)]
struct Samples {
    rows: std::collections::BTreeMap<(usize, usize, usize), Vec<f64>>,
    infer: std::collections::BTreeMap<(usize, usize), Vec<f64>>,
}

/// The stages that are mostly a network run (the Python side times `run()` inside them).
const INFERENCE: [&str; 5] = ["pnet", "rnet", "onet", "liveness", "embed"];
const GROUPS: [&str; 2] = ["one face", "several faces"];

impl Samples {
    fn push(&mut self, group: usize, stage: usize, side: usize, ms: f64) {
        self.rows.entry((group, stage, side)).or_default().push(ms);
    }
    fn median(&self, group: usize, stage: usize, side: usize) -> Option<f64> {
        self.rows.get(&(group, stage, side)).map(|v| median(v))
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[derive(Serialize)]
struct StageRow {
    group: &'static str,
    stage: &'static str,
    facegate_ms: f64,
    onnxruntime_ms: f64,
    ratio: f64,
    /// Time inside `InferenceSession.run` alone (the rest is Python/numpy/Pillow glue).
    onnxruntime_infer_ms: Option<f64>,
}

#[derive(Serialize)]
struct Phase {
    facegate_threads: usize,
    onnxruntime_threads: String,
    onnxruntime_load_ms: f64,
    onnxruntime_peak_rss_kb: u64,
    stages: Vec<StageRow>,
}

#[derive(Serialize)]
struct Agreement {
    frames: usize,
    same_count: usize,
    faces_facegate: usize,
    faces_onnxruntime: usize,
    matched: usize,
    min_iou: f64,
    median_iou: f64,
    min_embedding_cosine: f64,
    /// Largest |facegate − onnxruntime| liveness score over the matched faces (`None` without
    /// the liveness stage); it includes the effect of the two sides' slightly different boxes.
    max_liveness_diff: Option<f64>,
    median_liveness_diff: Option<f64>,
    /// The all-cores run of facegate found exactly the same boxes as its one-thread run.
    threads_identical: bool,
}

#[derive(Serialize)]
pub struct Report {
    machine: String,
    load_average_before: String,
    load_average_after: String,
    frames_one_face: usize,
    frames_several_faces: usize,
    runs: usize,
    embedder: String,
    /// The liveness nets timed on both sides ("" without the liveness stage).
    liveness: String,
    gallery: String,
    facegate_load_ms: f64,
    facegate_pnet_plans_ms: f64,
    facegate_peak_rss_kb: u64,
    onnxruntime: String,
    agreement: Agreement,
    phases: Vec<Phase>,
}

pub fn run(setup: &Setup, args: &CompareOptions) -> Result<Report> {
    let load_before = load_average();
    let python = ensure_venv(&args.bench_dir, &args.python)?;
    let workdir = tempfile::tempdir().context("creating a folder for the frames")?;
    let frames = prepare_frames(&args.data, args.one_face_frames, workdir.path())?;

    let started = Instant::now();
    let mut pipeline = setup.pipeline_live(!args.liveness)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    pipeline.detector().prepare(FRAME.0, FRAME.1)?;
    let plans_ms = started.elapsed().as_secs_f64() * 1e3;
    let gallery = synthetic_gallery(&pipeline, args.gallery_people)?;
    let embedder = pipeline.embedder().manifest().id.clone();
    let min_face = pipeline.detector().params().min_face;
    let nets = pipeline
        .liveness()
        .map(|l| l.net_names().join(","))
        .unwrap_or_default();

    let all = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut phases = Vec::new();
    let mut versions = String::new();
    let mut single_faces: Vec<Vec<Detection>> = Vec::new();
    let mut agreement = None;
    for (fg_threads, ort_threads) in [(1usize, 1usize), (all, 0)] {
        pipeline.set_threads(fg_threads);
        let mut ort = OrtSide::start(
            &python,
            args,
            setup,
            &embedder,
            ort_threads,
            min_face,
            &nets,
        )?;
        versions = ort.versions.clone();
        let mut samples = Samples::default();
        let mut last: Vec<FrameResult> = Vec::new();
        // Run 0 warms both sides up (caches, lazily built state) and is not recorded.
        for run in 0..=args.runs {
            last.clear();
            for (i, frame) in frames.iter().enumerate() {
                let group = GROUPS.iter().position(|g| *g == frame.group).unwrap_or(0);
                let facegate_first = (run + i) % 2 == 0;
                let (mut ours, mut theirs) = (None, None);
                for side in [facegate_first, !facegate_first] {
                    if side {
                        ours = Some(run_facegate(&pipeline, &gallery, &frame.path)?);
                    } else {
                        theirs = Some(ort.frame(&frame.path)?);
                    }
                }
                let (ours, theirs) = (ours.expect("ran"), theirs.expect("ran"));
                if run > 0 {
                    for (s, ms) in ours.times.iter().enumerate() {
                        samples.push(group, s, 0, *ms);
                    }
                    for (s, stage) in STAGES.iter().enumerate() {
                        let ms = theirs["times"][stage].as_f64().unwrap_or(f64::NAN);
                        samples.push(group, s, 1, ms);
                        if INFERENCE.contains(stage) {
                            // Absent when the stage never reached the runtime on this frame.
                            let inf = theirs["infer"][stage].as_f64().unwrap_or(0.0);
                            samples.infer.entry((group, s)).or_default().push(inf);
                        }
                    }
                }
                last.push(FrameResult {
                    faces: ours.faces,
                    embeddings: ours.embeddings,
                    liveness: ours.liveness,
                    theirs,
                });
            }
        }
        let ort_load_ms = ort.load_ms;
        let peak = ort.quit()?;
        if fg_threads == 1 {
            single_faces = last.iter().map(|r| r.faces.clone()).collect();
            agreement = Some(agree(&last));
        } else if let Some(a) = agreement.as_mut() {
            a.threads_identical = last.iter().zip(&single_faces).all(|(r, s)| &r.faces == s);
        }
        let mut stages = Vec::new();
        for (g, group) in GROUPS.iter().enumerate() {
            for (s, stage) in STAGES.iter().enumerate() {
                let (Some(fg), Some(or)) = (samples.median(g, s, 0), samples.median(g, s, 1))
                else {
                    continue;
                };
                stages.push(StageRow {
                    group,
                    stage,
                    facegate_ms: fg,
                    onnxruntime_ms: or,
                    ratio: fg / or,
                    onnxruntime_infer_ms: samples.infer.get(&(g, s)).map(|v| median(v)),
                });
            }
        }
        phases.push(Phase {
            facegate_threads: fg_threads,
            onnxruntime_threads: if ort_threads == 0 {
                "default".to_string()
            } else {
                ort_threads.to_string()
            },
            onnxruntime_load_ms: ort_load_ms,
            onnxruntime_peak_rss_kb: peak,
            stages,
        });
    }

    let report = Report {
        machine: machine(),
        load_average_before: load_before,
        load_average_after: load_average(),
        frames_one_face: frames.iter().filter(|f| f.group == GROUPS[0]).count(),
        frames_several_faces: frames.iter().filter(|f| f.group == GROUPS[1]).count(),
        runs: args.runs,
        embedder,
        liveness: nets.replace(',', "+"),
        gallery: format!("{} people × 5 templates", args.gallery_people),
        facegate_load_ms: load_ms,
        facegate_pnet_plans_ms: plans_ms,
        facegate_peak_rss_kb: peak_rss_kb().unwrap_or(0),
        onnxruntime: versions,
        agreement: agreement.expect("the one-thread phase ran"),
        phases,
    };
    Ok(report)
}

/// facegate's faces, embeddings and liveness scores of one frame, and the onnxruntime side's
/// reply.
struct FrameResult {
    faces: Vec<Detection>,
    embeddings: Vec<Vec<f32>>,
    liveness: Vec<Option<f32>>,
    theirs: Value,
}

/// One frame through facegate: stage times (ms, in STAGES order), faces, embeddings and
/// liveness scores.
struct Ours {
    times: [f64; 9],
    faces: Vec<Detection>,
    embeddings: Vec<Vec<f32>>,
    liveness: Vec<Option<f32>>,
}

fn run_facegate(pipeline: &Pipeline, gallery: &Gallery, path: &Path) -> Result<Ours> {
    let started = Instant::now();
    let image = load_rgb(path)?;
    let decode = started.elapsed();
    let mut t = StageTimes::default();
    let analysis = pipeline.analyse(&image, &mut t)?;
    let search_started = Instant::now();
    for face in &analysis.faces {
        // A threshold above any cosine: the full 1:N scan, as a door does, with no early exit.
        std::hint::black_box(gallery.best_match(&face.embedding, 2.0)?);
    }
    let search = search_started.elapsed();
    let total = started.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    Ok(Ours {
        times: [
            ms(decode),
            ms(t.detect.pnet),
            ms(t.detect.rnet),
            ms(t.detect.onet),
            ms(t.align),
            ms(t.liveness),
            ms(t.embed),
            ms(search),
            ms(total),
        ],
        faces: analysis.faces.iter().map(|f| f.detection).collect(),
        liveness: analysis
            .faces
            .iter()
            .map(|f| f.liveness.map(|l| l.score))
            .collect(),
        embeddings: analysis.faces.into_iter().map(|f| f.embedding).collect(),
    })
}

/// The Python process, driven one frame at a time.
struct OrtSide {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    load_ms: f64,
    versions: String,
}

impl OrtSide {
    fn start(
        python: &Path,
        options: &CompareOptions,
        setup: &Setup,
        embedder: &str,
        threads: usize,
        min_face: f32,
        liveness: &str,
    ) -> Result<Self> {
        let script = options.bench_dir.join("ort_pipeline.py");
        let gallery_people = options.gallery_people;
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--models")
            .arg(setup.models_root())
            .args(["--embedder", embedder])
            .args(["--threads", &threads.to_string()])
            .args(["--gallery-people", &gallery_people.to_string()])
            .args(["--min-face", &min_face.to_string()])
            .args(["--liveness", liveness])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if threads == 1 {
            // numpy's BLAS (the 1:N matmul) on one thread too.
            for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
                cmd.env(var, "1");
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("python stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("python stdout")?);
        let ready = read_json(&mut stdout)?;
        if ready["ready"] != Value::Bool(true) {
            bail!("{} did not start: {ready}", script.display());
        }
        Ok(Self {
            child,
            stdin,
            stdout,
            load_ms: ready["load_ms"].as_f64().unwrap_or(f64::NAN),
            versions: format!(
                "onnxruntime {}, numpy {}",
                ready["onnxruntime"].as_str().unwrap_or("?"),
                ready["numpy"].as_str().unwrap_or("?")
            ),
        })
    }

    fn frame(&mut self, path: &Path) -> Result<Value> {
        let request = serde_json::json!({ "frame": path });
        writeln!(self.stdin, "{request}").context("writing to the onnxruntime side")?;
        self.stdin.flush()?;
        let reply = read_json(&mut self.stdout)?;
        if !reply["times"].is_object() {
            bail!("unexpected reply from the onnxruntime side: {reply}");
        }
        Ok(reply)
    }

    /// Stop the process; returns its peak RSS in kB.
    fn quit(mut self) -> Result<u64> {
        writeln!(self.stdin, "{}", serde_json::json!({ "quit": true }))?;
        self.stdin.flush()?;
        let last = read_json(&mut self.stdout)?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the onnxruntime side exited with {status}");
        }
        Ok(last["peak_rss_kb"].as_u64().unwrap_or(0))
    }
}

fn read_json(reader: &mut impl BufRead) -> Result<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("the onnxruntime side closed its output (see its error above)");
    }
    serde_json::from_str(&line).with_context(|| format!("parsing {line:?}"))
}

/// Create `bench/.venv` and install `bench/requirements.txt` into it, unless already done for
/// this exact requirements file. Returns the venv's python.
fn ensure_venv(bench_dir: &Path, base_python: &str) -> Result<PathBuf> {
    let requirements = bench_dir.join("requirements.txt");
    let req = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = bench_dir.join(".venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("facegate bench: creating {}", venv.display());
        let status = Command::new(base_python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .with_context(|| {
                format!(
                    "running {base_python} (install python3 and python3-venv, or pass --python)"
                )
            })?;
        if !status.success() {
            bail!(
                "{base_python} -m venv {} failed (on Debian: apt-get install -y python3-venv)",
                venv.display()
            );
        }
    }
    let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&req));
    let stamp = venv.join(".requirements.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!(
            "facegate bench: installing {} into {}",
            requirements.display(),
            venv.display()
        );
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&requirements)
            .status()
            .context("running pip")?;
        if !status.success() {
            bail!("pip install -r {} failed", requirements.display());
        }
        std::fs::write(&stamp, &want)?;
    }
    Ok(python)
}

/// Letterbox every source image into a black 640×480 frame (no distortion, no face cut off) and
/// save it losslessly, so both sides decode exactly the same pixels.
fn prepare_frames(data: &Path, one_face: usize, out: &Path) -> Result<Vec<Frame>> {
    let video = data.join("video/hamilton/frames");
    let crowd = data.join("hard/many_faces");
    let list = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {} (pass --data DIR)", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
            .collect();
        v.sort();
        Ok(v)
    };
    let video_frames = list(&video)?;
    let crowd_frames = list(&crowd)?;
    if video_frames.is_empty() || crowd_frames.is_empty() {
        bail!("no frames in {} or {}", video.display(), crowd.display());
    }
    // Evenly spread over the clip: the person walks towards the camera.
    let n = one_face.clamp(1, video_frames.len());
    let step = video_frames.len() / n;
    let picked = (0..n).map(|i| (&video_frames[i * step], GROUPS[0]));
    let several = if one_face == 1 { 1 } else { crowd_frames.len() };
    let mut frames = Vec::new();
    for (i, (src, group)) in picked
        .chain(crowd_frames.iter().take(several).map(|p| (p, GROUPS[1])))
        .enumerate()
    {
        let framed = letterbox(&load_rgb(src)?);
        let path = out.join(format!("{i:03}.png"));
        framed
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        frames.push(Frame { path, group });
    }
    Ok(frames)
}

fn letterbox(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let s = (FRAME.0 as f64 / w as f64).min(FRAME.1 as f64 / h as f64);
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).clamp(1, FRAME.0),
        ((h as f64 * s).round() as u32).clamp(1, FRAME.1),
    );
    let scaled = if (nw, nh) == (w, h) {
        image.clone()
    } else {
        image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle)
    };
    let mut frame = RgbImage::new(FRAME.0, FRAME.1);
    image::imageops::replace(
        &mut frame,
        &scaled,
        ((FRAME.0 - nw) / 2) as i64,
        ((FRAME.1 - nh) / 2) as i64,
    );
    frame
}

/// Do both sides find the same faces? Greedy best-IoU matching per frame.
fn agree(last: &[FrameResult]) -> Agreement {
    let mut a = Agreement {
        frames: last.len(),
        same_count: 0,
        faces_facegate: 0,
        faces_onnxruntime: 0,
        matched: 0,
        min_iou: f64::NAN,
        median_iou: f64::NAN,
        min_embedding_cosine: f64::NAN,
        max_liveness_diff: None,
        median_liveness_diff: None,
        threads_identical: true,
    };
    let mut ious = Vec::new();
    let mut cosines = Vec::new();
    let mut live_diffs = Vec::new();
    for r in last {
        let empty = Vec::new();
        let faces = r.theirs["faces"].as_array().unwrap_or(&empty);
        let boxes: Vec<([f32; 4], Vec<f32>, Option<f64>)> = faces
            .iter()
            .filter_map(|f| {
                let b: Vec<f32> = serde_json::from_value(f["box"].clone()).ok()?;
                let e: Vec<f32> = serde_json::from_value(f["embedding"].clone()).ok()?;
                Some(([b[0], b[1], b[2], b[3]], e, f["liveness"].as_f64()))
            })
            .collect();
        a.faces_facegate += r.faces.len();
        a.faces_onnxruntime += boxes.len();
        a.same_count += usize::from(r.faces.len() == boxes.len());
        let mut used = vec![false; boxes.len()];
        for ((d, e), live) in r.faces.iter().zip(&r.embeddings).zip(&r.liveness) {
            let best = boxes
                .iter()
                .enumerate()
                .filter(|(j, _)| !used[*j])
                .map(|(j, (b, _, _))| (j, iou(&d.bbox, b)))
                .max_by(|x, y| x.1.total_cmp(&y.1));
            if let Some((j, v)) = best.filter(|(_, v)| *v >= 0.5) {
                used[j] = true;
                a.matched += 1;
                ious.push(v);
                cosines.push(f64::from(cosine(e, &boxes[j].1)));
                if let (Some(ours), Some(theirs)) = (live, boxes[j].2) {
                    live_diffs.push((f64::from(*ours) - theirs).abs());
                }
            }
        }
    }
    if !ious.is_empty() {
        a.min_iou = ious.iter().copied().fold(f64::INFINITY, f64::min);
        a.median_iou = median(&ious);
        a.min_embedding_cosine = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    }
    if !live_diffs.is_empty() {
        a.max_liveness_diff = Some(live_diffs.iter().copied().fold(0.0, f64::max));
        a.median_liveness_diff = Some(median(&live_diffs));
    }
    a
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = f64::from(iw * ih);
    let area = |r: &[f32; 4]| f64::from((r[2] - r[0]) * (r[3] - r[1]));
    inter / (area(a) + area(b) - inter)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_string())
}

impl Report {
    /// The report as a person reads it: a summary, then one Markdown table per phase.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let r = self;
        let mut out = String::new();
        writeln!(
        out,
        "facegate bench --compare: {} one-face + {} several-face 640×480 frames, {} interleaved runs, embedder {}, 1:N over {}",
        r.frames_one_face, r.frames_several_faces, r.runs, r.embedder, r.gallery
    )
        .expect("writing to a String");
        writeln!(out, "machine: {}", r.machine).expect("writing to a String");
        writeln!(
            out,
            "load average: {} before, {} after; reference: {}",
            r.load_average_before, r.load_average_after, r.onnxruntime
        )
        .expect("writing to a String");
        let a = &r.agreement;
        writeln!(
        out,
        "same faces: {}/{} frames with the same count ({} facegate, {} onnxruntime faces, {} matched at IoU ≥ 0.5); IoU min {:.3}, median {:.3}; embedding cosine min {:.4}; all-cores facegate = one-thread facegate: {}",
        a.same_count,
        a.frames,
        a.faces_facegate,
        a.faces_onnxruntime,
        a.matched,
        a.min_iou,
        a.median_iou,
        a.min_embedding_cosine,
        if a.threads_identical { "yes" } else { "NO" }
    )
        .expect("writing to a String");
        match (a.max_liveness_diff, a.median_liveness_diff) {
            (Some(max), Some(med)) => writeln!(
                out,
                "liveness ({}): |facegate − onnxruntime| score on the matched faces: median {med:.2e}, max {max:.2e} (boxes differ slightly between the sides)",
                r.liveness
            ),
            _ if r.liveness.is_empty() => writeln!(out, "liveness: not timed (off in the config or --no-liveness)"),
            _ => writeln!(out, "liveness ({}): no matched face with a score on both sides", r.liveness),
        }
        .expect("writing to a String");
        writeln!(
        out,
        "model load: facegate {:.0} ms (+ {:.0} ms for the P-Net plans of 640×480), onnxruntime {}",
        r.facegate_load_ms,
        r.facegate_pnet_plans_ms,
        r.phases
            .iter()
            .map(|p| format!(
                "{:.0} ms ({} threads)",
                p.onnxruntime_load_ms, p.onnxruntime_threads
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
        .expect("writing to a String");
        writeln!(
            out,
            "peak RSS: facegate {:.0} MB (whole run), onnxruntime {}",
            r.facegate_peak_rss_kb as f64 / 1024.0,
            r.phases
                .iter()
                .map(|p| format!(
                    "{:.0} MB ({} threads)",
                    p.onnxruntime_peak_rss_kb as f64 / 1024.0,
                    p.onnxruntime_threads
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .expect("writing to a String");
        for p in &r.phases {
            out.push('\n');
            writeln!(
                out,
                "facegate {} thread(s) vs onnxruntime {} thread(s): median ms per frame",
                p.facegate_threads, p.onnxruntime_threads
            )
            .expect("writing to a String");
            writeln!(
                out,
                "| {:<13} | {:<8} | {:>9} | {:>11} | {:>5} | {:>16} |",
                "frames", "stage", "facegate", "onnxruntime", "ratio", "ort inside run()"
            )
            .expect("writing to a String");
            writeln!(
                out,
                "|{:-<15}|{:-<10}|{:->11}|{:->13}|{:->7}|{:->18}|",
                "", "", ":", ":", ":", ":"
            )
            .expect("writing to a String");
            for s in &p.stages {
                writeln!(
                    out,
                    "| {:<13} | {:<8} | {:>9.2} | {:>11.2} | {:>5.2} | {:>16} |",
                    s.group,
                    s.stage,
                    s.facegate_ms,
                    s.onnxruntime_ms,
                    s.ratio,
                    s.onnxruntime_infer_ms
                        .map_or(String::new(), |v| format!("{v:.2}"))
                )
                .expect("writing to a String");
            }
        }
        out
    }
}

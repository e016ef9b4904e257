//! Time to decision on a recorded clip, as a live camera would see it.
//!
//! A camera does not wait for the terminal: while one frame is analysed the next ones arrive,
//! and the terminal picks up the freshest when it is done (older ones are dropped). The replay
//! keeps a clock in the clip's own time: analysing a frame advances it by what the analysis cost
//! (measured, times `cost_factor` to estimate a slower board), and the next frame analysed is
//! the last one taken by then. So a decision's time is when it would have been made on a
//! device of that speed, and the replay itself runs as fast as the machine can.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hw::camera::{FrameSource, SourceError};
use crate::media::frame::Frame;
use crate::terminal::decide::Outcome;
use crate::terminal::{Terminal, TerminalError};
use crate::vision::pipeline::StageTimes;
use crate::vision::tracking::FaceTracker;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
}

/// How much slower than this machine a board is, as a range (per-stage figures are not known
/// better than that without a board).
#[derive(Debug, Clone, Serialize)]
pub struct BoardProfile {
    pub name: &'static str,
    /// Cost multipliers, optimistic and pessimistic.
    pub factors: [f64; 2],
    /// Where the factors come from.
    pub basis: &'static str,
}

/// The boards `--board` knows.
pub fn board_profile(name: &str) -> Option<BoardProfile> {
    match name {
        // MobileFaceNet: 234 MMAC in 12.8 ms on one x86 core here = 18.3 GMAC/s effective.
        // A Cortex-A72 core at 1.5 GHz: 5 GMAC/s (ncnn's published Pi 4 numbers) to 2.6 GMAC/s
        // (the same 22 % of peak tract reaches on x86); see docs/performance.md.
        "pi4" => Some(BoardProfile {
            name: "pi4",
            factors: [18.3 / 5.0, 18.3 / 2.6],
            basis: "estimate: MAC throughput of one Cortex-A72 core (2.6-5 GMAC/s) against \
                    tract's 18.3 GMAC/s on one x86 core here; no board measured",
        }),
        _ => None,
    }
}

/// One decided track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackTiming {
    pub track: u64,
    pub outcome: &'static str,
    pub name: Option<String>,
    /// Clip time of the first analysed frame the track was seen in.
    pub first_frame_s: f64,
    /// Clip time of the frame the decision was made on.
    pub decision_frame_s: f64,
    /// Clip time the decision would have been made at (that frame's analysis done).
    pub decided_at_s: f64,
    /// `decided_at_s - first_frame_s`.
    pub time_to_decision_s: f64,
    /// Frames analysed from the track's first frame to its decision, both included.
    pub frames_analysed: usize,
}

/// Milliseconds per analysed frame, per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageMs {
    pub pnet: f64,
    pub rnet: f64,
    pub onet: f64,
    pub align: f64,
    pub liveness: f64,
    pub embed: f64,
    /// Everything else of the analysis: match, decide, quality figures.
    pub other: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub cost_factor: f64,
    pub frames: u64,
    pub frames_analysed: u64,
    /// Analysed frames searched only around the faces of the frame before.
    pub frames_tracked: u64,
    /// Clip seconds from the first to the last frame.
    pub clip_s: f64,
    /// Frames analysed per second of clip time (what the device keeps up with).
    pub analysed_per_s: f64,
    /// Measured on this machine (before `cost_factor`), on the cost clock.
    pub stage_ms: StageMs,
    pub tracks: Vec<TrackTiming>,
}

/// On-CPU time of the calling thread so far (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Replay `source` through `terminal`'s analysis and decider (its outputs are not driven), each
/// analysis costing `cost_factor` times what it took here. With `cpu_clock`, a frame's cost is
/// the CPU time the analysing thread spent on it rather than the wall time: on a machine
/// shared with other work the wall time counts the waits for a core too. (Only meaningful when
/// the analysis runs on this one thread, `detector.threads = 1`.)
pub fn replay(
    terminal: &mut Terminal,
    source: &mut dyn FrameSource,
    cost_factor: f64,
    cpu_clock: bool,
) -> Result<ReplayReport, ReplayError> {
    let mut tracker = FaceTracker::default();
    let mut times = StageTimes::default();
    let (mut cur, mut next) = (Frame::empty(), Frame::empty());
    let mut frames = 0u64;
    if !source.read_into(&mut cur)? {
        return Ok(empty_report(cost_factor));
    }
    frames += 1;
    let first_ts = cur.timestamp;
    let mut last_ts = cur.timestamp;
    let mut clock = cur.timestamp;
    let mut analysed_at: Vec<Duration> = Vec::new();
    let mut cost_sum = Duration::ZERO;
    let mut tracks = Vec::new();
    let mut have_next = false;
    let mut stage = StageTotals::default();
    loop {
        let started = Instant::now();
        let cpu_started = thread_cpu().filter(|_| cpu_clock);
        let before = times;
        let mut seen = Vec::new();
        let faces = terminal.observe(&cur, &mut tracker, &mut times, &mut seen, false)?;
        let step = terminal.decide(cur.timestamp, &faces);
        let wall = started.elapsed();
        let cost = match (cpu_started, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        // Stage times are wall times: scale this frame's to its cost.
        let k = cost.as_secs_f64() / wall.as_secs_f64().max(1e-9);
        let scaled = |now: Duration, then: Duration| (now - then).mul_f64(k);
        stage.pnet += scaled(times.detect.pnet, before.detect.pnet);
        stage.rnet += scaled(times.detect.rnet, before.detect.rnet);
        stage.onet += scaled(times.detect.onet, before.detect.onet);
        stage.align += scaled(times.align, before.align);
        stage.liveness += scaled(times.liveness, before.liveness);
        stage.embed += scaled(times.embed, before.embed);
        cost_sum += cost;
        analysed_at.push(cur.timestamp);
        clock = clock.max(cur.timestamp) + cost.mul_f64(cost_factor);
        for d in &step.decisions {
            let first = d.at.saturating_sub(d.track_age);
            let (outcome, name) = match &d.outcome {
                Outcome::Accepted { name, .. } => ("accepted", Some(name.clone())),
                Outcome::Unknown => ("unknown", None),
                Outcome::Spoof => ("spoof", None),
            };
            tracks.push(TrackTiming {
                track: d.track,
                outcome,
                name,
                first_frame_s: first.as_secs_f64(),
                decision_frame_s: d.at.as_secs_f64(),
                decided_at_s: clock.as_secs_f64(),
                time_to_decision_s: (clock - first).as_secs_f64(),
                frames_analysed: analysed_at
                    .iter()
                    .filter(|&&t| t >= first && t <= d.at)
                    .count(),
            });
        }
        // The freshest frame taken by `clock`; if none is, wait for the next one.
        if !have_next {
            if !source.read_into(&mut next)? {
                break;
            }
            frames += 1;
        }
        have_next = false;
        std::mem::swap(&mut cur, &mut next);
        last_ts = cur.timestamp;
        loop {
            if !source.read_into(&mut next)? {
                break;
            }
            frames += 1;
            last_ts = next.timestamp;
            if next.timestamp > clock {
                have_next = true;
                break;
            }
            std::mem::swap(&mut cur, &mut next);
        }
    }
    let n = analysed_at.len().max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
    let staged = stage.pnet + stage.rnet + stage.onet + stage.align + stage.liveness + stage.embed;
    let clip_s = (last_ts - first_ts).as_secs_f64();
    Ok(ReplayReport {
        cost_factor,
        frames,
        frames_analysed: analysed_at.len() as u64,
        frames_tracked: tracker.tracked_frames,
        clip_s,
        analysed_per_s: analysed_at.len() as f64 / clip_s.max(1e-9),
        stage_ms: StageMs {
            pnet: ms(stage.pnet),
            rnet: ms(stage.rnet),
            onet: ms(stage.onet),
            align: ms(stage.align),
            liveness: ms(stage.liveness),
            embed: ms(stage.embed),
            other: ms(cost_sum.saturating_sub(staged)),
            total: ms(cost_sum),
        },
        tracks,
    })
}

#[derive(Default)]
struct StageTotals {
    pnet: Duration,
    rnet: Duration,
    onet: Duration,
    align: Duration,
    liveness: Duration,
    embed: Duration,
}

fn empty_report(cost_factor: f64) -> ReplayReport {
    ReplayReport {
        cost_factor,
        frames: 0,
        frames_analysed: 0,
        frames_tracked: 0,
        clip_s: 0.0,
        analysed_per_s: 0.0,
        stage_ms: StageMs::default(),
        tracks: Vec::new(),
    }
}

/// How many frames of a sequence the detector found the annotated face in.
#[derive(Debug, Clone, Serialize)]
pub struct Recall {
    pub frames: usize,
    /// Frames with a detection overlapping the annotated box by at least the asked IoU.
    pub found: usize,
    /// Detections that overlap no annotated box.
    pub extra: usize,
    /// Frames searched only around the faces of the frame before.
    pub tracked_frames: u64,
    pub detect_ms: f64,
}

impl Recall {
    pub fn rate(&self) -> f64 {
        self.found as f64 / self.frames.max(1) as f64
    }
}

/// Detector recall along `frames` (boxes `[x1, y1, x2, y2]` in `truth`, one per frame): every
/// frame searched whole (`tracked` false), or as the terminal does it, around the last faces
/// with a whole-frame search every few frames.
pub fn sequence_recall(
    pipeline: &crate::vision::pipeline::Pipeline,
    frames: &[std::path::PathBuf],
    truth: &[[f32; 4]],
    tracked: bool,
    min_iou: f32,
) -> Result<Recall, crate::vision::pipeline::PipelineError> {
    let mut tracker = FaceTracker::default();
    let mut times = StageTimes::default();
    let (mut found, mut extra) = (0, 0);
    for (path, gt) in frames.iter().zip(truth) {
        let image = crate::media::image_io::load_rgb(path)?;
        let faces = if tracked {
            tracker.detect(pipeline, &image, &mut times)?.0
        } else {
            pipeline.detect(&image, &mut times)?.0
        };
        let hit = |d: &crate::vision::detect::Detection| {
            crate::terminal::decide::iou(&d.bbox, gt) >= min_iou
        };
        if faces.iter().any(hit) {
            found += 1;
        }
        extra += faces.iter().filter(|d| !hit(d)).count();
    }
    let t = times.detect;
    Ok(Recall {
        frames: frames.len().min(truth.len()),
        found,
        extra,
        tracked_frames: tracker.tracked_frames,
        detect_ms: (t.pnet + t.rnet + t.onet).as_secs_f64() * 1e3,
    })
}

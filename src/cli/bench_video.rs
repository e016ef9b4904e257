//! `facegate bench --video SOURCE [--board NAME]`: time to decision per track on a recorded
//! clip (logic in `facegate::perf::video`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};

use facegate::gallery::live::LiveGallery;
use facegate::hw::indicator::LogIndicator;
use facegate::perf::video::{board_profile, replay, ReplayReport};
use facegate::terminal::decide::{Decider, LivenessRule};
use facegate::terminal::{devices, Terminal};

use super::Context;

pub fn run(
    ctx: &Context,
    video: &Path,
    board: Option<&str>,
    threads: Option<usize>,
    liveness: bool,
) -> Result<ExitCode> {
    let profile = match board {
        Some(name) => match board_profile(name) {
            Some(p) => Some(p),
            None => bail!("--board {name}: unknown board (known: pi4)"),
        },
        None => None,
    };
    // As `run` does it: the liveness stage when the config enables it.
    let mut pipeline = ctx.pipeline_live(!liveness)?;
    if let Some(t) = threads {
        pipeline.set_threads(t);
    }
    // The door's rule, as `run` applies it to the gallery.
    let door = ctx.door_rule()?;
    let gallery = LiveGallery::new(ctx.load_gallery(&pipeline.gallery_id()?)?);
    let mut camera = ctx.config.camera.clone();
    camera.source = video.display().to_string();
    camera.realtime = false;
    let (mut open, _) = devices::opener(&camera)?;
    let (w, h) = {
        // Build the P-Net plans of this frame size first: a camera does that at start.
        let mut source = open()?;
        let mut frame = facegate::media::frame::Frame::empty();
        source.read_into(&mut frame)?;
        frame.image.dimensions()
    };
    pipeline.detector().prepare(w, h)?;
    let mut factors = vec![1.0];
    if let Some(p) = &profile {
        factors.extend(p.factors);
    }
    // One thread: cost a frame by its CPU time, so other work on the machine does not count.
    let cpu_clock = pipeline.detector().threads() == 1;
    let mut reports = Vec::new();
    for factor in factors {
        let mut terminal = Terminal {
            pipeline: &pipeline,
            gallery: &gallery,
            door: door.clone(),
            decider: Decider::new(ctx.config.decide.clone())
                .with_liveness(pipeline.liveness().map(|l| LivenessRule::of(l.params()))),
            indicator: Box::new(LogIndicator::default()),
            display: None,
            events: None,
            snapshots: None,
            every_nth: 1,
            hold: Duration::ZERO,
        };
        let mut source = open()?;
        reports.push(replay(&mut terminal, source.as_mut(), factor, cpu_clock)?);
    }
    if ctx.json {
        let out = serde_json::json!({
            "video": video,
            "threads": pipeline.detector().threads(),
            "cost_clock": if cpu_clock { "thread cpu" } else { "wall" },
            "tracking": pipeline.detector().params().tracking,
            "board": profile,
            "replays": reports,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "facegate bench --video {}: {} thread(s), cost clock {}, tracking {}",
        video.display(),
        pipeline.detector().threads(),
        if cpu_clock { "thread cpu" } else { "wall" },
        if pipeline.detector().params().tracking.enabled {
            "on"
        } else {
            "off"
        }
    );
    for r in &reports {
        print_report(r, profile.as_ref().map(|p| p.name));
    }
    if let Some(p) = &profile {
        println!("board factors: {}", p.basis);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &ReplayReport, board: Option<&str>) {
    let label = if r.cost_factor == 1.0 {
        "this machine".to_string()
    } else {
        format!(
            "{} estimate (cost x{:.2})",
            board.unwrap_or("board"),
            r.cost_factor
        )
    };
    let s = &r.stage_ms;
    println!(
        "\n{label}: {} of {} frames analysed ({} around tracked faces), {:.1} analysed/s over {:.1} s",
        r.frames_analysed, r.frames, r.frames_tracked, r.analysed_per_s, r.clip_s
    );
    println!(
        "  ms per analysed frame here: pnet {:.1} rnet {:.1} onet {:.1} align {:.1} liveness {:.1} embed {:.1} other {:.1} total {:.1}",
        s.pnet, s.rnet, s.onet, s.align, s.liveness, s.embed, s.other, s.total
    );
    println!(
        "  {:>5} {:<9} {:<22} {:>8} {:>9} {:>8} {:>7}",
        "track", "outcome", "name", "first_s", "decided_s", "ttd_s", "frames"
    );
    for t in &r.tracks {
        println!(
            "  {:>5} {:<9} {:<22} {:>8.3} {:>9.3} {:>8.3} {:>7}",
            t.track,
            t.outcome,
            t.name.as_deref().unwrap_or("-"),
            t.first_frame_s,
            t.decided_at_s,
            t.time_to_decision_s,
            t.frames_analysed
        );
    }
}

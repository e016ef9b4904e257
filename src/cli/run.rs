//! `facegate run`: the terminal. Frames in (folder, MJPEG on stdin or a file, V4L2 camera),
//! decisions out (LEDs / relay, display, decision log, one line per decision on stdout).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Parser;
use serde_json::json;

use facegate::config::StationMode;
use facegate::gallery::live::LiveGallery;
use facegate::gallery::operating_point::Rule;
use facegate::hw::camera::Resilient;
use facegate::service::feed::Feed;
use facegate::service::frames::FrameFeed;
use facegate::service::verify::{FrameSupply, LoginStation};
use facegate::service::{ops, server};
use facegate::terminal::decide::{Decider, Decision, LivenessRule, Outcome};
use facegate::terminal::devices;
use facegate::terminal::events::{Event, EventLog};
use facegate::terminal::snapshots::Snapshots;
use facegate::terminal::{AnalysedFrame, Observer, SharedLog, Terminal};

use super::Context;

#[derive(Debug, Parser)]
pub struct RunArgs {
    /// Frames from: a folder of images, `stdin` (an MJPEG stream, e.g. `rpicam-vid --codec
    /// mjpeg -o -`), `exec:COMMAND` (a camera program writing MJPEG to its output, restarted
    /// when it stops), an MJPEG file, or a V4L2 device /dev/videoN [default: [camera] source]
    #[arg(long)]
    source: Option<String>,
    /// Folders: replay in real time at this rate (as fast as possible when unset, stamped at
    /// [camera] fps); cameras: the frame rate to ask for
    #[arg(long)]
    fps: Option<f32>,
    /// Stop after reading this many frames
    #[arg(long)]
    max_frames: Option<u64>,
    /// Draw the display into PNG files in DIR, one per screen change (headless runs)
    #[arg(long, value_name = "DIR")]
    display_png: Option<PathBuf>,
    /// Analyse only every n-th frame [default: [camera] every_nth]
    #[arg(long, value_name = "N")]
    every: Option<u32>,
    /// Decision log file [default: [log] path]
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Keep a JPEG of the frame of every unknown or spoof decision in DIR [default: [log] snapshot_dir]
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
}

/// Prints one line per decision, publishes it to API subscribers, pings the systemd watchdog.
struct CliObserver {
    json: bool,
    watchdog: Option<Duration>,
    last_ping: Instant,
    feed: Arc<Feed>,
    /// Face login listens to the door's frames here.
    frames: Arc<FrameFeed>,
}

impl Observer for CliObserver {
    fn decision(&mut self, d: &Decision, event: &Event, latency: Duration) {
        self.feed
            .publish(serde_json::to_value(event).unwrap_or_default());
        if self.json {
            println!(
                "{}",
                json!({
                    "time": super::log::rfc3339(event.unix_ms),
                    "unix_ms": event.unix_ms,
                    "frame_s": d.at.as_secs_f64(),
                    "track": d.track,
                    "outcome": event.outcome,
                    "person_id": event.person_id,
                    "name": event.name,
                    "similarity": d.similarity,
                    "frames_used": d.frames_used,
                    "track_age_s": d.track_age.as_secs_f64(),
                    "latency_ms": latency.as_secs_f64() * 1000.0,
                    "fused_similarity": d.fused_similarity,
                    "liveness": d.liveness,
                })
            );
        } else {
            let who = match &d.outcome {
                Outcome::Accepted { person_id, name } => format!("ACCEPT {name} (id {person_id})"),
                Outcome::Unknown => "UNKNOWN".to_string(),
                Outcome::Spoof => "SPOOF".to_string(),
            };
            let mut live = d
                .liveness
                .map_or(String::new(), |l| format!(" liveness {l:.3}"));
            if let Some(f) = d.fused_similarity {
                live = format!(" fused {f:.3}{live}");
            }
            println!(
                "{} {who} track {} similarity {:.3}{live} frames {} at {:.2}s (track age {:.2}s, latency {:.0} ms)",
                super::log::rfc3339(event.unix_ms),
                d.track,
                d.similarity,
                d.frames_used,
                d.at.as_secs_f64(),
                d.track_age.as_secs_f64(),
                latency.as_secs_f64() * 1000.0
            );
        }
    }

    fn camera(&mut self, lost: bool, message: &str) {
        eprintln!("facegate: {message}");
        let status = if lost { "camera lost" } else { "running" };
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(status)]);
    }

    fn analysed(&mut self, frame: &AnalysedFrame) {
        if self.frames.wanted() {
            self.frames.publish(frame.clone());
        }
    }

    fn wants_every_face(&self) -> bool {
        self.frames.wanted()
    }

    fn heartbeat(&mut self) {
        if let Some(every) = self.watchdog {
            if self.last_ping.elapsed() >= every {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                self.last_ping = Instant::now();
            }
        }
    }
}

/// Start the local API; without its socket folder (not started by systemd) the terminal runs
/// without it, and the gallery stays leased so direct changes are still refused.
fn serve_api(
    ctx: &Context,
    pipeline: &Arc<facegate::vision::pipeline::Pipeline>,
    live: &Arc<LiveGallery>,
    feed: &Arc<Feed>,
    door: &Rule,
    login: Arc<LoginStation>,
) -> Result<Option<server::Server>> {
    let state = server::State {
        live: live.clone(),
        store: ctx.store(),
        pipeline: pipeline.clone(),
        door: door.clone(),
        feed: feed.clone(),
        login,
        info: server::Info {
            embedder: ctx.variants()?.0.id.clone(),
            models: ctx.model_files()?,
            mode: ctx.config.login.mode.as_str(),
        },
        started: Instant::now(),
    };
    match server::start(&ctx.config.service, Arc::new(state)) {
        Ok(s) => {
            eprintln!("facegate: API on {}", s.path().display());
            Ok(Some(s))
        }
        Err(e @ server::ServerError::NoFolder(_)) => {
            eprintln!("facegate: warning: {e}; running without the local API");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(ctx: &Context, args: RunArgs) -> Result<ExitCode> {
    let mut camera = ctx.config.camera.clone();
    if let Some(s) = args.source {
        camera.source = s;
    }
    if let Some(fps) = args.fps {
        camera.fps = fps;
        camera.realtime = true;
    }
    let every_nth = args.every.unwrap_or(camera.every_nth).max(1);
    let mut log_params = ctx.config.log.clone();
    if let Some(f) = args.log_file {
        log_params.path = f;
    }
    if let Some(d) = args.snapshot_dir {
        log_params.snapshot_dir = Some(d);
    }
    let outputs = &ctx.config.outputs;

    let pipeline = Arc::new(ctx.pipeline_live(false)?);
    // The door threshold is derived for the gallery's size, again after every change.
    let door = ctx.door_rule()?;
    // The service owns the gallery while it runs: direct writers are refused, naming it.
    let socket = &ctx.config.service.socket;
    let _lease = ctx.store().lease(&format!("socket={}", socket.display()))?;
    let gallery = ctx.load_gallery(&pipeline.gallery_id()?)?;
    if gallery.is_empty() {
        eprintln!(
            "facegate: warning: no one is enrolled in {}: nobody will be accepted",
            ctx.config.gallery.display()
        );
    }
    let mode = ctx.config.login.mode;
    let (mut open, is_device) = devices::opener(&camera)?;
    // A login station opens the camera per request: a missing one is that request's error.
    if !is_device && mode != StationMode::Login {
        // A missing folder or file is a mistake to report now, not a camera to wait for.
        open().map_err(anyhow::Error::from)?;
    }
    let mut source = Resilient::new(open, camera.backoff());
    let display = devices::display(&ctx.config.outputs, args.display_png.as_deref())?;
    let key = facegate::keys::KeyFile::new(ctx.config.key_file())
        .load_or_create()
        .with_context(|| "the decision log is chained with the key file's key")?
        .0;
    let events: SharedLog = Arc::new(std::sync::Mutex::new(
        EventLog::open(&log_params, &key)
            .with_context(|| format!("opening the decision log {}", log_params.path.display()))?,
    ));
    let people = gallery.len();
    let operating_point = door.at(gallery.template_count());
    let live = Arc::new(LiveGallery::new(gallery));
    let feed = Arc::new(Feed::default());
    let frames = Arc::new(FrameFeed::default());
    let supply = match mode {
        StationMode::Login => FrameSupply::Camera(camera.clone()),
        StationMode::Door | StationMode::Both => FrameSupply::Shared(frames.clone()),
    };
    let embedder = ctx.variants()?.0.id.clone();
    let station = LoginStation::new(
        ctx.config.login.clone(),
        &embedder,
        supply,
        Some(events.clone()),
    );
    let _server = serve_api(ctx, &pipeline, &live, &feed, &door, Arc::new(station))?;
    let mut terminal = Terminal {
        pipeline: &pipeline,
        gallery: &live,
        door,
        decider: Decider::new(ctx.config.decide.clone())
            .with_liveness(pipeline.liveness().map(|l| LivenessRule::of(l.params()))),
        indicator: devices::indicator(&ctx.config.outputs)?,
        display,
        events: Some(events),
        snapshots: log_params
            .snapshot_dir
            .as_deref()
            .map(|d| Snapshots::open(d, log_params.snapshot_keep))
            .transpose()?,
        every_nth,
        hold: Duration::from_secs_f32(outputs.result_hold_s.max(0.0)),
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping kills at once (a stuck camera must not trap the user).
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut usec = 0;
    let watchdog =
        sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    log::info!(
        "running: {people} people enrolled, {}, every {every_nth} frame(s)",
        ops::describe_operating_point(&serde_json::to_value(&operating_point)?)
    );
    let mut observer = CliObserver {
        json: ctx.json,
        watchdog,
        last_ping: Instant::now(),
        feed,
        frames,
    };
    if mode == StationMode::Login {
        eprintln!("facegate: login station: the camera opens only for a login request");
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            observer.heartbeat();
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = terminal.run(&mut source, &stop, args.max_frames, &mut observer)?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);

    let secs = report.wall.as_secs_f64().max(1e-9);
    let mean_latency = if report.latencies.is_empty() {
        0.0
    } else {
        report
            .latencies
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / report.latencies.len() as f64
    };
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / report.frames_analysed.max(1) as f64;
    let t = &report.times;
    log::info!(
        "per analysed frame: P-Net {:.1} ms, R-Net {:.1} ms, O-Net {:.1} ms, align {:.1} ms, embed {:.1} ms",
        per(t.detect.pnet),
        per(t.detect.rnet),
        per(t.detect.onet),
        per(t.align),
        per(t.embed)
    );
    eprintln!(
        "facegate: {} frames read, {} analysed ({} around tracked faces) in {:.1} s ({:.1} read/s, {:.1} analysed/s, {:.0} ms per analysed frame); {} unreadable; camera lost {} time(s); {} decision(s), mean latency {:.0} ms{}",
        report.frames_read,
        report.frames_analysed,
        report.frames_tracked,
        secs,
        report.frames_read as f64 / secs,
        report.frames_analysed as f64 / secs,
        report.analyse.as_secs_f64() * 1000.0 / report.frames_analysed.max(1) as f64,
        report.frames_skipped,
        report.camera_lost,
        report.decisions.len(),
        mean_latency * 1000.0,
        if stop.load(std::sync::atomic::Ordering::Relaxed) { "; stopped by signal" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

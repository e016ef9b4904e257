//! `facegate run`: the terminal. Frames in (folder, MJPEG on stdin or a file, V4L2 camera),
//! decisions out (LEDs / relay, display, decision log, one line per decision on stdout).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde_json::json;

use facegate::config::IndicatorKind;
use facegate::hw::camera::{
    CameraParams, DirSource, FrameSource, MjpegSource, Opener, Resilient, SourceError,
};
use facegate::hw::display::{Display, DisplayKind, FramebufferDisplay, PngDisplay};
use facegate::hw::indicator::{Indicator, LogIndicator};
use facegate::terminal::decide::{Decider, Decision, Outcome};
use facegate::terminal::events::{Event, EventLog};
use facegate::terminal::snapshots::Snapshots;
use facegate::terminal::{Observer, Terminal};

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
    /// Keep a JPEG of the frame of every unknown decision in DIR [default: [log] snapshot_dir]
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
}

/// Prints one line per decision, pings the systemd watchdog.
struct CliObserver {
    json: bool,
    watchdog: Option<Duration>,
    last_ping: Instant,
}

impl Observer for CliObserver {
    fn decision(&mut self, d: &Decision, event: &Event, latency: Duration) {
        if self.json {
            println!(
                "{}",
                json!({
                    "time": super::log::rfc3339(event.unix_ms),
                    "frame_s": d.at.as_secs_f64(),
                    "track": d.track,
                    "outcome": event.outcome,
                    "person_id": event.person_id,
                    "name": event.name,
                    "similarity": d.similarity,
                    "frames_used": d.frames_used,
                    "track_age_s": d.track_age.as_secs_f64(),
                    "latency_ms": latency.as_secs_f64() * 1000.0,
                })
            );
        } else {
            let who = match &d.outcome {
                Outcome::Accepted { person_id, name } => format!("ACCEPT {name} (id {person_id})"),
                Outcome::Unknown => "UNKNOWN".to_string(),
            };
            println!(
                "{} {who} track {} similarity {:.3} frames {} at {:.2}s (track age {:.2}s, latency {:.0} ms)",
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

    fn heartbeat(&mut self) {
        if let Some(every) = self.watchdog {
            if self.last_ping.elapsed() >= every {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                self.last_ping = Instant::now();
            }
        }
    }
}

/// A function that opens the configured source, for [`Resilient`] to call again after a loss.
pub(super) fn opener(camera: &CameraParams) -> Result<(Opener, bool)> {
    let source = camera.source.clone();
    let path = Path::new(&source);
    if let Some(command) = source.strip_prefix(facegate::hw::command::PREFIX) {
        let command = command.trim().to_string();
        if command.is_empty() {
            bail!("{source}: name the camera command after `exec:`");
        }
        let open: Opener = Box::new(move || {
            Ok(
                Box::new(facegate::hw::command::CommandSource::spawn(&command)?)
                    as Box<dyn FrameSource>,
            )
        });
        // A camera: when it stops, wait and start it again.
        return Ok((open, true));
    }
    if source == "stdin" || source == "-" {
        let open: Opener = Box::new(|| {
            Ok(Box::new(MjpegSource::new(std::io::stdin(), "stdin")) as Box<dyn FrameSource>)
        });
        return Ok((open, false));
    }
    if path.is_dir() {
        let (dir, fps, paced) = (path.to_path_buf(), camera.fps, camera.realtime);
        let open: Opener = Box::new(move || {
            Ok(Box::new(DirSource::open(&dir, fps, paced)?) as Box<dyn FrameSource>)
        });
        return Ok((open, false));
    }
    if source.starts_with("/dev/video") {
        #[cfg(feature = "v4l2")]
        {
            let camera = camera.clone();
            let open: Opener = Box::new(move || {
                Ok(Box::new(facegate::hw::camera::V4l2Source::open(&camera)?)
                    as Box<dyn FrameSource>)
            });
            return Ok((open, true));
        }
        #[cfg(not(feature = "v4l2"))]
        bail!("{source}: this facegate was built without V4L2 support (cargo feature `v4l2`)");
    }
    if path.is_file() {
        let file = path.to_path_buf();
        let open: Opener = Box::new(move || {
            let f = std::fs::File::open(&file)
                .map_err(|e| SourceError::Lost(format!("{}: {e}", file.display())))?;
            let name = file.display().to_string();
            Ok(
                Box::new(MjpegSource::new(std::io::BufReader::new(f), &name))
                    as Box<dyn FrameSource>,
            )
        });
        return Ok((open, false));
    }
    bail!("{source}: no such folder, file or device")
}

fn indicator(ctx: &Context) -> Result<Box<dyn Indicator>> {
    let o = &ctx.config.outputs;
    #[cfg(any(feature = "gpio", feature = "rpi"))]
    let pulse = Duration::from_millis(o.gpio.relay_pulse_ms);
    Ok(match o.indicator {
        IndicatorKind::Log => Box::new(LogIndicator::default()),
        #[cfg(feature = "gpio")]
        IndicatorKind::Gpio => Box::new(facegate::hw::indicator::LineIndicator::new(
            facegate::hw::indicator::CdevLines::open(&o.gpio)?,
            pulse,
        )?),
        #[cfg(feature = "rpi")]
        IndicatorKind::Rpi => Box::new(facegate::hw::indicator::LineIndicator::new(
            facegate::hw::indicator::RppalLines::open(&o.gpio)?,
            pulse,
        )?),
        #[allow(unreachable_patterns)]
        other => bail!("indicator {other:?}: this facegate was built without its cargo feature"),
    })
}

/// The configured display, or PNG files in `png_dir` when given (headless runs).
pub(super) fn display(ctx: &Context, png_dir: Option<&Path>) -> Result<Option<Box<dyn Display>>> {
    let o = &ctx.config.outputs;
    Ok(match (png_dir, o.display) {
        (Some(dir), _) => Some(Box::new(PngDisplay::new(
            dir,
            o.display_width,
            o.display_height,
        )?)),
        (None, DisplayKind::Png) => Some(Box::new(PngDisplay::new(
            &o.png_dir,
            o.display_width,
            o.display_height,
        )?)),
        (None, DisplayKind::Fb) => Some(Box::new(FramebufferDisplay::open(&o.framebuffer)?)),
        (None, DisplayKind::None) => None,
    })
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

    let pipeline = ctx.pipeline()?;
    let gallery = ctx.load_gallery(&pipeline.gallery_id()?)?;
    // Derived for this gallery's size; the gallery does not change while this loop runs.
    let threshold = ctx.door_rule()?.at(gallery.template_count()).threshold;
    if gallery.is_empty() {
        eprintln!(
            "facegate: warning: no one is enrolled in {}: nobody will be accepted",
            ctx.config.gallery.display()
        );
    }
    let (mut open, is_device) = opener(&camera)?;
    if !is_device {
        // A missing folder or file is a mistake to report now, not a camera to wait for.
        open().map_err(anyhow::Error::from)?;
    }
    let mut source = Resilient::new(open, camera.backoff());
    let display = display(ctx, args.display_png.as_deref())?;
    let events = EventLog::open(&log_params)
        .with_context(|| format!("opening the decision log {}", log_params.path.display()))?;
    let mut terminal = Terminal {
        pipeline: &pipeline,
        gallery: &gallery,
        threshold,
        decider: Decider::new(ctx.config.decide.clone()),
        indicator: indicator(ctx)?,
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
        "running: {} people enrolled, threshold {threshold}, every {every_nth} frame(s)",
        gallery.len()
    );
    let mut observer = CliObserver {
        json: ctx.json,
        watchdog,
        last_ping: Instant::now(),
    };
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
        "facegate: {} frames read, {} analysed in {:.1} s ({:.1} read/s, {:.1} analysed/s, {:.0} ms per analysed frame); {} unreadable; camera lost {} time(s); {} decision(s), mean latency {:.0} ms{}",
        report.frames_read,
        report.frames_analysed,
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

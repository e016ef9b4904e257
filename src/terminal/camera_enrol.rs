//! Enrolment at the terminal's own camera: the person is guided through the poses of
//! [`Guide`] on the display, one embedding per captured pose; nothing is returned (so nothing is
//! stored) unless enough poses were captured.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::guided_enrol::{Guide, GuideParams, Pose, Progress};
use crate::hw::camera::{Resilient, SourceEvent};
use crate::hw::display::Screen;
use crate::media::frame::Frame;
use crate::setup::Setup;
use crate::vision::pipeline::StageTimes;

/// What `enroll --camera` was asked for.
#[derive(Debug, Clone)]
pub struct CameraEnrolment {
    pub name: String,
    /// The camera source [default: the config's].
    pub source: Option<String>,
    /// Draw the guidance into PNG files here instead of the configured display.
    pub display_png: Option<PathBuf>,
    /// Give up after this long (seconds of camera time).
    pub timeout: f32,
    /// Store only if at least this many poses were captured.
    pub min_poses: u32,
    /// Check every face for liveness when the config enables it (`false`: `--no-liveness`).
    pub liveness: bool,
}

/// Guide the person at the camera through the poses; one embedding per captured pose. Nothing
/// is returned (so nothing stored) unless at least `--min-poses` poses were captured.
pub fn enrol_from_camera(
    setup: &Setup,
    args: &CameraEnrolment,
    stop: &AtomicBool,
    say: &mut dyn FnMut(String),
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut camera = setup.config.camera.clone();
    if let Some(s) = &args.source {
        camera.source = s.clone();
    }
    let pipeline = setup.pipeline_live(!args.liveness)?;
    let (mut open, is_device) = super::devices::opener(&camera)?;
    if !is_device {
        open().map_err(anyhow::Error::from)?;
    }
    let mut source = Resilient::new(open, camera.backoff());
    let mut display = super::devices::display(&setup.config.outputs, args.display_png.as_deref())?;
    let mut show = |screen: &Screen| {
        if let Some(d) = display.as_mut() {
            if let Err(e) = d.show(screen) {
                log::warn!("display: {e}");
            }
        }
    };
    let mut guide = Guide::new(GuideParams::new(
        setup.config.decide.quality.clone(),
        setup.threshold()?,
    ));
    let timeout = Duration::from_secs_f32(args.timeout.max(0.0));
    let every = u64::from(camera.every_nth.max(1));
    let mut frame = Frame::empty();
    let mut times = StageTimes::default();
    let (mut read, mut last_said) = (0u64, None);
    let mut started_at = None;
    let ask = |guide: &Guide| Screen::Enrol {
        prompt: guide.next_pose().map_or("", |p| p.prompt()).to_string(),
        done: guide.captures().len(),
        total: guide.total(),
    };
    show(&ask(&guide));
    say(format!(
        "facegate: enrolling {}: {}",
        args.name,
        Pose::Front.prompt()
    ));
    while !stop.load(Ordering::Relaxed) && guide.next_pose().is_some() {
        let now = Instant::now();
        match source.poll(now, &mut frame) {
            SourceEvent::Frame => {}
            SourceEvent::Skipped(e) => {
                log::warn!("{e}");
                continue;
            }
            SourceEvent::Lost { error, retry_in } => {
                say(format!("camera lost: {error}; retrying in {retry_in:?}"));
                show(&Screen::CameraLost);
                continue;
            }
            SourceEvent::Waiting { until } => {
                std::thread::sleep(
                    until
                        .saturating_duration_since(now)
                        .min(Duration::from_millis(50)),
                );
                continue;
            }
            SourceEvent::Recovered => {
                show(&ask(&guide));
                continue;
            }
            SourceEvent::End => break,
        }
        read += 1;
        let start = *started_at.get_or_insert(frame.timestamp);
        if frame.timestamp.saturating_sub(start) > timeout {
            break;
        }
        if (read - 1) % every != 0 {
            continue;
        }
        let mut analysis = pipeline.analyse(&frame.image, &mut times)?;
        let before = analysis.faces.len();
        // A face that fails liveness is never captured.
        analysis.faces.retain(|f| f.liveness.is_none_or(|l| l.live));
        if analysis.faces.len() < before {
            show(&Screen::Spoof);
            continue;
        }
        let progress = guide.step(&analysis.faces);
        let screen = match &progress {
            Progress::Hint(h) => Screen::Hint(*h),
            Progress::Done => Screen::Enrolled(args.name.clone()),
            _ => ask(&guide),
        };
        show(&screen);
        let said = format!("{progress:?}");
        if last_said.as_ref() != Some(&said) {
            match &progress {
                Progress::Captured(_) | Progress::Done => {
                    let c = guide.captures().last().expect("captured");
                    say(format!(
                        "facegate: captured {:?} (frame {}, head turn {:.0}°, similarity to the earlier frames {:.3}){}",
                        c.pose,
                        frame.index,
                        c.yaw_deg,
                        c.similarity,
                        guide.next_pose().map_or(String::new(), |p| format!("; next: {}", p.prompt()))
                    ));
                }
                Progress::OnePersonOnly => say("one person at a time, please".to_string()),
                Progress::SomeoneElse { similarity } => say(format!(
                    "facegate: this is not the person being enrolled (similarity {similarity:.3}); ignored"
                )),
                _ => {}
            }
            last_said = Some(said);
        }
    }
    if stop.load(Ordering::Relaxed) {
        bail!("enrolment interrupted; nothing stored");
    }
    let captured = guide.captures();
    if captured.len() < args.min_poses as usize {
        bail!(
            "only {} of {} poses captured before the camera {} (missing: {}); nothing stored. \
             Stand closer in good light, facing the camera, and try again",
            captured.len(),
            guide.total(),
            if guide.next_pose().is_some() && read > 0 {
                "time ran out or the stream ended"
            } else {
                "gave no frames"
            },
            guide
                .missing()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !guide.missing().is_empty() {
        say(format!(
            "facegate: warning: not captured: {}; storing the {} pose(s) that were",
            guide
                .missing()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            captured.len()
        ));
    }
    show(&Screen::Enrolled(args.name.clone()));
    Ok(captured
        .iter()
        .map(|c| (format!("camera {:?}", c.pose), c.embedding.clone()))
        .collect())
}

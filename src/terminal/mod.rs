//! The run loop of a door terminal: frames from a [`Resilient`] source through the pipeline and
//! gallery into the [`Decider`], decisions out to the indicator, display and decision log.

pub mod attendance;
pub mod camera_enrol;
pub mod decide;
pub mod devices;
pub mod event_chain;
pub mod events;
pub mod guided_enrol;
pub mod hints;
pub mod snapshots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gallery::live::{LiveGallery, Removed};
use crate::gallery::operating_point::Rule;
use crate::gallery::{GalleryError, Match};
use crate::hw::camera::{Resilient, SourceEvent};
use crate::hw::display::{Display, Screen};
use crate::hw::indicator::{Indicator, Signal};
use crate::hw::preview::{Preview, PreviewFace};
use crate::media::frame::Frame;
use crate::terminal::decide::{Decider, Decision, Identity, Observation, Outcome, Step};
use crate::terminal::events::{Event, EventLog, EventOutcome};
use crate::terminal::snapshots::Snapshots;
use crate::vision::align::align_face;
use crate::vision::enhance::mean_luma;
use crate::vision::pipeline::{Pipeline, StageTimes};
use crate::vision::quality::Quality;
use crate::vision::tracking::FaceTracker;

/// The longest the loop waits without checking for a stop request or feeding the watchdog.
const WAIT_SLICE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error(transparent)]
    Gallery(#[from] GalleryError),
}

/// Told about what happens while the terminal runs (the CLI prints and notifies systemd).
pub trait Observer {
    /// `latency`: from the deciding frame being read to the decision being made.
    fn decision(&mut self, _decision: &Decision, _event: &Event, _latency: Duration) {}
    /// The camera failed (`lost`) or came back.
    fn camera(&mut self, _lost: bool, _message: &str) {}
    /// Called at least every [`WAIT_SLICE`] while running.
    fn heartbeat(&mut self) {}
    /// Every analysed frame's faces (face login shares the door's camera through this).
    fn analysed(&mut self, _frame: &AnalysedFrame) {}
    /// Whether [`Observer::analysed`] needs every face embedded and checked for liveness, even
    /// those of tracks the door has already accepted (face login is listening).
    fn wants_every_face(&self) -> bool {
        false
    }
}

/// What the terminal saw in one analysed frame, for others who look at the same camera.
#[derive(Debug, Clone, Default)]
pub struct AnalysedFrame {
    pub index: u64,
    pub timestamp: Duration,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<SeenFace>,
    /// Mean luma (0-255) of the frame, measured only when no face was found.
    pub dark_luma: Option<f32>,
}

#[derive(Debug, Clone)]
pub struct SeenFace {
    pub bbox: [f32; 4],
    /// The unit embedding; None when the face failed the quality gates and was not embedded.
    pub embedding: Option<Vec<f32>>,
    /// The liveness verdict for this frame (None: not checked).
    pub live: Option<bool>,
}

/// The decision log, shared by the door loop and the API's face-login handler.
pub type SharedLog = Arc<Mutex<EventLog>>;

impl Observer for () {}

/// What one run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub frames_read: u64,
    pub frames_analysed: u64,
    pub frames_skipped: u64,
    /// Analysed frames searched only around the faces of the frame before.
    pub frames_tracked: u64,
    pub camera_lost: u32,
    pub decisions: Vec<Decision>,
    /// Per decision: deciding frame read → decision.
    pub latencies: Vec<Duration>,
    pub wall: Duration,
    /// Time in detect + align + embed + match.
    pub analyse: Duration,
    pub times: StageTimes,
}

pub struct Terminal<'a> {
    pub pipeline: &'a Pipeline,
    /// Shared with the API, which may change it while the terminal runs.
    pub gallery: &'a LiveGallery,
    /// The door's threshold rule, applied to the size of the gallery each face is matched
    /// against: the threshold follows every enrolment and removal.
    pub door: Rule,
    pub decider: Decider,
    pub indicator: Box<dyn Indicator + 'a>,
    pub display: Option<Box<dyn Display + 'a>>,
    pub events: Option<SharedLog>,
    /// Where frames of unknown decisions are kept, if anywhere.
    pub snapshots: Option<Snapshots>,
    /// Analyse every n-th frame.
    pub every_nth: u32,
    /// How long a result stays on screen and on the LEDs (frame time).
    pub hold: Duration,
}

/// What the screen shows, from the most to the least urgent.
fn choose_screen(
    lost: bool,
    result: Option<&Screen>,
    locked_for: Option<Duration>,
    hint: Option<crate::terminal::decide::Hint>,
) -> Screen {
    if lost {
        Screen::CameraLost
    } else if let Some(r) = result {
        r.clone()
    } else if let Some(left) = locked_for {
        Screen::Locked(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    } else if let Some(h) = hint {
        Screen::Hint(h)
    } else {
        Screen::Idle
    }
}

fn hint_name(h: crate::terminal::decide::Hint) -> &'static str {
    Screen::Hint(h).kind()
}

/// The preview of `frame`: the decider's tracks of this frame with their progress; `None`
/// when no face is tracked in it.
fn preview_of(
    frame: &Frame,
    decider: &Decider,
    hint: Option<crate::terminal::decide::Hint>,
    width: u32,
    height: u32,
) -> Option<Preview> {
    let faces: Vec<PreviewFace> = decider
        .progress(frame.timestamp)
        .into_iter()
        .map(|(b, done)| PreviewFace {
            bbox: b.map(|v| v.round() as i32),
            progress: (done * 100.0).round() as u8,
        })
        .collect();
    (!faces.is_empty()).then(|| Preview::new(&frame.image, faces, hint, width, height))
}

/// The person `embedding` (a track's fused embedding) matches at the door's threshold.
fn fused_match(gallery: &LiveGallery, door: &Rule, embedding: &[f32]) -> Option<Identity> {
    let g = gallery.read();
    match g.best_match(embedding, door.at(g.template_count()).threshold) {
        Ok(Match::Known(c)) => Some(Identity {
            person_id: c.person_id,
            name: c.name.to_string(),
            similarity: c.similarity,
        }),
        Ok(Match::Unknown { .. }) => None,
        Err(e) => {
            log::warn!("track fusion: {e}");
            None
        }
    }
}

impl Terminal<'_> {
    /// Feed one analysed frame's faces to the decider, with track fusion searching the
    /// gallery as it is now, at the door's threshold for its size.
    pub fn decide(&mut self, at: Duration, faces: &[Observation]) -> Step {
        let (gallery, door) = (self.gallery, &self.door);
        let fused = |e: &[f32]| fused_match(gallery, door, e);
        self.decider.step_fused(at, faces, Some(&fused))
    }

    fn show(&mut self, screen: &Screen) {
        if let Some(d) = self.display.as_mut() {
            if let Err(e) = d.show(screen) {
                log::warn!("display: {e}");
            }
        }
    }

    fn signal(&mut self, s: Signal, clock: Duration) {
        if let Err(e) = self.indicator.signal(s, clock) {
            log::warn!("indicator: {e}");
        }
    }

    /// The faces of one frame as the decider sees them. Only faces that pass the quality gates
    /// are embedded (the costly step): background faces are dropped at detection, poor ones
    /// only need their quality figures for a hint, and a face whose track is already accepted
    /// needs no embedding at all.
    pub fn observe(
        &self,
        frame: &Frame,
        tracker: &mut FaceTracker,
        times: &mut StageTimes,
        seen: &mut Vec<SeenFace>,
        every_face: bool,
    ) -> Result<Vec<Observation>, TerminalError> {
        let gates = &self.decider.params().quality;
        let (detections, used) = match tracker.detect(self.pipeline, &frame.image, times) {
            Ok(d) => d,
            Err(e) => {
                // One frame the models choke on must not stop the door.
                log::warn!("frame {}: {e}", frame.index);
                return Ok(Vec::new());
            }
        };
        let embedder = self.pipeline.embedder();
        let (w, h) = embedder.chip_size();
        let mut out = Vec::with_capacity(detections.len());
        for det in detections {
            if det.width().min(det.height()) < gates.ignore_below_px
                && !self.decider.continues_track(&det.bbox)
            {
                continue;
            }
            let started = Instant::now();
            let chip = align_face(&used, &det.landmarks, embedder.template(), w, h);
            times.align += started.elapsed();
            let Some(chip) = chip else { continue };
            let quality = Quality::measure(&det, &chip);
            let mut nearest = String::new();
            let mut liveness = None;
            // Poor faces only give a hint. A face whose track is already accepted needs neither
            // liveness nor an embedding for the door (the decider ignores it), unless someone
            // else looking at the same camera (face login) wants every face.
            let settled = !every_face && self.decider.is_settled(&det.bbox);
            let mut kept = None;
            let (identity, best) = if gates.check(&quality).is_some() || settled {
                seen.push(SeenFace {
                    bbox: det.bbox,
                    embedding: None,
                    live: None,
                });
                (None, f32::NAN)
            } else {
                let verdict = match self.pipeline.check_liveness(&used, &det, times) {
                    Ok(l) => l,
                    Err(e) => {
                        log::warn!("frame {}: {e}", frame.index);
                        continue;
                    }
                };
                liveness = verdict.map(|l| l.score);
                let started = Instant::now();
                let embedding = match embedder.embed(&chip) {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!("frame {}: {e}", frame.index);
                        continue;
                    }
                };
                times.embed += started.elapsed();
                seen.push(SeenFace {
                    bbox: det.bbox,
                    embedding: Some(embedding.clone()),
                    live: verdict.map(|l| l.live),
                });
                // One read per face: a writer swapping in a new gallery never waits for a frame.
                let matched = {
                    let g = self.gallery.read();
                    g.best_match(&embedding, self.door.at(g.template_count()).threshold)?
                };
                kept = Some(embedding);
                match matched {
                    Match::Known(c) => (
                        Some(Identity {
                            person_id: c.person_id,
                            name: c.name.to_string(),
                            similarity: c.similarity,
                        }),
                        c.similarity,
                    ),
                    Match::Unknown { best } => {
                        if let Some(c) = &best {
                            nearest = c.name.to_string();
                        }
                        (None, best.map_or(-1.0, |c| c.similarity))
                    }
                }
            };
            log::debug!(
                "frame {} t={:.2}s face {:?} size {:.0} light {:.0} sharp {:.0} yaw {:.0} live {:?} -> {} {:.3} (nearest {nearest})",
                frame.index,
                frame.timestamp.as_secs_f32(),
                det.bbox.map(|v| v.round() as i32),
                quality.face_size,
                quality.brightness,
                quality.sharpness,
                quality.yaw_deg,
                liveness,
                identity.as_ref().map_or("-", |i| i.name.as_str()),
                best
            );
            out.push(Observation {
                bbox: det.bbox,
                quality,
                identity,
                best_similarity: best,
                liveness,
                embedding: kept,
            });
        }
        Ok(out)
    }

    fn record(&mut self, d: &Decision) -> Event {
        let (outcome, person_id, name) = match &d.outcome {
            Outcome::Accepted { person_id, name } => {
                (EventOutcome::Accepted, Some(*person_id), Some(name.clone()))
            }
            Outcome::Unknown => (EventOutcome::Unknown, None, None),
            Outcome::Spoof => (EventOutcome::Spoof, None, None),
        };
        let event = Event {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_millis() as u64),
            frame_ms: d.at.as_millis() as u64,
            track: d.track,
            outcome,
            person_id,
            name,
            similarity: d.similarity,
            frames_used: d.frames_used,
        };
        if let Some(log) = self.events.as_ref() {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = log.append(&event) {
                // The door keeps working; the missing record is reported loudly.
                log::error!("decision log: {e}");
            }
        }
        event
    }

    /// Bring the decision state up to the gallery's current generation: tracks that matched a
    /// removed person are dropped, so nobody is let in on matches made before their removal.
    fn apply_gallery_changes(&mut self, seen: &mut u64) {
        let Some(changes) = self.gallery.changes_since(*seen) else {
            return;
        };
        let dropped = match &changes.removed {
            Removed::People(ids) if ids.is_empty() => 0,
            Removed::People(ids) => self.decider.forget_people(ids),
            Removed::Unknown => self.decider.forget_all(),
        };
        if dropped > 0 {
            log::info!("gallery changed: dropped {dropped} decision track(s) of removed people");
        }
        let templates = self.gallery.read().template_count();
        log::info!(
            "gallery changed: {templates} templates, door threshold {:.4}",
            self.door.at(templates).threshold
        );
        *seen = changes.generation;
        self.gallery.acknowledge(changes.generation);
    }

    /// Run until the source ends, `max_frames` frames were read, or `stop` is set.
    pub fn run(
        &mut self,
        source: &mut Resilient,
        stop: &AtomicBool,
        max_frames: Option<u64>,
        observer: &mut dyn Observer,
    ) -> Result<Report, TerminalError> {
        let started = Instant::now();
        let mut report = Report::default();
        let mut frame = Frame::empty();
        // The result on screen and until when (frame time).
        let mut result: Option<(Screen, Duration)> = None;
        self.signal(Signal::Idle, Duration::ZERO);
        self.show(&Screen::Idle);
        let every = u64::from(self.every_nth.max(1));
        let mut hints = hints::HintFilter::default();
        let mut last_kind = "idle";
        let mut last_hint = None;
        let mut tracker = FaceTracker::default();
        let gallery = self.gallery;
        let _matcher = gallery.attach_matcher();
        let mut seen = gallery.generation();
        while !stop.load(Ordering::Relaxed) && max_frames.is_none_or(|m| report.frames_read < m) {
            observer.heartbeat();
            self.apply_gallery_changes(&mut seen);
            let now = Instant::now();
            let clock = now - started;
            if let Err(e) = self.indicator.tick(clock) {
                log::warn!("indicator: {e}");
            }
            match source.poll(now, &mut frame) {
                SourceEvent::Frame => {}
                SourceEvent::Skipped(e) => {
                    log::warn!("{e}");
                    report.frames_skipped += 1;
                    continue;
                }
                SourceEvent::Lost { error, retry_in } => {
                    report.camera_lost += 1;
                    let msg = format!("camera lost: {error}; retrying in {retry_in:?}");
                    log::warn!("{msg}");
                    observer.camera(true, &msg);
                    self.signal(Signal::Idle, clock);
                    result = None;
                    self.show(&Screen::CameraLost);
                    continue;
                }
                SourceEvent::Waiting { until } => {
                    std::thread::sleep(until.saturating_duration_since(now).min(WAIT_SLICE));
                    continue;
                }
                SourceEvent::Recovered => {
                    let msg = format!("camera back: {}", source.describe());
                    log::warn!("{msg}");
                    observer.camera(false, &msg);
                    tracker.reset();
                    self.show(&Screen::Idle);
                    continue;
                }
                SourceEvent::End => break,
            }
            report.frames_read += 1;
            let read_at = Instant::now();
            if (report.frames_read - 1) % every != 0 {
                continue;
            }
            report.frames_analysed += 1;
            let mut seen = Vec::new();
            let every_face = observer.wants_every_face();
            let faces = self.observe(
                &frame,
                &mut tracker,
                &mut report.times,
                &mut seen,
                every_face,
            )?;
            let step = self.decide(frame.timestamp, &faces);
            report.analyse += read_at.elapsed();
            observer.analysed(&AnalysedFrame {
                index: frame.index,
                timestamp: frame.timestamp,
                width: frame.image.width(),
                height: frame.image.height(),
                dark_luma: seen.is_empty().then(|| mean_luma(&frame.image)),
                faces: seen,
            });
            let hint = if step.decisions.is_empty() {
                hints.update(frame.timestamp, step.hint)
            } else {
                hints.reset(frame.timestamp);
                None
            };
            for d in &step.decisions {
                let event = self.record(d);
                let refused = matches!(d.outcome, Outcome::Unknown | Outcome::Spoof);
                if let (true, Some(snaps)) = (refused, &self.snapshots) {
                    // A full card must not stop the door: say so and carry on.
                    match snaps.save(&frame.image, event.unix_ms, d.track) {
                        Ok(p) => log::info!("snapshot {}", p.display()),
                        Err(e) => log::error!("{e}"),
                    }
                }
                let latency = read_at.elapsed();
                let (signal, screen) = match &d.outcome {
                    Outcome::Accepted { name, .. } => {
                        (Signal::Accept, Screen::Welcome(name.clone()))
                    }
                    Outcome::Unknown => (Signal::Reject, Screen::Unknown),
                    Outcome::Spoof => (Signal::Reject, Screen::Spoof),
                };
                // Now, not the loop's start: analysing the frame took time, and the relay pulse
                // must last its full length from the decision on.
                self.signal(signal, started.elapsed());
                result = Some((screen, frame.timestamp + self.hold));
                observer.decision(d, &event, latency);
                report.decisions.push(d.clone());
                report.latencies.push(latency);
            }
            if result
                .as_ref()
                .is_some_and(|(_, until)| frame.timestamp >= *until)
            {
                result = None;
                self.signal(Signal::Idle, clock);
            }
            let screen = choose_screen(
                false,
                result.as_ref().map(|(s, _)| s),
                step.locked_for,
                hint,
            );
            let screen = match (&screen, self.display.as_ref()) {
                (Screen::Idle | Screen::Hint(_), Some(d)) => {
                    let (w, h) = d.size();
                    preview_of(&frame, &self.decider, hint, w, h).map_or(screen, Screen::Preview)
                }
                _ => screen,
            };
            if hint != last_hint {
                log::info!(target: "facegate::screen", "hint {} at {:.3}s", hint.map_or("none", hint_name), frame.timestamp.as_secs_f64());
                last_hint = hint;
            }
            if screen.kind() != last_kind {
                // Replays and tests read the screen sequence with its frame times from here.
                log::info!(target: "facegate::screen", "{} at {:.3}s", screen.kind(), frame.timestamp.as_secs_f64());
                last_kind = screen.kind();
            }
            self.show(&screen);
        }
        self.signal(Signal::Idle, started.elapsed());
        report.frames_tracked = tracker.tracked_frames;
        report.wall = started.elapsed();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terminal::decide::Hint;

    #[test]
    fn the_most_urgent_screen_wins() {
        let welcome = Screen::Welcome("Ada".into());
        let locked = Some(Duration::from_millis(2500));
        assert_eq!(
            choose_screen(true, Some(&welcome), locked, None),
            Screen::CameraLost
        );
        assert_eq!(
            choose_screen(false, Some(&welcome), locked, Some(Hint::MoreLight)),
            welcome
        );
        assert_eq!(
            choose_screen(false, None, locked, Some(Hint::MoreLight)),
            Screen::Locked(3)
        );
        assert_eq!(
            choose_screen(false, None, None, Some(Hint::MoveCloser)),
            Screen::Hint(Hint::MoveCloser)
        );
        assert_eq!(choose_screen(false, None, None, None), Screen::Idle);
    }
}

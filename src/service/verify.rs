//! `verify_user`: 1:1 verification of a login's linked person at the camera, for pam_facegate
//! and `facegate login-test`. The caller has been authorised already (peer.rs: the peer owns the
//! login, or is a reader or admin). The decision itself is pure ([`crate::login`]); this file
//! finds the account's person, checks the rate limit before any camera is touched, gets frames
//! (the door loop's, or the camera opened for this request), streams prompts, and logs the
//! attempt.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::LoginConfig;
use crate::gallery::live::LiveGallery;
use crate::hw::camera::{CameraParams, SourceError};
use crate::login::decide::{FrameView, LoginDecider, LoginParams, Outcome};
use crate::login::limit::{LimitParams, LoginLimiter};
use crate::media::frame::Frame;
use crate::terminal::events::LoginRecord;
use crate::terminal::{AnalysedFrame, SeenFace, SharedLog};
use crate::vision::enhance::mean_luma;
use crate::vision::pipeline::{Pipeline, StageTimes};

use super::frames::FrameFeed;
use super::peer::Peer;
use super::protocol::{ApiError, ErrorCode, VerifyUser};

/// A login prompt that looks longer than this is a hang, whatever the request asks.
const MAX_ATTEMPT: Duration = Duration::from_secs(30);

/// Where a login's frames come from.
pub enum FrameSupply {
    /// The door loop's analysed frames (`mode = "door" | "both"`).
    Shared(Arc<FrameFeed>),
    /// The camera, opened for each request and closed after it (`mode = "login"`).
    Camera(CameraParams),
}

/// Face login's state in the service: settings, the frames, the per-account limiter, the log.
pub struct LoginStation {
    pub config: LoginConfig,
    /// None: the embedder has no calibrated login point and the config sets none.
    pub threshold: Option<f32>,
    pub embedder: String,
    pub supply: FrameSupply,
    pub limiter: Mutex<LoginLimiter>,
    pub log: Option<SharedLog>,
    /// One request at a time at a camera opened for it.
    camera: Mutex<()>,
}

impl LoginStation {
    pub fn new(
        config: LoginConfig,
        embedder: &str,
        supply: FrameSupply,
        log: Option<SharedLog>,
    ) -> Self {
        let limits = LimitParams {
            free_failures: config.free_failures.max(1),
            first_pause: Duration::from_secs(config.first_pause_s),
            max_pause: Duration::from_secs(config.max_pause_s.max(config.first_pause_s)),
        };
        Self {
            threshold: crate::login::threshold(config.threshold, embedder),
            embedder: embedder.to_string(),
            config,
            supply,
            limiter: Mutex::new(LoginLimiter::new(limits)),
            log,
            camera: Mutex::new(()),
        }
    }

    fn limiter(&self) -> MutexGuard<'_, LoginLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a verification may use.
pub struct VerifyContext<'a> {
    pub live: &'a LiveGallery,
    pub peer: &'a Peer,
    pub pipeline: &'a Pipeline,
    pub station: &'a LoginStation,
}

/// What one attempt came to, for the answer and the log.
struct Attempt {
    outcome: Outcome,
    score: Option<f32>,
    person: (u32, String),
    frames: u32,
}

type Emit<'e> = &'e mut dyn FnMut(Value) -> std::io::Result<()>;

/// Answer one `verify_user`: `emit` sends `{"prompt": ...}` events, the result is the final
/// object `{"outcome","score","person","frames","elapsed_ms"}`. Every attempt, refused or not
/// tried, goes to the decision log.
pub fn verify_user(
    ctx: &VerifyContext<'_>,
    request: &VerifyUser,
    emit: Emit<'_>,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let mut person_id = None;
    let answer = attempt(ctx, request, emit, started, &mut person_id);
    let (outcome, score, frames) = match &answer {
        Ok(a) => (a.outcome.as_str().to_string(), a.score, a.frames),
        Err(e) => (code_word(e.code), None, 0),
    };
    log_attempt(
        ctx,
        LoginRecord {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_millis() as u64),
            user: request.user.clone(),
            outcome,
            score,
            person_id,
            frames,
            liveness: request.liveness,
            peer_uid: ctx.peer.uid,
            duration_ms: started.elapsed().as_millis() as u64,
        },
    );
    let a = answer?;
    let accepted = a.outcome == Outcome::Accepted;
    Ok(json!({
        "outcome": a.outcome.as_str(),
        "score": a.score,
        "person": accepted.then_some(a.person.1),
        "frames": a.frames,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
}

fn code_word(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "internal".into())
}

fn log_attempt(ctx: &VerifyContext<'_>, record: LoginRecord) {
    log::info!(
        "face login {}: {} (score {:?}, {} frames, {} ms, uid {})",
        record.user,
        record.outcome,
        record.score,
        record.frames,
        record.duration_ms,
        record.peer_uid
    );
    if let Some(log) = &ctx.station.log {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = log.append_login(&record) {
            // Face login keeps working; the missing record is reported loudly.
            log::error!("decision log: {e}");
        }
    }
}

fn attempt(
    ctx: &VerifyContext<'_>,
    request: &VerifyUser,
    emit: Emit<'_>,
    started: Instant,
    person_id: &mut Option<u32>,
) -> Result<Attempt, ApiError> {
    let station = ctx.station;
    let user = &request.user;
    let person = ctx
        .live
        .read()
        .find_by_user(user)
        .map(|p| (p.id, p.name.to_string()));
    let Some(person) = person else {
        return Err(ApiError::new(
            ErrorCode::NotEnrolled,
            format!("no enrolled person is linked to login {user:?} (facegate enroll --user)"),
        ));
    };
    *person_id = Some(person.0);
    if request.liveness && ctx.pipeline.liveness().is_none() {
        return Err(ApiError::new(
            ErrorCode::LivenessUnavailable,
            "the liveness check (presentation-attack detection) is off here ([liveness] \
             enabled = false), and a request with liveness cannot be met: use the password \
             (or `nolive` on the PAM line together with [login] allow_nolive = true, accepting \
             that a photo may pass)",
        ));
    }
    if !request.liveness && !station.config.allow_nolive {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this station refuses face login without liveness ([login] allow_nolive = false)",
        ));
    }
    let Some(threshold) = station.threshold else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "embedder {} has no calibrated login threshold: set [login] threshold",
                station.embedder
            ),
        ));
    };
    // Refused here, before any frame is looked at.
    if let Err(left) = station.limiter().check(user, Instant::now()) {
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "face login for {user} is paused after repeated failures; retry_after_s {secs}"
            ),
        ));
    }

    let params = LoginParams {
        threshold,
        accept_frames: station.config.accept_frames.max(1),
        reject_frames: station.config.reject_frames.max(1),
        spoof_frames: station.config.spoof_frames.max(1),
        need_live: request.liveness,
    };
    let mut decider = LoginDecider::new(params);
    let deadline = started + Duration::from_millis(request.timeout_ms).min(MAX_ATTEMPT);
    let mut prompts = Prompts::default();
    prompts.say(emit, "Look at the camera")?;
    let live = ctx.live;
    let dark_luma = station.config.dark_luma;
    let mut frames = 0u32;
    let outcome = {
        let mut feed = |frame: &AnalysedFrame| -> Result<Option<Outcome>, ApiError> {
            frames += 1;
            let view = crate::login::frame_view(frame, dark_luma, |e| {
                live.read().similarity_to(person.0, e).ok().flatten()
            });
            match view {
                FrameView::Dark => {
                    prompts.say(emit, "Too dark: more light on your face, please")?
                }
                FrameView::Face {
                    live: Some(false), ..
                } => prompts.say(emit, "Photo or screen detected: show your own face")?,
                FrameView::Face { score, .. } if score < threshold => {
                    prompts.say(emit, "Face seen, not recognised yet")?
                }
                FrameView::Face { .. } => prompts.say(emit, "Face seen: hold still")?,
                FrameView::NoFace => {}
            }
            Ok(decider.push(view))
        };
        match &station.supply {
            FrameSupply::Shared(feed_in) => shared_frames(feed_in, deadline, &mut feed)?,
            FrameSupply::Camera(camera) => {
                let _busy = match station.camera.try_lock() {
                    Ok(guard) => guard,
                    // A request that panicked holding it left no camera open: carry on.
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(TryLockError::WouldBlock) => {
                        return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            "the camera is busy with another login; try again",
                        ))
                    }
                };
                camera_frames(camera, ctx.pipeline, deadline, &mut feed)?
            }
        }
    };
    if frames == 0 {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "no frames from the camera in time (is it connected, is the door loop running?)",
        ));
    }
    let outcome = outcome.unwrap_or_else(|| decider.finish());
    let mut limiter = station.limiter();
    if outcome == Outcome::Accepted {
        limiter.succeeded(user);
    } else if outcome.is_failure() {
        if let Some(pause) = limiter.failed(user, Instant::now()) {
            log::warn!(
                "face login for {user} paused {} s after {} failures",
                pause.as_secs(),
                limiter.failures(user)
            );
        }
    }
    Ok(Attempt {
        outcome,
        score: decider.best_score(),
        person,
        frames,
    })
}

/// Prompts for the person at the camera, each said once per attempt.
#[derive(Default)]
struct Prompts {
    said: Vec<&'static str>,
}

impl Prompts {
    fn say(&mut self, emit: Emit<'_>, text: &'static str) -> Result<(), ApiError> {
        if self.said.contains(&text) {
            return Ok(());
        }
        self.said.push(text);
        emit(json!({ "prompt": text }))
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the client went away: {e}")))
    }
}

type OnFrame<'f> = &'f mut dyn FnMut(&AnalysedFrame) -> Result<Option<Outcome>, ApiError>;

/// Listen to the door loop's frames until a decision or the deadline.
fn shared_frames(
    feed: &FrameFeed,
    deadline: Instant,
    on_frame: OnFrame<'_>,
) -> Result<Option<Outcome>, ApiError> {
    let frames = feed.listen();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match frames.recv_timeout(left) {
            Ok(frame) => {
                if let Some(outcome) = on_frame(&frame)? {
                    return Ok(Some(outcome));
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                return Ok(None)
            }
        }
    }
}

/// Open the camera for this request, analyse its frames until a decision or the deadline.
fn camera_frames(
    camera: &CameraParams,
    pipeline: &Pipeline,
    deadline: Instant,
    on_frame: OnFrame<'_>,
) -> Result<Option<Outcome>, ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("no camera for face login: {e}"),
        )
    };
    let (mut open, _) = crate::terminal::devices::opener(camera).map_err(|e| unavailable(&e))?;
    let mut source = open().map_err(|e| unavailable(&e))?;
    let mut frame = Frame::empty();
    let mut read = 0u32;
    while Instant::now() < deadline {
        match source.read_into(&mut frame) {
            Ok(true) => {}
            // A finite source (a folder of frames) ran out: decide on what was seen.
            Ok(false) => return Ok(None),
            Err(SourceError::BadFrame(e)) => {
                log::warn!("face login: {e}");
                continue;
            }
            Err(e @ SourceError::Lost(_)) if read == 0 => return Err(unavailable(&e)),
            Err(e) => {
                log::warn!("face login: camera lost mid-attempt: {e}");
                return Ok(None);
            }
        }
        read += 1;
        let analysis = match pipeline.analyse(&frame.image, &mut StageTimes::default()) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("face login: frame {}: {e}", frame.index);
                continue;
            }
        };
        let faces: Vec<SeenFace> = analysis
            .faces
            .into_iter()
            .map(|f| SeenFace {
                bbox: f.detection.bbox,
                live: f.liveness.map(|l| l.live),
                embedding: Some(f.embedding),
            })
            .collect();
        let analysed = AnalysedFrame {
            index: frame.index,
            timestamp: frame.timestamp,
            width: frame.image.width(),
            height: frame.image.height(),
            dark_luma: faces.is_empty().then(|| mean_luma(&frame.image)),
            faces,
        };
        if let Some(outcome) = on_frame(&analysed)? {
            return Ok(Some(outcome));
        }
    }
    Ok(None)
}

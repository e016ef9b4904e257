//! From per-frame face observations to decisions: a pure state machine, no devices, no clock of
//! its own (time comes in with every frame), so recorded frames decide the same way every run.
//!
//! Faces are tracked across frames by box overlap. A track is accepted as person P when P
//! matched in `accept_frames` of its last `window_frames` usable frames; it is decided unknown
//! when `unknown_after_frames` usable frames pass without that. Frames that fail the quality
//! gates are not counted: they give the person a hint instead. Consecutive unknowns lock the
//! terminal for a while (NIST SP 800-63B rate limiting), and a person accepted moments ago is
//! not accepted again until their cooldown ends.
//!
//! With track fusion (`fuse_track`, on by default), the votes are not enough on their own: the
//! track's quality-weighted mean embedding over the same window must match the voted person at
//! the door's threshold too, so a few lucky frames of a look-alike do not open the door.
//!
//! With a [`LivenessRule`], a track is decided only when its deciding window also looks live
//! (mean liveness score at or above the threshold, no frame below the floor); otherwise it is
//! decided `spoof`, which counts as a failed attempt like an unknown.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vision::embed::l2_normalised;
use crate::vision::liveness::LivenessParams;
// The quality gates and hints are the vision core's; the decider applies them.
use crate::vision::quality::Quality;
pub use crate::vision::quality::{Hint, QualityGates};

/// Tracking and decision rules; every default is what a door terminal should start from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecideParams {
    /// N: usable frames of one track that must match the same person to accept them.
    pub accept_frames: usize,
    /// M: the window of a track's most recent usable frames the N are counted in.
    pub window_frames: usize,
    /// Usable frames after which a track nobody was accepted on is decided unknown; the track
    /// may try again after as many more frames (each try is one failed attempt).
    pub unknown_after_frames: usize,
    /// Box overlap (IoU) above which a face continues a track from the previous frame.
    pub min_iou: f32,
    /// A track not seen for this long is over.
    pub track_timeout_s: f32,
    /// An accepted person is not accepted again for this long (one door opening per visit).
    pub cooldown_s: f32,
    /// Consecutive unknown decisions that lock the terminal...
    pub max_failures: u32,
    /// ...for this long; nothing is decided meanwhile.
    pub lockout_s: f32,
    /// Accept only when the window's quality-weighted mean embedding matches the voted person
    /// as well (see the module comment).
    pub fuse_track: bool,
    pub quality: QualityGates,
}

impl Default for DecideParams {
    fn default() -> Self {
        Self {
            accept_frames: 5,
            window_frames: 8,
            unknown_after_frames: 12,
            min_iou: 0.3,
            track_timeout_s: 1.0,
            cooldown_s: 10.0,
            max_failures: 5,
            lockout_s: 30.0,
            fuse_track: true,
            quality: QualityGates::default(),
        }
    }
}

/// An enrolled person a face matched at or above the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub person_id: u32,
    pub name: String,
    pub similarity: f32,
}

/// One face of one frame, as the pipeline and gallery saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f32; 4],
    pub quality: Quality,
    /// The person matched above threshold, if any.
    pub identity: Option<Identity>,
    /// The best similarity against anyone, matched or not (for the log).
    pub best_similarity: f32,
    /// The face's liveness score (0..1), when it was checked.
    pub liveness: Option<f32>,
    /// The face's embedding, when it was computed (usable faces), for track fusion.
    pub embedding: Option<Vec<f32>>,
}

/// Who an embedding matches at the door's threshold: the gallery search, handed to
/// [`Decider::step_fused`] so the decider itself stays free of the gallery.
pub type FusedSearch<'a> = &'a dyn Fn(&[f32]) -> Option<Identity>;

/// How much one frame counts in the track's mean embedding: a turned head and a face smaller
/// than the embedder's 112-pixel chip (upsampled, so with less detail) count less.
fn fusion_weight(q: &Quality) -> f32 {
    q.yaw_deg.to_radians().cos().max(0.0) * (q.face_size / 112.0).clamp(0.0, 1.0)
}

/// The weighted mean of the window's embeddings, renormalised; `None` without any.
fn fused_embedding(frames: &VecDeque<Option<(f32, Vec<f32>)>>) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f32>> = None;
    for (w, e) in frames.iter().flatten() {
        let n = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n <= 0.0 || *w <= 0.0 {
            continue;
        }
        let acc = sum.get_or_insert_with(|| vec![0.0; e.len()]);
        if acc.len() != e.len() {
            continue;
        }
        for (a, x) in acc.iter_mut().zip(e) {
            *a += w * x / n;
        }
    }
    l2_normalised(&sum?).ok()
}

/// When a track's frames count as a live person: the score is averaged over the deciding
/// window, because one frame's score is noisy, and any one frame below `floor` vetoes, because
/// an attacker only needs the mean to drift up while a live face rarely dips that low.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivenessRule {
    pub threshold: f32,
    pub floor: f32,
}

impl LivenessRule {
    /// The rule of the `[liveness]` config section.
    pub fn of(params: &LivenessParams) -> Self {
        Self {
            threshold: params.threshold,
            floor: params.floor,
        }
    }

    /// No scores (nothing was checked) never passes.
    pub fn passes(&self, scores: &[f32]) -> bool {
        !scores.is_empty()
            && scores.iter().sum::<f32>() / scores.len() as f32 >= self.threshold
            && scores.iter().all(|&s| s >= self.floor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Accepted {
        person_id: u32,
        name: String,
    },
    Unknown,
    /// The face did not look live (a printed photo or a screen).
    Spoof,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Frame time of the decision.
    #[serde(serialize_with = "secs")]
    pub at: Duration,
    pub track: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Accepted: mean similarity of the matching frames; unknown: best similarity seen.
    pub similarity: f32,
    /// Usable frames the decision rests on (matching frames for an accept).
    pub frames_used: u32,
    /// Frame time since the track was first seen.
    #[serde(serialize_with = "secs")]
    pub track_age: Duration,
    /// Similarity of the track's fused embedding to the person it matched, when track fusion
    /// was asked and it matched someone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused_similarity: Option<f32>,
    /// Mean liveness score of the deciding window, when liveness was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<f32>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Everything one frame produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub decisions: Vec<Decision>,
    /// For the most prominent undecided face that failed a quality gate.
    pub hint: Option<Hint>,
    /// Time left in a lockout.
    pub locked_for: Option<Duration>,
    /// Faces being tracked (background faces excluded).
    pub tracked: usize,
}

#[derive(Debug)]
struct Track {
    id: u64,
    bbox: [f32; 4],
    first_seen: Duration,
    last_seen: Duration,
    /// Most recent usable frames: the person matched, if any, and the similarity.
    window: VecDeque<Option<(u32, f32)>>,
    /// The liveness scores of the same frames.
    liveness: VecDeque<f32>,
    /// The same frames' fusion weights and embeddings.
    embeddings: VecDeque<Option<(f32, Vec<f32>)>>,
    names: Vec<(u32, String)>,
    /// Usable frames since the track started or last tried.
    usable: usize,
    best_similarity: f32,
    accepted: bool,
}

/// The decision state of one terminal.
#[derive(Debug)]
pub struct Decider {
    params: DecideParams,
    tracks: Vec<Track>,
    next_track: u64,
    /// Person and the frame time they were last accepted.
    recent: Vec<(u32, Duration)>,
    failures: u32,
    locked_until: Option<Duration>,
    liveness: Option<LivenessRule>,
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

impl Decider {
    pub fn new(params: DecideParams) -> Self {
        Self {
            params,
            tracks: Vec::new(),
            next_track: 1,
            recent: Vec::new(),
            failures: 0,
            locked_until: None,
            liveness: None,
        }
    }

    /// Decide only live-looking tracks (see [`LivenessRule`]).
    pub fn with_liveness(mut self, rule: Option<LivenessRule>) -> Self {
        self.liveness = rule;
        self
    }

    pub fn params(&self) -> &DecideParams {
        &self.params
    }

    /// Consecutive unknown decisions since the last accept or lockout.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Drop every track that has matched one of `people` (just removed from the gallery), so
    /// their earlier matches count for nothing: the face is tracked afresh from the next frame
    /// and decided against the gallery as it is now. Returns how many tracks were dropped.
    pub fn forget_people(&mut self, people: &[u32]) -> usize {
        let before = self.tracks.len();
        self.tracks
            .retain(|t| !t.names.iter().any(|(id, _)| people.contains(id)));
        self.recent.retain(|(id, _)| !people.contains(id));
        before - self.tracks.len()
    }

    /// Drop every track (the gallery changed in ways not known one by one).
    pub fn forget_all(&mut self) -> usize {
        self.recent.clear();
        std::mem::take(&mut self.tracks).len()
    }

    /// Feed the faces of the frame taken at `now`, deciding on votes alone. Frame times must not
    /// go backwards.
    pub fn step(&mut self, now: Duration, faces: &[Observation]) -> Step {
        self.step_fused(now, faces, None)
    }

    /// [`Decider::step`], with the gallery search that track fusion needs when `fuse_track` is
    /// set (without a search, the votes decide alone).
    pub fn step_fused(
        &mut self,
        now: Duration,
        faces: &[Observation],
        search: Option<FusedSearch<'_>>,
    ) -> Step {
        let search = search.filter(|_| self.params.fuse_track);
        let p = &self.params;
        let timeout = Duration::from_secs_f32(p.track_timeout_s.max(0.0));
        self.tracks
            .retain(|t| now.saturating_sub(t.last_seen) <= timeout);
        let cooldown = Duration::from_secs_f32(p.cooldown_s.max(0.0));
        self.recent
            .retain(|&(_, at)| now.saturating_sub(at) < cooldown);
        if self.locked_until.is_some_and(|until| now >= until) {
            self.locked_until = None;
        }

        // Greedy association, best overlap first; background faces are left out entirely. A
        // face that continues a track is not background, whatever its size (see
        // `continues_track`).
        let faces: Vec<&Observation> = faces
            .iter()
            .filter(|f| {
                f.quality.face_size >= p.quality.ignore_below_px || self.continues_track(&f.bbox)
            })
            .collect();
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (fi, f) in faces.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let o = iou(&f.bbox, &t.bbox);
                if o >= p.min_iou {
                    pairs.push((o, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of: Vec<Option<usize>> = vec![None; faces.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, fi, ti) in pairs {
            if track_of[fi].is_none() && !taken[ti] {
                track_of[fi] = Some(ti);
                taken[ti] = true;
            }
        }
        for slot in track_of.iter_mut().filter(|s| s.is_none()) {
            self.tracks.push(Track {
                id: self.next_track,
                bbox: [0.0; 4],
                first_seen: now,
                last_seen: now,
                window: VecDeque::with_capacity(p.window_frames),
                liveness: VecDeque::with_capacity(p.window_frames),
                embeddings: VecDeque::with_capacity(p.window_frames),
                names: Vec::new(),
                usable: 0,
                best_similarity: f32::NEG_INFINITY,
                accepted: false,
            });
            self.next_track += 1;
            *slot = Some(self.tracks.len() - 1);
        }

        let mut step = Step {
            tracked: self.tracks.len(),
            ..Step::default()
        };
        let mut hint_size = 0.0;
        for (face, ti) in faces.iter().zip(track_of) {
            let ti = ti.expect("every face has a track");
            let gates = self.params.quality.check(&face.quality);
            let track = &mut self.tracks[ti];
            track.bbox = face.bbox;
            track.last_seen = now;
            if track.accepted {
                continue;
            }
            if let Some(hint) = gates {
                if face.quality.face_size > hint_size {
                    hint_size = face.quality.face_size;
                    step.hint = Some(hint);
                }
                continue;
            }
            track.usable += 1;
            track.best_similarity = track.best_similarity.max(face.best_similarity);
            if track.window.len() == self.params.window_frames.max(1) {
                track.window.pop_front();
            }
            if track.liveness.len() == self.params.window_frames.max(1) {
                track.liveness.pop_front();
            }
            track.liveness.extend(face.liveness);
            if track.embeddings.len() == self.params.window_frames.max(1) {
                track.embeddings.pop_front();
            }
            track.embeddings.push_back(
                face.embedding
                    .as_ref()
                    .map(|e| (fusion_weight(&face.quality), e.clone())),
            );
            track.window.push_back(face.identity.as_ref().map(|i| {
                if !track.names.iter().any(|(id, _)| *id == i.person_id) {
                    track.names.push((i.person_id, i.name.clone()));
                }
                (i.person_id, i.similarity)
            }));
        }

        if let Some(until) = self.locked_until {
            step.locked_for = Some(until - now);
            return step;
        }
        for ti in 0..self.tracks.len() {
            if self.tracks[ti].last_seen != now || self.tracks[ti].accepted {
                continue;
            }
            if let Some(d) = self.try_decide(ti, now, search) {
                step.decisions.push(d);
            }
            if self.locked_until.is_some() {
                break;
            }
        }
        // A decision this frame outranks any hint.
        if !step.decisions.is_empty() {
            step.hint = None;
        }
        step.locked_for = self.locked_until.map(|until| until - now);
        step
    }

    /// Whether a face at `bbox` continues a track (one seen within the track timeout). Only a
    /// new face must reach `ignore_below_px` to be tracked; a tracked face stays tracked below
    /// it. Without that a person standing still at about that size came and went with every
    /// pixel the detector's box moved by, and so did the "move closer" hint for them.
    pub fn continues_track(&self, bbox: &[f32; 4]) -> bool {
        self.tracks
            .iter()
            .any(|t| iou(bbox, &t.bbox) >= self.params.min_iou)
    }

    /// Whether a face at `bbox` continues a track that is already accepted: its embedding would
    /// change nothing, so the terminal need not compute it.
    pub fn is_settled(&self, bbox: &[f32; 4]) -> bool {
        self.tracks
            .iter()
            .map(|t| (iou(bbox, &t.bbox), t.accepted))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .is_some_and(|(o, accepted)| accepted && o >= self.params.min_iou.max(0.5))
    }

    /// The box of every track seen in the frame at `now` and how far its decision has got
    /// (0–1): matching frames towards an accept or usable frames towards "unknown", whichever
    /// is further; 1 once accepted.
    pub fn progress(&self, now: Duration) -> Vec<([f32; 4], f32)> {
        let p = &self.params;
        self.tracks
            .iter()
            .filter(|t| t.last_seen == now)
            .map(|t| {
                let matches = t
                    .names
                    .iter()
                    .map(|(id, _)| {
                        t.window
                            .iter()
                            .flatten()
                            .filter(|(pid, _)| pid == id)
                            .count()
                    })
                    .max()
                    .unwrap_or(0);
                let towards_accept = matches as f32 / p.accept_frames.max(1) as f32;
                let towards_unknown = t.usable as f32 / p.unknown_after_frames.max(1) as f32;
                let done = if t.accepted {
                    1.0
                } else {
                    towards_accept.max(towards_unknown).min(1.0)
                };
                (t.bbox, done)
            })
            .collect()
    }

    fn try_decide(
        &mut self,
        ti: usize,
        now: Duration,
        search: Option<FusedSearch<'_>>,
    ) -> Option<Decision> {
        let p = &self.params;
        let track = &mut self.tracks[ti];
        // The person with the most matching frames in the window (ties: the higher total).
        let mut best: Option<(u32, u32, f32)> = None;
        for (id, _) in &track.names {
            let (n, sum) = track
                .window
                .iter()
                .flatten()
                .filter(|(pid, _)| pid == id)
                .fold((0u32, 0.0f32), |(n, s), (_, sim)| (n + 1, s + sim));
            if best.is_none_or(|(_, bn, bs)| n > bn || (n == bn && sum > bs)) {
                best = Some((*id, n, sum));
            }
        }
        let voted = best.filter(|b| b.1 as usize >= p.accept_frames);
        // Fusion confirms the vote: the mean embedding must match the same person.
        let (accept, fused_similarity) = match (voted, search) {
            (Some(v), Some(search)) => {
                let fused = fused_embedding(&track.embeddings).and_then(|e| search(&e));
                let same = fused.as_ref().is_some_and(|i| i.person_id == v.0);
                (same.then_some(v), fused.map(|i| i.similarity))
            }
            (v, _) => (v, None),
        };
        if accept.is_none() && track.usable < p.unknown_after_frames.max(1) {
            return None;
        }
        let scores = track.liveness.make_contiguous();
        let liveness =
            (!scores.is_empty()).then(|| scores.iter().sum::<f32>() / scores.len() as f32);
        let spoof = self.liveness.is_some_and(|rule| !rule.passes(scores));
        if let Some((person_id, n, sum)) = accept.filter(|_| !spoof) {
            track.accepted = true;
            if self.recent.iter().any(|(id, _)| *id == person_id) {
                // Accepted moments ago (still at the door): no second opening, no log line.
                return None;
            }
            let name = track
                .names
                .iter()
                .find(|(id, _)| *id == person_id)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            self.recent.push((person_id, now));
            self.failures = 0;
            return Some(Decision {
                at: now,
                track: track.id,
                outcome: Outcome::Accepted { person_id, name },
                similarity: sum / n as f32,
                frames_used: n,
                track_age: now - track.first_seen,
                fused_similarity,
                liveness,
            });
        }
        let decision = Decision {
            at: now,
            track: track.id,
            outcome: if spoof {
                Outcome::Spoof
            } else {
                Outcome::Unknown
            },
            similarity: track.best_similarity,
            frames_used: track.usable as u32,
            track_age: now - track.first_seen,
            fused_similarity,
            liveness,
        };
        // Another try needs as many fresh frames again.
        track.usable = 0;
        track.window.clear();
        track.liveness.clear();
        track.embeddings.clear();
        track.best_similarity = f32::NEG_INFINITY;
        self.failures += 1;
        if self.failures >= p.max_failures.max(1) {
            self.failures = 0;
            self.locked_until = Some(now + Duration::from_secs_f32(p.lockout_s.max(0.0)));
        }
        Some(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: u64 = 10;

    fn at(frame: u64) -> Duration {
        Duration::from_millis(frame * 1000 / FPS)
    }

    fn good() -> Quality {
        Quality {
            face_size: 120.0,
            brightness: 120.0,
            sharpness: 200.0,
            yaw_deg: 0.0,
        }
    }

    fn face(x: f32, who: Option<(u32, &str)>, sim: f32) -> Observation {
        Observation {
            bbox: [x, 50.0, x + 120.0, 170.0],
            quality: good(),
            identity: who.map(|(id, name)| Identity {
                person_id: id,
                name: name.to_string(),
                similarity: sim,
            }),
            best_similarity: sim,
            liveness: None,
            embedding: None,
        }
    }

    fn alice(x: f32) -> Observation {
        face(x, Some((1, "alice")), 0.7)
    }

    fn stranger(x: f32) -> Observation {
        face(x, None, 0.2)
    }

    /// Run `frames` (one list of faces per frame, 10 fps) and collect every decision.
    fn run(d: &mut Decider, start: u64, frames: &[Vec<Observation>]) -> Vec<Decision> {
        frames
            .iter()
            .enumerate()
            .flat_map(|(i, f)| d.step(at(start + i as u64), f).decisions)
            .collect()
    }

    /// Alice's templates point along axis 1; the search matches her at 0.5 (the similarity is
    /// the cosine, as the gallery's).
    fn alice_search(e: &[f32]) -> Option<Identity> {
        (e[1] >= 0.5).then(|| Identity {
            person_id: 1,
            name: "alice".into(),
            similarity: e[1],
        })
    }

    fn embedded(mut o: Observation, e: [f32; 3]) -> Observation {
        o.embedding = Some(e.to_vec());
        o
    }

    fn run_fused(d: &mut Decider, frames: &[Vec<Observation>]) -> Vec<Decision> {
        frames
            .iter()
            .enumerate()
            .flat_map(|(i, f)| d.step_fused(at(i as u64), f, Some(&alice_search)).decisions)
            .collect()
    }

    #[test]
    fn fusion_confirms_a_vote_whose_mean_embedding_matches() {
        let mut d = Decider::new(DecideParams::default());
        let frames: Vec<_> = (0..5)
            .map(|i| {
                let wobble = if i % 2 == 0 { 0.3 } else { -0.3 };
                vec![embedded(alice(100.0), [wobble, 0.954, 0.0])]
            })
            .collect();
        let decisions = run_fused(&mut d, &frames);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert!(matches!(
            decisions[0].outcome,
            Outcome::Accepted { person_id: 1, .. }
        ));
        // The wobble cancels out in the mean: the fused face is closer than any one frame.
        let fused = decisions[0].fused_similarity.expect("fusion ran");
        assert!(fused > 0.99, "{fused}");
    }

    #[test]
    fn votes_whose_mean_embedding_matches_nobody_do_not_open_the_door() {
        // Five frames just above alice's threshold (0.6) among three far from her: the votes
        // reach five of eight, but the window's mean embedding is at 0.44, below the threshold,
        // so the track is decided unknown after 12 usable frames instead.
        let hits = [
            true, false, true, false, true, false, true, true, true, false, true, false,
        ];
        let frames: Vec<_> = hits
            .iter()
            .map(|&hit| {
                vec![if hit {
                    embedded(alice(100.0), [0.8, 0.6, 0.0])
                } else {
                    embedded(stranger(100.0), [0.0, -0.2, 0.98])
                }]
            })
            .collect();
        let mut d = Decider::new(DecideParams::default());
        let decisions = run_fused(&mut d, &frames);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert_eq!(decisions[0].outcome, Outcome::Unknown);
        assert_eq!(decisions[0].at, at(11));
        // The same frames on votes alone accept alice at the eighth.
        let mut votes = Decider::new(DecideParams {
            fuse_track: false,
            ..DecideParams::default()
        });
        let decisions = run_fused(&mut votes, &frames);
        assert!(matches!(
            decisions[0].outcome,
            Outcome::Accepted { person_id: 1, .. }
        ));
        assert_eq!(decisions[0].at, at(7));
        assert_eq!(decisions[0].fused_similarity, None);
    }

    #[test]
    fn turned_and_small_faces_count_less_in_the_mean() {
        let q = good();
        assert_eq!(fusion_weight(&q), 1.0);
        let turned = Quality { yaw_deg: 30.0, ..q };
        let small = Quality {
            face_size: 70.0,
            ..q
        };
        assert!(fusion_weight(&turned) < 0.9 && fusion_weight(&turned) > 0.8);
        assert!((fusion_weight(&small) - 0.625).abs() < 1e-6);
        // A heavier frame pulls the mean its way.
        let frames = VecDeque::from([Some((1.0, vec![1.0, 0.0])), Some((0.25, vec![0.0, 2.0]))]);
        let m = fused_embedding(&frames).unwrap();
        assert!(
            (m[0] - 0.970_142_5).abs() < 1e-5 && (m[1] - 0.242_535_6).abs() < 1e-5,
            "{m:?}"
        );
        assert_eq!(fused_embedding(&VecDeque::from([None])), None);
    }

    #[test]
    fn forgetting_a_removed_person_drops_their_window_and_their_accepted_track() {
        let mut d = Decider::new(DecideParams::default());
        // Four matches: one short of an accept. Removed, then seen as a stranger from then on.
        assert!(run(&mut d, 0, &vec![vec![alice(100.0)]; 4]).is_empty());
        assert_eq!(d.forget_people(&[2]), 0, "nobody else's tracks are touched");
        assert_eq!(d.forget_people(&[1]), 1);
        // Without the purge one more match would accept; now the old matches count for nothing.
        let after = run(&mut d, 4, &vec![vec![stranger(100.0)]; 12]);
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0].outcome, Outcome::Unknown);
        // An accepted (silent) track is dropped too, so the face is decided again.
        let mut d = Decider::new(DecideParams::default());
        assert_eq!(run(&mut d, 0, &vec![vec![alice(100.0)]; 5]).len(), 1);
        assert_eq!(d.forget_people(&[1]), 1);
        let again = run(&mut d, 5, &vec![vec![stranger(100.0)]; 12]);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].outcome, Outcome::Unknown);
        assert_eq!(d.forget_all(), 1);
    }

    #[test]
    fn five_matching_frames_of_eight_accept() {
        let mut d = Decider::new(DecideParams::default());
        // Match, miss, match, miss, match, miss, match, match: the fifth match is frame 8.
        let pattern = [true, false, true, false, true, false, true, true];
        let frames: Vec<_> = pattern
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let x = 100.0 + i as f32;
                vec![if m { alice(x) } else { stranger(x) }]
            })
            .collect();
        let decisions = run(&mut d, 0, &frames[..7]);
        assert!(
            decisions.is_empty(),
            "4 matches are not enough: {decisions:?}"
        );
        let last = d.step(at(7), &frames[7]).decisions;
        assert_eq!(last.len(), 1);
        let decision = &last[0];
        assert_eq!(
            decision.outcome,
            Outcome::Accepted {
                person_id: 1,
                name: "alice".into()
            }
        );
        assert_eq!(decision.frames_used, 5);
        assert!((decision.similarity - 0.7).abs() < 1e-6);
        assert_eq!(decision.track_age, at(7));
        // Accepted once: the track stays decided.
        assert!(run(&mut d, 8, &vec![vec![alice(108.0)]; 20]).is_empty());
    }

    #[test]
    fn matches_spread_over_two_tracks_do_not_add_up() {
        let mut d = Decider::new(DecideParams::default());
        // Alice appears at two places alternately: two tracks, 3 matches each.
        let frames: Vec<_> = (0..6)
            .map(|i| vec![alice(if i % 2 == 0 { 0.0 } else { 400.0 })])
            .collect();
        let decisions = run(&mut d, 0, &frames);
        assert!(decisions.is_empty(), "{decisions:?}");
    }

    #[test]
    fn a_stranger_becomes_unknown_and_tries_again() {
        let mut d = Decider::new(DecideParams::default());
        let decisions = run(&mut d, 0, &vec![vec![stranger(200.0)]; 24]);
        assert_eq!(decisions.len(), 2, "{decisions:?}");
        assert!(decisions.iter().all(|d| d.outcome == Outcome::Unknown));
        assert_eq!(decisions[0].at, at(11));
        assert_eq!(decisions[0].frames_used, 12);
        assert_eq!(decisions[1].at, at(23));
        assert_eq!(d.failures(), 2);
    }

    #[test]
    fn two_faces_are_two_tracks() {
        let mut d = Decider::new(DecideParams::default());
        let bob = |x| face(x, Some((2, "bob")), 0.6);
        let frames: Vec<_> = (0..5).map(|_| vec![alice(0.0), bob(300.0)]).collect();
        let decisions = run(&mut d, 0, &frames);
        let names: Vec<_> = decisions
            .iter()
            .map(|d| match &d.outcome {
                Outcome::Accepted { name, .. } => name.as_str(),
                Outcome::Unknown => "unknown",
                Outcome::Spoof => "spoof",
            })
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_ne!(decisions[0].track, decisions[1].track);
    }

    #[test]
    fn cooldown_suppresses_a_second_accept_until_it_ends() {
        let mut d = Decider::new(DecideParams::default());
        assert_eq!(run(&mut d, 0, &vec![vec![alice(0.0)]; 5]).len(), 1);
        // Alice leaves (track times out) and comes back 3 s later: still in cooldown.
        assert!(run(&mut d, 30, &vec![vec![alice(300.0)]; 10]).is_empty());
        // After the cooldown (10 s) and a fresh track, she is accepted again.
        let again = run(&mut d, 120, &vec![vec![alice(0.0)]; 5]);
        assert_eq!(again.len(), 1);
        assert!(again[0].track > 2);
    }

    #[test]
    fn a_track_ends_after_its_timeout() {
        let mut d = Decider::new(DecideParams::default());
        // Three matches, then the face is gone for 2 s, then three more at the same place:
        // the window restarted, so no accept.
        let mut decisions = run(&mut d, 0, &vec![vec![alice(0.0)]; 3]);
        decisions.extend(run(&mut d, 23, &vec![vec![alice(0.0)]; 3]));
        assert!(decisions.is_empty(), "{decisions:?}");
        // A short gap (0.5 s) keeps the track.
        let mut d = Decider::new(DecideParams::default());
        let mut decisions = run(&mut d, 0, &vec![vec![alice(0.0)]; 3]);
        decisions.extend(run(&mut d, 8, &vec![vec![alice(2.0)]; 2]));
        assert_eq!(decisions.len(), 1);
    }

    #[test]
    fn poor_frames_give_hints_and_are_not_counted() {
        let mut d = Decider::new(DecideParams::default());
        let with = |q: Quality| Observation {
            quality: q,
            ..alice(0.0)
        };
        let cases = [
            (
                Quality {
                    face_size: 50.0,
                    ..good()
                },
                Hint::MoveCloser,
            ),
            (
                Quality {
                    brightness: 10.0,
                    ..good()
                },
                Hint::MoreLight,
            ),
            (
                Quality {
                    yaw_deg: -60.0,
                    ..good()
                },
                Hint::LookAtCamera,
            ),
            (
                Quality {
                    sharpness: 1.0,
                    ..good()
                },
                Hint::HoldStill,
            ),
        ];
        for (i, (q, hint)) in cases.into_iter().enumerate() {
            let step = d.step(at(i as u64), &[with(q)]);
            assert_eq!(step.hint, Some(hint));
            assert!(step.decisions.is_empty());
        }
        // Four poor frames counted nothing: it still takes five good ones.
        let decisions = run(&mut d, 4, &vec![vec![alice(0.0)]; 4]);
        assert!(decisions.is_empty());
        assert_eq!(run(&mut d, 8, &[vec![alice(0.0)]]).len(), 1);
    }

    #[test]
    fn background_faces_are_ignored() {
        let mut d = Decider::new(DecideParams::default());
        let tiny = Observation {
            quality: Quality {
                face_size: 20.0,
                ..good()
            },
            ..stranger(500.0)
        };
        for i in 0..40 {
            let step = d.step(at(i), std::slice::from_ref(&tiny));
            assert_eq!(step, Step::default());
        }
    }

    #[test]
    fn a_tracked_face_stays_tracked_below_the_background_size() {
        let mut d = Decider::new(DecideParams::default());
        let sized = |size: f32, x: f32| Observation {
            quality: Quality {
                face_size: size,
                ..good()
            },
            ..stranger(x)
        };
        // A still face whose box measures 41 px, then 39 px (below `ignore_below_px` 40), on
        // alternate frames: one track, and the same hint on every frame.
        for i in 0..20 {
            let size = if i % 2 == 0 { 41.0 } else { 39.0 };
            let step = d.step(at(i), &[sized(size, 200.0)]);
            assert_eq!(step.hint, Some(Hint::MoveCloser), "frame {i}");
            assert_eq!(step.tracked, 1, "frame {i}");
        }
        // A new face of 39 px elsewhere is still background.
        let step = d.step(at(20), &[sized(41.0, 200.0), sized(39.0, 500.0)]);
        assert_eq!(step.tracked, 1);
    }

    #[test]
    fn five_failures_lock_the_terminal_then_it_decides_again() {
        let params = DecideParams {
            unknown_after_frames: 2,
            ..DecideParams::default()
        };
        let mut d = Decider::new(params);
        // Five strangers in turn, far apart so each is a new track.
        let mut t = 0;
        let mut decisions = Vec::new();
        for k in 0..5 {
            decisions.extend(run(&mut d, t, &vec![vec![stranger(k as f32 * 130.0)]; 2]));
            t += 2;
        }
        assert_eq!(decisions.len(), 5);
        let step = d.step(at(t), &[alice(1000.0)]);
        assert_eq!(step.locked_for, Some(Duration::from_secs(30) - at(1)));
        // Alice stands there during the lockout: nothing is decided...
        let during = run(&mut d, t + 1, &vec![vec![alice(1000.0)]; 290]);
        assert!(during.is_empty());
        // ...until it ends (30 s after the fifth failure, at frame 9).
        let after = d.step(at(309), &[alice(1000.0)]);
        assert_eq!(after.locked_for, None);
        assert_eq!(after.decisions.len(), 1);
        assert!(matches!(
            after.decisions[0].outcome,
            Outcome::Accepted { .. }
        ));
        assert_eq!(d.failures(), 0);
    }

    #[test]
    fn an_accept_resets_the_failure_count() {
        let params = DecideParams {
            unknown_after_frames: 2,
            ..DecideParams::default()
        };
        let mut d = Decider::new(params);
        let mut t = 0;
        for k in 0..4 {
            run(&mut d, t, &vec![vec![stranger(k as f32 * 130.0)]; 2]);
            t += 2;
        }
        assert_eq!(d.failures(), 4);
        run(&mut d, t, &vec![vec![alice(1000.0)]; 5]);
        assert_eq!(d.failures(), 0);
    }

    #[test]
    fn iou_of_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    }

    fn scored(o: Observation, live: f32) -> Observation {
        Observation {
            liveness: Some(live),
            ..o
        }
    }

    const RULE: LivenessRule = LivenessRule {
        threshold: 0.5,
        floor: 0.1,
    };

    #[test]
    fn a_matching_photo_is_a_spoof_and_a_failed_attempt() {
        let mut d = Decider::new(DecideParams::default()).with_liveness(Some(RULE));
        let decisions = run(&mut d, 0, &vec![vec![scored(alice(0.0), 0.05)]; 5]);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert_eq!(decisions[0].outcome, Outcome::Spoof);
        assert_eq!(decisions[0].liveness, Some(0.05));
        assert_eq!(d.failures(), 1);
    }

    #[test]
    fn the_window_mean_decides_and_one_frame_below_the_floor_vetoes() {
        // Scores 0.3 and 0.9 alternate: mean 0.6 over the window, every frame above the floor.
        let mut d = Decider::new(DecideParams::default()).with_liveness(Some(RULE));
        let frames: Vec<_> = (0..5)
            .map(|i| vec![scored(alice(0.0), if i % 2 == 0 { 0.3 } else { 0.9 })])
            .collect();
        let decisions = run(&mut d, 0, &frames);
        assert!(matches!(decisions[0].outcome, Outcome::Accepted { .. }));
        // High scores but one frame at 0.05: refused.
        let mut d = Decider::new(DecideParams::default()).with_liveness(Some(RULE));
        let mut frames = vec![vec![scored(alice(0.0), 0.99)]; 5];
        frames[2] = vec![scored(alice(0.0), 0.05)];
        let decisions = run(&mut d, 0, &frames);
        assert_eq!(decisions[0].outcome, Outcome::Spoof);
    }

    #[test]
    fn a_stranger_photo_is_a_spoof_too() {
        let mut d = Decider::new(DecideParams::default()).with_liveness(Some(RULE));
        let decisions = run(&mut d, 0, &vec![vec![scored(stranger(0.0), 0.0)]; 12]);
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].outcome, Outcome::Spoof);
    }

    #[test]
    fn without_scores_the_rule_never_passes() {
        assert!(!RULE.passes(&[]));
        assert!(RULE.passes(&[0.5]));
    }
}

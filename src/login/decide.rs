//! One login attempt over camera frames: accept only after `accept_frames` consecutive frames
//! whose face matches the account's person at the login threshold (and, with liveness, looks
//! live); refuse early on repeated non-matches or photos. A login threshold is stricter than the
//! door's: a false accept here is someone else's session.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoginParams {
    /// Cosine similarity to the account's templates a frame needs.
    pub threshold: f32,
    pub accept_frames: u32,
    /// Consecutive face frames below the threshold that end the attempt as not recognised.
    pub reject_frames: u32,
    /// Frames judged a presentation attack that end the attempt as a spoof.
    pub spoof_frames: u32,
    /// A frame counts towards acceptance only if liveness judged it live.
    pub need_live: bool,
}

/// What one frame showed, reduced to what the login decision needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameView {
    NoFace,
    /// No face, and the frame too dark to find one.
    Dark,
    /// The most central face: its best cosine to the account's templates, and the liveness
    /// verdict (None: not checked).
    Face {
        score: f32,
        live: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    NotRecognised,
    Spoof,
    NoFace,
    Dark,
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::NotRecognised => "not_recognised",
            Self::Spoof => "spoof",
            Self::NoFace => "no_face",
            Self::Dark => "dark",
            Self::Timeout => "timeout",
        }
    }

    /// A face was shown and refused: counts against the account's rate limit.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::NotRecognised | Self::Spoof)
    }
}

#[derive(Debug)]
pub struct LoginDecider {
    params: LoginParams,
    run: u32,
    below: u32,
    spoofs: u32,
    faces: u32,
    dark: u32,
    frames: u32,
    best: Option<f32>,
}

impl LoginDecider {
    pub fn new(params: LoginParams) -> Self {
        Self {
            params,
            run: 0,
            below: 0,
            spoofs: 0,
            faces: 0,
            dark: 0,
            frames: 0,
            best: None,
        }
    }

    /// Add one frame; Some(outcome) once the attempt is decided.
    pub fn push(&mut self, frame: FrameView) -> Option<Outcome> {
        self.frames += 1;
        let (score, live) = match frame {
            FrameView::NoFace => {
                self.run = 0;
                return None;
            }
            FrameView::Dark => {
                self.run = 0;
                self.dark += 1;
                return None;
            }
            FrameView::Face { score, live } => (score, live),
        };
        self.faces += 1;
        self.best = Some(self.best.map_or(score, |b| b.max(score)));
        if live == Some(false) {
            self.run = 0;
            self.spoofs += 1;
            return (self.spoofs >= self.params.spoof_frames).then_some(Outcome::Spoof);
        }
        if score < self.params.threshold {
            self.run = 0;
            self.below += 1;
            return (self.below >= self.params.reject_frames).then_some(Outcome::NotRecognised);
        }
        self.below = 0;
        if self.params.need_live && live != Some(true) {
            self.run = 0;
            return None;
        }
        self.run += 1;
        (self.run >= self.params.accept_frames).then_some(Outcome::Accepted)
    }

    /// Time is up without a decision.
    pub fn finish(&self) -> Outcome {
        match self.best {
            Some(best) if best >= self.params.threshold => Outcome::Timeout,
            Some(_) => Outcome::NotRecognised,
            None if self.dark * 2 >= self.frames && self.dark > 0 => Outcome::Dark,
            None => Outcome::NoFace,
        }
    }

    /// The best score any frame's face reached (None: no face seen).
    pub fn best_score(&self) -> Option<f32> {
        self.best
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: LoginParams = LoginParams {
        threshold: 0.6,
        accept_frames: 3,
        reject_frames: 4,
        spoof_frames: 2,
        need_live: true,
    };

    fn face(score: f32, live: bool) -> FrameView {
        FrameView::Face {
            score,
            live: Some(live),
        }
    }

    #[test]
    fn consecutive_live_matches_accept() {
        let mut d = LoginDecider::new(PARAMS);
        assert_eq!(d.push(face(0.7, true)), None);
        assert_eq!(
            d.push(FrameView::NoFace),
            None,
            "a lost face restarts the run"
        );
        assert_eq!(d.push(face(0.7, true)), None);
        assert_eq!(d.push(face(0.65, true)), None);
        assert_eq!(d.push(face(0.8, true)), Some(Outcome::Accepted));
        assert_eq!(d.best_score(), Some(0.8));
    }

    #[test]
    fn photos_strangers_and_empty_frames_are_refused() {
        let mut d = LoginDecider::new(PARAMS);
        assert_eq!(d.push(face(0.9, false)), None);
        assert_eq!(d.push(face(0.9, false)), Some(Outcome::Spoof));

        let mut d = LoginDecider::new(PARAMS);
        for _ in 0..3 {
            assert_eq!(d.push(face(0.3, true)), None);
        }
        assert_eq!(d.push(face(0.3, true)), Some(Outcome::NotRecognised));

        // Liveness asked for but not judged (no verdict): never accepted.
        let mut d = LoginDecider::new(PARAMS);
        for _ in 0..10 {
            assert_eq!(
                d.push(FrameView::Face {
                    score: 0.9,
                    live: None
                }),
                None
            );
        }
        assert_eq!(d.finish(), Outcome::Timeout);

        let mut d = LoginDecider::new(PARAMS);
        d.push(FrameView::Dark);
        d.push(FrameView::Dark);
        d.push(FrameView::NoFace);
        assert_eq!(d.finish(), Outcome::Dark);
        let mut d = LoginDecider::new(PARAMS);
        d.push(FrameView::NoFace);
        assert_eq!(d.finish(), Outcome::NoFace);
        assert!(Outcome::Spoof.is_failure() && !Outcome::NoFace.is_failure());
    }
}

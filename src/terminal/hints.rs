//! Hysteresis for the hint on the screen. The decider's hint is per frame: a face near a gate
//! (a box of 59 px against `min_face_px` 60, a detection that comes and goes) flips it on every
//! other frame, and a screen that flickers between "Ready" and "Move closer" tells the person
//! nothing. A new hint (or its absence) is shown only once it has held for `hold_frames`
//! analysed frames in a row, and never sooner than `min_dwell` after the last change.

use std::time::Duration;

use crate::vision::quality::Hint;

#[derive(Debug, Clone)]
pub struct HintFilter {
    hold_frames: u32,
    min_dwell: Duration,
    shown: Option<Hint>,
    /// Frame time of the last change of `shown`.
    since: Option<Duration>,
    /// The per-frame hint that differs from `shown`, and for how many frames in a row.
    candidate: Option<Hint>,
    count: u32,
}

impl Default for HintFilter {
    /// 3 frames and 0.5 s: at 10–15 analysed frames a second a hint appears within about a
    /// quarter of a second of being needed and changes at most twice a second.
    fn default() -> Self {
        Self::new(3, Duration::from_millis(500))
    }
}

impl HintFilter {
    pub fn new(hold_frames: u32, min_dwell: Duration) -> Self {
        Self {
            hold_frames: hold_frames.max(1),
            min_dwell,
            shown: None,
            since: None,
            candidate: None,
            count: 0,
        }
    }

    /// The hint to show for the frame taken at `now`, given the frame's own hint.
    pub fn update(&mut self, now: Duration, raw: Option<Hint>) -> Option<Hint> {
        if raw == self.shown {
            self.count = 0;
            return self.shown;
        }
        if raw == self.candidate && self.count > 0 {
            self.count += 1;
        } else {
            self.candidate = raw;
            self.count = 1;
        }
        let dwelt = self
            .since
            .is_none_or(|t| now.saturating_sub(t) >= self.min_dwell);
        if self.count >= self.hold_frames && dwelt {
            self.shown = raw;
            self.since = Some(now);
            self.count = 0;
        }
        self.shown
    }

    /// Forget the hint (a decision was made: the result screen replaces it).
    pub fn reset(&mut self, now: Duration) {
        self.shown = None;
        self.since = Some(now);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(frame: u64) -> Duration {
        Duration::from_millis(frame * 100)
    }

    #[test]
    fn an_alternating_hint_never_reaches_the_screen() {
        let mut f = HintFilter::default();
        for i in 0..50 {
            let raw = (i % 2 == 0).then_some(Hint::MoveCloser);
            assert_eq!(f.update(at(i), raw), None, "frame {i}");
        }
    }

    #[test]
    fn a_steady_hint_shows_after_three_frames_and_clears_the_same_way() {
        let mut f = HintFilter::default();
        let shown: Vec<_> = (0..3)
            .map(|i| f.update(at(i), Some(Hint::MoreLight)))
            .collect();
        assert_eq!(shown, [None, None, Some(Hint::MoreLight)]);
        // Gone: shown for three more frames and until 0.5 s after it appeared, then cleared.
        let shown: Vec<_> = (3..8).map(|i| f.update(at(i), None)).collect();
        assert_eq!(
            shown,
            [
                Some(Hint::MoreLight),
                Some(Hint::MoreLight),
                Some(Hint::MoreLight),
                Some(Hint::MoreLight),
                None
            ]
        );
    }

    #[test]
    fn changes_are_at_least_the_dwell_apart() {
        // A noisy stream of hints at 30 frames a second: whatever it does, the screen changes
        // at most once per 0.5 s.
        let mut f = HintFilter::default();
        let hints = [
            None,
            Some(Hint::MoveCloser),
            Some(Hint::HoldStill),
            Some(Hint::LookAtCamera),
        ];
        let (mut last, mut last_change) = (None, None::<Duration>);
        let mut changes = 0;
        for i in 0..600u64 {
            let now = Duration::from_millis(i * 33);
            // Runs of 3-5 frames of the same hint.
            let raw = hints[((i / (3 + i % 3)) % 4) as usize];
            let shown = f.update(now, raw);
            if shown != last {
                if let Some(t) = last_change {
                    assert!(now - t >= Duration::from_millis(500), "{t:?} -> {now:?}");
                }
                last_change = Some(now);
                last = shown;
                changes += 1;
            }
        }
        assert!(
            changes > 5,
            "the filter must still follow the hints: {changes}"
        );
    }
}

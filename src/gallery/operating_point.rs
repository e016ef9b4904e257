//! The operating point: which similarity a face must reach to be named, for *this* gallery.
//!
//! A stranger at the door is compared with every enrolled template and is let in when the best
//! of those comparisons reaches the threshold. With a per-comparison false-accept rate `p`
//! (the impostor survival function `S(t)` measured on dev data and shipped per embedder in
//! `models/<id>.impostors.toml`), the chance that a stranger passes one attempt against `n`
//! templates is, if the comparisons were independent, `1 - (1 - S(t))^n`. The threshold for a
//! target rate per attempt is the lowest `t` that keeps this at or below the target.
//!
//! Why the independence formula and not a measured max-over-N distribution: the dev data has
//! about 2,000 distinct people, so a measured max-over-N stops well below the 5,000 people a
//! site may enrol, while the per-comparison tail is measured over millions of pairs. And it errs
//! on the safe side: real comparisons of one probe are positively correlated (a probe that looks
//! like many people, several templates of one person), and since `1 - (1 - x)^n` is concave in
//! `x`, averaging over probes (Jensen) gives a stranger-accept rate at or below the formula's.
//! Beyond the measured tail the survival is extrapolated as an exponential fitted to the tail
//! (`ln S` linear in `t`); for the lighter-than-exponential tails of cosine impostor scores this
//! over-estimates `S`, so the threshold is again on the high side.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Fewest impostor comparisons above the last tabulated score: below this a measured rate is
/// mostly noise, and the exponential tail takes over.
const MIN_TAIL_COUNT: f64 = 10.0;
/// Survival points per decade in the table.
const STEPS_PER_DECADE: i32 = 8;
/// The exponential tail is fitted to the table from this survival down.
const TAIL_FIT_FROM: f64 = 1e-3;

#[derive(Debug, thiserror::Error)]
pub enum OperatingPointError {
    #[error("reading {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "{path} was measured for model sha256 {found}, but the embedder's model has {expected}: \
         re-run `facegate calibrate --impostor-scores` for this model"
    )]
    WrongModel {
        path: String,
        found: String,
        expected: String,
    },
    #[error("{0} impostor comparisons are too few to describe the tail (need at least 10,000)")]
    TooFew(usize),
    #[error("a target rate must be in (0, 1), not {0}")]
    BadTarget(f64),
}

/// The upper tail of an embedder's impostor score distribution: `survival[i]` of impostor
/// comparisons score at or above `score[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpostorTail {
    /// Always `"impostor-scores"`, so the model folder's manifest scan never takes it for one.
    pub kind: String,
    pub embedder: String,
    pub model_sha256: String,
    /// Impostor comparisons measured.
    pub comparisons: u64,
    /// Where they came from (data and command), for the record.
    pub source: String,
    /// Decreasing survival rates, from 0.1 down to about 10 / `comparisons`.
    pub survival: Vec<f64>,
    /// Increasing scores: the lowest threshold at which at most `survival[i]` are accepted.
    pub score: Vec<f32>,
    /// `λ` of the tail beyond the table: `S(t) = survival.last · exp(-λ (t - score.last))`.
    pub tail_rate: f64,
}

impl ImpostorTail {
    /// Describe the tail of `impostors` (cosine similarities of different people).
    pub fn from_scores(
        impostors: &[f32],
        embedder: &str,
        model_sha256: &str,
        source: &str,
    ) -> Result<Self, OperatingPointError> {
        let mut sorted: Vec<f32> = impostors
            .iter()
            .copied()
            .filter(|s| s.is_finite())
            .collect();
        if sorted.len() < 10_000 {
            return Err(OperatingPointError::TooFew(sorted.len()));
        }
        sorted.sort_by(|a, b| b.total_cmp(a));
        let n = sorted.len() as f64;
        let (mut survival, mut score) = (Vec::new(), Vec::new());
        for k in STEPS_PER_DECADE.. {
            let p = 10f64.powf(-f64::from(k) / f64::from(STEPS_PER_DECADE));
            if p * n < MIN_TAIL_COUNT {
                break;
            }
            // Accept floor(p·n) impostors: the threshold sits just above the next one.
            let accepted = (p * n).floor() as usize;
            let t = next_up(sorted[accepted]);
            if score.last().is_some_and(|&last| t <= last) {
                continue; // tied scores: the earlier point already covers this rate
            }
            survival.push(accepted as f64 / n);
            score.push(t);
        }
        let tail_rate = fit_tail_rate(&survival, &score);
        Ok(Self {
            kind: "impostor-scores".into(),
            embedder: embedder.into(),
            model_sha256: model_sha256.into(),
            comparisons: sorted.len() as u64,
            source: source.into(),
            survival,
            score,
            tail_rate,
        })
    }

    /// Read a tail file and check it belongs to the model with `model_sha256`.
    pub fn load(path: &Path, model_sha256: &str) -> Result<Self, OperatingPointError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| OperatingPointError::Io {
            path: name.clone(),
            error,
        })?;
        let tail: Self = toml::from_str(&text).map_err(|e| OperatingPointError::Parse {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let bad = |message: &str| OperatingPointError::Parse {
            path: name.clone(),
            message: message.into(),
        };
        if tail.kind != "impostor-scores" {
            return Err(bad("kind is not \"impostor-scores\""));
        }
        if tail.survival.len() < 2 || tail.survival.len() != tail.score.len() {
            return Err(bad("survival and score need the same length, at least 2"));
        }
        let decreasing = tail.survival.windows(2).all(|w| w[1] < w[0] && w[1] > 0.0);
        let increasing = tail.score.windows(2).all(|w| w[1] > w[0]);
        if !(decreasing && increasing && tail.tail_rate > 0.0 && tail.tail_rate.is_finite()) {
            return Err(bad(
                "survival must decrease, score increase, tail_rate be positive",
            ));
        }
        if !tail.model_sha256.eq_ignore_ascii_case(model_sha256) {
            return Err(OperatingPointError::WrongModel {
                path: name,
                found: tail.model_sha256,
                expected: model_sha256.into(),
            });
        }
        Ok(tail)
    }

    /// The file's text: a comment saying what it is, then the TOML.
    pub fn to_toml(&self) -> String {
        format!(
            "# Upper tail of the impostor similarity distribution of {}, written by\n\
             # `facegate calibrate --impostor-scores`; read at load to derive the threshold for\n\
             # the gallery size (src/gallery/operating_point.rs).\n{}",
            self.embedder,
            toml::to_string(self).expect("plain data serialises")
        )
    }

    /// Fraction of impostor comparisons at or above `t`.
    pub fn survival_at(&self, t: f32) -> f64 {
        let (s, p) = (&self.score, &self.survival);
        if t <= s[0] {
            return p[0].max(0.1); // below the table: "many", the exact value never matters here
        }
        let last = s.len() - 1;
        if t >= s[last] {
            return p[last] * (-self.tail_rate * f64::from(t - s[last])).exp();
        }
        let i = s.partition_point(|&x| x <= t) - 1;
        let f = f64::from(t - s[i]) / f64::from(s[i + 1] - s[i]);
        (p[i].ln() + f * (p[i + 1].ln() - p[i].ln())).exp()
    }

    /// The lowest score with a survival of at most `rate` (log-linear between table points).
    pub fn score_at(&self, rate: f64) -> f32 {
        let (s, p) = (&self.score, &self.survival);
        if rate >= p[0] {
            return s[0];
        }
        let last = p.len() - 1;
        if rate <= p[last] {
            return s[last] + ((p[last] / rate).ln() / self.tail_rate) as f32;
        }
        let i = p.partition_point(|&x| x > rate) - 1;
        let f = (p[i].ln() - rate.ln()) / (p[i].ln() - p[i + 1].ln());
        s[i] + (f as f32) * (s[i + 1] - s[i])
    }
}

/// Least-squares slope of `-ln S` against the score over the table's tail.
fn fit_tail_rate(survival: &[f64], score: &[f32]) -> f64 {
    let points: Vec<(f64, f64)> = survival
        .iter()
        .zip(score)
        .filter(|(p, _)| **p <= TAIL_FIT_FROM)
        .map(|(p, s)| (f64::from(*s), -p.ln()))
        .collect();
    let points = if points.len() >= 2 {
        points
    } else {
        // A short table: the last two points.
        let k = survival.len();
        (k - 2..k)
            .map(|i| (f64::from(score[i]), -survival[i].ln()))
            .collect()
    };
    let m = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / m, b + y / m));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    let slope = sxy / sxx;
    if slope.is_finite() && slope > 0.0 {
        slope
    } else {
        1.0 / 0.05 // degenerate data: a decade per 0.115 of cosine, a deliberately slow decay
    }
}

fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

/// The per-comparison rate `p` with `1 - (1 - p)^n = target`.
pub fn per_comparison_rate(target: f64, comparisons: usize) -> f64 {
    let n = comparisons.max(1) as f64;
    -(f64::ln_1p(-target) / n).exp_m1()
}

/// How the threshold is chosen.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `[matching] threshold` in the config: the same for every gallery.
    Fixed(f32),
    /// The embedder manifest's 1:1 threshold, for an embedder shipped without an impostor tail.
    Manifest(f32),
    /// Derived from the shipped impostor tail for a target false-accept rate per attempt, never
    /// below `floor` (the embedder manifest's 1:1 threshold): a small gallery may allow a lower
    /// threshold for the same rate per attempt, but letting a two-person door accept faces a 1:1
    /// check would refuse trades the enrolled people's security for nothing they asked for.
    Derived {
        target: f64,
        tail: std::sync::Arc<ImpostorTail>,
        floor: Option<f32>,
    },
}

/// A threshold and why it is what it is (for `list`, `doctor`, `identify --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    /// `fixed` (config), `manifest`, `derived`, or `floor` (derived, but below the floor).
    pub rule: &'static str,
    /// The target false-accept rate per attempt (derived rule only).
    pub target: Option<f64>,
    /// The templates one attempt is compared with.
    pub comparisons: usize,
    /// The false-accept rate per attempt this threshold predicts (derived rule only).
    pub predicted_rate: Option<f64>,
}

impl Rule {
    /// A derived rule; `target` must be a rate in (0, 1).
    pub fn derived(target: f64, tail: ImpostorTail) -> Result<Self, OperatingPointError> {
        if !(target > 0.0 && target < 1.0) {
            return Err(OperatingPointError::BadTarget(target));
        }
        Ok(Rule::Derived {
            target,
            tail: std::sync::Arc::new(tail),
            floor: None,
        })
    }

    /// The same rule with its derived threshold never below `floor` (no effect on a fixed rule).
    pub fn with_floor(self, floor: f32) -> Self {
        match self {
            Rule::Derived { target, tail, .. } => Rule::Derived {
                target,
                tail,
                floor: Some(floor),
            },
            other => other,
        }
    }

    /// The operating point for an attempt compared with `comparisons` templates (at least one
    /// is assumed: an empty gallery accepts nobody whatever the threshold).
    pub fn at(&self, comparisons: usize) -> OperatingPoint {
        match self {
            Rule::Fixed(t) | Rule::Manifest(t) => OperatingPoint {
                threshold: *t,
                rule: if matches!(self, Rule::Fixed(_)) {
                    "fixed"
                } else {
                    "manifest"
                },
                target: None,
                comparisons,
                predicted_rate: None,
            },
            Rule::Derived {
                target,
                tail,
                floor,
            } => {
                let derived = tail.score_at(per_comparison_rate(*target, comparisons));
                let (threshold, rule) = match floor {
                    Some(f) if *f > derived => (*f, "floor"),
                    _ => (derived, "derived"),
                };
                let p = tail.survival_at(threshold);
                OperatingPoint {
                    threshold,
                    rule,
                    target: Some(*target),
                    comparisons,
                    predicted_rate: Some(-(comparisons.max(1) as f64 * (-p).ln_1p()).exp_m1()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores on a fixed grid with a known exponential tail: `S(t) = exp(-20 t)` for t >= 0.
    fn exponential_scores(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (-((i as f64 + 0.5) / n as f64).ln() / 20.0) as f32)
            .collect()
    }

    fn tail() -> ImpostorTail {
        ImpostorTail::from_scores(&exponential_scores(200_000), "e", "00", "test").unwrap()
    }

    #[test]
    fn table_follows_the_measured_survival() {
        let t = tail();
        for (&p, &s) in t.survival.iter().zip(&t.score) {
            let expected = (-20.0 * f64::from(s)).exp();
            assert!((p / expected - 1.0).abs() < 0.05, "p {p} vs {expected}");
        }
        assert!((t.tail_rate - 20.0).abs() < 1.0, "rate {}", t.tail_rate);
        // Interpolation and extrapolation agree with the true survival.
        for rate in [3e-2, 2e-4, 1e-6, 1e-8] {
            let s = t.score_at(rate);
            let truth = -(rate.ln()) / 20.0;
            assert!(
                (f64::from(s) - truth).abs() < 0.01,
                "{rate}: {s} vs {truth}"
            );
            assert!((t.survival_at(s) / rate - 1.0).abs() < 0.05);
        }
    }

    #[test]
    fn threshold_rises_with_the_gallery_and_meets_the_target() {
        let rule = Rule::derived(1e-2, tail()).unwrap();
        let mut last = f32::MIN;
        for n in [1, 10, 100, 1000, 5000, 50_000] {
            let op = rule.at(n);
            assert!(op.threshold > last, "n {n}: {} <= {last}", op.threshold);
            last = op.threshold;
            let predicted = op.predicted_rate.unwrap();
            assert!(
                predicted <= 1e-2 * 1.001 && predicted > 0.9e-2,
                "{predicted}"
            );
        }
    }

    #[test]
    fn the_floor_holds_small_galleries_and_lets_large_ones_rise() {
        let plain = Rule::derived(1e-2, tail()).unwrap();
        let floor = plain.at(100).threshold;
        let rule = plain.clone().with_floor(floor);
        for n in [1, 10, 100] {
            let op = rule.at(n);
            assert_eq!(op.threshold, floor, "n {n}");
            assert!(plain.at(n).threshold <= floor);
            // At the floor the prediction is at or below the target, not at it.
            assert!(op.predicted_rate.unwrap() <= 1e-2 * 1.001);
        }
        assert_eq!(rule.at(1).rule, "floor");
        let large = rule.at(1000);
        assert_eq!(large.rule, "derived");
        assert_eq!(large.threshold, plain.at(1000).threshold);
        assert!(large.threshold > floor);
        assert_eq!(Rule::Fixed(0.6).with_floor(0.9).at(1).threshold, 0.6);
    }

    #[test]
    fn fixed_threshold_ignores_the_gallery() {
        let rule = Rule::Fixed(0.6);
        assert_eq!(rule.at(1).threshold, 0.6);
        assert_eq!(rule.at(10_000).threshold, 0.6);
        assert!(Rule::derived(0.0, tail()).is_err());
        assert!(Rule::derived(1.0, tail()).is_err());
    }

    #[test]
    fn per_comparison_rate_inverts_the_attempt_rate() {
        let p = per_comparison_rate(1e-3, 1000);
        let attempt = 1.0 - (1.0 - p).powi(1000);
        assert!((attempt - 1e-3).abs() < 1e-12);
        assert!((per_comparison_rate(1e-3, 1) - 1e-3).abs() < 1e-15);
    }

    #[test]
    fn file_round_trips_and_refuses_another_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.impostors.toml");
        let t = tail();
        std::fs::write(&path, t.to_toml()).unwrap();
        assert_eq!(ImpostorTail::load(&path, "00").unwrap(), t);
        let err = ImpostorTail::load(&path, "ff").unwrap_err().to_string();
        assert!(err.contains("re-run"), "{err}");
        std::fs::write(&path, "kind = \"impostor-scores\"\n").unwrap();
        assert!(ImpostorTail::load(&path, "00").is_err());
        assert!(ImpostorTail::from_scores(&[0.1; 100], "e", "00", "few").is_err());
    }
}

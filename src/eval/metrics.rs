//! Verification metrics over similarity scores (higher = more alike).

/// Fraction of scores classified correctly by `score >= threshold ⇔ same`.
pub fn accuracy_at(scores: &[f32], same: &[bool], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let right = scores
        .iter()
        .zip(same)
        .filter(|(s, y)| (**s >= threshold) == **y)
        .count();
    right as f64 / scores.len() as f64
}

/// The threshold with the best accuracy on these scores: midpoints between neighbouring
/// distinct scores are tried (and one below / above all), the lowest of equally good ones wins.
pub fn best_threshold(scores: &[f32], same: &[bool]) -> (f32, f64) {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let mut candidates = Vec::with_capacity(sorted.len() + 1);
    if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
        candidates.push(first - 1e-3);
        candidates.extend(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
        candidates.push(last + 1e-3);
    }
    let mut best = (0.0, 0.0);
    for t in candidates {
        let acc = accuracy_at(scores, same, t);
        if acc > best.1 {
            best = (t, acc);
        }
    }
    best
}

/// k-fold verification accuracy: each fold is scored with the threshold that is best on all
/// the other folds. Returns per-fold `(threshold, accuracy)`; fold numbers with no pairs are
/// skipped, and a single fold gives nothing (there is no other fold to choose a threshold on).
pub fn kfold_accuracy(scores: &[f32], same: &[bool], fold: &[usize]) -> Vec<(f32, f64)> {
    let folds = fold.iter().max().map_or(0, |m| m + 1);
    (0..folds)
        .filter(|k| fold.contains(k) && fold.iter().any(|f| f != k))
        .map(|k| {
            let pick = |on: bool| -> (Vec<f32>, Vec<bool>) {
                scores
                    .iter()
                    .zip(same)
                    .zip(fold)
                    .filter(|(_, f)| (**f == k) == on)
                    .map(|((s, y), _)| (*s, *y))
                    .unzip()
            };
            let (train_s, train_y) = pick(false);
            let (test_s, test_y) = pick(true);
            let (threshold, _) = best_threshold(&train_s, &train_y);
            (threshold, accuracy_at(&test_s, &test_y, threshold))
        })
        .collect()
}

/// The lowest threshold at which at most `far` of the impostor scores are accepted
/// (`score >= threshold`). `None` when there are too few impostors to measure that rate.
pub fn threshold_at_far(impostors: &[f32], far: f64) -> Option<f32> {
    let mut sorted: Vec<f32> = impostors
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .collect();
    if sorted.is_empty() || far * (sorted.len() as f64) < 1.0 {
        return None;
    }
    sorted.sort_by(|a, b| b.total_cmp(a));
    // Accepting k = floor(far·n) impostors: the threshold sits just above the (k+1)-th highest.
    let k = (far * sorted.len() as f64).floor() as usize;
    Some(next_up(sorted[k]))
}

/// Fraction of `scores` at or above `threshold`.
pub fn rate_at_or_above(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s >= threshold).count() as f64 / scores.len() as f64
}

/// The smallest f32 greater than `x` (for finite `x`).
fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// Mean and population standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, var.sqrt())
}

/// One operating point of a ROC curve: accepting `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RocPoint {
    pub threshold: f32,
    /// False accept rate: impostor scores accepted.
    pub far: f64,
    /// True accept rate: genuine scores accepted.
    pub tar: f64,
}

/// The ROC curve from (0, 0) to (1, 1): one point per distinct finite score, highest threshold
/// first. Tied scores move together, so a tie between a genuine and an impostor score is one
/// diagonal step. Empty when either side has no scores.
pub fn roc_curve(genuine: &[f32], impostor: &[f32]) -> Vec<RocPoint> {
    if genuine.is_empty() || impostor.is_empty() {
        return Vec::new();
    }
    // (score, is_genuine), highest first; non-finite scores (no face) are never accepted
    // except at the final point.
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&s| (s, true))
        .chain(impostor.iter().map(|&s| (s, false)))
        .filter(|(s, _)| s.is_finite())
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (ng, ni) = (genuine.len() as f64, impostor.len() as f64);
    let mut points = vec![RocPoint {
        threshold: f32::INFINITY,
        far: 0.0,
        tar: 0.0,
    }];
    let (mut g, mut i) = (0usize, 0usize);
    let mut k = 0;
    while k < all.len() {
        let t = all[k].0;
        while k < all.len() && all[k].0 == t {
            if all[k].1 {
                g += 1;
            } else {
                i += 1;
            }
            k += 1;
        }
        points.push(RocPoint {
            threshold: t,
            far: i as f64 / ni,
            tar: g as f64 / ng,
        });
    }
    if g < genuine.len() || i < impostor.len() {
        points.push(RocPoint {
            threshold: f32::NEG_INFINITY,
            far: 1.0,
            tar: 1.0,
        });
    }
    points
}

/// Area under the ROC curve: the chance that a random genuine score is above a random
/// impostor score, ties counting half. `None` when either side is empty.
pub fn auc(genuine: &[f32], impostor: &[f32]) -> Option<f64> {
    let roc = roc_curve(genuine, impostor);
    if roc.is_empty() {
        return None;
    }
    // Trapezoids between neighbouring points; a tie is a diagonal step, i.e. counts half.
    Some(
        roc.windows(2)
            .map(|w| (w[1].far - w[0].far) * (w[1].tar + w[0].tar) / 2.0)
            .sum(),
    )
}

/// Equal error rate: where the false accept rate meets the false reject rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Eer {
    pub rate: f64,
    /// The first threshold (from the top) at which FAR ≥ FRR.
    pub threshold: f32,
}

/// The EER, interpolated linearly along the ROC segment where FAR crosses FRR.
pub fn eer(genuine: &[f32], impostor: &[f32]) -> Option<Eer> {
    let roc = roc_curve(genuine, impostor);
    let frr = |p: &RocPoint| 1.0 - p.tar;
    let k = roc.iter().position(|p| p.far >= frr(p))?;
    let p1 = roc[k];
    if k == 0 {
        return Some(Eer {
            rate: p1.far,
            threshold: p1.threshold,
        });
    }
    let p0 = roc[k - 1];
    let (d0, d1) = (frr(&p0) - p0.far, frr(&p1) - p1.far); // d0 > 0 ≥ d1
    let t = d0 / (d0 - d1);
    Some(Eer {
        rate: p0.far + t * (p1.far - p0.far),
        threshold: p1.threshold,
    })
}

/// The genuine accept rate at a target false accept rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TarAtFar {
    pub target_far: f64,
    pub threshold: f32,
    pub tar: f64,
    /// The FAR actually reached (≤ the target).
    pub far: f64,
}

/// TAR at the lowest threshold that keeps FAR ≤ `far`. `None` when there are fewer than
/// `1 / far` impostor scores: such a rate cannot be observed.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> Option<TarAtFar> {
    let threshold = threshold_at_far(impostor, far)?;
    Some(TarAtFar {
        target_far: far,
        threshold,
        tar: rate_at_or_above(genuine, threshold),
        far: rate_at_or_above(impostor, threshold),
    })
}

/// The outcome of one open-set search: whose is the probe, and what the gallery's best
/// candidate was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOutcome {
    /// The probe's person is enrolled (a mated search); `false` for a stranger.
    pub mated: bool,
    /// The best candidate is the probe's person (always `false` for a stranger).
    pub rank1_correct: bool,
    /// Similarity of the best candidate; `-inf` when no face was found or the gallery is empty.
    pub score: f32,
}

/// One open-set operating point: a candidate is named when `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OpenSetPoint {
    pub threshold: f32,
    /// False positive identification rate: strangers named as anyone.
    pub fpir: f64,
    /// True positive identification rate: enrolled people named as themselves.
    pub tpir: f64,
}

/// Closed-set rank-1 accuracy over the mated searches; `None` without any.
pub fn rank1(outcomes: &[SearchOutcome]) -> Option<f64> {
    let mated: Vec<_> = outcomes.iter().filter(|o| o.mated).collect();
    if mated.is_empty() {
        return None;
    }
    Some(mated.iter().filter(|o| o.rank1_correct).count() as f64 / mated.len() as f64)
}

/// TPIR and FPIR at `threshold`; `None` without mated searches or without strangers.
pub fn open_set_at(outcomes: &[SearchOutcome], threshold: f32) -> Option<OpenSetPoint> {
    let (mated, strangers): (Vec<&SearchOutcome>, Vec<_>) = outcomes.iter().partition(|o| o.mated);
    if mated.is_empty() || strangers.is_empty() {
        return None;
    }
    let hits = mated
        .iter()
        .filter(|o| o.rank1_correct && o.score >= threshold)
        .count();
    let false_hits = strangers.iter().filter(|o| o.score >= threshold).count();
    Some(OpenSetPoint {
        threshold,
        fpir: false_hits as f64 / strangers.len() as f64,
        tpir: hits as f64 / mated.len() as f64,
    })
}

/// TPIR against FPIR at every distinct finite score, highest threshold first (a DET curve is
/// FNIR = 1 − TPIR against FPIR). Empty without mated searches or without strangers.
pub fn open_set_curve(outcomes: &[SearchOutcome]) -> Vec<OpenSetPoint> {
    let mut thresholds: Vec<f32> = outcomes
        .iter()
        .map(|o| o.score)
        .filter(|s| s.is_finite())
        .collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    thresholds
        .into_iter()
        .filter_map(|t| open_set_at(outcomes, t))
        .collect()
}

/// TPIR at the lowest threshold that keeps FPIR ≤ `fpir`. `None` when there are fewer than
/// `1 / fpir` strangers, or no mated searches.
pub fn tpir_at_fpir(outcomes: &[SearchOutcome], fpir: f64) -> Option<OpenSetPoint> {
    let strangers: Vec<f32> = outcomes
        .iter()
        .filter(|o| !o.mated)
        .map(|o| o.score)
        .collect();
    // A stranger with no face found is never named: give it a finite score below everything.
    let strangers: Vec<f32> = strangers
        .iter()
        .map(|&s| if s.is_finite() { s } else { f32::MIN })
        .collect();
    let threshold = threshold_at_far(&strangers, fpir)?;
    open_set_at(outcomes, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_threshold_separates_separable_scores() {
        let scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.3];
        let same = [true, true, true, false, false, false];
        let (t, acc) = best_threshold(&scores, &same);
        assert_eq!(acc, 1.0);
        assert!(t > 0.3 && t <= 0.7);
    }

    #[test]
    fn accuracy_counts_ties_as_same() {
        assert_eq!(accuracy_at(&[0.5, 0.5], &[true, false], 0.5), 0.5);
    }

    #[test]
    fn kfold_uses_the_other_folds_threshold() {
        // Fold 0 alone would be separable at 0.45, but fold 1 puts the threshold at 0.65.
        let scores = [0.5, 0.4, 0.7, 0.6];
        let same = [true, false, true, false];
        let fold = [0, 0, 1, 1];
        let result = kfold_accuracy(&scores, &same, &fold);
        assert_eq!(result[0].1, 0.5); // 0.5 ≥ 0.65? no → wrong; 0.4 → right
        assert_eq!(result[1].1, 0.5); // threshold 0.45 from fold 0: 0.6 wrongly accepted
    }

    #[test]
    fn threshold_at_far_accepts_at_most_that_fraction() {
        let impostors: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_at_far(&impostors, 0.01).unwrap();
        assert_eq!(rate_at_or_above(&impostors, t), 0.01);
        // One step lower would accept one more.
        assert!(rate_at_or_above(&impostors, 0.989) > 0.01);
        assert_eq!(
            threshold_at_far(&impostors, 1e-4),
            None,
            "1,000 impostors cannot show 1e-4"
        );
        // Ties: every tied impostor is accepted or none is.
        let tied = [0.5f32; 10];
        let t = threshold_at_far(&tied, 0.5).unwrap();
        assert_eq!(rate_at_or_above(&tied, t), 0.0);
    }

    #[test]
    fn mean_std_of_constant_is_zero() {
        assert_eq!(mean_std(&[0.5, 0.5]), (0.5, 0.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
    }

    /// Ten verification scores worked by hand (5 genuine, 5 impostor, one tie at 0.6).
    /// Pairs genuine > impostor: 5 + 5 + 5 + 4½ (0.6 ties 0.6) + 3 (0.4) = 22.5 of 25 → AUC 0.9.
    const GENUINE: [f32; 5] = [0.9, 0.8, 0.7, 0.6, 0.4];
    const IMPOSTOR: [f32; 5] = [0.6, 0.5, 0.3, 0.2, 0.1];

    #[test]
    fn worked_verification_table() {
        assert!((auc(&GENUINE, &IMPOSTOR).unwrap() - 0.9).abs() < 1e-12);
        // At 0.55: genuine 0.9 0.8 0.7 0.6 accepted → TAR 4/5; impostor 0.6 accepted → FAR
        // 1/5, TRR 4/5.
        assert_eq!(rate_at_or_above(&GENUINE, 0.55), 0.8);
        assert_eq!(1.0 - rate_at_or_above(&IMPOSTOR, 0.55), 0.8);
        // ROC by hand: the tie at 0.6 is one diagonal step.
        let roc: Vec<(f64, f64)> = roc_curve(&GENUINE, &IMPOSTOR)
            .iter()
            .map(|p| (p.far, p.tar))
            .collect();
        let expect = [
            (0.0, 0.0),
            (0.0, 0.2),
            (0.0, 0.4),
            (0.0, 0.6),
            (0.2, 0.8),
            (0.4, 0.8),
            (0.4, 1.0),
            (0.6, 1.0),
            (0.8, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(roc.len(), expect.len());
        for (got, want) in roc.iter().zip(expect) {
            assert!((got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12);
        }
        // FAR = FRR = 0.2 at threshold 0.6.
        let e = eer(&GENUINE, &IMPOSTOR).unwrap();
        assert!((e.rate - 0.2).abs() < 1e-12);
        assert_eq!(e.threshold, 0.6);
        // FAR 0.2 allows one of five impostors (0.6): threshold just above 0.5, TAR 4/5.
        let at = tar_at_far(&GENUINE, &IMPOSTOR, 0.2).unwrap();
        assert_eq!((at.tar, at.far), (0.8, 0.2));
        assert!(at.threshold > 0.5 && at.threshold < 0.6);
        // Five impostors cannot show a FAR of 0.1.
        assert_eq!(tar_at_far(&GENUINE, &IMPOSTOR, 0.1), None);
    }

    #[test]
    fn eer_interpolates_between_points() {
        // (FAR, FRR) go (0, 1) → (0, 0.5) → (0.5, 0) through the tie at 0.5: the rates are
        // equal halfway along that diagonal step.
        let e = eer(&[0.9, 0.5], &[0.5, 0.1]).unwrap();
        assert!((e.rate - 0.25).abs() < 1e-12, "{e:?}");
        assert_eq!(e.threshold, 0.5);
    }

    #[test]
    fn perfect_and_inverted_scores() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.2], &[0.9, 0.8]), Some(0.0));
        assert_eq!(eer(&[0.9, 0.8], &[0.1, 0.2]).unwrap().rate, 0.0);
    }

    #[test]
    fn all_tied_scores_are_chance() {
        let roc = roc_curve(&[0.5; 3], &[0.5; 4]);
        assert_eq!(roc.len(), 2);
        assert_eq!((roc[1].far, roc[1].tar), (1.0, 1.0));
        assert_eq!(auc(&[0.5; 3], &[0.5; 4]), Some(0.5));
        assert!((eer(&[0.5; 3], &[0.5; 4]).unwrap().rate - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_single_class_has_no_curve() {
        assert!(roc_curve(&[0.9, 0.1], &[]).is_empty());
        assert_eq!(auc(&[], &[0.3]), None);
        assert_eq!(eer(&[0.9], &[]), None);
        assert_eq!(tar_at_far(&[0.9], &[], 0.5), None);
        // Every pair in one fold: no other fold to choose a threshold on.
        assert!(kfold_accuracy(&[0.9, 0.1], &[true, false], &[0, 0]).is_empty());
    }

    #[test]
    fn kfold_skips_empty_folds() {
        let result = kfold_accuracy(
            &[0.9, 0.1, 0.8, 0.2],
            &[true, false, true, false],
            &[0, 0, 2, 2],
        );
        assert_eq!(result.len(), 2);
        assert!(result.iter().all(|(_, acc)| *acc == 1.0));
    }

    #[test]
    fn missing_faces_are_accepted_only_at_the_end() {
        let roc = roc_curve(&[0.9, f32::NEG_INFINITY], &[0.1]);
        assert_eq!(roc.last().map(|p| (p.far, p.tar)), Some((1.0, 1.0)));
        assert_eq!(roc[roc.len() - 2].tar, 0.5);
        assert_eq!(auc(&[0.9, f32::NEG_INFINITY], &[0.1]), Some(0.5));
    }

    /// Ten open-set searches worked by hand: six enrolled people (one misidentified, one with no
    /// face found) and four strangers (one with no face found).
    fn searches() -> Vec<SearchOutcome> {
        let mated = |rank1_correct, score| SearchOutcome {
            mated: true,
            rank1_correct,
            score,
        };
        let stranger = |score| SearchOutcome {
            mated: false,
            rank1_correct: false,
            score,
        };
        vec![
            mated(true, 0.9),
            mated(true, 0.8),
            mated(false, 0.75),
            mated(true, 0.6),
            mated(true, 0.4),
            mated(false, f32::NEG_INFINITY),
            stranger(0.7),
            stranger(0.5),
            stranger(0.3),
            stranger(f32::NEG_INFINITY),
        ]
    }

    #[test]
    fn worked_open_set_table() {
        let s = searches();
        // Rank 1 ignores the threshold: 4 of 6 enrolled people come first.
        assert_eq!(rank1(&s), Some(4.0 / 6.0));
        // At 0.55: 0.9, 0.8, 0.6 named correctly → TPIR 3/6; stranger 0.7 named → FPIR 1/4,
        // TNIR 3/4.
        let p = open_set_at(&s, 0.55).unwrap();
        assert_eq!((p.tpir, p.fpir), (0.5, 0.25));
        // The misidentified 0.75 never counts as a true positive.
        let p = open_set_at(&s, 0.72).unwrap();
        assert_eq!((p.tpir, p.fpir), (2.0 / 6.0, 0.0));
        // FPIR 1/4 allows the 0.7 stranger: threshold just above 0.5.
        let p = tpir_at_fpir(&s, 0.25).unwrap();
        assert_eq!((p.tpir, p.fpir), (0.5, 0.25));
        assert!(p.threshold > 0.5 && p.threshold < 0.6);
        assert_eq!(tpir_at_fpir(&s, 0.1), None, "4 strangers cannot show 10 %");
        let curve: Vec<(f64, f64)> = open_set_curve(&s)
            .iter()
            .map(|p| (p.fpir, p.tpir))
            .collect();
        let third = 1.0 / 6.0;
        let expect = [
            (0.0, third),
            (0.0, 2.0 * third),
            (0.0, 2.0 * third),
            (0.25, 2.0 * third),
            (0.25, 3.0 * third),
            (0.5, 3.0 * third),
            (0.5, 4.0 * third),
            (0.75, 4.0 * third),
        ];
        assert_eq!(curve.len(), expect.len());
        for (got, want) in curve.iter().zip(expect) {
            assert!((got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12);
        }
    }

    #[test]
    fn open_set_needs_both_kinds_of_search() {
        let s = searches();
        let only_mated: Vec<_> = s.iter().copied().filter(|o| o.mated).collect();
        let only_strangers: Vec<_> = s.iter().copied().filter(|o| !o.mated).collect();
        assert_eq!(open_set_at(&only_mated, 0.5), None);
        assert!(open_set_curve(&only_strangers).is_empty());
        assert_eq!(rank1(&only_strangers), None);
        assert_eq!(rank1(&only_mated), Some(4.0 / 6.0));
    }
}

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
/// the other folds. Returns per-fold `(threshold, accuracy)`.
pub fn kfold_accuracy(scores: &[f32], same: &[bool], fold: &[usize]) -> Vec<(f32, f64)> {
    let folds = fold.iter().max().map_or(0, |m| m + 1);
    (0..folds)
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
}

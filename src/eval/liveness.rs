//! Presentation-attack detection metrics in ISO/IEC 30107-3 terms. A presentation is classified
//! bona fide when its liveness score is at or above the threshold:
//!
//! - APCER: the share of attack presentations classified bona fide (a photo let through);
//! - BPCER: the share of bona fide presentations classified as attacks (a person refused).
//!
//! Images in which no face is found are not presentations to the PAD subsystem (the detector
//! failed to acquire); they are counted and reported apart, never silently scored.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::eval::metrics::{rate_at_or_above, roc_curve, threshold_at_far};
use crate::pipeline::{sort_by_centre_distance, Pipeline, PipelineError, StageTimes};

/// One operating point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PadPoint {
    pub threshold: f32,
    /// `None` without attack presentations.
    pub apcer: Option<f64>,
    /// `None` without bona fide presentations.
    pub bpcer: Option<f64>,
}

fn rates(bona_fide: &[f32], attack: &[f32], threshold: f32) -> PadPoint {
    PadPoint {
        threshold,
        apcer: (!attack.is_empty()).then(|| rate_at_or_above(attack, threshold)),
        bpcer: (!bona_fide.is_empty()).then(|| 1.0 - rate_at_or_above(bona_fide, threshold)),
    }
}

/// APCER and BPCER at `threshold`.
pub fn at_threshold(bona_fide: &[f32], attack: &[f32], threshold: f32) -> PadPoint {
    rates(bona_fide, attack, threshold)
}

/// The lowest threshold whose APCER is at most `apcer`, and the BPCER there. `None` when there
/// are too few attacks to measure that rate (fewer than 1 / `apcer`).
pub fn at_apcer(bona_fide: &[f32], attack: &[f32], apcer: f64) -> Option<PadPoint> {
    let threshold = threshold_at_far(attack, apcer)?;
    Some(rates(bona_fide, attack, threshold))
}

/// The DET curve as `(APCER, BPCER)` points, highest threshold first.
pub fn det_curve(bona_fide: &[f32], attack: &[f32]) -> Vec<(f64, f64)> {
    roc_curve(bona_fide, attack)
        .into_iter()
        .map(|p| (p.far, 1.0 - p.tar))
        .collect()
}

/// The liveness score of the face nearest the centre of each image (`None`: no face found),
/// on `threads` threads; `progress` is called once per image. The pipeline must have a
/// liveness check.
pub fn central_scores(
    pipeline: &Pipeline,
    images: &[PathBuf],
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Option<f32>>, PipelineError> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<f32>>> = images.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| -> Result<(), PipelineError> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<(), PipelineError> {
                    let mut times = StageTimes::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = images.get(i) else {
                            return Ok(());
                        };
                        let image = crate::image_io::load_rgb(path)?;
                        let (mut faces, used) = pipeline.detect(&image, &mut times)?;
                        sort_by_centre_distance(&mut faces, image.width(), image.height());
                        if let Some(face) = faces.first() {
                            let score = pipeline.check_liveness(&used, face, &mut times)?;
                            *results[i].lock().unwrap_or_else(|e| e.into_inner()) =
                                score.map(|l| l.score);
                        }
                        progress();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker panicked")?;
        }
        Ok(())
    })?;
    Ok(results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_iso_definitions() {
        let bona = [0.9, 0.8, 0.4, 0.95];
        let attack = [0.1, 0.6, 0.05, 0.02];
        let p = at_threshold(&bona, &attack, 0.5);
        assert_eq!(p.apcer, Some(0.25)); // 0.6 let through
        assert_eq!(p.bpcer, Some(0.25)); // 0.4 refused
        let p = at_threshold(&bona, &[], 0.5);
        assert_eq!(p.apcer, None);
    }

    #[test]
    fn bpcer_at_an_apcer_uses_the_lowest_threshold_that_reaches_it() {
        let attack: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let bona = [0.985, 0.995, 0.5];
        // 1 % of 100 attacks may pass: only 0.99 does, the threshold sits just above 0.98.
        let p = at_apcer(&bona, &attack, 0.01).unwrap();
        assert_eq!(p.apcer, Some(0.01));
        assert!(p.threshold > 0.98 && p.threshold < 0.981);
        assert!((p.bpcer.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert!(at_apcer(&bona, &attack[..50], 0.01).is_none());
    }
}

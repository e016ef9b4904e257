//! Presentation-attack detection metrics in ISO/IEC 30107-3 terms. A presentation is classified
//! bona fide when its liveness score is at or above the threshold:
//!
//! - APCER: the share of attack presentations classified bona fide (a photo let through);
//! - BPCER: the share of bona fide presentations classified as attacks (a person refused).
//!
//! Images in which no face is found are not presentations to the PAD subsystem (the detector
//! failed to acquire); they are counted and reported apart, never silently scored.
//!
//! [`evaluate`] is `facegate eval liveness`, [`calibrate`] `facegate calibrate --liveness-*`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::eval::metrics::{rate_at_or_above, roc_curve, threshold_at_far};
use crate::eval::plot::{curve_png, CurvePlot, Mark, Series};
use crate::eval::protocols::{images_below, Report};
use crate::setup::Setup;
use crate::vision::pipeline::{map_images, sort_by_centre_distance, Pipeline, PipelineError};

/// The APCERs every report states BPCER at.
const APCERS: [f64; 2] = [0.01, 0.05];

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
    map_images(images, threads, progress, |image, times| {
        let (mut faces, used) = pipeline.detect(image, times)?;
        sort_by_centre_distance(&mut faces, image.width(), image.height());
        let Some(face) = faces.first() else {
            return Ok(None);
        };
        Ok(pipeline
            .check_liveness(&used, face, times)?
            .map(|l| l.score))
    })
}

/// What `facegate eval liveness` measures.
#[derive(Debug, Clone)]
pub struct LivenessOptions {
    /// Folders of bona fide (live) face images, searched recursively.
    pub live: Vec<PathBuf>,
    /// Folders of attack presentations (printed photos, screens), searched recursively.
    pub attack: Vec<PathBuf>,
    /// Write the DET curve (BPCER against APCER, log axes) to this PNG.
    pub plot: Option<PathBuf>,
    /// Further thresholds to report APCER and BPCER at, besides the configured one (e.g. one
    /// calibrated on another set, applied to live-only data).
    pub at: Vec<f32>,
}

/// The pipeline with the configured liveness nets, whether or not `[liveness] enabled`: the
/// measurement is of the nets themselves.
fn liveness_pipeline(setup: &Setup) -> Result<Pipeline> {
    let mut pipeline = setup.pipeline()?;
    // The images are spread over the cores; each frame on one thread.
    pipeline.set_threads(1);
    pipeline.set_liveness(Some(setup.liveness()?));
    Ok(pipeline)
}

/// Scores of every image below `dirs` (no-face images dropped) and the number dropped.
fn scores(pipeline: &Pipeline, dirs: &[PathBuf], what: &str) -> Result<(Vec<f32>, usize)> {
    let mut images = Vec::new();
    for d in dirs {
        images.extend(images_below(d)?);
    }
    if images.is_empty() && !dirs.is_empty() {
        bail!("no images found in the {what} folder(s)");
    }
    let bar = super::embedding_bar(images.len());
    bar.set_message(format!("liveness of {what} images"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = central_scores(pipeline, &images, threads, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let missed = all.iter().filter(|s| s.is_none()).count();
    Ok((all.into_iter().flatten().collect(), missed))
}

fn point_json(p: &PadPoint) -> Value {
    json!({"threshold": p.threshold, "apcer": p.apcer, "bpcer": p.bpcer})
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.2} %", v * 100.0))
}

/// APCER and BPCER at the configured threshold and BPCER at APCER 1 % and 5 %, with the DET
/// curve when asked for: the human text and the JSON report.
pub fn evaluate(setup: &Setup, options: &LivenessOptions) -> Result<Report> {
    let pipeline = liveness_pipeline(setup)?;
    let threshold = setup.config.liveness.threshold;
    let (bona, bona_missed) = scores(&pipeline, &options.live, "bona fide")?;
    let (attack, attack_missed) = scores(&pipeline, &options.attack, "attack")?;
    let at = at_threshold(&bona, &attack, threshold);
    let at_rates: Vec<(f64, Option<PadPoint>)> = APCERS
        .iter()
        .map(|&a| (a, at_apcer(&bona, &attack, a)))
        .collect();
    let extra: Vec<PadPoint> = options
        .at
        .iter()
        .map(|&t| at_threshold(&bona, &attack, t))
        .collect();
    if let Some(path) = &options.plot {
        if attack.is_empty() {
            bail!("--plot needs --attack: a DET curve has an APCER axis");
        }
        let x_min = 0.5 / attack.len() as f64;
        let y_min = (0.5 / bona.len().max(1) as f64).min(x_min);
        let plot = CurvePlot {
            title: format!(
                "PAD DET: {} bona fide, {} attack presentations",
                bona.len(),
                attack.len()
            ),
            x_label: "APCER (attacks accepted)".into(),
            y_label: "BPCER (live faces refused)".into(),
            x_min,
            y_log_min: Some(y_min),
            y_range: (0.0, 1.0),
            series: vec![Series {
                label: "liveness score".into(),
                points: det_curve(&bona, &attack),
            }],
            marks: vec![Mark {
                label: format!("threshold {threshold}"),
                x: at.apcer.unwrap_or(0.0),
                y: at.bpcer.unwrap_or(0.0),
            }],
        };
        curve_png(path, &plot, 800, 600)?;
    }
    let nets = pipeline
        .liveness()
        .map(|l| l.net_names().join("+"))
        .unwrap_or_default();
    let mut text = format!(
        "liveness ({nets}): {} bona fide presentations ({bona_missed} images without a face), \
         {} attack presentations ({attack_missed} without a face)\n\
         at the configured threshold {threshold}: APCER {}, BPCER {}",
        bona.len(),
        attack.len(),
        pct(at.apcer),
        pct(at.bpcer)
    );
    for p in &extra {
        text += &format!(
            "\nat threshold {}: APCER {}, BPCER {}",
            p.threshold,
            pct(p.apcer),
            pct(p.bpcer)
        );
    }
    for (a, p) in &at_rates {
        text += &match p {
            Some(p) => format!(
                "\nBPCER at APCER {:.0} %: {} (threshold {:.4}, APCER {})",
                a * 100.0,
                pct(p.bpcer),
                p.threshold,
                pct(p.apcer)
            ),
            None => format!(
                "\nBPCER at APCER {:.0} %: not measurable with {} attacks",
                a * 100.0,
                attack.len()
            ),
        };
    }
    let json = json!({
        "command": "liveness",
        "nets": nets,
        "bona_fide_presentations": bona.len(),
        "attack_presentations": attack.len(),
        "bona_fide_without_face": bona_missed,
        "attack_without_face": attack_missed,
        "at_threshold": point_json(&at),
        "at_thresholds": extra.iter().map(point_json).collect::<Vec<_>>(),
        "at_apcer": at_rates.iter().map(|(a, p)| json!({
            "target_apcer": a,
            "point": p.as_ref().map(point_json),
        })).collect::<Vec<_>>(),
        "plot": options.plot,
    });
    Ok((text, json))
}

/// The liveness threshold for a target APCER, and what it measured at.
#[derive(Debug, Clone, Serialize)]
pub struct LivenessCalibration {
    pub nets: String,
    pub target_apcer: f64,
    pub liveness_threshold: f32,
    pub apcer: Option<f64>,
    pub bpcer: Option<f64>,
    pub bona_fide_presentations: usize,
    pub attack_presentations: usize,
}

/// Score the `live` and `attack` folders and choose the liveness threshold that meets
/// `target_apcer` (`facegate calibrate --liveness-live … --liveness-attack …`).
pub fn calibrate(
    setup: &Setup,
    live: &[PathBuf],
    attack: &[PathBuf],
    target_apcer: f64,
) -> Result<LivenessCalibration> {
    let pipeline = liveness_pipeline(setup)?;
    let (bona, _) = scores(&pipeline, live, "bona fide")?;
    let (attack, _) = scores(&pipeline, attack, "attack")?;
    let Some(p) = at_apcer(&bona, &attack, target_apcer) else {
        bail!(
            "{} attack presentations cannot measure an APCER of {target_apcer}; use more attack \
             images",
            attack.len()
        );
    };
    Ok(LivenessCalibration {
        nets: pipeline
            .liveness()
            .map(|l| l.net_names().join("+"))
            .unwrap_or_default(),
        target_apcer,
        liveness_threshold: p.threshold,
        apcer: p.apcer,
        bpcer: p.bpcer,
        bona_fide_presentations: bona.len(),
        attack_presentations: attack.len(),
    })
}

/// Set `[liveness] threshold` in a TOML config, keeping every other setting.
pub fn write_threshold(path: &Path, threshold: f32) -> Result<()> {
    super::calibrate::write_table_threshold(path, "liveness", threshold)
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

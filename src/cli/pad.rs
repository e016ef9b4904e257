//! `facegate eval liveness` and `facegate calibrate --liveness-*`: presentation-attack detection
//! measured in ISO/IEC 30107-3 terms (APCER, BPCER) on folders of live and attack images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use facegate::eval::liveness::{at_apcer, at_threshold, central_scores, det_curve, PadPoint};
use facegate::eval::plot::{curve_png, CurvePlot, Mark, Series};
use facegate::pipeline::Pipeline;

use super::Context;

/// The APCERs every report states BPCER at.
const APCERS: [f64; 2] = [0.01, 0.05];

#[derive(Debug, Clone, Parser)]
pub struct LivenessEvalArgs {
    /// Folder of bona fide (live) face images, searched recursively
    #[arg(long, required = true)]
    pub live: Vec<PathBuf>,
    /// Folder of attack presentations (printed photos, screens), searched recursively
    #[arg(long)]
    pub attack: Vec<PathBuf>,
    /// Write the DET curve (BPCER against APCER, log axes) to this PNG
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,
}

/// Scores of every image below `dirs` (no-face images dropped) and the number dropped.
fn scores(pipeline: &Pipeline, dirs: &[PathBuf], what: &str) -> Result<(Vec<f32>, usize)> {
    let mut images = Vec::new();
    for d in dirs {
        images.extend(super::eval::images_below(d)?);
    }
    if images.is_empty() && !dirs.is_empty() {
        bail!("no images found in the {what} folder(s)");
    }
    let bar = ProgressBar::new(images.len() as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
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

pub fn eval(ctx: &Context, args: LivenessEvalArgs) -> Result<(String, Value)> {
    let mut pipeline = ctx.pipeline()?;
    pipeline.set_threads(1);
    pipeline.set_liveness(Some(ctx.liveness()?));
    let threshold = ctx.config.liveness.threshold;
    let (bona, bona_missed) = scores(&pipeline, &args.live, "bona fide")?;
    let (attack, attack_missed) = scores(&pipeline, &args.attack, "attack")?;
    let at = at_threshold(&bona, &attack, threshold);
    let at_rates: Vec<(f64, Option<PadPoint>)> = APCERS
        .iter()
        .map(|&a| (a, at_apcer(&bona, &attack, a)))
        .collect();
    if let Some(path) = &args.plot {
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
        "nets": nets,
        "bona_fide_presentations": bona.len(),
        "attack_presentations": attack.len(),
        "bona_fide_without_face": bona_missed,
        "attack_without_face": attack_missed,
        "at_threshold": point_json(&at),
        "at_apcer": at_rates.iter().map(|(a, p)| json!({
            "target_apcer": a,
            "point": p.as_ref().map(point_json),
        })).collect::<Vec<_>>(),
        "plot": args.plot,
    });
    Ok((text, json))
}

/// The liveness threshold for a target APCER, measured on `live` and `attack` folders.
pub fn calibrate(
    ctx: &Context,
    live: &[PathBuf],
    attack: &[PathBuf],
    apcer: f64,
    write_config: Option<&Path>,
) -> Result<Value> {
    let mut pipeline = ctx.pipeline()?;
    pipeline.set_threads(1);
    pipeline.set_liveness(Some(ctx.liveness()?));
    let (bona, _) = scores(&pipeline, live, "bona fide")?;
    let (attack, _) = scores(&pipeline, attack, "attack")?;
    let Some(p) = at_apcer(&bona, &attack, apcer) else {
        bail!(
            "{} attack presentations cannot measure an APCER of {apcer}; use more attack images",
            attack.len()
        );
    };
    if let Some(path) = write_config {
        super::calibrate::write_setting(path, "liveness", p.threshold)?;
    }
    Ok(json!({
        "target_apcer": apcer,
        "liveness_threshold": p.threshold,
        "apcer": p.apcer,
        "bpcer": p.bpcer,
        "bona_fide_presentations": bona.len(),
        "attack_presentations": attack.len(),
        "written_to": write_config,
    }))
}

//! `facegate calibrate`: choose the open-set threshold for a target false-accept rate
//! (`facegate::eval::calibrate`), or with `--liveness-*` the liveness threshold for a target
//! APCER (`facegate::eval::liveness`), print it, and optionally write it into a config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use facegate::eval::calibrate::{calibrate, write_threshold, ScoreSource};
use facegate::eval::liveness;

use super::Context;

#[derive(Debug, Parser)]
pub struct CalibrateArgs {
    /// A folder with one sub-folder of photos per person: every pair of photos of different
    /// people is an impostor comparison, every pair of the same person a genuine one
    #[arg(long, conflicts_with_all = ["pairs", "list"], required_unless_present_any = ["pairs", "list", "liveness_attack"])]
    impostors: Option<PathBuf>,
    /// A `label<TAB>path` list instead (as `eval identify` reads; paths relative to --root):
    /// photos with different labels are impostor comparisons
    #[arg(long, value_name = "TSV", conflicts_with = "pairs")]
    list: Option<PathBuf>,
    /// Also write the upper tail of the impostor distribution to this file (ship it as
    /// `models/<id>.impostors.toml`): the door threshold for each gallery size is derived from it
    #[arg(long, value_name = "TOML")]
    impostor_scores: Option<PathBuf>,
    /// Calibrate the liveness threshold instead: folder(s) of live face images...
    #[arg(long, requires = "liveness_attack", conflicts_with_all = ["impostors", "pairs", "list"])]
    liveness_live: Vec<PathBuf>,
    /// ...and of attack presentations (printed photos); writes [liveness] threshold
    #[arg(long, requires = "liveness_live")]
    liveness_attack: Vec<PathBuf>,
    /// Target APCER (attacks accepted) for the liveness threshold
    #[arg(long, default_value_t = 0.01)]
    apcer: f64,
    /// An LFW-format pairs file instead (images at ROOT/name/name_NNNN.jpg)
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Image root for --pairs or --list [default: the file's folder]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Target false accept rate per comparison
    #[arg(long, default_value_t = 1e-3)]
    far: f64,
    /// Write the threshold into this config file ([matching] threshold, or [liveness] threshold
    /// with --liveness-*), keeping the rest
    #[arg(long, value_name = "CONFIG")]
    write_config: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: CalibrateArgs) -> Result<ExitCode> {
    if !args.liveness_attack.is_empty() {
        return run_liveness(ctx, &args);
    }
    let source = match (args.impostors, args.pairs, args.list) {
        (Some(dir), _, _) => ScoreSource::Folder(dir),
        (None, None, Some(file)) => ScoreSource::List {
            file,
            root: args.root,
        },
        (None, Some(file), _) => {
            let root = args
                .root
                .unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).to_path_buf());
            ScoreSource::Pairs { file, root }
        }
        (None, None, None) => unreachable!("clap requires one"),
    };
    let c = calibrate(ctx, &source, args.far, args.impostor_scores.as_deref())?;
    if let Some(t) = &c.impostor_tail {
        eprintln!(
            "wrote the impostor tail ({} points down to {:.1e}, tail rate {:.1}) to {}",
            t.points,
            t.lowest_survival,
            t.tail_rate,
            t.path.display()
        );
    }
    if let Some(path) = &args.write_config {
        write_threshold(path, c.threshold)?;
    }
    if ctx.json {
        println!("{}", serde_json::to_string(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: threshold {:.4} for FAR {:e}: measured FAR {:.2e} over {} impostor comparisons, TAR {:.2} % over {} genuine comparisons ({} images, {} without a face)",
        c.embedder,
        c.threshold,
        c.target_far,
        c.far,
        c.impostor_comparisons,
        c.tar * 100.0,
        c.genuine_comparisons,
        c.images,
        c.images_without_face.len()
    );
    if let Some(path) = &args.write_config {
        println!(
            "wrote [matching] threshold = {} to {}",
            c.threshold,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--liveness-live … --liveness-attack …`: the liveness threshold for `--apcer`.
fn run_liveness(ctx: &Context, args: &CalibrateArgs) -> Result<ExitCode> {
    let c = liveness::calibrate(ctx, &args.liveness_live, &args.liveness_attack, args.apcer)?;
    if let Some(path) = &args.write_config {
        liveness::write_threshold(path, c.liveness_threshold)?;
    }
    if ctx.json {
        println!("{}", serde_json::to_string(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.2} %", v * 100.0));
    println!(
        "liveness ({}): threshold {:.4} for APCER {}: measured APCER {} over {} attack presentations, BPCER {} over {} bona fide presentations",
        c.nets,
        c.liveness_threshold,
        c.target_apcer,
        pct(c.apcer),
        c.attack_presentations,
        pct(c.bpcer),
        c.bona_fide_presentations
    );
    if let Some(path) = &args.write_config {
        println!(
            "wrote [liveness] threshold = {} to {}",
            c.liveness_threshold,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

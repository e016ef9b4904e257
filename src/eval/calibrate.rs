//! `facegate calibrate`: choose the open-set threshold for a target false-accept rate from
//! impostor comparisons, and report the genuine accept rate it keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use facegate::eval::metrics::{rate_at_or_above, threshold_at_far};
use facegate::eval::pairs::read_pairs;
use facegate::gallery::operating_point::ImpostorTail;
use facegate::vision::embed::cosine;
use facegate::vision::pipeline::{central_embeddings, Pipeline};

use super::{missed, Context};

#[derive(Debug, Parser)]
pub struct CalibrateArgs {
    /// A folder with one sub-folder of photos per person: every pair of photos of different
    /// people is an impostor comparison, every pair of the same person a genuine one
    #[arg(long, conflicts_with_all = ["pairs", "list"], required_unless_present_any = ["pairs", "list"])]
    impostors: Option<PathBuf>,
    /// A `label<TAB>path` list instead (as `eval identify` reads; paths relative to --root):
    /// photos with different labels are impostor comparisons
    #[arg(long, value_name = "TSV", conflicts_with = "pairs")]
    list: Option<PathBuf>,
    /// Also write the upper tail of the impostor distribution to this file (ship it as
    /// `models/<id>.impostors.toml`): the door threshold for each gallery size is derived from it
    #[arg(long, value_name = "TOML")]
    impostor_scores: Option<PathBuf>,
    /// An LFW-format pairs file instead (images at ROOT/name/name_NNNN.jpg)
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Image root for --pairs or --list [default: the file's folder]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Target false accept rate per comparison
    #[arg(long, default_value_t = 1e-3)]
    far: f64,
    /// Write the threshold into this config file ([matching] threshold), keeping the rest
    #[arg(long, value_name = "CONFIG")]
    write_config: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: CalibrateArgs) -> Result<ExitCode> {
    let pipeline = ctx.pipeline()?;
    let (genuine, impostor, images, missed) = match (&args.impostors, &args.pairs, &args.list) {
        (Some(dir), _, _) => folder_scores(&pipeline, dir)?,
        (None, None, Some(list)) => list_scores(&pipeline, list, args.root.as_deref())?,
        (None, Some(pairs), _) => {
            let root = args
                .root
                .clone()
                .unwrap_or_else(|| pairs.parent().unwrap_or(Path::new(".")).to_path_buf());
            pairs_scores(&pipeline, pairs, &root)?
        }
        (None, None, None) => unreachable!("clap requires one"),
    };
    if let Some(out) = &args.impostor_scores {
        let manifest = pipeline.embedder().manifest();
        let source = format!(
            "{} impostor comparisons of {images} images ({} without a face) from {}; {}",
            impostor.len(),
            missed.len(),
            [&args.impostors, &args.list, &args.pairs]
                .into_iter()
                .flatten()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let tail = ImpostorTail::from_scores(&impostor, &manifest.id, &manifest.sha256, &source)?;
        std::fs::write(out, tail.to_toml())
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "wrote the impostor tail ({} points down to {:.1e}, tail rate {:.1}) to {}",
            tail.survival.len(),
            tail.survival.last().copied().unwrap_or(f64::NAN),
            tail.tail_rate,
            out.display()
        );
    }
    let Some(threshold) = threshold_at_far(&impostor, args.far) else {
        bail!(
            "{} impostor comparisons cannot measure a false accept rate of {:e}; use more people or a larger --far",
            impostor.len(),
            args.far
        );
    };
    let tar = rate_at_or_above(&genuine, threshold);
    let far = rate_at_or_above(&impostor, threshold);
    if let Some(path) = &args.write_config {
        write_threshold(path, threshold)?;
    }
    let embedder = pipeline.embedder().manifest().id.clone();
    if ctx.json {
        println!(
            "{}",
            json!({
                "embedder": embedder,
                "target_far": args.far,
                "threshold": threshold,
                "far": far,
                "tar": tar,
                "impostor_comparisons": impostor.len(),
                "genuine_comparisons": genuine.len(),
                "images": images,
                "images_without_face": missed,
            })
        );
    } else {
        println!(
            "{embedder}: threshold {threshold:.4} for FAR {:e}: measured FAR {far:.2e} over {} impostor comparisons, TAR {:.2} % over {} genuine comparisons ({images} images, {} without a face)",
            args.far,
            impostor.len(),
            tar * 100.0,
            genuine.len(),
            missed.len()
        );
        if let Some(path) = &args.write_config {
            println!(
                "wrote [matching] threshold = {threshold} to {}",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Scores = (Vec<f32>, Vec<f32>, usize, Vec<String>);

fn embed_with_progress(pipeline: &Pipeline, images: &[PathBuf]) -> Result<Vec<Option<Vec<f32>>>> {
    let bar = ProgressBar::new(images.len() as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} images, {eta} left")
            .expect("valid template"),
    );
    bar.set_message("embedding");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = central_embeddings(pipeline, images, threads, &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(out)
}

fn list_scores(pipeline: &Pipeline, list: &Path, root: Option<&Path>) -> Result<Scores> {
    let entries = super::eval::read_list(list, root)?;
    let mut labels: Vec<&str> = entries.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.len() < 2 {
        bail!("{}: need photos of at least two people", list.display());
    }
    let images: Vec<PathBuf> = entries.iter().map(|(_, p)| p.clone()).collect();
    let owner: Vec<usize> = entries
        .iter()
        .map(|(l, _)| labels.binary_search(&l.as_str()).expect("listed"))
        .collect();
    owner_scores(pipeline, images, &owner)
}

fn folder_scores(pipeline: &Pipeline, dir: &Path) -> Result<Scores> {
    let mut by_person: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for person in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let person = person?.path();
        if !person.is_dir() {
            continue;
        }
        let name = person
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&person)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        by_person.insert(name, photos);
    }
    let images: Vec<PathBuf> = by_person.values().flatten().cloned().collect();
    let owner: Vec<usize> = by_person
        .values()
        .enumerate()
        .flat_map(|(i, photos)| std::iter::repeat_n(i, photos.len()))
        .collect();
    if by_person.len() < 2 {
        bail!(
            "{}: need photos of at least two people in sub-folders",
            dir.display()
        );
    }
    owner_scores(pipeline, images, &owner)
}

/// Every pair of embedded images: genuine when `owner` is the same, else impostor.
fn owner_scores(pipeline: &Pipeline, images: Vec<PathBuf>, owner: &[usize]) -> Result<Scores> {
    let embeddings = embed_with_progress(pipeline, &images)?;
    let missed = missed(&images, &embeddings);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..images.len() {
        let Some(a) = &embeddings[i] else { continue };
        for j in i + 1..images.len() {
            let Some(b) = &embeddings[j] else { continue };
            let s = cosine(a, b);
            if owner[i] == owner[j] {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    Ok((genuine, impostor, images.len(), missed))
}

fn pairs_scores(pipeline: &Pipeline, file: &Path, root: &Path) -> Result<Scores> {
    let pairs = read_pairs(file, root)?;
    let mut images: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    images.sort();
    images.dedup();
    let embeddings = embed_with_progress(pipeline, &images)?;
    let missed = missed(&images, &embeddings);
    let find = |p: &PathBuf| embeddings[images.binary_search(p).expect("listed")].as_ref();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for p in &pairs {
        // A pair with a missing face scores as a non-match: it is counted, not dropped.
        let s = match (find(&p.a), find(&p.b)) {
            (Some(a), Some(b)) => cosine(a, b),
            _ => -1.0,
        };
        if p.same {
            genuine.push(s);
        } else {
            impostor.push(s);
        }
    }
    Ok((genuine, impostor, images.len(), missed))
}

/// Set `[matching] threshold` in a TOML config, creating the file if needed and keeping every
/// other setting.
fn write_threshold(path: &Path, threshold: f32) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let matching = doc
        .entry("matching")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(table) = matching.as_table_mut() else {
        bail!("{}: `matching` is not a table", path.display());
    };
    table.insert("threshold".into(), toml::Value::Float(threshold as f64));
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, toml::to_string(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

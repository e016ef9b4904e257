//! Calibration behind `facegate calibrate`: choose the open-set threshold for a target false-accept rate from
//! impostor comparisons, and report the genuine accept rate it keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::eval::metrics::{rate_at_or_above, threshold_at_far};
use crate::eval::pairs::read_pairs;
use crate::gallery::operating_point::ImpostorTail;
use crate::vision::embed::cosine;
use crate::vision::pipeline::{central_embeddings, Pipeline};

use crate::setup::{missed, Setup};

/// Where the comparisons come from.
#[derive(Debug, Clone)]
pub enum ScoreSource {
    /// A folder with one sub-folder of photos per person: every pair of photos of different
    /// people is an impostor comparison, every pair of the same person a genuine one.
    Folder(PathBuf),
    /// An LFW-format pairs file, images at `root/name/name_NNNN.jpg`.
    Pairs { file: PathBuf, root: PathBuf },
    /// A `label<TAB>path` list (as `eval identify` reads; paths relative to `root`, else to the
    /// list's folder): photos with different labels are impostor comparisons.
    List {
        file: PathBuf,
        root: Option<PathBuf>,
    },
}

impl ScoreSource {
    fn file(&self) -> &Path {
        match self {
            ScoreSource::Folder(p) => p,
            ScoreSource::Pairs { file, .. } | ScoreSource::List { file, .. } => file,
        }
    }
}

/// The impostor tail written for `--impostor-scores`.
#[derive(Debug, Clone, Serialize)]
pub struct TailWritten {
    pub path: PathBuf,
    pub points: usize,
    pub lowest_survival: f64,
    pub tail_rate: f64,
}

/// The threshold for a target false accept rate, and what it measured at.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub embedder: String,
    pub target_far: f64,
    pub threshold: f32,
    pub far: f64,
    pub tar: f64,
    pub impostor_comparisons: usize,
    pub genuine_comparisons: usize,
    pub images: usize,
    pub images_without_face: Vec<String>,
    /// The impostor score tail, when asked to write one.
    pub impostor_tail: Option<TailWritten>,
}

/// Embed the source's images and choose the threshold that meets `target_far`. With
/// `impostor_scores`, also write the upper tail of the impostor distribution there (shipped as
/// `models/<id>.impostors.toml`, the door threshold for each gallery size is derived from it).
pub fn calibrate(
    setup: &Setup,
    source: &ScoreSource,
    target_far: f64,
    impostor_scores: Option<&Path>,
) -> Result<Calibration> {
    let pipeline = setup.pipeline()?;
    let (genuine, impostor, images, missed) = match source {
        ScoreSource::Folder(dir) => folder_scores(&pipeline, dir)?,
        ScoreSource::Pairs { file, root } => pairs_scores(&pipeline, file, root)?,
        ScoreSource::List { file, root } => list_scores(&pipeline, file, root.as_deref())?,
    };
    let impostor_tail = match impostor_scores {
        Some(out) => {
            let manifest = pipeline.embedder().manifest();
            let description = format!(
                "{} impostor comparisons of {images} images ({} without a face) from {}; {}",
                impostor.len(),
                missed.len(),
                source.file().display(),
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            );
            let tail =
                ImpostorTail::from_scores(&impostor, &manifest.id, &manifest.sha256, &description)?;
            std::fs::write(out, tail.to_toml())
                .with_context(|| format!("writing {}", out.display()))?;
            Some(TailWritten {
                path: out.to_path_buf(),
                points: tail.survival.len(),
                lowest_survival: tail.survival.last().copied().unwrap_or(f64::NAN),
                tail_rate: tail.tail_rate,
            })
        }
        None => None,
    };
    let Some(threshold) = threshold_at_far(&impostor, target_far) else {
        bail!(
            "{} impostor comparisons cannot measure a false accept rate of {:e}; use more people or a larger --far",
            impostor.len(),
            target_far
        );
    };
    Ok(Calibration {
        embedder: pipeline.embedder().manifest().id.clone(),
        target_far,
        threshold,
        far: rate_at_or_above(&impostor, threshold),
        tar: rate_at_or_above(&genuine, threshold),
        impostor_comparisons: impostor.len(),
        genuine_comparisons: genuine.len(),
        images,
        images_without_face: missed,
        impostor_tail,
    })
}

type Scores = (Vec<f32>, Vec<f32>, usize, Vec<String>);

fn embed_with_progress(pipeline: &Pipeline, images: &[PathBuf]) -> Result<Vec<Option<Vec<f32>>>> {
    let bar = super::embedding_bar(images.len());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = central_embeddings(pipeline, images, threads, &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(out)
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

fn list_scores(pipeline: &Pipeline, list: &Path, root: Option<&Path>) -> Result<Scores> {
    let entries = crate::eval::protocols::read_list(list, root)?;
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
pub fn write_threshold(path: &Path, threshold: f32) -> Result<()> {
    write_table_threshold(path, "matching", threshold)
}

/// Set `threshold` in the `[table]` of the TOML config at `path`, creating the file if needed
/// and keeping every other setting.
pub fn write_table_threshold(path: &Path, table_name: &str, threshold: f32) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let entry = doc
        .entry(table_name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(table) = entry.as_table_mut() else {
        bail!("{}: `{table_name}` is not a table", path.display());
    };
    table.insert("threshold".into(), toml::Value::Float(threshold as f64));
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, toml::to_string(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

//! The evaluation protocols behind `facegate eval`: accuracy on the user's own data. Verification pairs (ROC, AUC, EER, TAR at
//! a fixed FAR), open-set 1:N search (rank 1, TPIR against FPIR), acceptance per capture
//! condition, and a similarity heatmap of a group of people. Embeddings are cached by image
//! content and model, so a second run only computes what is new.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::eval::cache::{self, CacheKey, CacheStats, EmbeddingCache};
use crate::eval::metrics::{
    auc, best_threshold, eer, kfold_accuracy, mean_std, open_set_at, open_set_curve, rank1,
    rate_at_or_above, roc_curve, tar_at_far, tpir_at_fpir, SearchOutcome,
};
use crate::eval::open_set::{sweep, SizeRow};
use crate::eval::pairs::read_pairs;
use crate::eval::plot::{curve_png, heatmap_png, CurvePlot, Mark, Series};
use crate::gallery::operating_point::{OperatingPoint, Rule};
use crate::gallery::Gallery;
use crate::vision::embed::{cosine, l2_normalised};
use crate::vision::pipeline::Pipeline;

use crate::setup::{missed, Setup};

/// The false accept rates every verification report states.
const FARS: [f64; 3] = [1e-2, 1e-3, 1e-4];
/// The false positive identification rates every 1:N report states.
const FPIRS: [f64; 2] = [1e-2, 1e-3];
/// The label of a probe whose person is not enrolled.
const STRANGER: &str = "UNKNOWN";

/// Which protocol to run, on what.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// Verification on an LFW-format pairs file: n-fold accuracy, ROC, AUC, EER, TAR at FAR.
    Pairs(PairsOptions),
    /// Open-set 1:N search: enroll a gallery list, search probes (strangers labelled UNKNOWN).
    Identify(IdentifyOptions),
    /// Acceptance per capture condition named in the file names (SUBJECT.CONDITION.ext).
    Conditions(ConditionsOptions),
    /// Similarity heatmap of the people in a folder (one sub-folder per person).
    Heatmap(HeatmapOptions),
}

/// Where embeddings are cached between runs.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// The cache file [default: ~/.cache/facegate/embeddings-<embedder>.bin].
    pub file: Option<PathBuf>,
    /// Neither read nor write the cache.
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct PairsOptions {
    /// Pairs file: header `folds n`, then per fold n lines `name i j` and n `name1 i name2 j`
    pub pairs: PathBuf,
    /// Image root (images at ROOT/name/name_NNNN.jpg) [default: the pairs file's folder]
    pub root: Option<PathBuf>,
    /// Write the ROC curve (log FAR axis) to this PNG
    pub plot: Option<PathBuf>,
    /// Measure FAR, ROC, AUC, EER and TAR at FAR against every pair of listed images of
    /// different people (the identity is the image's folder), not only the listed impostor
    /// pairs: enough impostors for FAR 1e-4. Accuracy still uses the listed pairs and folds.
    pub all_impostors: bool,
}

#[derive(Debug, Clone)]
pub struct IdentifyOptions {
    /// Enrollment list: lines `label<TAB>relative/path` (`#` comments); several lines per label
    /// give that person several templates
    pub gallery_list: PathBuf,
    /// Probe list in the same format; label UNKNOWN marks a stranger
    pub probes: PathBuf,
    /// Folder the paths are relative to [default: the folder of each list]
    pub root: Option<PathBuf>,
    /// Write the DET curve (FNIR against FPIR, log axes) to this PNG
    pub plot: Option<PathBuf>,
    /// Also search with galleries of the first N listed people, for each N, each at the
    /// threshold the configured door rule derives for it
    pub gallery_sizes: Vec<usize>,
    /// Write FPIR and TPIR against gallery size (from `gallery_sizes`) to this PNG
    pub size_plot: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ConditionsOptions {
    /// Folder (searched recursively) of images named SUBJECT.CONDITION.ext, as in the Yale faces
    pub dir: PathBuf,
    /// The condition each subject is enrolled with; every other image of the subject is
    /// compared with it
    pub reference: String,
}

#[derive(Debug, Clone)]
pub struct HeatmapOptions {
    /// Folder with one sub-folder of photos per person (names starting with `_` or `.` are
    /// skipped); loose files are grouped by name prefix (`Ann.1.jpg`, `Ann_0002.jpg` → Ann)
    pub dir: PathBuf,
    /// Where to write the heatmap PNG
    pub plot: PathBuf,
}

/// One evaluation with the setup's embedder: the human text and the JSON report (which names
/// the embedder and the cache use).
pub fn evaluate(setup: &Setup, cache: &CacheOptions, command: Protocol) -> Result<Report> {
    let mut runner = Runner::new(setup, cache)?;
    let (text, mut json) = match command {
        Protocol::Pairs(a) => pairs(&mut runner, a)?,
        Protocol::Identify(a) => identify(&mut runner, a)?,
        Protocol::Conditions(a) => conditions(&mut runner, a)?,
        Protocol::Heatmap(a) => heatmap(&mut runner, a)?,
    };
    runner.cache.save()?;
    let id = &runner.pipeline.embedder().manifest().id;
    json["embedder"] = json!(id);
    json["cache"] = json!(runner.stats);
    let text = format!(
        "{id}: {text}\n({} images embedded, {} from the cache)",
        runner.stats.misses, runner.stats.hits
    );
    Ok((text, json))
}

/// `roc.png` becomes `roc-<embedder>.png`, so compared runs do not overwrite each other's plot.
pub fn with_plot_suffix(mut command: Protocol, embedder: &str) -> Protocol {
    let suffixed = |p: &mut PathBuf| {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = match p.extension() {
            Some(ext) => format!("{stem}-{embedder}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{embedder}"),
        };
        p.set_file_name(name);
    };
    if let Protocol::Identify(a) = &mut command {
        if let Some(p) = a.size_plot.as_mut() {
            suffixed(p);
        }
    }
    let plot = match &mut command {
        Protocol::Pairs(a) => a.plot.as_mut(),
        Protocol::Identify(a) => a.plot.as_mut(),
        Protocol::Heatmap(a) => Some(&mut a.plot),
        Protocol::Conditions(_) => None,
    };
    if let Some(p) = plot {
        suffixed(p);
    }
    command
}

/// The headline figures of each command, as (label, JSON pointer into its report, percent?).
fn headline(command: &str) -> &'static [(&'static str, &'static str, bool)] {
    match command {
        "pairs" => &[
            ("accuracy (n-fold)", "/accuracy_mean", true),
            ("accuracy std", "/accuracy_std", true),
            ("AUC", "/auc", false),
            ("EER", "/eer/rate", true),
            ("TAR @ FAR 1e-2", "/tar_at_far/0/tar", true),
            ("TAR @ FAR 1e-3", "/tar_at_far/1/tar", true),
            ("TAR @ FAR 1e-4", "/tar_at_far/2/tar", true),
            (
                "threshold in force",
                "/configured_threshold/threshold",
                false,
            ),
            ("TAR at it", "/configured_threshold/tar", true),
            ("FAR at it", "/configured_threshold/far", true),
        ],
        "identify" => &[
            ("rank-1", "/rank1", true),
            ("TPIR @ FPIR 1e-2", "/tpir_at_fpir/0/tpir", true),
            ("TPIR @ FPIR 1e-3", "/tpir_at_fpir/1/tpir", true),
            (
                "threshold in force",
                "/configured_threshold/threshold",
                false,
            ),
            ("TPIR at it", "/configured_threshold/tpir", true),
            ("FPIR at it", "/configured_threshold/fpir", true),
        ],
        "conditions" => &[
            ("threshold in force", "/threshold", false),
            ("TAR overall", "/overall/tar", true),
            ("FAR overall", "/overall/far", true),
        ],
        "heatmap" => &[
            ("threshold in force", "/threshold", false),
            ("pairs above it", "/pairs_above_threshold", false),
        ],
        _ => &[],
    }
}

/// Rows of headline figures, one column per compared embedder (`null` where not measurable).
pub fn comparison(reports: &[Value]) -> Vec<Value> {
    let command = reports
        .first()
        .and_then(|r| r["command"].as_str())
        .unwrap_or_default();
    headline(command)
        .iter()
        .map(|(label, pointer, percent)| {
            let values: Vec<Value> = reports
                .iter()
                .map(|r| r.pointer(pointer).cloned().unwrap_or(Value::Null))
                .collect();
            json!({"metric": label, "percent": percent, "values": values})
        })
        .collect()
}

pub fn comparison_text(table: &[Value], reports: &[Value]) -> String {
    let ids: Vec<&str> = reports
        .iter()
        .map(|r| r["embedder"].as_str().unwrap_or("?"))
        .collect();
    let width = ids.iter().map(|i| i.len()).max().unwrap_or(0).max(10);
    let mut out = format!("{:<26}", "compared on the same data");
    for id in &ids {
        out += &format!("  {id:>width$}");
    }
    out.push('\n');
    for row in table {
        out += &format!("{:<26}", row["metric"].as_str().unwrap_or_default());
        let percent = row["percent"].as_bool().unwrap_or(false);
        for v in row["values"].as_array().into_iter().flatten() {
            let cell = match v.as_f64() {
                Some(x) if percent => format!("{:.2} %", x * 100.0),
                Some(x) if x.fract() == 0.0 => format!("{x}"),
                Some(x) => format!("{x:.4}"),
                None => "n/a".to_string(),
            };
            out += &format!("  {cell:>width$}");
        }
        out.push('\n');
    }
    out
}

/// A human summary and the JSON report.
pub type Report = (String, Value);

/// The pipeline, the threshold in force and the embedding cache, shared by every subcommand.
struct Runner {
    pipeline: Pipeline,
    /// The 1:1 threshold (pairs, conditions).
    threshold: f32,
    /// The door's rule (1:N), applied to each gallery's size.
    door: Rule,
    cache: EmbeddingCache,
    stats: CacheStats,
}

impl Runner {
    fn new(setup: &Setup, cache: &CacheOptions) -> Result<Self> {
        let pipeline = setup.pipeline()?;
        // Which face is found and how it is aligned changes the embedding: key on the settings.
        let settings = format!(
            "{:?}|{:?}|{:?}|mirrored {}",
            setup.variants()?.1,
            setup.config.detector,
            setup.config.low_light,
            setup.config.matching.mirrored_embedding
        );
        let key = CacheKey::new(&pipeline, &settings);
        let path = match (&cache.file, cache.disabled) {
            (_, true) => None,
            (Some(p), _) => Some(p.clone()),
            (None, false) => cache::default_path(&key.embedder),
        };
        Ok(Self {
            threshold: setup.threshold()?,
            door: setup.door_rule()?,
            cache: EmbeddingCache::open(path.as_deref(), key),
            pipeline,
            stats: CacheStats::default(),
        })
    }

    /// The central-face embedding of each image (`None`: no face), with a progress bar.
    fn embed(&mut self, images: &[PathBuf]) -> Result<Vec<Option<Vec<f32>>>> {
        let bar = super::embedding_bar(images.len());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (out, stats) =
            self.cache
                .central_embeddings(&self.pipeline, images, threads, &|| bar.inc(1))?;
        bar.finish_and_clear();
        self.stats.hits += stats.hits;
        self.stats.misses += stats.misses;
        Ok(out)
    }
}

fn pairs(runner: &mut Runner, args: PairsOptions) -> Result<Report> {
    let root = args.root.clone().unwrap_or_else(|| parent_of(&args.pairs));
    let pairs = read_pairs(&args.pairs, &root)?;
    if pairs.is_empty() {
        bail!("{}: no pairs", args.pairs.display());
    }
    let images = sorted_unique(pairs.iter().flat_map(|p| [p.a.clone(), p.b.clone()]));
    let embeddings = runner.embed(&images)?;
    let find = |p: &PathBuf| embeddings[images.binary_search(p).expect("listed")].as_ref();
    // A pair with a missing face scores as a non-match: counted (as an error if genuine),
    // never dropped.
    let scores: Vec<f32> = pairs
        .iter()
        .map(|p| match (find(&p.a), find(&p.b)) {
            (Some(a), Some(b)) => cosine(a, b),
            _ => -1.0,
        })
        .collect();
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    let fold: Vec<usize> = pairs.iter().map(|p| p.fold).collect();
    let (genuine, listed_impostor) = split_scores(&scores, &same);
    let impostor = if args.all_impostors {
        cross_identity_scores(&images, &embeddings)
    } else {
        listed_impostor.clone()
    };
    let impostor_source = if args.all_impostors {
        "all pairs of listed images of different people (a missing face: pair left out)"
    } else {
        "listed impostor pairs"
    };

    let per_fold = kfold_accuracy(&scores, &same, &fold);
    let accuracies: Vec<f64> = per_fold.iter().map(|(_, a)| *a).collect();
    // With a single fold there is no other fold to choose the threshold on.
    let cross_validated = (!accuracies.is_empty()).then(|| mean_std(&accuracies));
    // The best accuracy any threshold reaches on all pairs: optimistic, the threshold has seen
    // the test pairs; stated beside the cross-validated figure, never instead of it.
    let (best_t, best_acc) = best_threshold(&scores, &same);
    let auc = auc(&genuine, &impostor);
    let eer = eer(&genuine, &impostor);
    let at_far: Vec<Value> = FARS
        .iter()
        .map(|&far| match tar_at_far(&genuine, &impostor, far) {
            Some(t) => json!(t),
            None => json!({
                "target_far": far,
                "threshold": null,
                "tar": null,
                "far": null,
                "note": too_few("impostor pairs", impostor.len(), far),
            }),
        })
        .collect();
    let threshold = runner.threshold;
    let configured = json!({
        "threshold": threshold,
        "tar": rate_at_or_above(&genuine, threshold),
        "far": rate_at_or_above(&impostor, threshold),
    });
    let missed = missed(&images, &embeddings);

    if let Some(path) = &args.plot {
        let roc = roc_curve(&genuine, &impostor);
        let x_min = log_floor(0.5 / impostor.len().max(1) as f64);
        // Start the TAR axis at the decade below the TAR reached with no false accept.
        let tar_at_zero = roc
            .iter()
            .filter(|p| p.far == 0.0)
            .map(|p| p.tar)
            .fold(0.0, f64::max);
        let y0 = ((tar_at_zero * 10.0).floor() / 10.0).clamp(0.0, 0.9);
        let plot = CurvePlot {
            title: format!(
                "ROC {} ({} pairs)",
                runner.pipeline.embedder().manifest().id,
                pairs.len()
            ),
            x_label: "false accept rate (log scale; a rate of 0 is drawn at the left edge)".into(),
            y_label: "true accept rate".into(),
            x_min,
            y_log_min: None,
            y_range: (y0, 1.0),
            series: vec![Series {
                label: format!("AUC {:.4}", auc.unwrap_or(f64::NAN)),
                points: roc.iter().map(|p| (p.far, p.tar)).collect(),
            }],
            marks: vec![Mark {
                label: format!("configured threshold {threshold:.4}"),
                x: rate_at_or_above(&impostor, threshold),
                y: rate_at_or_above(&genuine, threshold),
            }],
        };
        curve_png(path, &plot, 800, 600)?;
    }

    let mut text = format!(
        "{} pairs ({} genuine, {} impostor), {} images ({} without a face)\n",
        pairs.len(),
        genuine.len(),
        listed_impostor.len(),
        images.len(),
        missed.len()
    );
    if args.all_impostors {
        text += &format!(
            "  FAR, ROC, AUC, EER and TAR @ FAR over {} impostor pairs: {impostor_source}\n",
            impostor.len()
        );
    }
    text += &match cross_validated {
        Some((mean, std)) => format!(
            "  accuracy {:.2} % ± {:.2} over {} folds (threshold from the other folds)\n",
            mean * 100.0,
            std * 100.0,
            per_fold.len()
        ),
        None => "  accuracy: n/a (one fold: no other fold to choose the threshold on)\n".into(),
    };
    text += &format!(
        "  best accuracy on all pairs {:.2} % at threshold {best_t:.4} (not cross-validated)\n",
        best_acc * 100.0
    );
    text += &format!(
        "  AUC {}  EER {}\n",
        auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        eer.map_or("n/a".into(), |e| format!(
            "{:.2} % at {:.4}",
            e.rate * 100.0,
            e.threshold
        )),
    );
    for &far in &FARS {
        text += &match tar_at_far(&genuine, &impostor, far) {
            Some(t) => format!(
                "  TAR @ FAR {far:.0e}: {:.2} % (threshold {:.4}, measured FAR {:.2e})\n",
                t.tar * 100.0,
                t.threshold,
                t.far
            ),
            None => format!(
                "  TAR @ FAR {far:.0e}: n/a ({})\n",
                too_few("impostor pairs", impostor.len(), far)
            ),
        };
    }
    text += &format!(
        "  at the configured threshold {threshold:.4}: TAR {:.2} %, FAR {:.2e}",
        rate_at_or_above(&genuine, threshold) * 100.0,
        rate_at_or_above(&impostor, threshold)
    );
    for m in &missed {
        text += &format!("\n  no face: {m}");
    }
    let json = json!({
        "command": "pairs",
        "pairs": pairs.len(),
        "genuine_pairs": genuine.len(),
        "impostor_pairs": listed_impostor.len(),
        "rate_impostors": {"source": impostor_source, "pairs": impostor.len()},
        "images": images.len(),
        "images_without_face": missed,
        "folds": per_fold.iter().map(|(t, a)| json!({"threshold": t, "accuracy": a})).collect::<Vec<_>>(),
        "accuracy_mean": cross_validated.map(|(m, _)| m),
        "accuracy_std": cross_validated.map(|(_, s)| s),
        "best_accuracy": {"threshold": best_t, "accuracy": best_acc, "cross_validated": false},
        "auc": auc,
        "eer": eer,
        "tar_at_far": at_far,
        "configured_threshold": configured,
        "plot": args.plot,
    });
    Ok((text, json))
}

fn identify(runner: &mut Runner, args: IdentifyOptions) -> Result<Report> {
    let enrol = read_list(&args.gallery_list, args.root.as_deref())?;
    let probes = read_list(&args.probes, args.root.as_deref())?;
    if enrol.is_empty() || probes.is_empty() {
        bail!("the gallery list and the probe list must each name at least one image");
    }
    let enrol_emb = runner.embed(&enrol.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
    let probe_emb = runner.embed(&probes.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;

    let mut by_label: BTreeMap<&str, Vec<&Vec<f32>>> = BTreeMap::new();
    for ((label, _), e) in enrol.iter().zip(&enrol_emb) {
        let entry = by_label.entry(label.as_str()).or_default();
        if let Some(e) = e {
            entry.push(e);
        }
    }
    let mut gallery = Gallery::new(runner.pipeline.gallery_id()?);
    let mut not_enrolled = Vec::new();
    for (label, embeddings) in &by_label {
        if *label == STRANGER {
            bail!(
                "{}: the gallery list may not use the label {STRANGER}",
                args.gallery_list.display()
            );
        }
        if embeddings.is_empty() {
            not_enrolled.push(label.to_string());
            continue;
        }
        gallery
            .add_person(label, embeddings, 0)
            .with_context(|| format!("enrolling {label}"))?;
    }
    let enrolled: HashSet<&str> = by_label
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(l, _)| *l)
        .collect();

    // A probe of someone not enrolled (no usable gallery photo) is a stranger to this gallery.
    let mut outcomes = Vec::with_capacity(probes.len());
    let mut unenrolled_probe_labels = BTreeMap::<String, usize>::new();
    // The errors worth looking at: strangers most like someone, enrolled people named wrongly.
    let mut worst_strangers: Vec<(f32, String, String)> = Vec::new();
    let mut misidentified: Vec<Value> = Vec::new();
    // Best minus second-best person, per probe (infinite with one person or no face).
    let mut margins: Vec<f32> = Vec::with_capacity(probes.len());
    for ((label, path), e) in probes.iter().zip(&probe_emb) {
        let mated = label != STRANGER && enrolled.contains(label.as_str());
        if label != STRANGER && !mated {
            *unenrolled_probe_labels.entry(label.clone()).or_default() += 1;
        }
        let (best, second) = match e {
            Some(e) => {
                let mut ranked = gallery.search(e)?.into_iter();
                (ranked.next(), ranked.next().map(|c| c.similarity))
            }
            None => (None, None),
        };
        margins.push(match (&best, second) {
            (Some(b), Some(s)) => b.similarity - s,
            _ => f32::INFINITY,
        });
        let rank1_correct = mated
            && best
                .as_ref()
                .is_some_and(|c| c.name.eq_ignore_ascii_case(label));
        if let Some(c) = &best {
            if !mated {
                worst_strangers.push((
                    c.similarity,
                    path.display().to_string(),
                    c.name.to_string(),
                ));
            } else if !rank1_correct {
                misidentified.push(json!({"probe": path, "label": label, "named": c.name.as_str(), "similarity": c.similarity}));
            }
        }
        outcomes.push(SearchOutcome {
            mated,
            rank1_correct,
            score: best.map_or(f32::NEG_INFINITY, |c| c.similarity),
        });
    }
    worst_strangers.sort_by(|a, b| b.0.total_cmp(&a.0));
    worst_strangers.truncate(10);
    let mated = outcomes.iter().filter(|o| o.mated).count();
    let strangers = outcomes.len() - mated;
    // The door's threshold for this gallery: derived from its size unless fixed in the config.
    let operating_point = runner.door.at(gallery.template_count());
    let threshold = operating_point.threshold;
    let at_threshold = open_set_at(&outcomes, threshold);
    let sizes = size_sweep(runner, &args, &enrol, &enrol_emb, &probes, &probe_emb)?;
    let margin_rows = margin_sweep(&outcomes, &margins, threshold);
    let rule_rows = template_rules(&by_label, &probes, &probe_emb, &enrolled);
    let rank1 = rank1(&outcomes);
    let at_fpir: Vec<Value> = FPIRS
        .iter()
        .map(|&fpir| match tpir_at_fpir(&outcomes, fpir) {
            Some(p) => json!({"target_fpir": fpir, "threshold": p.threshold, "tpir": p.tpir, "fpir": p.fpir}),
            None => json!({
                "target_fpir": fpir,
                "threshold": null,
                "tpir": null,
                "fpir": null,
                "note": if mated == 0 { "no enrolled person among the probes".to_string() } else { too_few("stranger probes", strangers, fpir) },
            }),
        })
        .collect();

    if let Some(path) = &args.plot {
        let curve = open_set_curve(&outcomes);
        let plot = CurvePlot {
            title: format!(
                "DET {}, gallery of {} people",
                runner.pipeline.embedder().manifest().id,
                gallery.len()
            ),
            x_label: "FPIR: strangers named (log scale; 0 at the left edge)".into(),
            y_label: "FNIR: enrolled people not named (log; 0 at the bottom)".into(),
            x_min: log_floor(0.5 / strangers.max(1) as f64),
            y_log_min: Some(log_floor(0.5 / mated.max(1) as f64)),
            y_range: (0.0, 1.0),
            series: vec![Series {
                label: format!("rank 1 {:.2} %", rank1.unwrap_or(f64::NAN) * 100.0),
                points: curve.iter().map(|p| (p.fpir, 1.0 - p.tpir)).collect(),
            }],
            marks: at_threshold
                .iter()
                .map(|p| Mark {
                    label: format!("configured threshold {threshold:.4}"),
                    x: p.fpir,
                    y: 1.0 - p.tpir,
                })
                .collect(),
        };
        curve_png(path, &plot, 800, 600)?;
    }

    let enrol_missed = missed(
        &enrol.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        &enrol_emb,
    );
    let probe_missed = missed(
        &probes.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        &probe_emb,
    );
    let mut text = format!(
        "gallery of {} people ({} templates from {} images, {} without a face); {} probes: {mated} enrolled, {strangers} strangers ({} without a face)\n",
        gallery.len(),
        gallery.template_count(),
        enrol.len(),
        enrol_missed.len(),
        probes.len(),
        probe_missed.len()
    );
    text += &format!("  rank-1 (closed set): {}\n", percent(rank1));
    for &fpir in &FPIRS {
        text += &match tpir_at_fpir(&outcomes, fpir) {
            Some(p) => format!(
                "  TPIR @ FPIR {fpir:.0e}: {:.2} % (threshold {:.4}, measured FPIR {:.2e})\n",
                p.tpir * 100.0,
                p.threshold,
                p.fpir
            ),
            None => format!(
                "  TPIR @ FPIR {fpir:.0e}: n/a ({})\n",
                too_few("stranger probes", strangers, fpir)
            ),
        };
    }
    text += &format!(
        "  at the configured threshold {threshold:.4}: TPIR {}, FPIR {}",
        percent(at_threshold.map(|p| p.tpir)),
        percent(at_threshold.map(|p| p.fpir))
    );
    text += &size_text(&operating_point, &sizes);
    text += &margin_text(&margin_rows);
    text += &template_rules_text(&rule_rows);
    for label in &not_enrolled {
        text += &format!("\n  not enrolled (no face in any gallery photo): {label}");
    }
    let json = json!({
        "command": "identify",
        "gallery": {
            "people": gallery.len(),
            "templates": gallery.template_count(),
            "images": enrol.len(),
            "images_without_face": enrol_missed,
            "not_enrolled": not_enrolled,
        },
        "probes": {
            "total": probes.len(),
            "mated": mated,
            "strangers": strangers,
            "images_without_face": probe_missed,
            "unenrolled_labels": unenrolled_probe_labels,
        },
        "rank1": rank1,
        "misidentified": misidentified,
        "most_similar_strangers": worst_strangers.iter().map(|(s, p, n)| json!({"probe": p, "named": n, "similarity": s})).collect::<Vec<_>>(),
        "tpir_at_fpir": at_fpir,
        "operating_point": operating_point,
        "gallery_sizes": sizes,
        "margins": margin_rows,
        "template_rules": rule_rows,
        "configured_threshold": {
            "threshold": threshold,
            "tpir": at_threshold.map(|p| p.tpir),
            "fpir": at_threshold.map(|p| p.fpir),
            "tnir": at_threshold.map(|p| 1.0 - p.fpir),
        },
        "plot": args.plot,
    });
    Ok((text, json))
}

fn conditions(runner: &mut Runner, args: ConditionsOptions) -> Result<Report> {
    // (subject, condition, path) for every file named SUBJECT.CONDITION[.ext].
    let mut items: Vec<(String, String, PathBuf)> = Vec::new();
    for path in images_below(&args.dir)? {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stem = match name.rsplit_once('.') {
            Some((stem, ext)) if is_image_ext(ext) => stem.to_string(),
            _ => name.clone(),
        };
        if let Some((subject, condition)) = stem.split_once('.') {
            items.push((subject.to_string(), condition.to_string(), path));
        }
    }
    if items.is_empty() {
        bail!(
            "{}: no images named SUBJECT.CONDITION.ext",
            args.dir.display()
        );
    }
    let images: Vec<PathBuf> = items.iter().map(|(_, _, p)| p.clone()).collect();
    let embeddings = runner.embed(&images)?;
    let references: BTreeMap<&str, Option<&Vec<f32>>> = items
        .iter()
        .zip(&embeddings)
        .filter(|((_, c, _), _)| *c == args.reference)
        .map(|((s, _, _), e)| (s.as_str(), e.as_ref()))
        .collect();
    if references.is_empty() {
        bail!(
            "{}: no image has the reference condition `{}`",
            args.dir.display(),
            args.reference
        );
    }
    let usable_refs = references.values().filter(|e| e.is_some()).count();
    let threshold = runner.threshold;

    #[derive(Default)]
    struct Row {
        images: usize,
        without_face: usize,
        genuine: Vec<f32>,
        impostor: Vec<f32>,
        no_reference: usize,
    }
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for ((subject, condition, _), e) in items.iter().zip(&embeddings) {
        if *condition == args.reference {
            continue;
        }
        let row = rows.entry(condition.as_str()).or_default();
        row.images += 1;
        match references.get(subject.as_str()) {
            Some(Some(r)) => {
                // No face found means the door would not open: a false reject.
                row.genuine.push(e.as_ref().map_or(-1.0, |e| cosine(e, r)));
            }
            _ => row.no_reference += 1,
        }
        let Some(e) = e else {
            row.without_face += 1;
            continue;
        };
        for (other, r) in &references {
            if let (true, Some(r)) = (*other != subject.as_str(), r) {
                row.impostor.push(cosine(e, r));
            }
        }
    }
    let mut text = format!(
        "reference condition `{}` ({} subjects, {usable_refs} with a face); threshold {threshold:.4}\n",
        args.reference,
        references.len()
    );
    text += &format!(
        "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}\n",
        "condition", "images", "no face", "TAR %", "FRR %", "mean sim", "FAR"
    );
    let mut table = Vec::new();
    let (mut all_g, mut all_i) = (Vec::new(), Vec::new());
    for (condition, row) in &rows {
        let tar = (!row.genuine.is_empty()).then(|| rate_at_or_above(&row.genuine, threshold));
        let far = (!row.impostor.is_empty()).then(|| rate_at_or_above(&row.impostor, threshold));
        let mean = (!row.genuine.is_empty())
            .then(|| row.genuine.iter().map(|&s| s as f64).sum::<f64>() / row.genuine.len() as f64);
        let min = row.genuine.iter().copied().reduce(f32::min);
        all_g.extend(&row.genuine);
        all_i.extend(&row.impostor);
        let cell = |v: Option<f64>, scale: f64| {
            v.map_or("n/a".to_string(), |v| format!("{:.1}", v * scale))
        };
        text += &format!(
            "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}\n",
            condition,
            row.images,
            row.without_face,
            cell(tar, 100.0),
            cell(tar.map(|t| 1.0 - t), 100.0),
            mean.map_or("n/a".into(), |m| format!("{m:.3}")),
            far.map_or("n/a".into(), |f| format!("{f:.2e}")),
        );
        table.push(json!({
            "condition": condition,
            "images": row.images,
            "without_face": row.without_face,
            "without_reference": row.no_reference,
            "genuine_comparisons": row.genuine.len(),
            "tar": tar,
            "frr": tar.map(|t| 1.0 - t),
            "mean_similarity": mean,
            "min_similarity": min,
            "impostor_comparisons": row.impostor.len(),
            "far": far,
        }));
    }
    let overall_tar = rate_at_or_above(&all_g, threshold);
    text += &format!(
        "  all conditions: TAR {:.1} % over {} comparisons, FAR {:.2e} over {}",
        overall_tar * 100.0,
        all_g.len(),
        rate_at_or_above(&all_i, threshold),
        all_i.len()
    );
    let json = json!({
        "command": "conditions",
        "reference": args.reference,
        "subjects": references.len(),
        "subjects_with_reference_face": usable_refs,
        "threshold": threshold,
        "conditions": table,
        "overall": {
            "genuine_comparisons": all_g.len(),
            "tar": overall_tar,
            "frr": 1.0 - overall_tar,
            "impostor_comparisons": all_i.len(),
            "far": rate_at_or_above(&all_i, threshold),
        },
    });
    Ok((text, json))
}

fn heatmap(runner: &mut Runner, args: HeatmapOptions) -> Result<Report> {
    let mut people: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries =
        std::fs::read_dir(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // `_multi`-style folders hold group photos, not one person.
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            let photos = images_below(&path)?;
            if !photos.is_empty() {
                people.entry(name).or_default().extend(photos);
            }
        } else if let Some((stem, ext)) = name.rsplit_once('.') {
            if is_image_ext(ext) {
                people.entry(person_prefix(stem)).or_default().push(path);
            }
        }
    }
    if people.len() < 2 {
        bail!("{}: need photos of at least two people", args.dir.display());
    }
    let images: Vec<PathBuf> = people.values().flatten().cloned().collect();
    let embeddings = runner.embed(&images)?;
    let mut names = Vec::new();
    let mut means = Vec::new();
    let mut summary = Vec::new();
    let mut next = 0;
    for (name, photos) in &people {
        let found: Vec<&Vec<f32>> = embeddings[next..next + photos.len()]
            .iter()
            .flatten()
            .collect();
        next += photos.len();
        summary.push(json!({"name": name, "images": photos.len(), "faces": found.len()}));
        if found.is_empty() {
            continue;
        }
        // The mean of unit vectors, renormalised: the person's centre in embedding space.
        let dim = found[0].len();
        let mut sum = vec![0.0f32; dim];
        for e in &found {
            for (s, x) in sum.iter_mut().zip(e.iter()) {
                *s += x;
            }
        }
        names.push(name.clone());
        means.push(l2_normalised(&sum)?);
    }
    let matrix: Vec<Vec<f32>> = means
        .iter()
        .map(|a| means.iter().map(|b| cosine(a, b)).collect())
        .collect();
    let threshold = runner.threshold;
    let mut above = Vec::new();
    let mut max_off: Option<(f32, usize, usize)> = None;
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            let s = matrix[i][j];
            if max_off.is_none_or(|(m, _, _)| s > m) {
                max_off = Some((s, i, j));
            }
            if s >= threshold {
                above.push(json!({"a": names[i], "b": names[j], "similarity": s}));
            }
        }
    }
    heatmap_png(
        &args.plot,
        &format!(
            "{}: mean-embedding cosine, boxed ≥ threshold {threshold:.3}",
            runner.pipeline.embedder().manifest().id
        ),
        &names,
        &matrix,
        threshold,
    )?;
    let mut text = format!(
        "{} people ({} with a face), {} images; {} of {} pairs of different people at or above the threshold {threshold:.4}",
        people.len(),
        names.len(),
        images.len(),
        above.len(),
        names.len() * names.len().saturating_sub(1) / 2
    );
    if let Some((s, i, j)) = max_off {
        text += &format!("; most alike: {} and {} ({s:.3})", names[i], names[j]);
    }
    text += &format!("\n  heatmap written to {}", args.plot.display());
    let json = json!({
        "command": "heatmap",
        "people": summary,
        "names": names,
        "matrix": matrix,
        "threshold": threshold,
        "pairs": names.len() * names.len().saturating_sub(1) / 2,
        "pairs_above_threshold": above.len(),
        "above_threshold": above,
        "max_off_diagonal": max_off.map(|(s, i, j)| json!({"a": names[i], "b": names[j], "similarity": s})),
        "plot": args.plot,
    });
    Ok((text, json))
}

/// `--gallery-sizes`: the search again with galleries of the first N listed people.
fn size_sweep(
    runner: &Runner,
    args: &IdentifyOptions,
    enrol: &[(String, PathBuf)],
    enrol_emb: &[Option<Vec<f32>>],
    probes: &[(String, PathBuf)],
    probe_emb: &[Option<Vec<f32>>],
) -> Result<Vec<SizeRow>> {
    if args.gallery_sizes.is_empty() {
        return Ok(Vec::new());
    }
    // People in the order of their first line, each with every embedded photo.
    let mut pool: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
    for ((label, _), e) in enrol.iter().zip(enrol_emb) {
        let i = match pool.iter().position(|(l, _)| l == label) {
            Some(i) => i,
            None => {
                pool.push((label.clone(), Vec::new()));
                pool.len() - 1
            }
        };
        pool[i].1.extend(e.clone());
    }
    let probes: Vec<(String, Option<Vec<f32>>)> = probes
        .iter()
        .zip(probe_emb)
        .map(|((l, _), e)| (l.clone(), e.clone()))
        .collect();
    let id = runner.pipeline.gallery_id()?;
    let rows = sweep(&id, &pool, &probes, &args.gallery_sizes, &runner.door)?;
    if let Some(path) = &args.size_plot {
        let fpir = |r: &SizeRow| r.fpir.unwrap_or(0.0);
        let x = |r: &SizeRow| r.people as f64 / 1e4;
        let mut series = vec![Series {
            label: "FPIR measured (strangers named)".into(),
            points: rows.iter().map(|r| (x(r), fpir(r))).collect(),
        }];
        if rows.iter().any(|r| r.target.is_some()) {
            series.push(Series {
                label: "target per attempt".into(),
                points: rows
                    .iter()
                    .filter_map(|r| Some((x(r), r.target?)))
                    .collect(),
            });
        }
        series.push(Series {
            label: "FNIR (enrolled people not named)".into(),
            points: rows
                .iter()
                .map(|r| (x(r), 1.0 - r.tpir.unwrap_or(0.0)))
                .collect(),
        });
        let plot = CurvePlot {
            title: format!(
                "{}: error rates against gallery size at the shipped threshold rule",
                runner.pipeline.embedder().manifest().id
            ),
            x_label: "gallery size / 10,000 people (log)".into(),
            y_label: "rate (log; 0 at the bottom)".into(),
            x_min: 1e-3,
            y_log_min: Some(1e-4),
            y_range: (0.0, 1.0),
            series,
            marks: Vec::new(),
        };
        curve_png(path, &plot, 800, 600)?;
    }
    Ok(rows)
}

/// How a person's several templates make one score against a probe.
#[derive(Clone, Copy)]
enum TemplateRule {
    /// The best template (what the gallery does).
    Max,
    /// The mean of the two best templates.
    MeanTop2,
    /// The template mean, renormalised.
    Centroid,
}

impl TemplateRule {
    const ALL: [(TemplateRule, &'static str); 3] = [
        (TemplateRule::Max, "max"),
        (TemplateRule::MeanTop2, "mean of top 2"),
        (TemplateRule::Centroid, "centroid"),
    ];
}

/// `v` at unit length (a vector without a direction is kept as it is: it scores 0 anyway).
fn unit(v: &[f32]) -> Vec<f32> {
    l2_normalised(v).unwrap_or_else(|_| v.to_vec())
}

/// A rate as a percentage, or "n/a" when there is none.
fn percent(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.2} %", v * 100.0))
}

/// One enrolled person's unit templates and their renormalised mean.
struct PersonTemplates<'a> {
    label: &'a str,
    templates: Vec<Vec<f32>>,
    centroid: Vec<f32>,
}

/// The open-set outcomes under each template rule, when some person has several templates
/// (empty otherwise): TPIR at each FPIR target, the threshold swept per rule, since a threshold
/// derived for one rule means nothing for another.
fn template_rules(
    by_label: &BTreeMap<&str, Vec<&Vec<f32>>>,
    probes: &[(String, PathBuf)],
    probe_emb: &[Option<Vec<f32>>],
    enrolled: &HashSet<&str>,
) -> Vec<Value> {
    if by_label.values().all(|t| t.len() < 2) {
        return Vec::new();
    }
    let people: Vec<PersonTemplates<'_>> = by_label
        .iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(label, t)| {
            let templates: Vec<Vec<f32>> = t.iter().map(|e| unit(e)).collect();
            let mut mean = vec![0.0; templates[0].len()];
            for t in &templates {
                for (m, x) in mean.iter_mut().zip(t) {
                    *m += x;
                }
            }
            PersonTemplates {
                label,
                templates,
                centroid: unit(&mean),
            }
        })
        .collect();
    TemplateRule::ALL
        .iter()
        .map(|&(rule, name)| {
            let outcomes: Vec<SearchOutcome> = probes
                .iter()
                .zip(probe_emb)
                .map(|((label, _), e)| {
                    let mated = label != STRANGER && enrolled.contains(label.as_str());
                    let Some(e) = e else {
                        return SearchOutcome {
                            mated,
                            rank1_correct: false,
                            score: f32::NEG_INFINITY,
                        };
                    };
                    let q = unit(e);
                    let (best, score) = people
                        .iter()
                        .map(|PersonTemplates { label: name, templates, centroid }| {
                            let mut s: Vec<f32> = templates.iter().map(|t| cosine(&q, t)).collect();
                            s.sort_by(|a, b| b.total_cmp(a));
                            let score = match rule {
                                TemplateRule::Max => s[0],
                                TemplateRule::MeanTop2 => {
                                    s.iter().take(2).sum::<f32>() / s.len().min(2) as f32
                                }
                                TemplateRule::Centroid => cosine(&q, centroid),
                            };
                            (*name, score)
                        })
                        .fold(("", f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
                    SearchOutcome {
                        mated,
                        rank1_correct: mated && best.eq_ignore_ascii_case(label),
                        score,
                    }
                })
                .collect();
            json!({
                "rule": name,
                "rank1": rank1(&outcomes),
                "tpir_at_fpir": FPIRS.iter().map(|&f| {
                    let p = tpir_at_fpir(&outcomes, f);
                    json!({"target_fpir": f, "tpir": p.map(|p| p.tpir), "threshold": p.map(|p| p.threshold)})
                }).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn template_rules_text(rows: &[Value]) -> String {
    let pct = |v: &Value| percent(v.as_f64());
    let mut text = String::new();
    if !rows.is_empty() {
        text += "\n  several templates per person, scored by:";
    }
    for r in rows {
        let at: Vec<String> = r["tpir_at_fpir"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "TPIR @ FPIR {:.0e} {} (threshold {})",
                    p["target_fpir"].as_f64().unwrap_or(f64::NAN),
                    pct(&p["tpir"]),
                    p["threshold"]
                        .as_f64()
                        .map_or("n/a".into(), |t| format!("{t:.4}"))
                )
            })
            .collect();
        text += &format!(
            "\n    {}: rank-1 {}; {}",
            r["rule"].as_str().unwrap_or("?"),
            pct(&r["rank1"]),
            at.join(", ")
        );
    }
    text
}

/// Margins (best minus second-best person) a margin rule could require.
const MARGINS: [f32; 5] = [0.0, 0.02, 0.05, 0.08, 0.12];

/// What a margin rule does: a probe is named only when its best person leads the second by at
/// least the margin. Reported at the configured threshold and, for the low-FPIR question the
/// rule is meant for, as TPIR at each FPIR target (the threshold swept with the margin held).
fn margin_sweep(outcomes: &[SearchOutcome], margins: &[f32], threshold: f32) -> Vec<Value> {
    MARGINS
        .iter()
        .map(|&m| {
            let kept: Vec<SearchOutcome> = outcomes
                .iter()
                .zip(margins)
                .map(|(o, &d)| SearchOutcome {
                    score: if d >= m { o.score } else { f32::NEG_INFINITY },
                    ..*o
                })
                .collect();
            let at = open_set_at(&kept, threshold);
            json!({
                "margin": m,
                "tpir": at.map(|p| p.tpir),
                "fpir": at.map(|p| p.fpir),
                "tpir_at_fpir": FPIRS.iter().map(|&f| json!({
                    "target_fpir": f,
                    "tpir": tpir_at_fpir(&kept, f).map(|p| p.tpir),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn margin_text(rows: &[Value]) -> String {
    let pct = |v: &Value| percent(v.as_f64());
    let mut text = "\n  margin rule (best minus second-best person at least):".to_string();
    for r in rows {
        let at_fpir: Vec<String> = r["tpir_at_fpir"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "TPIR @ FPIR {:.0e} {}",
                    p["target_fpir"].as_f64().unwrap_or(f64::NAN),
                    pct(&p["tpir"])
                )
            })
            .collect();
        text += &format!(
            "\n    {:.2}: at the configured threshold TPIR {}, FPIR {}; {}",
            r["margin"].as_f64().unwrap_or(f64::NAN),
            pct(&r["tpir"]),
            pct(&r["fpir"]),
            at_fpir.join(", ")
        );
    }
    text
}

fn size_text(op: &OperatingPoint, rows: &[SizeRow]) -> String {
    let mut text = format!(
        "\n  operating point: {} threshold {:.4} for {} templates{}",
        op.rule,
        op.threshold,
        op.comparisons,
        op.target
            .map_or(String::new(), |t| format!(" (target {t:.0e} per attempt)"))
    );
    for r in rows {
        text += &format!(
            "\n  gallery of {:>5} people: threshold {:.4}, TPIR {} of {} mated, FPIR {} ({} of {} strangers)",
            r.people,
            r.threshold,
            percent(r.tpir),
            r.mated,
            percent(r.fpir),
            r.false_accepts,
            r.strangers
        );
    }
    text
}

/// Read a `label<TAB>path` list; paths are relative to `root`, else to the list's folder.
pub(crate) fn read_list(file: &Path, root: Option<&Path>) -> Result<Vec<(String, PathBuf)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let root = root.map_or_else(|| parent_of(file), Path::to_path_buf);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((label, path)) = line.split_once('\t') else {
            bail!(
                "{}:{}: expected `label<TAB>path`, found {line:?}",
                file.display(),
                n + 1
            );
        };
        let (label, path) = (label.trim(), path.trim());
        if label.is_empty() || path.is_empty() {
            bail!("{}:{}: empty label or path", file.display(), n + 1);
        }
        out.push((label.to_string(), root.join(path)));
    }
    Ok(out)
}

fn parent_of(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The similarity of every pair of embedded images whose folders (identities) differ.
fn cross_identity_scores(images: &[PathBuf], embeddings: &[Option<Vec<f32>>]) -> Vec<f32> {
    let identity = |p: &PathBuf| p.parent().map(Path::to_path_buf);
    let found: Vec<(Option<PathBuf>, &Vec<f32>)> = images
        .iter()
        .zip(embeddings)
        .filter_map(|(p, e)| e.as_ref().map(|e| (identity(p), e)))
        .collect();
    let mut scores = Vec::with_capacity(found.len() * found.len().saturating_sub(1) / 2);
    for (i, (who_a, a)) in found.iter().enumerate() {
        for (who_b, b) in &found[i + 1..] {
            if who_a != who_b {
                scores.push(cosine(a, b));
            }
        }
    }
    scores
}

fn split_scores(scores: &[f32], same: &[bool]) -> (Vec<f32>, Vec<f32>) {
    let genuine = scores
        .iter()
        .zip(same)
        .filter(|(_, y)| **y)
        .map(|(s, _)| *s);
    let impostor = scores
        .iter()
        .zip(same)
        .filter(|(_, y)| !**y)
        .map(|(s, _)| *s);
    (genuine.collect(), impostor.collect())
}

fn sorted_unique(paths: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = paths.collect();
    v.sort();
    v.dedup();
    v
}

fn too_few(what: &str, have: usize, rate: f64) -> String {
    format!(
        "{have} {what} cannot measure a rate of {rate:.0e}: at least {} are needed",
        (1.0 / rate).ceil() as u64
    )
}

/// The power of ten at or below `x`.
fn log_floor(x: f64) -> f64 {
    10f64.powf(x.log10().floor())
}

fn is_image_ext(ext: &str) -> bool {
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "jpg" | "jpeg" | "png" | "gif" | "pgm" | "ppm" | "bmp"
    )
}

/// Image files below `dir`, sorted.
pub(crate) fn images_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(is_image_ext)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The person a loose file belongs to: the name before the first `.`, without a trailing
/// `_NNNN` photo number.
fn person_prefix(stem: &str) -> String {
    let head = stem.split('.').next().unwrap_or(stem);
    match head.rsplit_once('_') {
        Some((name, num)) if !name.is_empty() && num.chars().all(|c| c.is_ascii_digit()) => {
            name.to_string()
        }
        _ => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_rules_score_as_named() {
        // A: two templates 90 degrees apart; B: one template. The probe is A's first template.
        let (a1, a2, b) = (
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        );
        let by_label = BTreeMap::from([("A", vec![&a1, &a2]), ("B", vec![&b])]);
        let probes = vec![
            ("A".to_string(), PathBuf::from("a.jpg")),
            (STRANGER.to_string(), PathBuf::from("s.jpg")),
        ];
        let emb = vec![Some(a1.clone()), Some(vec![0.0, 0.6, 0.8])];
        let enrolled = HashSet::from(["A", "B"]);
        let rows = template_rules(&by_label, &probes, &emb, &enrolled);
        let names: Vec<_> = rows.iter().map(|r| r["rule"].as_str().unwrap()).collect();
        assert_eq!(names, ["max", "mean of top 2", "centroid"]);
        for r in &rows {
            assert_eq!(r["rank1"], 1.0, "{r}");
        }
        // One person with one template each: nothing to compare.
        let single = BTreeMap::from([("A", vec![&a1]), ("B", vec![&b])]);
        assert!(template_rules(&single, &probes, &emb, &enrolled).is_empty());
    }

    #[test]
    fn person_prefix_strips_numbers_and_conditions() {
        assert_eq!(person_prefix("Ann_Lee_0002"), "Ann_Lee");
        assert_eq!(person_prefix("subject01.glasses"), "subject01");
        assert_eq!(person_prefix("bob"), "bob");
    }

    #[test]
    fn list_lines_need_a_tab() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.tsv");
        std::fs::write(&file, "# people\n\nAnn\ta/1.jpg\nUNKNOWN\tb.jpg\r\n").unwrap();
        let list = read_list(&file, None).unwrap();
        assert_eq!(list[0], ("Ann".into(), dir.path().join("a/1.jpg")));
        assert_eq!(list[1].0, STRANGER);
        std::fs::write(&file, "Ann a.jpg\n").unwrap();
        assert!(read_list(&file, None).is_err());
    }
}

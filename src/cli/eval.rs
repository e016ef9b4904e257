//! `facegate eval`: parse the protocol's options, run it (`facegate::eval::protocols`, or
//! `facegate::eval::liveness` for `eval liveness`), print its report, or several embedders'
//! reports side by side with `--compare`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;

use facegate::eval::liveness::{self, LivenessOptions};
use facegate::eval::protocols::{
    comparison, comparison_text, evaluate, with_plot_suffix, CacheOptions, ConditionsOptions,
    HeatmapOptions, IdentifyOptions, PairsOptions, Protocol,
};

use super::Context;

#[derive(Debug, Parser)]
pub struct EvalArgs {
    /// Embedding cache file [default: ~/.cache/facegate/embeddings-<embedder>.bin]
    #[arg(long, global = true, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Neither read nor write the embedding cache
    #[arg(long, global = true, conflicts_with = "cache")]
    no_cache: bool,
    /// Run the same evaluation with each of these embedders (comma-separated, e.g.
    /// `mobilefacenet,dlib`) and print their headline figures side by side; plots get the
    /// embedder id appended to their file name
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        value_name = "EMBEDDERS",
        conflicts_with = "cache"
    )]
    compare: Vec<String>,
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum EvalCommand {
    /// Verification on an LFW-format pairs file: n-fold accuracy, ROC, AUC, EER, TAR at FAR
    Pairs(PairsArgs),
    /// Open-set 1:N search: enroll a gallery list, search probes (strangers labelled UNKNOWN)
    Identify(IdentifyArgs),
    /// Acceptance per capture condition named in the file names (SUBJECT.CONDITION.ext)
    Conditions(ConditionsArgs),
    /// Similarity heatmap of the people in a folder (one sub-folder per person)
    Heatmap(HeatmapArgs),
    /// Liveness (presentation-attack detection): APCER, BPCER, DET curve on live/attack folders
    Liveness(LivenessArgs),
}

#[derive(Debug, Clone, Parser)]
struct PairsArgs {
    /// Pairs file: header `folds n`, then per fold n lines `name i j` and n `name1 i name2 j`
    #[arg(long)]
    pairs: PathBuf,
    /// Image root (images at ROOT/name/name_NNNN.jpg) [default: the pairs file's folder]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Write the ROC curve (log FAR axis) to this PNG
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
    /// Measure FAR, ROC, AUC, EER and TAR at FAR against every pair of listed images of
    /// different people (the identity is the image's folder), not only the listed impostor
    /// pairs: enough impostors for FAR 1e-4. Accuracy still uses the listed pairs and folds.
    #[arg(long)]
    all_impostors: bool,
}

#[derive(Debug, Clone, Parser)]
struct IdentifyArgs {
    /// Enrollment list: lines `label<TAB>relative/path` (`#` comments); several lines per label
    /// give that person several templates
    #[arg(long, value_name = "TSV")]
    gallery_list: PathBuf,
    /// Probe list in the same format; label UNKNOWN marks a stranger
    #[arg(long, value_name = "TSV")]
    probes: PathBuf,
    /// Folder the paths are relative to [default: the folder of each list]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Write the DET curve (FNIR against FPIR, log axes) to this PNG
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
    /// Also search with galleries of the first N listed people, for each N (comma-separated),
    /// each at the threshold the configured rule derives for it
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    gallery_sizes: Vec<usize>,
    /// Write FPIR and TPIR against gallery size (from --gallery-sizes) to this PNG
    #[arg(long, value_name = "PNG", requires = "gallery_sizes")]
    size_plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Parser)]
struct ConditionsArgs {
    /// Folder (searched recursively) of images named SUBJECT.CONDITION.ext, as in the Yale faces
    dir: PathBuf,
    /// The condition each subject is enrolled with; every other image of the subject is
    /// compared with it
    #[arg(long, default_value = "normal")]
    reference: String,
}

#[derive(Debug, Clone, Parser)]
struct HeatmapArgs {
    /// Folder with one sub-folder of photos per person (names starting with `_` or `.` are
    /// skipped); loose files are grouped by name prefix (`Ann.1.jpg`, `Ann_0002.jpg` → Ann)
    dir: PathBuf,
    /// Where to write the heatmap PNG
    #[arg(long, value_name = "PNG", default_value = "heatmap.png")]
    plot: PathBuf,
}

#[derive(Debug, Clone, Parser)]
struct LivenessArgs {
    /// Folder of bona fide (live) face images, searched recursively
    #[arg(long, required = true)]
    live: Vec<PathBuf>,
    /// Folder of attack presentations (printed photos, screens), searched recursively
    #[arg(long)]
    attack: Vec<PathBuf>,
    /// Write the DET curve (BPCER against APCER, log axes) to this PNG
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
    /// Also report APCER and BPCER at this threshold (repeatable), e.g. one calibrated on
    /// another set applied to live-only data
    #[arg(long, value_name = "THRESHOLD")]
    at: Vec<f32>,
}

impl EvalArgs {
    fn cache_options(&self) -> CacheOptions {
        CacheOptions {
            file: self.cache.clone(),
            disabled: self.no_cache,
        }
    }
}

impl From<EvalCommand> for Protocol {
    fn from(command: EvalCommand) -> Self {
        match command {
            EvalCommand::Pairs(a) => Protocol::Pairs(PairsOptions {
                pairs: a.pairs,
                root: a.root,
                plot: a.plot,
                all_impostors: a.all_impostors,
            }),
            EvalCommand::Identify(a) => Protocol::Identify(IdentifyOptions {
                gallery_list: a.gallery_list,
                probes: a.probes,
                root: a.root,
                plot: a.plot,
                gallery_sizes: a.gallery_sizes,
                size_plot: a.size_plot,
            }),
            EvalCommand::Conditions(a) => Protocol::Conditions(ConditionsOptions {
                dir: a.dir,
                reference: a.reference,
            }),
            EvalCommand::Heatmap(a) => Protocol::Heatmap(HeatmapOptions {
                dir: a.dir,
                plot: a.plot,
            }),
            EvalCommand::Liveness(_) => unreachable!("eval liveness is not an embedder protocol"),
        }
    }
}

pub fn run(ctx: &Context, args: EvalArgs) -> Result<ExitCode> {
    if let EvalCommand::Liveness(a) = args.command {
        // No embedder involved: neither the cache nor --compare apply.
        let options = LivenessOptions {
            live: a.live,
            attack: a.attack,
            plot: a.plot,
            at: a.at,
        };
        let (text, json) = liveness::evaluate(ctx, &options)?;
        println!("{}", if ctx.json { json.to_string() } else { text });
        return Ok(ExitCode::SUCCESS);
    }
    if args.compare.is_empty() {
        let (text, json) = evaluate(ctx, &args.cache_options(), args.command.clone().into())?;
        if ctx.json {
            println!("{json}");
        } else {
            println!("{text}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut reports = Vec::new();
    for embedder in &args.compare {
        let ctx = ctx.with_embedder(embedder)?;
        let id = ctx.config.embedder.clone();
        let command = with_plot_suffix(args.command.clone().into(), &id);
        let (text, json) = evaluate(&ctx, &args.cache_options(), command)?;
        if !ctx.json {
            println!("{text}\n");
        }
        reports.push(json);
    }
    let table = comparison(&reports);
    if ctx.json {
        println!("{}", json!({"compare": reports, "summary": table}));
    } else {
        print!("{}", comparison_text(&table, &reports));
    }
    Ok(ExitCode::SUCCESS)
}

//! `facegate enroll --name NAME IMAGE...`: one person, one template per photo; or
//! `--camera`: the person is guided through a few poses at the terminal's own camera.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use facegate::gallery::{Match, Selector};
use facegate::media::image_io::load_rgb;
use facegate::terminal::camera_enrol::{enrol_from_camera, CameraEnrolment};
use facegate::vision::pipeline::{Pipeline, StageTimes};

use super::Context;

#[derive(Debug, Parser)]
pub struct EnrollArgs {
    /// The person's name (1–64 bytes, unique in the gallery)
    #[arg(long)]
    name: String,
    /// Link the person to this Unix account (login stations: `pam_facegate` checks this
    /// person's face for that login); a login belongs to one person at most
    #[arg(long, value_name = "LOGIN")]
    user: Option<String>,
    /// Photos of the person, one face each
    #[arg(required_unless_present_any = ["from_embed", "camera"])]
    images: Vec<PathBuf>,
    /// In a photo with several faces, take the largest instead of refusing the photo
    #[arg(long)]
    largest: bool,
    /// Add the templates to an already enrolled person of that name
    #[arg(long)]
    append: bool,
    /// Read the embeddings from `facegate embed` output (JSON lines) instead of photos, e.g. to
    /// enroll on a terminal from photos processed elsewhere; the embedder must match
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    from_embed: Option<PathBuf>,
    /// Enroll from the camera ([camera] source): the display guides the person through four
    /// poses (straight on, a little to each side, glasses off or on) and one frame that passes
    /// the quality gates is kept per pose
    #[arg(long, conflicts_with_all = ["images", "from_embed"])]
    camera: bool,
    /// With --camera: frames from this source instead of [camera] source (a folder, an MJPEG
    /// file, `stdin`, /dev/videoN)
    #[arg(long, requires = "camera")]
    source: Option<String>,
    /// With --camera: give up after this many seconds of camera time
    #[arg(long, requires = "camera", default_value_t = 60.0)]
    timeout: f32,
    /// With --camera: the fewest poses to store when time runs out (all four are asked for)
    #[arg(long, requires = "camera", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=4))]
    min_poses: u32,
    /// With --camera: draw the display into PNG files in DIR (headless runs)
    #[arg(long, requires = "camera", value_name = "DIR")]
    display_png: Option<PathBuf>,
    /// Enroll even a face that fails the liveness check (logged)
    #[arg(long)]
    no_liveness: bool,
}

pub fn run(ctx: &Context, args: EnrollArgs) -> Result<ExitCode> {
    // A bad login is refused before the models run.
    if let Some(login) = &args.user {
        facegate::gallery::validate_login(login)?;
    }
    if args.no_liveness && ctx.config.liveness.enabled {
        log::warn!(
            "enrolling {} with --no-liveness: faces are not checked for printed photos",
            args.name
        );
        eprintln!("facegate: warning: --no-liveness: the liveness check is skipped");
    }
    let embeddings = match &args.from_embed {
        Some(file) => read_embed_output(ctx, file, args.no_liveness)?,
        None if args.camera => {
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
                signal_hook::flag::register(sig, stop.clone())?;
            }
            let request = CameraEnrolment {
                name: args.name.clone(),
                source: args.source.clone(),
                display_png: args.display_png.clone(),
                timeout: args.timeout,
                min_poses: args.min_poses,
                liveness: !args.no_liveness,
            };
            enrol_from_camera(ctx, &request, &stop, &mut |m| eprintln!("facegate: {m}"))?
        }
        None => embed_photos(
            &ctx.pipeline_live(args.no_liveness)?,
            &args.images,
            args.largest,
        )?,
    };
    let threshold = ctx.threshold()?;
    let expected = ctx.gallery_id()?;
    let mut gallery = ctx.load_gallery(&expected)?;
    let existing = gallery
        .find(&Selector::Name(args.name.clone()))
        .map(|p| p.id);
    if existing.is_some() && !args.append {
        bail!(
            "'{}' is already enrolled; use --append to add these photos to them, or remove them first",
            args.name
        );
    }

    // Duplicate check, as door terminals do: one person enrolled under two names weakens both.
    let mut warnings = Vec::new();
    for (source, embedding) in &embeddings {
        if let Match::Known(c) = gallery.best_match(embedding, threshold)? {
            if Some(c.person_id) != existing {
                warnings.push(format!(
                    "{source} looks like already-enrolled {} (id {}, similarity {:.3})",
                    c.name.as_str(),
                    c.person_id,
                    c.similarity
                ));
            }
        }
    }
    let vectors: Vec<&[f32]> = embeddings.iter().map(|(_, e)| e.as_slice()).collect();
    let id = match existing {
        Some(id) => {
            gallery.add_templates(id, &vectors)?;
            id
        }
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            gallery.add_person(&args.name, &vectors, now)?
        }
    };
    if let Some(login) = &args.user {
        gallery.link_user(&Selector::Id(id), Some(login))?;
    }
    ctx.save_gallery(&gallery)?;
    let person = gallery.find(&Selector::Id(id)).expect("just added");
    for w in &warnings {
        eprintln!("facegate: warning: {w}");
    }
    if ctx.json {
        println!(
            "{}",
            json!({
                "id": id,
                "name": person.name.as_str(),
                "added": vectors.len(),
                "templates": person.templates.len(),
                "user": person.user.as_deref(),
                "warnings": warnings,
            })
        );
    } else {
        println!(
            "enrolled {} (id {}): {} new template(s), {} in all",
            person.name.as_str(),
            id,
            vectors.len(),
            person.templates.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One embedding per photo; any photo without exactly one usable face fails the enrollment
/// before anything is written.
fn embed_photos(
    pipeline: &Pipeline,
    images: &[PathBuf],
    largest: bool,
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    let mut times = StageTimes::default();
    for path in images {
        let image = load_rgb(path)?;
        let analysis = pipeline.analyse(&image, &mut times)?;
        let mut faces = analysis.faces;
        let face = match faces.len() {
            0 => bail!(
                "{}: no face found; use a photo where the face is clearly visible",
                path.display()
            ),
            1 => faces.remove(0),
            n if largest => faces
                .into_iter()
                .max_by(|a, b| {
                    let area = |f: &facegate::vision::pipeline::Face| {
                        f.detection.width() * f.detection.height()
                    };
                    area(a).total_cmp(&area(b))
                })
                .unwrap_or_else(|| unreachable!("{n} faces")),
            n => bail!(
                "{}: {n} faces found; use a photo of the person alone, or --largest",
                path.display()
            ),
        };
        if let Some(l) = face.liveness.filter(|l| !l.live) {
            bail!(
                "{}: the face fails the liveness check (score {:.3} < {:.3}): a photo of a photo \
                 or a screen? Take the picture of the person themselves, or pass --no-liveness",
                path.display(),
                l.score,
                pipeline
                    .liveness()
                    .map_or(f32::NAN, |l| l.params().threshold)
            );
        }
        out.push((path.display().to_string(), face.embedding));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct EmbedLine {
    image: String,
    embedder: Option<String>,
    #[serde(default)]
    faces: Vec<EmbedFace>,
}

#[derive(Deserialize)]
struct EmbedFace {
    embedding: Vec<f32>,
    #[serde(default)]
    liveness: Option<EmbedLiveness>,
}

#[derive(Deserialize)]
struct EmbedLiveness {
    score: f32,
    live: bool,
}

/// The central face of every line of `facegate embed` output.
fn read_embed_output(
    ctx: &Context,
    file: &Path,
    no_liveness: bool,
) -> Result<Vec<(String, Vec<f32>)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let expected = ctx.gallery_id()?;
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed: EmbedLine = serde_json::from_str(line).with_context(|| {
            format!("{}:{}: not a `facegate embed` line", file.display(), n + 1)
        })?;
        if parsed.embedder.as_deref() != Some(expected.id.as_str()) {
            bail!(
                "{}:{}: embeddings from embedder {:?}, but the gallery uses {}",
                file.display(),
                n + 1,
                parsed.embedder,
                expected.id
            );
        }
        let Some(face) = parsed.faces.into_iter().next() else {
            bail!("{}:{}: no face in {}", file.display(), n + 1, parsed.image);
        };
        if let Some(l) = face.liveness.as_ref().filter(|l| !l.live && !no_liveness) {
            bail!(
                "{}:{}: {} failed the liveness check (score {:.3}); pass --no-liveness to enroll it",
                file.display(),
                n + 1,
                parsed.image,
                l.score
            );
        }
        out.push((parsed.image, face.embedding));
    }
    if out.is_empty() {
        bail!("{}: no embeddings", file.display());
    }
    Ok(out)
}

//! `facegate enroll --name NAME IMAGE...`: one person, one template per photo; or
//! `--camera`: the person is guided through a few poses at the terminal's own camera.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facegate::gallery::{lookalikes, Selector};
use facegate::hw::camera::{Resilient, SourceEvent};
use facegate::hw::display::Screen;
use facegate::media::frame::Frame;
use facegate::media::image_io::load_rgb;
use facegate::terminal::guided_enrol::{Guide, GuideParams, Pose, Progress};
use facegate::vision::pipeline::{Pipeline, StageTimes};

use super::Context;

#[derive(Debug, Parser)]
pub struct EnrollArgs {
    /// The person's name (1–64 bytes, unique in the gallery)
    #[arg(long)]
    name: String,
    /// Photos of the person, one face each
    #[arg(required_unless_present_any = ["from_embed", "camera"])]
    images: Vec<PathBuf>,
    /// In a photo with several faces, take the largest instead of refusing the photo
    #[arg(long)]
    largest: bool,
    /// Add the templates to an already enrolled person of that name
    #[arg(long)]
    append: bool,
    /// Refuse (store nothing) when a photo scores at or above the door threshold against
    /// someone else already enrolled, instead of warning
    #[arg(long)]
    strict: bool,
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
}

pub fn run(ctx: &Context, args: EnrollArgs) -> Result<ExitCode> {
    let embeddings = match &args.from_embed {
        Some(file) => read_embed_output(ctx, file)?,
        None if args.camera => from_camera(ctx, &args)?,
        None => embed_photos(&ctx.pipeline()?, &args.images, args.largest)?,
    };
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

    // Look-alikes: at the door's threshold for the gallery as it will be, a photo that already
    // names someone else would let one of the two in as the other.
    let after = gallery.template_count() + embeddings.len();
    let door = ctx.door_rule()?.at(after).threshold;
    let photos: Vec<&[f32]> = embeddings.iter().map(|(_, e)| e.as_slice()).collect();
    let warnings: Vec<String> = lookalikes::matches_for(&gallery, &photos, door, existing)?
        .into_iter()
        .map(|(id, name, s)| {
            format!(
                "{} looks like already-enrolled {name} (id {id}): similarity {s:.3}, at or above \
                 the door threshold {door:.4}; the terminal may take one for the other",
                args.name
            )
        })
        .collect();
    if args.strict && !warnings.is_empty() {
        bail!("{} (--strict: nothing was enrolled)", warnings.join("; "));
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
    ctx.store().save(&gallery)?;
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

/// Guide the person at the camera through the poses; one embedding per captured pose. Nothing
/// is returned (so nothing stored) unless at least `--min-poses` poses were captured.
fn from_camera(ctx: &Context, args: &EnrollArgs) -> Result<Vec<(String, Vec<f32>)>> {
    let mut camera = ctx.config.camera.clone();
    if let Some(s) = &args.source {
        camera.source = s.clone();
    }
    let pipeline = ctx.pipeline()?;
    let (mut open, is_device) = super::run::opener(&camera)?;
    if !is_device {
        open().map_err(anyhow::Error::from)?;
    }
    let mut source = Resilient::new(open, camera.backoff());
    let mut display = super::run::display(ctx, args.display_png.as_deref())?;
    let mut show = |screen: &Screen| {
        if let Some(d) = display.as_mut() {
            if let Err(e) = d.show(screen) {
                log::warn!("display: {e}");
            }
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut guide = Guide::new(GuideParams::new(
        ctx.config.decide.quality.clone(),
        ctx.threshold()?,
    ));
    let timeout = Duration::from_secs_f32(args.timeout.max(0.0));
    let every = u64::from(camera.every_nth.max(1));
    let mut frame = Frame::empty();
    let mut times = StageTimes::default();
    let (mut read, mut last_said) = (0u64, None);
    let mut started_at = None;
    let ask = |guide: &Guide| Screen::Enrol {
        prompt: guide.next_pose().map_or("", |p| p.prompt()).to_string(),
        done: guide.captures().len(),
        total: guide.total(),
    };
    show(&ask(&guide));
    eprintln!(
        "facegate: enrolling {}: {}",
        args.name,
        Pose::Front.prompt()
    );
    while !stop.load(Ordering::Relaxed) && guide.next_pose().is_some() {
        let now = Instant::now();
        match source.poll(now, &mut frame) {
            SourceEvent::Frame => {}
            SourceEvent::Skipped(e) => {
                log::warn!("{e}");
                continue;
            }
            SourceEvent::Lost { error, retry_in } => {
                eprintln!("facegate: camera lost: {error}; retrying in {retry_in:?}");
                show(&Screen::CameraLost);
                continue;
            }
            SourceEvent::Waiting { until } => {
                std::thread::sleep(
                    until
                        .saturating_duration_since(now)
                        .min(Duration::from_millis(50)),
                );
                continue;
            }
            SourceEvent::Recovered => {
                show(&ask(&guide));
                continue;
            }
            SourceEvent::End => break,
        }
        read += 1;
        let start = *started_at.get_or_insert(frame.timestamp);
        if frame.timestamp.saturating_sub(start) > timeout {
            break;
        }
        if (read - 1) % every != 0 {
            continue;
        }
        let analysis = pipeline.analyse(&frame.image, &mut times)?;
        let progress = guide.step(&analysis.faces);
        let screen = match &progress {
            Progress::Hint(h) => Screen::Hint(*h),
            Progress::Done => Screen::Enrolled(args.name.clone()),
            _ => ask(&guide),
        };
        show(&screen);
        let said = format!("{progress:?}");
        if last_said.as_ref() != Some(&said) {
            match &progress {
                Progress::Captured(_) | Progress::Done => {
                    let c = guide.captures().last().expect("captured");
                    eprintln!(
                        "facegate: captured {:?} (frame {}, head turn {:.0}°, similarity to the earlier frames {:.3}){}",
                        c.pose,
                        frame.index,
                        c.yaw_deg,
                        c.similarity,
                        guide.next_pose().map_or(String::new(), |p| format!("; next: {}", p.prompt()))
                    );
                }
                Progress::OnePersonOnly => eprintln!("facegate: one person at a time, please"),
                Progress::SomeoneElse { similarity } => eprintln!(
                    "facegate: this is not the person being enrolled (similarity {similarity:.3}); ignored"
                ),
                _ => {}
            }
            last_said = Some(said);
        }
    }
    if stop.load(Ordering::Relaxed) {
        bail!("enrolment interrupted; nothing stored");
    }
    let captured = guide.captures();
    if captured.len() < args.min_poses as usize {
        bail!(
            "only {} of {} poses captured before the camera {} (missing: {}); nothing stored. \
             Stand closer in good light, facing the camera, and try again",
            captured.len(),
            guide.total(),
            if guide.next_pose().is_some() && read > 0 {
                "time ran out or the stream ended"
            } else {
                "gave no frames"
            },
            guide
                .missing()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !guide.missing().is_empty() {
        eprintln!(
            "facegate: warning: not captured: {}; storing the {} pose(s) that were",
            guide
                .missing()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            captured.len()
        );
    }
    show(&Screen::Enrolled(args.name.clone()));
    Ok(captured
        .iter()
        .map(|c| (format!("camera {:?}", c.pose), c.embedding.clone()))
        .collect())
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
}

/// The central face of every line of `facegate embed` output.
fn read_embed_output(ctx: &Context, file: &Path) -> Result<Vec<(String, Vec<f32>)>> {
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
        out.push((parsed.image, face.embedding));
    }
    if out.is_empty() {
        bail!("{}: no embeddings", file.display());
    }
    Ok(out)
}

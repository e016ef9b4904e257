//! `facegate enroll --name NAME IMAGE...`: one person, one template per photo; or
//! `--camera`: the person is guided through a few poses at the terminal's own camera.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use base64::Engine as _;
use facegate::gallery::Selector;
use facegate::media::image_io::load_rgb;
use facegate::service::client::{Client, ClientError, Via};
use facegate::service::ops::{self, Enrolled, Target};
use facegate::service::protocol::ErrorCode;
use facegate::terminal::camera_enrol::{enrol_from_camera, CameraEnrolment};
use facegate::vision::pipeline::Pipeline;

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
    let (enrolled, via) = match ctx.service()? {
        Some(client) => (through_service(ctx, &args, client)?, Via::Service),
        None => (in_file(ctx, &args)?, Via::File),
    };
    for w in &enrolled.warnings {
        eprintln!("facegate: warning: {w}");
    }
    if ctx.json {
        let mut out = serde_json::to_value(&enrolled)?;
        out["via"] = json!(via);
        println!("{out}");
    } else {
        println!(
            "enrolled {} (id {}): {} new template(s), {} in all ({})",
            enrolled.name,
            enrolled.id,
            enrolled.added,
            enrolled.templates,
            super::via_text(via, ctx)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// (source label, embedding) of each face to enrol.
type Faces = Vec<(String, Vec<f32>)>;

/// Faces the CLI embeds itself: from `facegate embed` output, the camera, or (no service) photos.
fn faces_here(ctx: &Context, args: &EnrollArgs) -> Result<Option<Faces>> {
    Ok(match &args.from_embed {
        Some(file) => Some(read_embed_output(ctx, file, args.no_liveness)?),
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
            Some(enrol_from_camera(ctx, &request, &stop, &mut |m| {
                eprintln!("facegate: {m}")
            })?)
        }
        None => None,
    })
}

/// No service runs: embed here, then change the file under its lock.
fn in_file(ctx: &Context, args: &EnrollArgs) -> Result<Enrolled> {
    let faces = match faces_here(ctx, args)? {
        Some(faces) => faces,
        None => embed_photos(
            &ctx.pipeline_live(args.no_liveness)?,
            &args.images,
            args.largest,
        )?,
    };
    // Look-alikes are judged at the door's threshold for the gallery after the enrolment.
    let door = ctx.door_rule()?;
    ctx.update_gallery(|g| {
        let name = Selector::Name(args.name.clone());
        let target = match g.find(&name) {
            Some(_) if args.append => Target::Existing(name),
            _ => Target::New(args.name.clone()),
        };
        Ok(ops::enrol(
            g,
            &target,
            &faces,
            &door,
            args.strict,
            args.user.as_deref(),
        )?)
    })
}

/// The service embeds photos itself; embeddings from a file or the camera are sent as they are.
fn through_service(ctx: &Context, args: &EnrollArgs, mut client: Client) -> Result<Enrolled> {
    let mut fields = json!({
        "largest": args.largest,
        "user": args.user,
        "no_liveness": args.no_liveness,
        "strict": args.strict,
    });
    match faces_here(ctx, args)? {
        Some(faces) => {
            let e: Vec<&Vec<f32>> = faces.iter().map(|(_, e)| e).collect();
            fields["embeddings"] = json!(e);
        }
        None => {
            let images = args
                .images
                .iter()
                .map(|p| {
                    let bytes =
                        std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
                })
                .collect::<Result<Vec<_>>>()?;
            fields["images"] = json!(images);
        }
    }
    let result = if args.append {
        fields["person"] = json!(args.name);
        match client.call("append", fields.clone()) {
            Err(ClientError::Api(e)) if e.code == ErrorCode::NotFound => {
                fields.as_object_mut().expect("object").remove("person");
                fields["name"] = json!(args.name);
                client.call("enroll", fields)?
            }
            other => other?,
        }
    } else {
        fields["name"] = json!(args.name);
        client.call("enroll", fields)?
    };
    serde_json::from_value(result).context("the service's enroll answer")
}

/// One embedding per photo; any photo without exactly one usable face fails the enrollment
/// before anything is written.
fn embed_photos(
    pipeline: &Pipeline,
    images: &[PathBuf],
    largest: bool,
) -> Result<Vec<(String, Vec<f32>)>> {
    images
        .iter()
        .map(|path| {
            let image = load_rgb(path)?;
            let label = path.display().to_string();
            let e = ops::enrolment_face(pipeline, &image, largest, &label, true)
                .map_err(anyhow::Error::msg)?;
            Ok((label, e))
        })
        .collect()
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

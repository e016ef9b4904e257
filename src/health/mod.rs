//! The health checks behind `facegate doctor`: can this machine run the terminal as configured? Checks the config, the
//! models' checksums, the gallery, the camera, the GPIO lines, the display, the decision log and
//! free disk, through the same code `facegate run` uses where that code has no side effects.
//! Each check is OK, WARN (works, but look at it) or FAIL (will not work), with a one-line fix.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, IndicatorKind, OutputParams};
use crate::gallery::lookalikes;
use crate::gallery::seal::GalleryKey;
use crate::gallery::store::{decode, inspect};
use crate::gallery::{EmbedderId, Gallery, GalleryError, GalleryStore, LoadSource};
use crate::hw::camera::{CameraParams, DirSource};
use crate::hw::display::{DisplayKind, FramebufferDisplay};
use crate::hw::indicator::LineParams;
use crate::keys::{KeyError, KeyFile};
use crate::runtime::models::{ModelDir, NetFile};
use crate::runtime::precision::Precision;
use crate::service::ops::describe_operating_point;
use crate::setup::Setup;
use crate::terminal::event_chain::{self, LogKey};
use crate::terminal::events::{read_log, LogParams};
use crate::vision::pipeline::gallery_id;

/// Below this much free space the filesystem is close to full (a log rotation, a gallery save
/// and the system's own logs compete for it).
const LOW_DISK_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

pub fn ok(check: &str, detail: impl Into<String>) -> Check {
    Check {
        check: check.to_string(),
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

pub fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: check.to_string(),
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

pub fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: check.to_string(),
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Every check of a machine whose config parsed, in the order a person fixes things.
pub fn check_all(config: &Config, checks: &mut Vec<Check>) {
    let models = check_models(config, checks);
    check_gallery(config, models.as_ref(), checks);
    check_key(config, checks);
    checks.push(check_camera(&config.camera));
    checks.push(check_indicator(&config.outputs));
    checks.push(check_display(&config.outputs));
    checks.push(check_log(&config.log));
    if let Some(c) = check_log_chain(config) {
        checks.push(c);
    }
    check_disk(config, checks);
}

/// Every model file named by a manifest against its checksum. Returns the folder when its
/// manifests could be read.
fn check_models(config: &Config, checks: &mut Vec<Check>) -> Option<ModelDir> {
    let reinstall = "reinstall the package (or copy the file again from the source checkout's \
                     models/): a damaged model must not be used";
    let dir = match ModelDir::locate(config.models_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            checks.push(fail(
                "models",
                e.to_string(),
                "install the package (models go to /usr/share/facegate/models) or set models_dir",
            ));
            return None;
        }
    };
    let detector = match dir.detector_manifest() {
        Ok(m) => m,
        Err(e) => {
            checks.push(fail("models", e.to_string(), reinstall));
            return None;
        }
    };
    checks.push(ok("models", format!("folder {}", dir.root().display())));
    let mut files = vec![
        (detector.pnet, true),
        (detector.rnet, true),
        (detector.onet, true),
    ];
    // The precision variants shipped beside the fp32 models; with `auto` any of them may be
    // picked, so all count as in use.
    let wanted = config.precision.fixed();
    for p in [Precision::Int8, Precision::F16] {
        if let Ok(v) = dir.detector_variant(p) {
            let used = wanted.is_none_or(|w| w == p);
            files.extend([(v.pnet, used), (v.rnet, used), (v.onet, used)]);
        }
    }
    let configured = match dir.embedder_manifest(&config.embedder) {
        Ok(m) => Some(match wanted {
            Some(p) => vec![dir
                .embedder_variant(&config.embedder, p)
                .map_or(m.id.clone(), |v| v.id)],
            None => {
                let family = m.variant_of.clone().unwrap_or(m.id.clone());
                dir.embedder_ids()
                    .into_iter()
                    .filter(|id| {
                        dir.embedder_manifest(id).is_ok_and(|v| {
                            v.id == family || v.variant_of.as_deref() == Some(family.as_str())
                        })
                    })
                    .collect()
            }
        }),
        Err(e) => {
            checks.push(fail(
                "embedder",
                e.to_string(),
                "set embedder in the config to one of the available ids",
            ));
            None
        }
    };
    for id in dir.embedder_ids() {
        match dir.embedder_manifest(&id) {
            Ok(m) => files.push((
                NetFile {
                    file: m.file,
                    sha256: m.sha256,
                },
                configured.as_ref().is_some_and(|c| c.contains(&id)),
            )),
            Err(e) => checks.push(fail("models", e.to_string(), reinstall)),
        }
    }
    files.extend(liveness_files(config, &dir, checks));
    for (net, used) in files {
        let name = format!("model {}", net.file);
        checks.push(match dir.read_verified(&net.file, &net.sha256) {
            Ok(_) => ok(&name, "sha256 matches its manifest"),
            Err(e) if used => fail(&name, e.to_string(), reinstall),
            Err(e) => warn(
                &name,
                format!("{e} (not used by this config)"),
                format!("{reinstall}; or delete it with its manifest"),
            ),
        });
    }
    Some(dir)
}

/// The liveness nets of `minifasnet.toml`, each with whether the config uses it; a `liveness`
/// check fails when the check is enabled but its manifest or a configured net is missing.
fn liveness_files(
    config: &Config,
    dir: &ModelDir,
    checks: &mut Vec<Check>,
) -> Vec<(NetFile, bool)> {
    let params = &config.liveness;
    let off = "or set [liveness] enabled = false to run without the liveness check";
    let manifest = match dir.liveness_manifest() {
        Ok(m) => m,
        Err(e) if params.enabled => {
            checks.push(fail(
                "liveness",
                e.to_string(),
                format!("reinstall the package (models/minifasnet.toml and its nets), {off}"),
            ));
            return Vec::new();
        }
        // Not shipped and not used: nothing to check.
        Err(_) => return Vec::new(),
    };
    if params.enabled {
        let missing: Vec<&str> = params
            .models
            .iter()
            .filter(|m| !manifest.nets.contains_key(*m))
            .map(String::as_str)
            .collect();
        checks.push(if params.models.is_empty() || !missing.is_empty() {
            fail(
                "liveness",
                format!(
                    "[liveness] models = {:?}, but {} has {}",
                    params.models,
                    dir.liveness_manifest_path().display(),
                    manifest.nets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                format!("name nets of minifasnet.toml in [liveness] models, {off}"),
            )
        } else {
            ok(
                "liveness",
                format!(
                    "nets {}, threshold {}, floor {}",
                    params.models.join("+"),
                    params.threshold,
                    params.floor
                ),
            )
        });
    }
    manifest
        .nets
        .into_iter()
        .map(|(name, net)| {
            let used = params.enabled && params.models.contains(&name);
            (
                NetFile {
                    file: net.file,
                    sha256: net.sha256,
                },
                used,
            )
        })
        .collect()
}

fn enroll_hint(config: &Config) -> String {
    format!(
        "enroll as the service user: sudo -u facegate facegate --gallery {} enroll NAME PHOTO...",
        config.gallery.display()
    )
}

/// The gallery through the store `facegate run` loads it with, its backup and its mode.
fn check_gallery(config: &Config, models: Option<&ModelDir>, checks: &mut Vec<Check>) {
    let store = GalleryStore::new(&config.gallery).with_key_file(config.key_file());
    let path = store.path().display().to_string();
    let expected: EmbedderId = match models
        .ok_or_else(|| "the models could not be read".to_string())
        .and_then(|m| {
            m.embedder_manifest(&config.embedder)
                .map_err(|e| e.to_string())
        })
        .and_then(|m| gallery_id(&m).map_err(|e| e.to_string()))
    {
        Ok(id) => id,
        Err(e) => {
            checks.push(fail(
                "gallery",
                format!("{path}: not checked ({e})"),
                "fix the models first",
            ));
            return;
        }
    };
    // The state folder is private to the service user: say so rather than call it damage.
    if let Err(e) = fs::metadata(store.path()) {
        if e.kind() == ErrorKind::PermissionDenied {
            checks.push(fail(
                "gallery",
                format!("{path}: {e}"),
                "run the doctor as the service user: sudo -u facegate facegate doctor",
            ));
            return;
        }
    }
    let loaded = match store.load(&expected) {
        Ok(l) => l,
        Err(e @ GalleryError::ForeignEmbedder { .. }) => {
            checks.push(fail(
                "gallery",
                e.to_string(),
                "set embedder to the gallery's, or move the gallery aside and re-enroll",
            ));
            return;
        }
        Err(e) => {
            checks.push(fail(
                "gallery",
                e.to_string(),
                "restore the gallery from a copy, or move it (and its .bak) aside and re-enroll",
            ));
            return;
        }
    };
    let g = &loaded.gallery;
    let contents = format!(
        "{} people, {} templates, embedder {}",
        g.len(),
        g.template_count(),
        g.embedder().id
    );
    let backup = store.backup_path();
    match &loaded.source {
        LoadSource::New => {
            checks.push(warn(
                "gallery",
                format!("{path} does not exist yet: nobody will be accepted"),
                enroll_hint(config),
            ));
            check_gallery_folder(config, checks);
            return;
        }
        LoadSource::Backup { main_error } => checks.push(fail(
            "gallery",
            format!(
                "{path} is damaged ({main_error}); the terminal uses the backup {} ({contents})",
                backup.display()
            ),
            "the next enroll or remove writes a new gallery from the backup and moves the \
             damaged file aside; re-enroll anyone enrolled after the backup was made",
        )),
        LoadSource::Main => {
            checks.push(if g.is_empty() {
                warn(
                    "gallery",
                    format!("{path}: nobody is enrolled"),
                    enroll_hint(config),
                )
            } else {
                ok("gallery", format!("{path}: checksum ok, {contents}"))
            });
            let key = store.key_file().load().ok().map(|k| GalleryKey::new(&k));
            checks.push(check_backup(&backup, &expected, key.as_ref()));
        }
    }
    if !g.is_empty() {
        check_operating_point(config, g, checks);
    }
    if let Ok(meta) = fs::metadata(store.path()) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            checks.push(warn(
                "gallery access",
                format!("{path} has mode {mode:o}: face templates are biometric data"),
                format!("chmod 600 {path} (facegate itself writes it 0600)"),
            ));
        }
    }
    check_gallery_folder(config, checks);
}

/// The door threshold for this gallery, and the enrolled people that threshold cannot tell
/// apart (each pair is a door that opens for the wrong person).
fn check_operating_point(config: &Config, gallery: &Gallery, checks: &mut Vec<Check>) {
    let rule = match Setup::from_config(config.clone()).and_then(|s| s.door_rule()) {
        Ok(rule) => rule,
        Err(e) => {
            checks.push(fail(
                "operating point",
                format!("the door threshold cannot be derived: {e}"),
                "restore the models folder (its impostor tail and manifests), or set \
                 [matching] threshold",
            ));
            return;
        }
    };
    let op = rule.at(gallery.template_count());
    let described = serde_json::to_value(&op)
        .map(|v| describe_operating_point(&v))
        .unwrap_or_else(|e| e.to_string());
    checks.push(ok("operating point", described));
    let pairs = lookalikes::enrolled_pairs(gallery, op.threshold);
    checks.push(if pairs.is_empty() {
        ok(
            "look-alikes",
            format!(
                "no two enrolled people score {:.4} or more against each other",
                op.threshold
            ),
        )
    } else {
        let listed: Vec<String> = pairs
            .iter()
            .map(|p| {
                format!(
                    "{} (id {}) and {} (id {}): {:.4}",
                    p.a.1, p.a.0, p.b.1, p.b.0, p.similarity
                )
            })
            .collect();
        warn(
            "look-alikes",
            format!(
                "{} pair(s) of enrolled people reach the door threshold {:.4} against each \
                 other, so the door may open for the wrong one: {}",
                pairs.len(),
                op.threshold,
                listed.join("; ")
            ),
            "check they are different people; if one was enrolled twice, remove the extra \
             entry; otherwise re-enroll both with clearer photos, or accept the risk",
        )
    });
}

fn check_backup(backup: &Path, expected: &EmbedderId, key: Option<&GalleryKey>) -> Check {
    let name = "gallery backup";
    let shown = backup.display();
    match fs::read(backup) {
        Err(e) if e.kind() == ErrorKind::NotFound => warn(
            name,
            format!("no {shown} yet (each save keeps the previous gallery there)"),
            "enroll or remove once more to make one; until then a damaged gallery cannot be \
             recovered",
        ),
        Err(e) => warn(
            name,
            format!("{shown}: {e}"),
            "make it readable by the service user",
        ),
        Ok(bytes) => match decode(&bytes, key) {
            Ok(g) if g.embedder() == expected => {
                ok(name, format!("{shown}: checksum ok, {} people", g.len()))
            }
            Ok(g) => warn(
                name,
                format!("{shown} is for embedder {}", g.embedder().id),
                "the next save replaces it",
            ),
            Err(e) => warn(
                name,
                format!("{shown}: {e}"),
                "the next enroll or remove replaces it with the current gallery",
            ),
        },
    }
}

/// The key file: present (or not needed yet), owner-only, outside the gallery's folder, and the
/// key the gallery was sealed with; a gallery or backup still in the plain format is named.
fn check_key(config: &Config, checks: &mut Vec<Check>) {
    let name = "key file";
    let key_file = KeyFile::new(config.key_file());
    let shown = key_file.path().display().to_string();
    let header = inspect(&config.gallery).ok();
    let restore = "restore the key file from your copy, or set [security] key_file to it";
    match key_file.load() {
        Err(KeyError::Missing { .. }) if header.as_ref().is_some_and(|h| h.is_sealed()) => checks
            .push(fail(
                name,
                format!("{shown} does not exist, but the gallery is encrypted"),
                restore,
            )),
        Err(KeyError::Missing { .. }) => checks.push(ok(
            name,
            format!("{shown} does not exist yet: the next enroll creates it (0600)"),
        )),
        Err(e @ KeyError::LooseMode { .. }) => {
            checks.push(fail(name, e.to_string(), format!("chmod 600 {shown}")))
        }
        Err(e) => checks.push(fail(name, e.to_string(), restore)),
        Ok(key) => {
            let id = key.key_id();
            match header.as_ref().and_then(|h| h.key_id) {
                Some(g) if g != id => checks.push(fail(
                    name,
                    format!(
                        "{shown} (key id {}) is not the key the gallery was sealed with (key id \
                         {})",
                        hex::encode(id),
                        hex::encode(g)
                    ),
                    restore,
                )),
                _ => checks.push(ok(
                    name,
                    format!("{shown}: mode 0600, key id {}", hex::encode(id)),
                )),
            }
        }
    }
    if parent_dir(key_file.path()).canonicalize().ok()
        == parent_dir(&config.gallery).canonicalize().ok()
        && parent_dir(key_file.path()).exists()
    {
        checks.push(fail(
            name,
            format!("{shown} is in the gallery's folder: a copy of the folder carries the key"),
            "move the key file elsewhere and set [security] key_file to it",
        ));
    }
    let backup = crate::gallery::GalleryStore::new(&config.gallery).backup_path();
    for (what, path) in [
        ("gallery", config.gallery.clone()),
        ("gallery backup", backup),
    ] {
        if inspect(&path).is_ok_and(|h| !h.is_sealed()) {
            checks.push(warn(
                "encryption",
                format!("the {what} {} is not encrypted (format 1)", path.display()),
                "enroll or remove once: each save encrypts the gallery, and the one after it \
                 replaces the plain backup",
            ));
        }
    }
}

/// The decision log's MAC chain, when there is a log and a key.
fn check_log_chain(config: &Config) -> Option<Check> {
    let key = KeyFile::new(config.key_file()).load().ok()?;
    let v = event_chain::verify(&config.log, &LogKey::new(&key)).ok()?;
    if v.files.is_empty() {
        return None;
    }
    Some(match v.first_problem {
        None => ok(
            "log chain",
            format!("{} records verified, chain intact", v.records),
        ),
        Some(p) => fail(
            "log chain",
            p.to_string(),
            "keep the log as evidence (facegate log --verify names the record); move it aside \
             to start a new chain",
        ),
    })
}

/// Enrolment saves next to the gallery: its folder must exist and be writable.
fn check_gallery_folder(config: &Config, checks: &mut Vec<Check>) {
    let dir = parent_dir(&config.gallery);
    if let Err(e) = probe_write(&dir) {
        checks.push(warn(
            "gallery folder",
            format!("{}: {e}: enrolment cannot save", dir.display()),
            "create it owned by the service user (the package's tmpfiles.d makes \
             /var/lib/facegate 0700 facegate), and enroll as that user",
        ));
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Create and remove a file in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new()
        .prefix(".facegate-doctor-")
        .tempfile_in(dir)
        .map(drop)
}

/// Who this process is, for permission hints.
struct Identity {
    user: String,
    groups: Vec<u32>,
}

impl Identity {
    fn current() -> Self {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = field("Uid:").first().copied();
        let mut groups = field("Groups:");
        groups.extend(field("Gid:").first());
        let user = uid
            .and_then(|uid| name_of("/etc/passwd", uid))
            .unwrap_or_else(|| "this user".to_string());
        Self { user, groups }
    }
}

/// The name of `id` in a passwd- or group-style file.
fn name_of(file: &str, id: u32) -> Option<String> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_string())
    })
}

/// Open a device node the way its backend does; on failure, a detail and a fix that name the
/// group to join.
fn device_access(check: &str, path: &Path, write: bool, what: &str) -> Result<String, Check> {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(fail(
                check,
                format!("{shown} does not exist"),
                format!("connect and enable the {what}, or correct the path in the config"),
            ))
        }
        Err(e) => return Err(fail(check, format!("{shown}: {e}"), "check the path")),
    };
    if !meta.file_type().is_char_device() {
        return Err(fail(
            check,
            format!("{shown} is not a device node"),
            format!("point the config at the {what}'s /dev node"),
        ));
    }
    let group = name_of("/etc/group", meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    let me = Identity::current();
    let member = me.groups.contains(&meta.gid());
    match OpenOptions::new().read(true).write(write).open(path) {
        Ok(_) => Ok(format!(
            "{shown} opens {} (group {group}{})",
            if write { "read-write" } else { "for reading" },
            if member { ", a group of this user" } else { "" }
        )),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(fail(
            check,
            format!(
                "{shown}: permission denied for {} (device group {group}, mode {:o}{})",
                me.user,
                meta.permissions().mode() & 0o777,
                if member { "" } else { ", not a member" }
            ),
            format!(
                "add the user to group {group} (sudo usermod -aG {group} {}; log in again), \
                 or install board/99-facegate.rules so the device gets its group",
                me.user
            ),
        )),
        Err(e) => Err(fail(
            check,
            format!("{shown}: {e}"),
            format!("check the {what} (is another program holding it?)"),
        )),
    }
}

fn check_camera(camera: &CameraParams) -> Check {
    let name = "camera";
    let source = camera.source.as_str();
    let path = Path::new(source);
    if source == "stdin" || source == "-" {
        return ok(
            name,
            "MJPEG on stdin (e.g. from rpicam-vid): checked when frames arrive",
        );
    }
    if source.starts_with("/dev/") {
        let detail = match device_access(name, path, true, "camera") {
            Ok(d) => d,
            Err(mut c) => {
                if c.detail.ends_with("does not exist") {
                    c.fix = Some(format!(
                        "plug the camera in (ls /dev/video*; v4l2-ctl --list-devices), or set \
                         [camera] source to its device; a Pi CSI camera: source = \"stdin\" fed \
                         by rpicam-vid (see facegate.service); {source} stays FAIL until then"
                    ));
                }
                return c;
            }
        };
        if !cfg!(feature = "v4l2") {
            return fail(
                name,
                format!("{detail}, but this facegate was built without V4L2 support"),
                "install a build with the cargo feature v4l2 (the Debian package has it)",
            );
        }
        return ok(name, detail);
    }
    if path.is_dir() {
        return match DirSource::open(path, camera.fps, false) {
            Ok(d) => ok(name, format!("folder {source}: {} frames", d.len())),
            Err(e) => fail(
                name,
                e.to_string(),
                "put the frames (JPEG/PNG) in the folder, or set [camera] source",
            ),
        };
    }
    if path.is_file() {
        return ok(name, format!("MJPEG file {source}"));
    }
    fail(
        name,
        format!("{source}: no such folder, file or device"),
        "set [camera] source to /dev/videoN, stdin or a folder of frames",
    )
}

fn check_indicator(outputs: &OutputParams) -> Check {
    let name = "gpio";
    let lines = &outputs.gpio;
    match outputs.indicator {
        IndicatorKind::Log => ok(name, "indicator = \"log\": no LEDs or relay to drive"),
        IndicatorKind::Gpio => check_cdev(name, lines),
        IndicatorKind::Rpi => check_rppal(name),
    }
}

fn check_cdev(name: &str, lines: &LineParams) -> Check {
    let used: Vec<u32> = [lines.green, lines.red, lines.relay]
        .into_iter()
        .flatten()
        .collect();
    if used.is_empty() {
        return fail(
            name,
            "indicator = \"gpio\" but no green, red or relay line is set",
            "set the line numbers in [outputs.gpio], or indicator = \"log\"",
        );
    }
    // The character device backend opens the chip for reading only.
    let chip = Path::new(&lines.chip);
    let detail = match device_access(name, chip, false, "GPIO chip") {
        Ok(d) => d,
        Err(c) => return c,
    };
    #[cfg(feature = "gpio")]
    {
        let info = gpiocdev::Chip::from_path(chip).and_then(|c| {
            let info = c.info()?;
            let lines = used
                .iter()
                .filter(|&&o| o < info.num_lines)
                .map(|&o| c.line_info(o))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((info, lines))
        });
        let (info, line_info) = match info {
            Ok(i) => i,
            Err(e) => {
                return fail(
                    name,
                    format!("{}: {e}", lines.chip),
                    "is it a GPIO chip? (gpiodetect lists them)",
                )
            }
        };
        if let Some(o) = used.iter().find(|&&o| o >= info.num_lines) {
            return fail(
                name,
                format!(
                    "{} ({}) has {} lines; line {o} is not one",
                    lines.chip, info.label, info.num_lines
                ),
                "correct the line numbers in [outputs.gpio] (gpioinfo lists them)",
            );
        }
        if let Some(l) = line_info
            .iter()
            .find(|l| l.used && l.consumer != "facegate")
        {
            return fail(
                name,
                format!(
                    "line {} of {} is in use by {:?}",
                    l.offset, lines.chip, l.consumer
                ),
                "free the line (another program or a device-tree overlay holds it), or use \
                 another",
            );
        }
        let held = line_info.iter().any(|l| l.used);
        ok(
            name,
            format!(
                "{detail}; {} lines {used:?} free{}",
                info.label,
                if held {
                    " or held by facegate (the service is running)"
                } else {
                    ""
                }
            ),
        )
    }
    #[cfg(not(feature = "gpio"))]
    fail(
        name,
        format!("{detail}, but this facegate was built without the gpio feature"),
        "install a build with the cargo feature gpio (the default)",
    )
}

fn check_rppal(name: &str) -> Check {
    #[cfg(feature = "rpi")]
    {
        match rppal::gpio::Gpio::new() {
            Ok(_) => ok(name, "rppal opened the Raspberry Pi GPIO"),
            Err(e) => fail(
                name,
                format!("rppal: {e}"),
                "rppal works only on a Raspberry Pi with /dev/gpiomem (group gpio); elsewhere \
                 use indicator = \"gpio\"",
            ),
        }
    }
    #[cfg(not(feature = "rpi"))]
    fail(
        name,
        "indicator = \"rpi\" but this facegate was built without the rpi feature",
        "use indicator = \"gpio\" (the character device works on every Pi), or a build with \
         the cargo feature rpi",
    )
}

fn check_display(outputs: &OutputParams) -> Check {
    let name = "display";
    match outputs.display {
        DisplayKind::None => ok(name, "display = \"none\""),
        DisplayKind::Png => {
            let dir = &outputs.png_dir;
            match fs::create_dir_all(dir).and_then(|_| probe_write(dir)) {
                Ok(()) => ok(name, format!("PNG screens into {}", dir.display())),
                Err(e) => fail(
                    name,
                    format!("{}: {e}", dir.display()),
                    "make the folder writable by the service user, or set png_dir",
                ),
            }
        }
        DisplayKind::Fb => {
            let fb = &outputs.framebuffer;
            let detail = match device_access(name, fb, true, "display (framebuffer)") {
                Ok(d) => d,
                Err(c) => return c,
            };
            match FramebufferDisplay::open(fb) {
                Ok(_) => ok(name, detail),
                Err(e) => fail(
                    name,
                    e.to_string(),
                    "check the panel's overlay/driver (16 or 32 bits per pixel are supported)",
                ),
            }
        }
    }
}

fn check_log(log: &LogParams) -> Check {
    let name = "log";
    let dir = parent_dir(&log.path);
    let shown = log.path.display();
    if let Err(e) = probe_write(&dir) {
        return fail(
            name,
            format!("cannot write in {}: {e}", dir.display()),
            "run the doctor as the service user (sudo -u facegate facegate doctor); make the \
             folder writable by that user (/var/lib/facegate is, through tmpfiles.d), or set \
             [log] path",
        );
    }
    if log.path.exists() {
        if let Err(e) = OpenOptions::new().append(true).open(&log.path) {
            return fail(
                name,
                format!("{shown}: {e}"),
                "chown the log to the service user",
            );
        }
    }
    match read_log(log) {
        Ok(c) if c.damaged.is_empty() => ok(
            name,
            format!("{shown}: writable, {} decisions", c.events.len()),
        ),
        Ok(c) => warn(
            name,
            format!(
                "{shown}: {} decisions; torn records at the end of {}",
                c.events.len(),
                c.damaged
                    .iter()
                    .map(|(p, n)| format!("{} ({n} bytes)", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "none needed: a power cut tore the last write; the next decision cuts it off",
        ),
        Err(e) => fail(
            name,
            e.to_string(),
            "move the file aside (it is not a facegate log) or set [log] path",
        ),
    }
}

/// Free space where the gallery and the log are written.
fn check_disk(config: &Config, checks: &mut Vec<Check>) {
    let gallery_dir = parent_dir(&config.gallery);
    let log_dir = parent_dir(&config.log.path);
    let dev = |d: &Path| fs::metadata(d).map(|m| m.dev()).ok();
    let mut dirs = vec![gallery_dir.clone()];
    if dev(&log_dir).is_some() && dev(&log_dir) != dev(&gallery_dir) {
        dirs.push(log_dir);
    }
    // A save writes a full copy before the rename; a rotation needs room for one more log.
    let gallery_len = fs::metadata(&config.gallery).map(|m| m.len()).unwrap_or(0);
    let needed = 2 * gallery_len + config.log.max_bytes;
    for dir in dirs {
        let shown = dir.display();
        let stat = match rustix::fs::statvfs(&dir) {
            Ok(s) => s,
            Err(e) => {
                checks.push(fail(
                    "disk",
                    format!("{shown}: {e}"),
                    "create the folder (see the gallery and log checks)",
                ));
                continue;
            }
        };
        let free = stat.f_bavail * stat.f_frsize;
        let total = stat.f_blocks * stat.f_frsize;
        let detail = format!(
            "{} MiB free of {} MiB on the filesystem of {shown}",
            free >> 20,
            total >> 20
        );
        let fix = "free space: old rotated logs, journald (journalctl --vacuum-size), apt caches";
        checks.push(if free < needed {
            fail(
                "disk",
                format!("{detail}; a gallery save and log rotation need {needed} bytes"),
                fix,
            )
        } else if free < LOW_DISK_BYTES {
            warn("disk", format!("{detail}: nearly full"), fix)
        } else {
            ok("disk", detail)
        });
    }
}

//! The TOML configuration. Every threshold lives here with its default; a missing file means
//! all defaults, an unknown key is an error (a typo must not silently change behaviour).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hw::camera::CameraParams;
use crate::hw::display::DisplayKind;
use crate::hw::indicator::LineParams;
use crate::runtime::precision::PrecisionSetting;
use crate::service::ServiceParams;
use crate::terminal::decide::DecideParams;
use crate::terminal::events::LogParams;
use crate::vision::detect::DetectorParams;
use crate::vision::pipeline::LowLightParams;

/// Where a door terminal keeps its configuration.
pub const SYSTEM_CONFIG: &str = "/etc/facegate/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder with the ONNX models and their manifests; found automatically when unset.
    pub models_dir: Option<PathBuf>,
    /// The enrolled gallery file.
    pub gallery: PathBuf,
    /// Embedder id or alias: `mobilefacenet` (default) or `dlib`.
    pub embedder: String,
    /// Numeric variant of the embedder and detector: `fp32` (default), `int8`, `f16`, or `auto`
    /// (time the variants once on this device, keep the fastest whose measured LFW accuracy is
    /// within 0.2 points of fp32; cached next to the gallery). A model without that variant (the
    /// detector has no f16 one) stays fp32.
    pub precision: PrecisionSetting,
    pub detector: DetectorParams,
    pub matching: MatchParams,
    pub low_light: LowLightParams,
    /// `facegate run`: where frames come from.
    pub camera: CameraParams,
    /// `facegate run`: tracking, N-of-M acceptance, quality gates, rate limiting.
    pub decide: DecideParams,
    /// `facegate run`: LEDs, relay and display.
    pub outputs: OutputParams,
    /// `facegate run` / `facegate log`: the decision log.
    pub log: LogParams,
    /// Passive liveness (printed-photo detection) in `run`, `enroll`, `identify`, `embed`.
    pub liveness: crate::vision::liveness::LivenessParams,
    /// `facegate run`'s local API, and where the other commands look for it.
    pub service: ServiceParams,
    /// The key file the gallery and the decision log are sealed with.
    pub security: SecurityParams,
    /// Face login (pam_facegate): where its frames come from, its threshold, its rate limit.
    pub login: LoginConfig,
}

/// What the station's camera is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StationMode {
    /// A door terminal: the run loop owns the camera; face login listens to its frames.
    #[default]
    Door,
    /// Only a login station: no door loop; the camera is opened for each login request.
    Login,
    /// A door that also logs people in: as `door`.
    Both,
}

impl StationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Door => "door",
            Self::Login => "login",
            Self::Both => "both",
        }
    }
}

/// The `[login]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    pub mode: StationMode,
    /// Cosine similarity a frame needs to count for the account; unset: the embedder's
    /// calibrated login point (`login::login_threshold`, FAR 1e-5).
    pub threshold: Option<f32>,
    /// Consecutive matching frames that log the user in.
    pub accept_frames: u32,
    /// Face frames below the threshold (without a match between) that end an attempt.
    pub reject_frames: u32,
    /// Frames judged a photo that end an attempt as a spoof.
    pub spoof_frames: u32,
    /// Accept requests without liveness (the module's `nolive` option). Off: a photo of the
    /// user could log in without it, so it needs saying twice, here and on the PAM line.
    pub allow_nolive: bool,
    /// Mean luma (0-255) below which a frame with no face counts as too dark.
    pub dark_luma: f32,
    /// Failures in a row before face login for that account pauses.
    pub free_failures: u32,
    /// The first pause, doubling with each further failure up to `max_pause_s`.
    pub first_pause_s: u64,
    pub max_pause_s: u64,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            mode: StationMode::Door,
            threshold: None,
            accept_frames: 3,
            reject_frames: 5,
            spoof_frames: 2,
            allow_nolive: false,
            dark_luma: 40.0,
            free_failures: 5,
            first_pause_s: 30,
            max_pause_s: 15 * 60,
        }
    }
}

/// The `[security]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityParams {
    /// The key file (0600, outside the gallery's folder; created on the first save). Unset:
    /// `$FACEGATE_KEY_FILE`, else `~/.config/facegate/gallery.key`.
    pub key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            models_dir: None,
            gallery: PathBuf::from("gallery.fg"),
            embedder: "mobilefacenet-arcface".to_string(),
            precision: PrecisionSetting::default(),
            detector: DetectorParams::default(),
            matching: MatchParams::default(),
            low_light: LowLightParams::default(),
            camera: CameraParams::default(),
            decide: DecideParams::default(),
            outputs: OutputParams::default(),
            log: LogParams::default(),
            liveness: Default::default(),
            service: ServiceParams::default(),
            security: SecurityParams::default(),
            login: LoginConfig::default(),
        }
    }
}

/// How LEDs and relay are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    /// No hardware: log lines only.
    Log,
    /// The Linux GPIO character device (`[outputs.gpio]` chip and lines); feature `gpio`.
    Gpio,
    /// Raspberry Pi GPIO through rppal (`[outputs.gpio]` lines as BCM numbers); feature `rpi`.
    Rpi,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputParams {
    pub indicator: IndicatorKind,
    pub gpio: LineParams,
    pub display: DisplayKind,
    /// Panel size in pixels (PNG display; a framebuffer has its own).
    pub display_width: u32,
    pub display_height: u32,
    /// Folder for the PNG display.
    pub png_dir: PathBuf,
    /// Device of the framebuffer display.
    pub framebuffer: PathBuf,
    /// How long "Welcome" / "Unknown" and their LED stay on.
    pub result_hold_s: f32,
}

impl Default for OutputParams {
    fn default() -> Self {
        Self {
            indicator: IndicatorKind::Log,
            gpio: LineParams::default(),
            display: DisplayKind::None,
            display_width: 240,
            display_height: 240,
            png_dir: PathBuf::from("screens"),
            framebuffer: PathBuf::from("/dev/fb0"),
            result_hold_s: 3.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchParams {
    /// A fixed cosine similarity at or above which a face is the enrolled person, whatever the
    /// gallery's size. Unset: derived from the targets below and the embedder's impostor tail.
    pub threshold: Option<f32>,
    /// Door (1:N): the share of strangers' attempts that may name someone. The threshold that
    /// meets it grows with the number of enrolled templates and is re-derived on every change.
    pub stranger_accept_rate: f64,
    /// Login (1:1, `verify`): the share of impostor comparisons with one claimed person that may
    /// pass.
    pub login_accept_rate: f64,
    /// Also embed the mirrored face and compare the normalised mean of both (flip test-time
    /// augmentation): twice the embedder's time per face; off, as measured in docs/accuracy.md.
    pub mirrored_embedding: bool,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self {
            threshold: None,
            stranger_accept_rate: 1e-2,
            login_accept_rate: 1e-4,
            mirrored_embedding: false,
        }
    }
}

impl Config {
    /// The key file: the configured one, else [`crate::keys::default_key_file`].
    pub fn key_file(&self) -> PathBuf {
        self.security
            .key_file
            .clone()
            .unwrap_or_else(crate::keys::default_key_file)
    }

    /// Read `path` if given (it must exist), else the system config if present, else defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(SYSTEM_CONFIG).is_file() => PathBuf::from(SYSTEM_CONFIG),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // Relative paths in a config file are relative to that file, not to the caller's cwd.
        let base = path.parent().unwrap_or(Path::new("."));
        if config.gallery.is_relative() && config.gallery != Self::default().gallery {
            config.gallery = base.join(&config.gallery);
        }
        for dir in [
            &mut config.models_dir,
            &mut config.log.snapshot_dir,
            &mut config.security.key_file,
        ] {
            if let Some(dir) = dir.as_mut().filter(|d| d.is_relative()) {
                *dir = base.join(&*dir);
            }
        }
        let defaults = Self::default();
        for (p, default) in [
            (&mut config.log.path, &defaults.log.path),
            (&mut config.outputs.png_dir, &defaults.outputs.png_dir),
            (&mut config.service.socket, &defaults.service.socket),
        ] {
            if p.is_relative() && p != default {
                *p = base.join(&*p);
            }
        }
        // A relative frame folder too; `stdin` and device paths stay as they are.
        let source = Path::new(&config.camera.source);
        if config.camera.source != "stdin" && source.is_relative() && base.join(source).is_dir() {
            config.camera.source = base.join(source).display().to_string();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[detector]\nmin_fase = 40\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("min_fase"), "{err}");
    }

    #[test]
    fn terminal_sections_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[camera]\nsource = \"/dev/video2\"\nformat = \"yuyv\"\nfps = 15.0\n\
             [decide]\naccept_frames = 4\n[decide.quality]\nmin_face_px = 90.0\n\
             [outputs]\nindicator = \"gpio\"\ndisplay = \"png\"\n\
             [outputs.gpio]\ngreen = 17\nactive_low = true\n\
             [log]\npath = \"events.fglog\"\nkeep = 2\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.camera.source, "/dev/video2");
        assert_eq!(c.camera.format, crate::hw::camera::PixelFormat::Yuyv);
        assert_eq!(c.decide.accept_frames, 4);
        assert_eq!(
            c.decide.window_frames,
            DecideParams::default().window_frames
        );
        assert_eq!(c.decide.quality.min_face_px, 90.0);
        assert_eq!(c.outputs.indicator, IndicatorKind::Gpio);
        assert_eq!(c.outputs.gpio.green, Some(17));
        assert!(c.outputs.gpio.active_low);
        assert_eq!(c.log.keep, 2);
        // The default log name is kept as is; a configured one is relative to the file.
        assert_eq!(c.log.path, PathBuf::from("events.fglog"));
        std::fs::write(&path, "[decide]\nacept_frames = 4\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }

    #[test]
    fn login_section_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[login]\nmode = \"login\"\nthreshold = 0.7\nallow_nolive = true\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.login.mode, StationMode::Login);
        assert_eq!(c.login.threshold, Some(0.7));
        assert!(c.login.allow_nolive);
        assert_eq!(c.login.free_failures, 5);
        let d = Config::default().login;
        assert_eq!(
            (d.mode, d.threshold, d.allow_nolive),
            (StationMode::Door, None, false)
        );
        std::fs::write(&path, "[login]\nmode = \"kiosk\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "gallery = \"g.fg\"\n[detector]\nmin_face = 40\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.detector.min_face, 40.0);
        assert_eq!(c.detector.thresholds, [0.6, 0.7, 0.7]);
        assert_eq!(c.gallery, dir.path().join("g.fg"));
    }
}

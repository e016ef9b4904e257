//! Shared helpers for the integration tests: where the real data and models are, the real
//! pipeline loaded once per test binary, and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use facegate::media::image_io::load_rgb;
use facegate::runtime::models::ModelDir;
use facegate::vision::detect::DetectorParams;
use facegate::vision::pipeline::{Analysis, LowLightParams, Pipeline, StageTimes};

/// `../shared/data` beside the checkout (or `FACEGATE_DATA`), if present.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FACEGATE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("README.md").is_file().then_some(dir)
}

/// The data folder, or return from the test after saying why it was skipped.
#[macro_export]
macro_rules! data_or_skip {
    () => {
        match common::data_dir() {
            Some(d) => d,
            None => {
                eprintln!("SKIPPED: ../shared/data is not present on this machine");
                return;
            }
        }
    };
}

pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The real pipeline with default settings, loaded once per test binary and embedder.
pub fn pipeline(embedder: &str) -> &'static Pipeline {
    static MFN: OnceLock<Pipeline> = OnceLock::new();
    static DLIB: OnceLock<Pipeline> = OnceLock::new();
    let cell = match embedder {
        "dlib" => &DLIB,
        _ => &MFN,
    };
    cell.get_or_init(|| {
        let dir = ModelDir::locate(Some(&models_dir())).unwrap();
        Pipeline::load(
            &dir,
            embedder,
            DetectorParams::default(),
            LowLightParams::default(),
        )
        .unwrap()
    })
}

/// Analyse every image on two threads; order is kept.
pub fn analyse_all(pipeline: &Pipeline, paths: &[PathBuf]) -> Vec<Analysis> {
    map_on_two_threads(paths, |p| {
        let image = load_rgb(p).unwrap_or_else(|e| panic!("{e}"));
        pipeline
            .analyse(&image, &mut StageTimes::default())
            .unwrap()
    })
}

/// `f` over every item on two threads (the CI machine has two cores); order is kept.
pub fn map_on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// All image files below `dir`, sorted.
pub fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "gif" | "pgm"
                )
            }) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The real `facegate` binary, with the test's models folder. Its API socket is in a folder
/// that does not exist, so no test meets a service it did not start (tests that want one set
/// `FACEGATE_SOCKET`).
pub fn facegate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facegate"));
    cmd.env("FACEGATE_MODELS", models_dir())
        .env("FACEGATE_SOCKET", "/nonexistent/facegate-test/api.sock")
        .env_remove("FACEGATE_GALLERY")
        .env_remove("FACEGATE_CONFIG")
        .env_remove("FACEGATE_EMBEDDER")
        .env_remove("FACEGATE_PRECISION")
        // One key for all tests, outside every test's gallery folder (created on first use).
        .env("FACEGATE_KEY_FILE", test_key_file());
    cmd
}

/// The key file the tests' `facegate` runs use unless a test sets its own.
pub fn test_key_file() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("facegate-test-keys/gallery.key")
}

/// `../shared/pad/nuaa_dev` beside the checkout (live and printed-photo frames), if present.
pub fn nuaa_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pad/nuaa_dev");
    dir.join("live").is_dir().then_some(dir)
}

/// One NUAA subject's frames of one kind (`live` or `attack`: printed photos of them), in name
/// order (sessions, then picture number).
pub fn nuaa_frames(pad: &Path, kind: &str, subject: &str) -> Vec<PathBuf> {
    images_in(&pad.join(kind))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{subject}_"))
        })
        .collect()
}

/// A folder `root/name` of numbered symlinks to `frames`, for the folder frame source.
pub fn linked_frames(root: &Path, name: &str, frames: &[PathBuf]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, f) in frames.iter().enumerate() {
        std::os::unix::fs::symlink(f, dir.join(format!("{i:04}.jpg"))).unwrap();
    }
    dir
}

/// One JSON value per line of a command's output (`--json` decisions, log records).
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

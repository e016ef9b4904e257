//! `facegate doctor` through the real binary: a good setup passes every check; a damaged model,
//! a damaged gallery and a missing camera each fail the right check with a fix, and the exit
//! code says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A terminal set up in a temporary folder: config, gallery, frames folder as the camera.
struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Setup {
    fn new(data: &Path) -> Self {
        let setup = Self {
            dir: tempfile::tempdir().unwrap(),
            data: data.to_path_buf(),
        };
        setup.write_config(&data.join("video/hamilton/frames").display().to_string());
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn gallery(&self) -> PathBuf {
        self.path("gallery.fg")
    }

    fn write_config(&self, source: &str) {
        let text = format!(
            "gallery = {:?}\n[camera]\nsource = {source:?}\n\
             [outputs]\ndisplay = \"png\"\npng_dir = {:?}\n[log]\npath = {:?}\n",
            self.gallery(),
            self.path("screens"),
            self.path("events.fglog"),
        );
        std::fs::write(self.path("config.toml"), text).unwrap();
    }

    fn enroll(&self, name: &str, photo: &str) {
        self.enroll_file(name, &self.data.join("video/hamilton").join(photo));
    }

    fn enroll_file(&self, name: &str, photo: &Path) {
        let out = common::facegate()
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["enroll", "--largest", "--name", name])
            .arg(photo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "enroll {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Two people, so the gallery has a backup too.
    fn enroll_two(&self) {
        self.enroll("Lin-Manuel Miranda", "enroll_lin-manuel-miranda.png");
        self.enroll("Alex Lacamoire", "enroll_alex-lacamoire.png");
    }

    fn doctor(&self, extra: &[&str]) -> Output {
        common::facegate()
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(extra)
            .arg("doctor")
            .output()
            .unwrap()
    }

    fn doctor_json(&self, extra: &[&str]) -> (bool, Vec<Value>) {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.doctor(&args);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let checks = report["checks"].as_array().unwrap().clone();
        let fails = checks.iter().filter(|c| c["status"] == "fail").count();
        assert_eq!(report["fail"], fails, "{report}");
        (out.status.success(), checks)
    }
}

fn find<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_good_setup_passes_every_check() {
    let data = data_or_skip!();
    let setup = Setup::new(&data);
    setup.enroll_two();
    let (success, checks) = setup.doctor_json(&[]);
    for c in &checks {
        assert_eq!(c["status"], "ok", "{c}");
    }
    assert!(success);
    let gallery = find(&checks, "gallery")["detail"].as_str().unwrap();
    assert!(gallery.contains("2 people, 2 templates"), "{gallery}");
    let backup = find(&checks, "gallery backup")["detail"].as_str().unwrap();
    assert!(backup.contains("1 people"), "{backup}");
    // Every model file named by a manifest was checked: each ONNX file shipped in models/
    // (the MTCNN stages and embedders, in every precision variant).
    let models = checks
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("model "))
        .count();
    let shipped = std::fs::read_dir(common::models_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "onnx")
        })
        .count();
    assert_eq!(models, shipped, "{checks:#?}");
    for name in [
        "camera", "gpio", "display", "log", "disk", "config", "liveness",
    ] {
        find(&checks, name);
    }
    // Two templates: the door threshold is the embedder's 1:1 threshold (the derived one is
    // lower for so few templates, and never goes below it).
    let manifest = facegate::runtime::models::ModelDir::locate(None)
        .unwrap()
        .embedder_manifest(&facegate::config::Config::default().embedder)
        .unwrap();
    let op = find(&checks, "operating point")["detail"].as_str().unwrap();
    assert!(
        op.contains(&format!("door threshold {:.4}", manifest.threshold))
            && op.contains("against 2 templates"),
        "{op}"
    );
    let alike = find(&checks, "look-alikes")["detail"].as_str().unwrap();
    assert!(alike.starts_with("no two enrolled people"), "{alike}");
}

#[test]
fn two_names_for_one_face_are_listed_as_look_alikes() {
    let data = data_or_skip!();
    let setup = Setup::new(&data);
    let dir = data.join("dev/face_recognition_examples/kit_harington");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    setup.enroll_file("Kit", &photos[0]);
    setup.enroll("Alex Lacamoire", "enroll_alex-lacamoire.png");
    setup.enroll_file("Jon Snow", &photos[1]);
    let (_, checks) = setup.doctor_json(&[]);
    let alike = find(&checks, "look-alikes");
    assert_eq!(alike["status"], "warn", "{alike}");
    let detail = alike["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("1 pair(s)")
            && detail.contains("Kit (id")
            && detail.contains("Jon Snow (id"),
        "{detail}"
    );
    assert!(!detail.contains("Alex"), "{detail}");
}

#[test]
fn a_damaged_model_file_fails_and_is_named() {
    let data = data_or_skip!();
    let setup = Setup::new(&data);
    setup.enroll_two();
    let models = setup.path("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(common::models_dir()).unwrap().flatten() {
        let p = entry.path();
        if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("onnx" | "toml")
        ) {
            std::fs::copy(&p, models.join(p.file_name().unwrap())).unwrap();
        }
    }
    flip_byte(&models.join("rnet.onnx"), 200_000);

    let (success, checks) = setup.doctor_json(&["--models", models.to_str().unwrap()]);
    assert!(!success, "doctor must exit non-zero on a FAIL");
    let rnet = find(&checks, "model rnet.onnx");
    assert_eq!(rnet["status"], "fail", "{rnet}");
    let detail = rnet["detail"].as_str().unwrap();
    assert!(
        detail.contains("rnet.onnx") && detail.contains("checksum mismatch"),
        "{detail}"
    );
    assert!(rnet["fix"].as_str().unwrap().contains("reinstall"));
    for file in [
        "pnet.onnx",
        "onet.onnx",
        "mobilefacenet.onnx",
        "dlib_resnet.onnx",
        "minifasnet_v2.onnx",
        "minifasnet_v1se.onnx",
    ] {
        assert_eq!(find(&checks, &format!("model {file}"))["status"], "ok");
    }
}

#[test]
fn a_damaged_gallery_fails() {
    let data = data_or_skip!();

    // One save only: no backup to fall back on.
    let setup = Setup::new(&data);
    setup.enroll("Lin-Manuel Miranda", "enroll_lin-manuel-miranda.png");
    let len = std::fs::metadata(setup.gallery()).unwrap().len() as usize;
    flip_byte(&setup.gallery(), len / 2);
    let (success, checks) = setup.doctor_json(&[]);
    assert!(!success);
    let g = find(&checks, "gallery");
    assert_eq!(g["status"], "fail", "{g}");
    assert!(
        g["detail"].as_str().unwrap().contains("checksum mismatch"),
        "{g}"
    );

    // With a backup the terminal still runs on it, but the damage is a FAIL to act on.
    let setup = Setup::new(&data);
    setup.enroll_two();
    let len = std::fs::metadata(setup.gallery()).unwrap().len() as usize;
    flip_byte(&setup.gallery(), len / 2);
    let (success, checks) = setup.doctor_json(&[]);
    assert!(!success);
    let g = find(&checks, "gallery");
    assert_eq!(g["status"], "fail", "{g}");
    let detail = g["detail"].as_str().unwrap();
    assert!(
        detail.contains("is damaged") && detail.contains("gallery.fg.bak (1 people"),
        "{detail}"
    );
}

#[test]
fn a_missing_camera_fails_with_a_hint() {
    let data = data_or_skip!();
    let setup = Setup::new(&data);
    setup.enroll_two();
    let device = "/dev/video97";
    assert!(!Path::new(device).exists());
    setup.write_config(device);
    let out = setup.doctor(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let camera: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("FAIL  camera"))
        .take(2)
        .collect();
    assert_eq!(camera.len(), 2, "{text}");
    assert!(camera[0].contains("/dev/video97 does not exist"), "{text}");
    assert!(
        camera[1]
            .trim_start()
            .starts_with("fix: plug the camera in"),
        "{text}"
    );
    // Everything else about this setup is fine.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("1 failure(s)"), "{text}");
}

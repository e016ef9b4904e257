//! Liveness through the real binary on real NUAA frames (../shared/pad/nuaa_dev): a subject
//! enrolled from live frames is accepted from live frames and refused as `spoof` from printed
//! photos of them; enrolment refuses a printed photo; a damaged liveness model is a clear error.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

const SUBJECT: &str = "0003";

macro_rules! pad_or_skip {
    () => {
        match common::nuaa_dir() {
            Some(d) => d,
            None => {
                eprintln!("SKIPPED: ../shared/pad/nuaa_dev is not present on this machine");
                return;
            }
        }
    };
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `--largest`: NUAA frames often hold a second, small false detection beside the subject.
fn enroll(gallery: &Path, photos: &[PathBuf], extra: &[&str]) -> std::process::Output {
    common::facegate()
        .args([
            "--gallery",
            s(gallery),
            "enroll",
            "--largest",
            "--name",
            SUBJECT,
        ])
        .args(extra)
        .args(photos)
        .output()
        .unwrap()
}

fn run(gallery: &Path, source: &Path, work: &Path, extra: &[&str]) -> Vec<Value> {
    let out = common::facegate()
        .args([
            "--gallery",
            s(gallery),
            "--json",
            "run",
            "--source",
            s(source),
        ])
        .args(["--log-file", s(&work.join("events.fglog"))])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "facegate run failed: {stderr}");
    common::json_lines(&out.stdout)
}

#[test]
fn printed_photos_are_refused_as_spoof_and_the_live_subject_is_accepted() {
    let pad = pad_or_skip!();
    let work = tempfile::tempdir().unwrap();
    let gallery = work.path().join("gallery.fg");
    let live = common::nuaa_frames(&pad, "live", SUBJECT);
    let attack = common::nuaa_frames(&pad, "attack", SUBJECT);
    // nuaa_dev holds 15 live frames (one session) and 75 attack frames of this subject.
    assert!(
        live.len() >= 15 && attack.len() >= 20,
        "{live:?} {attack:?}"
    );

    // Enrolment refuses a printed photo unless told otherwise.
    let out = enroll(&gallery, &attack[..1], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a printed photo was enrolled");
    assert!(stderr.contains("liveness"), "{stderr}");
    assert!(!gallery.exists(), "a refused enrolment wrote the gallery");

    // Enrol from three live frames spread over the subject's session.
    let picks = [0, live.len() / 2, live.len() - 1].map(|i| live[i].clone());
    let out = enroll(&gallery, &picks, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let attack_dir = common::linked_frames(work.path(), "attack", &attack);
    let snapshots = work.path().join("snapshots");
    let decisions = run(
        &gallery,
        &attack_dir,
        work.path(),
        &["--snapshot-dir", s(&snapshots)],
    );
    assert!(
        !decisions.is_empty(),
        "no decision on {} attack frames",
        attack.len()
    );
    for d in &decisions {
        assert_eq!(d["outcome"], "spoof", "attack frames: {d}");
        assert!(d["liveness"].as_f64().unwrap() < 0.5, "{d}");
    }
    // The refusals were logged as spoof attempts.
    let log = common::facegate()
        .args([
            "--json",
            "log",
            "--log-file",
            s(&work.path().join("events.fglog")),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert_eq!(log.matches("\"spoof\"").count(), decisions.len(), "{log}");
    // ...each with a snapshot of the frame.
    assert_eq!(
        std::fs::read_dir(&snapshots).unwrap().count(),
        decisions.len()
    );

    let live_dir = common::linked_frames(work.path(), "live", &live);
    let decisions = run(&gallery, &live_dir, work.path(), &[]);
    let accepted: Vec<_> = decisions
        .iter()
        .filter(|d| d["outcome"] == "accepted")
        .collect();
    assert!(!accepted.is_empty(), "live frames: {decisions:?}");
    assert!(accepted.iter().all(|d| d["name"] == SUBJECT));
    assert!(
        decisions.iter().all(|d| d["outcome"] != "spoof"),
        "a live track was refused as spoof: {decisions:?}"
    );

    // --no-liveness overrides the refusal.
    let other = work.path().join("other.fg");
    let out = enroll(&other, &attack[..1], &["--no-liveness"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_liveness_model_with_the_wrong_checksum_is_a_clear_error() {
    let pad = pad_or_skip!();
    let models = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(common::models_dir()).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        // The default detector and embedder and the liveness nets (not the large dlib files).
        if name.starts_with("mtcnn.")
            || name.starts_with("mobilefacenet-arcface.")
            || name.starts_with("minifasnet")
            || ["pnet.onnx", "rnet.onnx", "onet.onnx", "mobilefacenet.onnx"]
                .contains(&name.as_str())
        {
            std::fs::copy(e.path(), models.path().join(&name)).unwrap();
        }
    }
    let net = models.path().join("minifasnet_v1se.onnx");
    let mut bytes = std::fs::read(&net).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&net, bytes).unwrap();
    let photo = common::nuaa_frames(&pad, "live", SUBJECT).remove(0);
    let out = common::facegate()
        .env("FACEGATE_MODELS", models.path())
        .args(["--gallery", s(&models.path().join("g.fg")), "identify"])
        .arg(&photo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("checksum mismatch") && stderr.contains("minifasnet_v1se.onnx"),
        "{stderr}"
    );
    assert!(stderr.contains("liveness"), "{stderr}");
}

#[test]
fn identify_and_embed_report_liveness() {
    let pad = pad_or_skip!();
    let work = tempfile::tempdir().unwrap();
    let live = common::nuaa_frames(&pad, "live", SUBJECT).remove(0);
    let attack = common::nuaa_frames(&pad, "attack", SUBJECT).remove(0);
    let out = common::facegate()
        .args([
            "--gallery",
            s(&work.path().join("g.fg")),
            "--json",
            "identify",
        ])
        .args([&live, &attack])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = common::json_lines(&out.stdout);
    let live_score = lines[0]["faces"][0]["liveness"]["score"].as_f64().unwrap();
    let attack_score = lines[1]["faces"][0]["liveness"]["score"].as_f64().unwrap();
    assert!(live_score > attack_score, "{lines:?}");
    assert_eq!(lines[1]["faces"][0]["liveness"]["live"], false);

    let out = common::facegate()
        .args(["embed"])
        .arg(&attack)
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["faces"][0]["liveness"]["live"], false, "{line}");
    // --no-liveness leaves the field out.
    let out = common::facegate()
        .args(["embed", "--no-liveness"])
        .arg(&attack)
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line["faces"][0].get("liveness").is_none(), "{line}");
}

fn json_of(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn eval_liveness_and_calibrate_agree_and_the_written_threshold_is_used() {
    let pad = pad_or_skip!();
    let work = tempfile::tempdir().unwrap();
    let (live, attack) = (
        common::nuaa_frames(&pad, "live", SUBJECT),
        common::nuaa_frames(&pad, "attack", SUBJECT),
    );
    let live_dir = common::linked_frames(work.path(), "live", &live);
    let attack_dir = common::linked_frames(work.path(), "attack", &attack);
    let plot = work.path().join("det.png");
    let eval = |config: Option<&Path>, plot: Option<&Path>| {
        let mut cmd = common::facegate();
        if let Some(c) = config {
            cmd.args(["--config", s(c)]);
        }
        cmd.args(["--json", "eval", "liveness", "--live", s(&live_dir)])
            .args(["--attack", s(&attack_dir), "--at", "0.5", "--at", "1.01"]);
        if let Some(p) = plot {
            cmd.args(["--plot", s(p)]);
        }
        json_of(cmd.output().unwrap())
    };

    let report = eval(None, Some(&plot));
    let count = |kind: &str| {
        report[format!("{kind}_presentations")].as_u64().unwrap()
            + report[format!("{kind}_without_face")].as_u64().unwrap()
    };
    assert_eq!(count("bona_fide"), live.len() as u64, "{report}");
    assert_eq!(count("attack"), attack.len() as u64, "{report}");
    assert_eq!(report["nets"], "v2+v1se");
    assert_eq!(report["at_threshold"]["threshold"], 0.5);
    // --at reports further operating points: 0.5 is the configured one again; above every
    // score, no attack passes and every live face is refused.
    assert_eq!(
        report["at_thresholds"][0], report["at_threshold"],
        "{report}"
    );
    assert_eq!(report["at_thresholds"][1]["apcer"], 0.0, "{report}");
    assert_eq!(report["at_thresholds"][1]["bpcer"], 1.0, "{report}");
    // 75 attacks cannot show an APCER of 1 %, but can show 5 %.
    assert!(report["at_apcer"][0]["point"].is_null(), "{report}");
    let at5 = &report["at_apcer"][1]["point"];
    assert!(at5["apcer"].as_f64().unwrap() <= 0.05, "{report}");
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // Calibration on the same frames picks the same operating point and writes it.
    let config = work.path().join("config.toml");
    std::fs::write(&config, "[liveness]\nfloor = 0.2\n").unwrap();
    let calibration = json_of(
        common::facegate()
            .args(["--json", "calibrate", "--liveness-live", s(&live_dir)])
            .args(["--liveness-attack", s(&attack_dir), "--apcer", "0.05"])
            .args(["--write-config", s(&config)])
            .output()
            .unwrap(),
    );
    // Thresholds are f32: the reports print them at f32 or widened f64 precision.
    let f32_of = |v: &Value| v.as_f64().unwrap() as f32;
    let threshold = f32_of(&calibration["liveness_threshold"]);
    assert_eq!(threshold, f32_of(&at5["threshold"]), "{calibration}");
    assert_eq!(calibration["apcer"], at5["apcer"]);
    assert_eq!(calibration["bpcer"], at5["bpcer"]);
    // The rest of the [liveness] table is kept; the evaluation now runs at the new threshold.
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["liveness"]["floor"].as_float(), Some(0.2));
    let report = eval(Some(&config), None);
    assert_eq!(f32_of(&report["at_threshold"]["threshold"]), threshold);
    assert_eq!(report["at_threshold"]["apcer"], at5["apcer"], "{report}");
}

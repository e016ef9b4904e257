//! `facegate enroll --camera` end to end through the real binary: the recorded Hamilton clip
//! stands in for the camera (a folder source, the same code path as a device). Lin-Manuel
//! Miranda faces the camera, turns to one side, then the other, then faces it again, so all
//! four poses are captured, and the stored templates recognise his separate enrolment photo.

mod common;

use std::path::Path;

use serde_json::Value;

/// The terminal tests' profile: every 2nd frame of the 30 fps clip.
const CONFIG: &str = "[camera]\nevery_nth = 2\n";

fn enrol(work: &Path, source: &Path) -> std::process::Output {
    let config = work.join("config.toml");
    std::fs::write(&config, CONFIG).unwrap();
    common::facegate()
        .arg("--json")
        .arg("--config")
        .arg(&config)
        .arg("--gallery")
        .arg(work.join("gallery.fg"))
        .args([
            "enroll",
            "--name",
            "Lin-Manuel Miranda",
            "--camera",
            "--source",
        ])
        .arg(source)
        .arg("--display-png")
        .arg(work.join("screens"))
        .output()
        .expect("facegate runs")
}

#[test]
fn a_person_is_guided_through_the_poses_and_then_recognised() {
    let data = data_or_skip!();
    let work = tempfile::tempdir().unwrap();
    let out = enrol(work.path(), &data.join("video/hamilton/frames"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"], 4, "{report}");
    for pose in ["Front", "Side", "OtherSide", "Glasses"] {
        assert!(stderr.contains(&format!("captured {pose} ")), "{pose}");
    }

    // The display walked through the prompts and ended on "Enrolled".
    let mut screens: Vec<String> = std::fs::read_dir(work.path().join("screens"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    screens.sort();
    assert!(screens.first().unwrap().ends_with("-enrol.png"));
    assert!(screens.last().unwrap().ends_with("-enrolled.png"));

    // The camera templates recognise his enrolment photo, and not Alex Lacamoire's.
    let identify = |photo: &str| -> Value {
        let out = common::facegate()
            .arg("--json")
            .arg("--gallery")
            .arg(work.path().join("gallery.fg"))
            .arg("identify")
            .arg(data.join("video/hamilton").join(photo))
            .output()
            .unwrap();
        assert!(out.status.success());
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.lines().next().unwrap()).unwrap()
    };
    let lin = identify("enroll_lin-manuel-miranda.png");
    assert_eq!(
        lin["faces"][0]["match"]["name"], "Lin-Manuel Miranda",
        "{lin}"
    );
    let alex = identify("enroll_alex-lacamoire.png");
    assert!(alex["faces"][0]["match"].is_null(), "{alex}");
}

#[test]
fn frames_without_a_person_store_nothing() {
    let data = data_or_skip!();
    let work = tempfile::tempdir().unwrap();
    let out = enrol(work.path(), &data.join("video/dlib_video_frames_noface"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("0 of 4 poses captured"), "{stderr}");
    assert!(stderr.contains("nothing stored"), "{stderr}");
    assert!(!work.path().join("gallery.fg").exists());
}

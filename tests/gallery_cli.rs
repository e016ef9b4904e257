//! The gallery end to end through the real binary: enroll people from photos, recognise them in
//! other photos, keep strangers out, and survive damaged files and kills mid-write.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn run(args: &[&str], gallery: &Path) -> Output {
    common::facegate()
        .arg("--gallery")
        .arg(gallery)
        .args(args)
        .output()
        .expect("facegate runs")
}

fn ok(args: &[&str], gallery: &Path) -> String {
    let out = run(args, gallery);
    assert!(
        out.status.success(),
        "facegate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Names of the people identified in each JSON line (None for unknown faces).
fn identified(lines: &[Value]) -> Vec<Vec<Option<String>>> {
    lines
        .iter()
        .map(|l| {
            l["faces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["match"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

fn photos(dir: &Path) -> Vec<PathBuf> {
    common::images_in(dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn enrolled_people_are_recognised_and_strangers_are_not() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let people = data.join("dev/face_recognition_examples");
    let names = [
        "alex_lacamoire",
        "barack_obama",
        "kit_harington",
        "lin_manuel_miranda",
        "rose_leslie",
    ];

    // Enroll each person from their first photo; the others are probes.
    let mut probes = Vec::new();
    for name in names {
        let mut all = photos(&people.join(name));
        let first = all.remove(0);
        ok(
            &["enroll", "--largest", "--name", name, s(&first)],
            &gallery,
        );
        probes.extend(all.into_iter().map(|p| (name, p)));
    }
    let listed: Value = serde_json::from_str(&ok(&["--json", "list"], &gallery)).unwrap();
    assert_eq!(listed["people"].as_array().unwrap().len(), names.len());

    let mut args = vec!["--json", "identify"];
    args.extend(probes.iter().map(|(_, p)| s(p)));
    let lines = json_lines(&ok(&args, &gallery));
    for ((name, path), faces) in probes.iter().zip(identified(&lines)) {
        // The person must be among the faces found (a photo may show others too).
        assert!(
            faces.iter().any(|f| f.as_deref() == Some(*name)),
            "{} identified as {faces:?}, expected {name}",
            path.display()
        );
        assert!(
            faces.iter().flatten().all(|f| f == name),
            "{}: someone else recognised: {faces:?}",
            path.display()
        );
    }

    // Both people in the group photo, nobody else.
    let group = people.join("_multi/kit_with_rose.jpg");
    let lines = json_lines(&ok(&["--json", "identify", s(&group)], &gallery));
    let mut found: Vec<String> = identified(&lines)[0].iter().flatten().cloned().collect();
    found.sort();
    assert_eq!(found, vec!["kit_harington", "rose_leslie"]);

    // Strangers: people from the disjoint LFW set are never recognised as anyone.
    let strangers: Vec<PathBuf> = photos(&data.join("dev/lfw_disjoint"))
        .into_iter()
        .step_by(8)
        .collect();
    let mut args = vec!["--json", "identify"];
    args.extend(strangers.iter().map(|p| s(p)));
    let lines = json_lines(&ok(&args, &gallery));
    let accepted: Vec<String> = strangers
        .iter()
        .zip(identified(&lines))
        .filter(|(_, f)| f.iter().any(Option::is_some))
        .map(|(p, f)| format!("{} → {f:?}", p.display()))
        .collect();
    eprintln!("{} strangers, {} accepted", strangers.len(), accepted.len());
    assert!(accepted.is_empty(), "strangers accepted: {accepted:?}");
}

#[test]
fn enrollment_refuses_photos_without_exactly_one_face() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let noface = data.join("noface/skimage_brick.png");
    let out = run(&["enroll", "--name", "brick", s(&noface)], &gallery);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no face found"));
    let group = data.join("dev/face_recognition_examples/_multi/kit_with_rose.jpg");
    let out = run(&["enroll", "--name", "pair", s(&group)], &gallery);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 faces found"));
    // Nothing was written by the refused enrollments.
    assert!(!gallery.exists());
}

#[test]
fn enrolling_the_same_face_twice_under_another_name_warns() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let dir = data.join("dev/face_recognition_examples/kit_harington");
    let photos = photos(&dir);
    ok(&["enroll", "--name", "Kit", s(&photos[0])], &gallery);
    let out = ok(
        &["--json", "enroll", "--name", "Jon Snow", s(&photos[1])],
        &gallery,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .contains("already-enrolled Kit"));
}

#[test]
fn remove_and_clear() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let dir = data.join("dev/face_recognition_examples");
    ok(
        &[
            "enroll",
            "--name",
            "Rose",
            s(&photos(&dir.join("rose_leslie"))[0]),
        ],
        &gallery,
    );
    ok(
        &[
            "enroll",
            "--largest",
            "--name",
            "Lin",
            s(&photos(&dir.join("lin_manuel_miranda"))[0]),
        ],
        &gallery,
    );
    ok(&["remove", "rose"], &gallery);
    let listed: Value = serde_json::from_str(&ok(&["--json", "list"], &gallery)).unwrap();
    let names: Vec<&str> = listed["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Lin"]);
    let out = run(&["remove", "Nobody"], &gallery);
    assert!(!out.status.success());
    let out = run(&["clear"], &gallery);
    assert!(!out.status.success(), "clear without --yes must refuse");
    ok(&["clear", "--yes"], &gallery);
    let listed: Value = serde_json::from_str(&ok(&["--json", "list"], &gallery)).unwrap();
    assert!(listed["people"].as_array().unwrap().is_empty());
}

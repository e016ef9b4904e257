//! Encryption at rest and the tamper-evident decision log, through the real binary on real
//! files: a gallery enrolled from real photos holds no template or name bytes, a missing or
//! wrong key is a clear error that changes nothing, a plain gallery migrates keeping a backup,
//! and `facegate log --verify` names the record an edit, deletion, reordering or truncation
//! broke.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use facegate::gallery::store::encode_plain_v1;
use facegate::gallery::{Gallery, GalleryStore};
use facegate::keys::KeyFile;
use facegate::terminal::events::{Event, EventLog, EventOutcome, LogParams};
use serde_json::Value;

fn run(args: &[&str], gallery: &Path, key: &Path) -> Output {
    common::facegate()
        .arg("--gallery")
        .arg(gallery)
        .env("FACEGATE_KEY_FILE", key)
        .args(args)
        .output()
        .expect("facegate runs")
}

fn ok(args: &[&str], gallery: &Path, key: &Path) -> (String, String) {
    let out = run(args, gallery, key);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "facegate {args:?} failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn failed(args: &[&str], gallery: &Path, key: &Path) -> String {
    let out = run(args, gallery, key);
    assert!(!out.status.success(), "facegate {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        // The writers' lock file (empty, no gallery data) is made by the first command that
        // tries a change, before the key is read.
        .filter(|p| {
            !(p.extension().is_some_and(|e| e == "lock") && fs::metadata(p).unwrap().len() == 0)
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn first_photo(data: &Path, who: &str) -> PathBuf {
    common::images_in(&data.join("dev/face_recognition_examples").join(who)).remove(0)
}

/// Enroll two people from real photos into `gallery`, one linked to a login.
fn enroll_two(data: &Path, gallery: &Path, key: &Path) {
    for (who, user) in [("barack_obama", Some("obama")), ("rose_leslie", None)] {
        let photo = first_photo(data, who);
        let mut args = vec![
            "enroll",
            "--largest",
            "--name",
            who,
            photo.to_str().unwrap(),
        ];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        ok(&args, gallery, key);
    }
}

fn load(gallery: &Path, key: &Path) -> Gallery {
    let store = GalleryStore::new(gallery).with_key_file(key);
    let header = facegate::gallery::inspect(gallery).unwrap();
    store.load(&header.embedder).unwrap().gallery
}

/// None of the gallery's names, template values or scales appear in `bytes`.
fn reveals_nothing(g: &Gallery, bytes: &[u8]) -> bool {
    g.people().iter().all(|p| {
        !contains(bytes, p.name.as_bytes())
            && p.templates.iter().all(|t| {
                let values: Vec<u8> = t.values().iter().map(|&v| v as u8).collect();
                !contains(bytes, &values[..12]) && !contains(bytes, &t.scale().to_le_bytes())
            })
    })
}

#[test]
fn a_copied_gallery_without_its_key_yields_nothing_and_a_wrong_key_changes_nothing() {
    let data = data_or_skip!();
    let (gdir, kdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gallery = gdir.path().join("gallery.fg");
    let key = kdir.path().join("keys/gallery.key");
    enroll_two(&data, &gallery, &key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let listed: Value = serde_json::from_str(&ok(&["--json", "list"], &gallery, &key).0).unwrap();
    let users: Vec<&Value> = listed["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["user"])
        .collect();
    assert_eq!(users, [&Value::from("obama"), &Value::Null]);

    // The real templates, read with the key, are nowhere in the file or its backup; the
    // plain format of the same gallery shows the search would find them.
    let g = load(&gallery, &key);
    assert_eq!(g.len(), 2);
    assert!(!reveals_nothing(&g, &encode_plain_v1(&g).unwrap()));
    for f in [&gallery, &gdir.path().join("gallery.fg.bak")] {
        assert!(
            reveals_nothing(&g, &fs::read(f).unwrap()),
            "{}",
            f.display()
        );
    }

    // A copy of the folder on another machine: no key file there.
    let copy = tempfile::tempdir().unwrap();
    fs::copy(&gallery, copy.path().join("gallery.fg")).unwrap();
    let copied = copy.path().join("gallery.fg");
    let missing = copy.path().join("elsewhere/none.key");
    let before = snapshot(copy.path());
    for args in [
        &["list"][..],
        &["remove", "rose_leslie"],
        &["clear", "--yes"],
    ] {
        let err = failed(args, &copied, &missing);
        assert!(
            err.contains("none.key") && err.contains("does not exist"),
            "{err}"
        );
    }
    assert!(
        !missing.exists(),
        "a missing key must not be replaced by a new one"
    );
    assert_eq!(snapshot(copy.path()), before);

    // Another installation's key.
    let other = copy.path().join("other/gallery.key");
    KeyFile::new(&other).load_or_create().unwrap();
    let photo = first_photo(&data, "kit_harington");
    let enroll = [
        "enroll",
        "--largest",
        "--name",
        "kit",
        photo.to_str().unwrap(),
    ];
    for args in [&["list"][..], &["remove", "rose_leslie"], &enroll] {
        let err = failed(args, &copied, &other);
        assert!(
            err.contains("other/gallery.key") && err.contains("not the key"),
            "{err}"
        );
    }
    assert_eq!(snapshot(copy.path()), before);

    // A key others can read is refused, naming the fix.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = failed(&["list"], &gallery, &key);
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A login belongs to one person.
    let err = failed(
        &[
            "enroll",
            "--largest",
            "--name",
            "kit",
            photo.to_str().unwrap(),
            "--user",
            "obama",
        ],
        &gallery,
        &key,
    );
    assert!(err.contains("already linked"), "{err}");
    let err = failed(
        &["enroll", "--name", "kit", "--user", "1000", "x.jpg"],
        &gallery,
        &key,
    );
    assert!(err.contains("invalid login"), "{err}");
}

#[test]
fn a_plain_gallery_migrates_on_its_first_write_keeping_a_backup_and_everyone() {
    let data = data_or_skip!();
    let (gdir, kdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gallery = gdir.path().join("gallery.fg");
    let key = kdir.path().join("gallery.key");
    enroll_two(&data, &gallery, &key);
    // The same people in the plain format of earlier versions, with no key file anywhere.
    let g = load(&gallery, &key);
    let plain = encode_plain_v1(&g).unwrap();
    let old = tempfile::tempdir().unwrap();
    let plain_gallery = old.path().join("gallery.fg");
    fs::write(&plain_gallery, &plain).unwrap();
    let new_key = kdir.path().join("new/gallery.key");
    let listed: Value =
        serde_json::from_str(&ok(&["--json", "list"], &plain_gallery, &new_key).0).unwrap();
    let people = listed["people"].as_array().unwrap();
    assert_eq!(people.len(), 2);
    assert!(
        people.iter().all(|p| p["user"].is_null()),
        "format 1 has no logins"
    );
    assert!(!new_key.exists(), "reading must not create a key");

    let photo = first_photo(&data, "kit_harington");
    let (_, stderr) = ok(
        &[
            "enroll",
            "--largest",
            "--name",
            "kit",
            photo.to_str().unwrap(),
            "--user",
            "kit",
        ],
        &plain_gallery,
        &new_key,
    );
    assert!(stderr.contains("created the key file"), "{stderr}");
    assert!(stderr.contains("now encrypted"), "{stderr}");
    assert!(new_key.exists());
    assert_eq!(fs::read(old.path().join("gallery.fg.bak")).unwrap(), plain);
    let migrated = load(&plain_gallery, &new_key);
    assert_eq!(migrated.len(), 3);
    for p in g.people() {
        let m = migrated.people().iter().find(|m| m.id == p.id).unwrap();
        assert_eq!((&m.name, &m.templates), (&p.name, &p.templates));
    }
    assert!(reveals_nothing(
        &migrated,
        &fs::read(&plain_gallery).unwrap()
    ));
    let doctor = String::from_utf8(
        common::facegate()
            .args(["--gallery", plain_gallery.to_str().unwrap()])
            .env("FACEGATE_KEY_FILE", &new_key)
            .arg("doctor")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        doctor.contains("gallery backup") && doctor.contains("not encrypted"),
        "{doctor}"
    );
    // The next change replaces the plain backup with an encrypted one.
    ok(&["remove", "kit"], &plain_gallery, &new_key);
    assert!(
        facegate::gallery::inspect(old.path().join("gallery.fg.bak"))
            .unwrap()
            .is_sealed()
    );
}

fn decision(i: u64, name: &str) -> Event {
    Event {
        unix_ms: 1_795_474_800_000 + i * 60_000,
        frame_ms: i * 100,
        track: i,
        outcome: EventOutcome::Accepted,
        person_id: Some(1),
        name: Some(name.to_string()),
        similarity: 0.7,
        frames_used: 5,
    }
}

/// A log of `n` decisions written by the terminal's log writer with `key`.
fn write_log(dir: &Path, key: &Path, n: u64) -> LogParams {
    let params = LogParams {
        path: dir.join("events.fglog"),
        door: Some("front door".into()),
        ..LogParams::default()
    };
    let (master, _) = KeyFile::new(key).load_or_create().unwrap();
    let mut log = EventLog::open(&params, &master).unwrap();
    for i in 0..n {
        log.append(&decision(i, if i % 2 == 0 { "Ada" } else { "Bo, Jr" }))
            .unwrap();
    }
    params
}

/// (offset, length) of each record of a log file.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, 8 + len));
        at += 8 + len;
    }
    out
}

fn verify(log: &Path, key: &Path) -> (bool, String) {
    let out = common::facegate()
        .args(["log", "--verify", "--log-file", log.to_str().unwrap()])
        .env("FACEGATE_KEY_FILE", key)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn log_verify_names_the_record_an_edit_deletion_reordering_or_truncation_broke() {
    let dir = tempfile::tempdir().unwrap();
    let kdir = tempfile::tempdir().unwrap();
    let key = kdir.path().join("gallery.key");
    let params = write_log(dir.path(), &key, 6);
    let log = params.path.clone();
    let good = fs::read(&log).unwrap();
    let (passed, text) = verify(&log, &key);
    assert!(
        passed && text.contains("ok: 8 records (6 decisions)"),
        "{text}"
    );
    // Records: 0 anchor, 1 start, 2..=7 decisions.
    let recs = records(&good);
    assert_eq!(recs.len(), 8);
    let fix_crc = |bytes: &mut Vec<u8>, (at, len): (usize, usize)| {
        let crc = crc32fast::hash(&bytes[at + 8..at + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "edited byte",
            {
                let mut b = good.clone();
                let (at, len) = recs[4];
                b[at + len - 40] ^= 0x01;
                b
            },
            "record 4 ",
        ),
        (
            "edited byte, checksum recomputed",
            {
                let mut b = good.clone();
                let (at, len) = recs[4];
                b[at + len - 40] ^= 0x01;
                fix_crc(&mut b, recs[4]);
                b
            },
            "record 4 ",
        ),
        (
            "deleted record",
            {
                let (at, len) = recs[3];
                [&good[..at], &good[at + len..]].concat()
            },
            "record 3 should",
        ),
        (
            "reordered records",
            {
                let (a, la) = recs[5];
                let (b, lb) = recs[6];
                [
                    &good[..a],
                    &good[b..b + lb],
                    &good[a..a + la],
                    &good[b + lb..],
                ]
                .concat()
            },
            "record 5 should",
        ),
        (
            "truncated inside a record",
            good[..good.len() - 10].to_vec(),
            "record 7 is missing",
        ),
        (
            "truncated at a record boundary",
            good[..recs[6].0].to_vec(),
            "record 6 is missing",
        ),
    ];
    for (what, bytes, names) in cases {
        fs::write(&log, &bytes).unwrap();
        let (passed, text) = verify(&log, &key);
        assert!(!passed, "{what}: verify passed: {text}");
        assert!(
            text.contains("BROKEN") && text.contains(names),
            "{what}: {text}"
        );
    }
    // Another key file is named as such.
    fs::write(&log, &good).unwrap();
    let other = kdir.path().join("other.key");
    KeyFile::new(&other).load_or_create().unwrap();
    let (passed, text) = verify(&log, &other);
    assert!(!passed && text.contains("another key file"), "{text}");
    // A deleted head file: cannot tell whether the end was cut.
    fs::remove_file(facegate::terminal::event_chain::head_path(&log)).unwrap();
    let (passed, text) = verify(&log, &key);
    assert!(!passed && text.contains("head file is missing"), "{text}");
}

#[test]
fn log_csv_exports_attendance_filtered_by_time_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let kdir = tempfile::tempdir().unwrap();
    let key = kdir.path().join("gallery.key");
    let params = write_log(dir.path(), &key, 6);
    let csv = |extra: &[&str]| {
        let out = common::facegate()
            .args(["log", "--csv", "--log-file", params.path.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let all = csv(&[]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "time,person,door,outcome,score");
    assert_eq!(
        lines[1],
        "2026-11-23T23:00:00.000Z,Ada,front door,accepted,0.7000"
    );
    assert_eq!(
        lines[2],
        "2026-11-23T23:01:00.000Z,\"Bo, Jr\",front door,accepted,0.7000"
    );
    assert_eq!(lines.len(), 7);
    let some = csv(&[
        "--since",
        "2026-11-23T23:02",
        "--until",
        "2026-11-23T23:05:00Z",
        "--name",
        "ada",
    ]);
    let times: Vec<&str> = some.lines().skip(1).map(|l| &l[11..16]).collect();
    assert_eq!(times, ["23:02", "23:04"]);
}

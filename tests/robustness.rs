//! Bad input gets a clear error and nothing is lost: damaged images, galleries and models, a
//! missing folder, a full disk, and the real binary killed mid-write hundreds of times.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("facegate runs")
}

fn with_gallery(gallery: &Path) -> Command {
    let mut cmd = common::facegate();
    cmd.arg("--gallery").arg(gallery);
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn people(gallery: &Path) -> Vec<String> {
    let out = run(with_gallery(gallery).args(["--json", "list"]));
    assert!(out.status.success(), "list failed: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// `facegate embed` output for one real face photo, to enroll from without running the models.
fn embed_file(data: &Path, dir: &Path) -> PathBuf {
    let photo = data.join("dev/face_recognition_examples/rose_leslie/img1.jpg");
    let out = run(common::facegate().arg("embed").arg(&photo));
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.join("rose.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    file
}

fn enroll_from(gallery: &Path, embeddings: &Path, name: &str) -> Command {
    let mut cmd = with_gallery(gallery);
    cmd.args(["enroll", "--name", name, "--from-embed"])
        .arg(embeddings);
    cmd
}

#[test]
fn damaged_images_give_one_line_errors() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let jpeg =
        std::fs::read(data.join("dev/face_recognition_examples/rose_leslie/img1.jpg")).unwrap();
    let truncated = tmp.path().join("truncated.jpg");
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 3]).unwrap();
    let text = tmp.path().join("notes.jpg");
    std::fs::write(&text, "not an image at all").unwrap();
    let missing = tmp.path().join("missing.jpg");
    for (path, expected) in [
        (&truncated, "corrupt or truncated"),
        (&text, "not a supported image format"),
        (&missing, "No such file"),
    ] {
        let out = run(common::facegate().arg("embed").arg(path));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(expected) && err.contains(path.to_str().unwrap()),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn corrupt_gallery_falls_back_to_the_backup_and_is_never_overwritten() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let emb = embed_file(&data, tmp.path());
    assert!(run(&mut enroll_from(&gallery, &emb, "Ann"))
        .status
        .success());
    assert!(run(&mut enroll_from(&gallery, &emb, "Bob"))
        .status
        .success());

    // Cut the main file short: the backup (holding Ann) is loaded, and the user is told.
    let bytes = std::fs::read(&gallery).unwrap();
    std::fs::write(&gallery, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(with_gallery(&gallery).args(["--json", "list"]));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("loaded the backup"),
        "{}",
        stderr(&out)
    );
    assert_eq!(people(&gallery), vec!["Ann"]);

    // Both copies damaged: a clear error, and the files stay exactly as they were.
    let backup = tmp.path().join("gallery.fg.bak");
    let mut b = std::fs::read(&backup).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&backup, &b).unwrap();
    let before = (
        std::fs::read(&gallery).unwrap(),
        std::fs::read(&backup).unwrap(),
    );
    let out = run(&mut enroll_from(&gallery, &emb, "Cy"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("gallery"), "{}", stderr(&out));
    assert_eq!(
        before,
        (
            std::fs::read(&gallery).unwrap(),
            std::fs::read(&backup).unwrap()
        )
    );
}

#[test]
fn gallery_of_another_embedder_is_refused() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let emb = embed_file(&data, tmp.path());
    assert!(run(&mut enroll_from(&gallery, &emb, "Ann"))
        .status
        .success());
    let before = std::fs::read(&gallery).unwrap();
    let out = run(with_gallery(&gallery).args(["--embedder", "dlib", "list"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("mobilefacenet-arcface") && err.contains("dlib-resnet"),
        "{err}"
    );
    // Enrolling with the other embedder must not replace the gallery either.
    let photo = data.join("dev/face_recognition_examples/rose_leslie/img2.jpg");
    let out = run(with_gallery(&gallery)
        .args(["--embedder", "dlib", "enroll", "--name", "X"])
        .arg(&photo));
    assert!(!out.status.success());
    assert_eq!(before, std::fs::read(&gallery).unwrap());
}

/// A copy of the models folder that a test may damage.
fn models_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("models");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(common::models_dir()).unwrap().flatten() {
        let p = entry.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "onnx" || e == "toml") {
            std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
        }
    }
    copy
}

#[test]
fn damaged_or_missing_models_are_refused() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let models = models_copy(tmp.path());
    let photo = data.join("dev/face_recognition_examples/rose_leslie/img1.jpg");

    let onnx = models.join("mobilefacenet.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&onnx, &bytes).unwrap();
    let out = run(common::facegate()
        .env("FACEGATE_MODELS", &models)
        .arg("embed")
        .arg(&photo));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("checksum mismatch") && err.contains("mobilefacenet.onnx"),
        "{err}"
    );

    std::fs::remove_file(models.join("pnet.onnx")).unwrap();
    let out = run(common::facegate()
        .env("FACEGATE_MODELS", &models)
        .arg("embed")
        .arg(&photo));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("pnet.onnx") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn gallery_in_a_missing_folder_is_a_clear_error() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let emb = embed_file(&data, tmp.path());
    let gallery = tmp.path().join("no/such/folder/gallery.fg");
    let out = run(&mut enroll_from(&gallery, &emb, "Ann"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no/such/folder"), "{}", stderr(&out));
    assert!(!tmp.path().join("no").exists());
}

/// A tiny tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_the_write_and_keeps_the_gallery() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let emb = embed_file(&data, tmp.path());
    let Some(disk) = SmallDisk::mount(tmp.path().join("disk"), "64k") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let gallery = disk.0.join("gallery.fg");
    assert!(run(&mut enroll_from(&gallery, &emb, "Ann"))
        .status
        .success());
    // Fill the disk to the last byte.
    let filler = vec![0u8; 4096];
    let mut file = std::fs::File::create(disk.0.join("filler")).unwrap();
    use std::io::Write;
    while file.write_all(&filler).is_ok() {}
    while file.write_all(&filler[..1]).is_ok() {}
    drop(file);
    let out = run(&mut enroll_from(&gallery, &emb, "Bob"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    assert_eq!(people(&gallery), vec!["Ann"]);
    let leftovers: Vec<_> = std::fs::read_dir(&disk.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn killing_the_binary_mid_write_never_loses_the_gallery() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let gallery = tmp.path().join("gallery.fg");
    let emb = embed_file(&data, tmp.path());
    // A gallery of some size, so that each save takes a while.
    for i in 0..40 {
        assert!(run(&mut enroll_from(&gallery, &emb, &format!("seed-{i}")))
            .status
            .success());
    }
    // How long one enrollment takes, so kills land all over its run, the save included.
    let mut durations: Vec<Duration> = (0..5)
        .map(|i| {
            let started = Instant::now();
            assert!(run(&mut enroll_from(&gallery, &emb, &format!("timed-{i}")))
                .status
                .success());
            started.elapsed()
        })
        .collect();
    durations.sort();
    let typical = durations[2];

    let mut rng = rand::rng();
    let mut known = people(&gallery).len();
    let (mut killed, mut completed) = (0, 0);
    // Kill after a random fraction of a typical run; the window adapts so that kills keep
    // landing all over the run (start-up, loading, writing, renaming) even on a loaded machine.
    let mut window = 1.2;
    let mut recent_completed = 0;
    for i in 0..300 {
        if i > 0 && i % 25 == 0 {
            if recent_completed < 5 {
                window *= 1.5;
            } else if recent_completed > 20 {
                window /= 1.5;
            }
            recent_completed = 0;
        }
        let mut child = enroll_from(&gallery, &emb, &format!("p-{i}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = typical.mul_f64(rng.random_range(0.0..window));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
            recent_completed += 1;
        } else {
            killed += 1;
        }
        // Always loadable from the main file, and nothing enrolled before is ever lost.
        let out = run(with_gallery(&gallery).args(["--json", "list"]));
        assert!(out.status.success(), "after kill {i}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("backup"),
            "after kill {i}: {}",
            stderr(&out)
        );
        let now = people(&gallery).len();
        assert!(
            now == known || now == known + 1,
            "after kill {i}: {known} → {now} people"
        );
        known = now;
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gallery.fg.") && n != "gallery.fg.bak")
        .collect();
    eprintln!("files left beside the gallery after the last run: {leftovers:?}");
    eprintln!(
        "300 runs: {killed} killed, {completed} completed; typical run {typical:?}; {known} people at the end"
    );
    assert!(
        killed >= 30 && completed >= 30,
        "kills did not spread over the run"
    );
}

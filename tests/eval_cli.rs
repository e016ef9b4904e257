//! `facegate eval` end to end through the real binary and models on small real subsets of the
//! dev data: the JSON reports hold sane numbers, the plots are real PNGs, and a re-run is served
//! from the embedding cache.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Run `facegate --json eval ARGS` with a cache file in `tmp`, returning the report.
fn eval(tmp: &Path, args: &[&str]) -> Value {
    let out = common::facegate()
        .arg("--json")
        .arg("eval")
        .arg("--cache")
        .arg(tmp.join("cache.bin"))
        .args(args)
        .output()
        .expect("facegate runs");
    assert!(
        out.status.success(),
        "facegate eval {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The PNG at `path` decodes; returns its size.
fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

fn rate(v: &Value) -> f64 {
    let r = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((0.0..=1.0).contains(&r), "rate out of range: {r}");
    r
}

/// A two-fold pairs file in `tmp` with the first `per_fold` × 2 genuine and impostor pairs of
/// the disjoint LFW list (140 genuine lines, then 140 impostor lines); returns the image root
/// and the file.
fn lfw_subset(data: &Path, tmp: &Path, per_fold: usize) -> (PathBuf, PathBuf) {
    let root = data.join("dev/lfw_disjoint");
    let text = std::fs::read_to_string(root.join("dev_pairs.txt")).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let (genuine, impostor) = (&lines[..140], &lines[140..]);
    let mut subset = format!("2\t{per_fold}\n");
    for fold in 0..2 {
        let part = fold * per_fold..(fold + 1) * per_fold;
        for l in genuine[part.clone()].iter().chain(&impostor[part]) {
            subset += l;
            subset.push('\n');
        }
    }
    let pairs = tmp.join("pairs.txt");
    std::fs::write(&pairs, subset).unwrap();
    (root, pairs)
}

#[test]
fn pairs_report_roc_plot_and_cache() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    // The first 50 genuine and 50 impostor pairs of the disjoint LFW list, as two folds of 25.
    let (root, pairs) = lfw_subset(&data, tmp.path(), 25);
    let plot = tmp.path().join("roc.png");
    let args = [
        "pairs",
        "--pairs",
        pairs.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ];
    let report = eval(tmp.path(), &args);
    eprintln!("{report:#}");
    assert_eq!(report["pairs"], 100);
    assert_eq!(report["genuine_pairs"], 50);
    assert_eq!(report["impostor_pairs"], 50);
    assert_eq!(report["folds"].as_array().unwrap().len(), 2);
    assert!(rate(&report["auc"]) > 0.9);
    assert!(rate(&report["accuracy_mean"]) > 0.9);
    assert!(rate(&report["eer"]["rate"]) < 0.1);
    // 50 impostor pairs cannot show FAR 1e-2 and below: each rate says so instead of a number.
    let at_far = report["tar_at_far"].as_array().unwrap();
    assert_eq!(at_far.len(), 3);
    for t in at_far {
        assert!(t["tar"].is_null(), "{t}");
        assert!(t["note"].as_str().unwrap().contains("at least"), "{t}");
    }
    rate(&report["configured_threshold"]["tar"]);
    assert!(report["images_without_face"].is_array());
    assert_eq!(report["cache"]["hits"], 0);
    let images = report["images"].as_u64().unwrap();
    assert_eq!(report["cache"]["misses"].as_u64().unwrap(), images);
    assert_eq!(png_size(&plot), (800, 600));

    // The second run embeds nothing and measures the same.
    let again = eval(tmp.path(), &args);
    assert_eq!(again["cache"]["hits"].as_u64().unwrap(), images);
    assert_eq!(again["cache"]["misses"], 0);
    assert_eq!(again["auc"], report["auc"]);
    assert_eq!(again["folds"], report["folds"]);
}

#[test]
fn identify_counts_strangers_and_plots_det() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let dev = data.join("dev");
    // Each example person's first photo is enrolled, their other photos are probes; the first
    // photo of 30 disjoint LFW people are strangers.
    let (mut gallery, mut probes) = (String::new(), String::new());
    let examples = dev.join("face_recognition_examples");
    let mut people: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_str().unwrap().starts_with('_'))
        .collect();
    people.sort();
    let mut mated = 0;
    for person in &people {
        let name = person.file_name().unwrap().to_str().unwrap();
        for (k, photo) in common::images_in(person).iter().enumerate() {
            let rel = photo.strip_prefix(&dev).unwrap().display().to_string();
            if k == 0 {
                gallery += &format!("{name}\t{rel}\n");
            } else {
                probes += &format!("{name}\t{rel}\n");
                mated += 1;
            }
        }
    }
    let mut strangers: Vec<PathBuf> = std::fs::read_dir(dev.join("lfw_disjoint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    strangers.sort();
    probes += "# strangers\n";
    for s in &strangers[..30] {
        let photo = &common::images_in(s)[0];
        probes += &format!("UNKNOWN\t{}\n", photo.strip_prefix(&dev).unwrap().display());
    }
    let (g, p) = (
        tmp.path().join("gallery.tsv"),
        tmp.path().join("probes.tsv"),
    );
    std::fs::write(&g, gallery).unwrap();
    std::fs::write(&p, probes).unwrap();
    let plot = tmp.path().join("det.png");
    let report = eval(
        tmp.path(),
        &[
            "identify",
            "--gallery-list",
            g.to_str().unwrap(),
            "--probes",
            p.to_str().unwrap(),
            "--root",
            dev.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    eprintln!("{report:#}");
    assert_eq!(report["gallery"]["people"], people.len());
    assert_eq!(report["probes"]["mated"], mated);
    assert_eq!(report["probes"]["strangers"], 30);
    assert!(rate(&report["rank1"]) >= 0.8);
    let at = &report["configured_threshold"];
    rate(&at["tpir"]);
    assert!(rate(&at["fpir"]) <= 0.1, "strangers let in: {at}");
    // 30 strangers can show FPIR 1e-2 only as "not measurable".
    for t in report["tpir_at_fpir"].as_array().unwrap() {
        assert!(t["tpir"].is_null() && t["note"].is_string(), "{t}");
    }
    assert_eq!(png_size(&plot), (800, 600));
    // The margin rule: no margin is the plain rule; a larger margin names no more probes.
    let margins = report["margins"].as_array().unwrap();
    assert_eq!(margins[0]["margin"], 0.0);
    assert_eq!(margins[0]["tpir"], at["tpir"]);
    assert_eq!(margins[0]["fpir"], at["fpir"]);
    for pair in margins.windows(2) {
        assert!(rate(&pair[1]["tpir"]) <= rate(&pair[0]["tpir"]), "{pair:?}");
        assert!(rate(&pair[1]["fpir"]) <= rate(&pair[0]["fpir"]), "{pair:?}");
    }
}

#[test]
fn yale_conditions_table() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = data.join("dev/yalefaces");
    let report = eval(tmp.path(), &["conditions", dir.to_str().unwrap()]);
    eprintln!("{report:#}");
    assert_eq!(report["reference"], "normal");
    assert_eq!(report["subjects"], 15);
    let rows = report["conditions"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["condition"].as_str().unwrap())
        .collect();
    for c in [
        "centerlight",
        "leftlight",
        "rightlight",
        "glasses",
        "noglasses",
        "happy",
    ] {
        assert!(names.contains(&c), "{c} missing from {names:?}");
    }
    assert!(
        !names.contains(&"normal"),
        "the reference is not a condition"
    );
    // Every image but the 15 references is compared (subject01 has no centerlight photo).
    let total: usize = rows
        .iter()
        .map(|r| r["images"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(total, common::images_in(&dir).len() - 15);
    for r in rows {
        let (tar, frr) = (rate(&r["tar"]), rate(&r["frr"]));
        assert!((tar + frr - 1.0).abs() < 1e-9);
        rate(&r["far"]);
    }
    assert!(rate(&report["overall"]["tar"]) > 0.5);
}

#[test]
fn heatmap_of_the_example_people() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = data.join("dev/face_recognition_examples");
    let plot = tmp.path().join("heatmap.png");
    let report = eval(
        tmp.path(),
        &[
            "heatmap",
            dir.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    eprintln!("{report:#}");
    let names = report["names"].as_array().unwrap();
    assert_eq!(names.len(), 5, "the _multi group photo is not a person");
    let matrix = report["matrix"].as_array().unwrap();
    for (i, row) in matrix.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 5);
        assert!((row[i].as_f64().unwrap() - 1.0).abs() < 1e-4);
    }
    // Five different people: none should pass for another at the door threshold.
    assert_eq!(report["pairs"], 10);
    assert_eq!(report["pairs_above_threshold"], 0);
    let (w, h) = png_size(&plot);
    assert!(w > 300 && h > 300, "{w}×{h}");
}

#[test]
fn two_embedders_compared_in_one_run() {
    let data = data_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    // 10 genuine and 10 impostor pairs per fold, two folds, of the disjoint LFW list.
    let (root, pairs) = lfw_subset(&data, tmp.path(), 10);
    let plot = tmp.path().join("roc.png");
    let out = common::facegate()
        .env("HOME", tmp.path())
        .args(["--json", "eval", "--compare", "mobilefacenet,dlib", "pairs"])
        .arg("--pairs")
        .arg(&pairs)
        .arg("--root")
        .arg(&root)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("facegate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["compare"].as_array().unwrap();
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r["embedder"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mobilefacenet-arcface", "dlib-resnet"]);
    for (run, id) in runs.iter().zip(&ids) {
        assert_eq!(run["pairs"], 40);
        assert!(rate(&run["auc"]) > 0.9, "{id}: {}", run["auc"]);
        // Each embedder keeps its own calibrated 1:1 threshold, and its own plot: derived from
        // its shipped impostor tail for the default login accept rate when it has one (never
        // below its manifest's), else its manifest's.
        let dir = facegate::runtime::models::ModelDir::locate(None).unwrap();
        let manifest = dir.embedder_manifest(id).unwrap();
        let own_threshold = match &manifest.impostors {
            Some(file) => {
                use facegate::gallery::operating_point::{ImpostorTail, Rule};
                let tail = ImpostorTail::load(&dir.root().join(file), &manifest.sha256).unwrap();
                let rate = facegate::config::MatchParams::default().login_accept_rate;
                Rule::derived(rate, tail)
                    .unwrap()
                    .with_floor(manifest.threshold)
                    .at(1)
                    .threshold
            }
            None => manifest.threshold,
        } as f64;
        let t = run["configured_threshold"]["threshold"].as_f64().unwrap();
        assert!(
            (t - own_threshold).abs() < 1e-4,
            "{id}: {t} vs {own_threshold}"
        );
        assert_eq!(
            png_size(&tmp.path().join(format!("roc-{id}.png"))),
            (800, 600)
        );
    }
    // The side-by-side table holds exactly the runs' own figures.
    let summary = report["summary"].as_array().unwrap();
    let auc_row = summary.iter().find(|r| r["metric"] == "AUC").unwrap();
    let aucs: Vec<&Value> = runs.iter().map(|r| &r["auc"]).collect();
    assert_eq!(
        auc_row["values"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        aucs
    );
    assert!(!plot.exists(), "the unsuffixed plot name is not written");
}

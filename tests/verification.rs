//! Verification accuracy on the LFW development folds with the real models: the threshold is
//! chosen on one fold and the accuracy measured on the other.

mod common;

use facegate::eval::metrics::{kfold_accuracy, mean_std};
use facegate::eval::pairs::read_pairs;
use facegate::gallery::Template;
use facegate::vision::embed::cosine;

/// `b` as the gallery stores it (i8 with a scale), decoded back.
fn as_stored(b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; b.len()];
    Template::encode(b).decode_into(&mut out);
    out
}

/// Mean k-fold accuracy (threshold from the other folds) of these scores.
fn kfold_mean(scores: &[f32], same: &[bool], fold: &[usize]) -> (f64, f64, Vec<(f32, f64)>) {
    let per_fold = kfold_accuracy(scores, same, fold);
    let accs: Vec<f64> = per_fold.iter().map(|(_, a)| *a).collect();
    let (mean, std) = mean_std(&accs);
    (mean, std, per_fold)
}

/// Accuracy per fold for `embedder`, printing what was measured; also checks that storing one
/// side of each pair as a compact gallery template changes nothing that can be measured here.
fn lfw_accuracy(embedder: &str) -> Option<f64> {
    let data = common::data_dir()?;
    let root = data.join("dev/lfw_folds_1_2");
    let pairs = read_pairs(&root.join("pairs.txt"), &root).unwrap();
    let mut images: Vec<_> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    images.sort();
    images.dedup();
    let pipeline = common::pipeline(embedder);
    let analyses = common::analyse_all(pipeline, &images);
    let missed: Vec<_> = images
        .iter()
        .zip(&analyses)
        .filter(|(_, a)| a.faces.is_empty())
        .map(|(p, _)| p.display().to_string())
        .collect();
    eprintln!(
        "{embedder}: no face found in {} of {} images: {missed:?}",
        missed.len(),
        images.len()
    );
    // The bar for detection on these folds: a face in at least 99 % of the images.
    assert!(
        missed.len() * 100 <= images.len(),
        "no face found in {missed:?}"
    );
    let embedding = |p: &std::path::PathBuf| {
        let i = images.binary_search(p).unwrap();
        analyses[i].faces.first().map(|f| &f.embedding) // nearest the centre
    };
    // A pair with a missing face counts as a non-match (wrong for matched pairs), never dropped.
    let scores: Vec<f32> = pairs
        .iter()
        .map(|p| match (embedding(&p.a), embedding(&p.b)) {
            (Some(a), Some(b)) => cosine(a, b),
            _ => -1.0,
        })
        .collect();
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    let fold: Vec<usize> = pairs.iter().map(|p| p.fold).collect();
    let (mean, std, per_fold) = kfold_mean(&scores, &same, &fold);
    let stored: Vec<f32> = pairs
        .iter()
        .map(|p| match (embedding(&p.a), embedding(&p.b)) {
            (Some(a), Some(b)) => cosine(a, &as_stored(b)),
            _ => -1.0,
        })
        .collect();
    let (stored_mean, _, _) = kfold_mean(&stored, &same, &fold);
    let drift = scores
        .iter()
        .zip(&stored)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{embedder}: with gallery templates (i8 + scale, {} bytes each): accuracy {:.2} %, max similarity change {drift:.2e}",
        Template::bytes_for(embedding(&pairs[0].a).map_or(0, |e| e.len())),
        stored_mean * 100.0
    );
    // One pair is 1/600 of a fold: compact storage must not move the accuracy by a pair.
    assert!(
        (stored_mean - mean).abs() < 1.0 / 1200.0,
        "{stored_mean} vs {mean}"
    );
    eprintln!(
        "{embedder}: LFW folds 1-2, {} pairs, {} images: accuracy {:.2} % ± {:.2} (per fold: {:?})",
        pairs.len(),
        images.len(),
        mean * 100.0,
        std * 100.0,
        per_fold
    );
    Some(mean)
}

#[test]
fn mobilefacenet_lfw_accuracy_is_at_least_99_percent() {
    let Some(acc) = lfw_accuracy("mobilefacenet") else {
        eprintln!("SKIPPED: ../shared/data is not present on this machine");
        return;
    };
    // The bar; the Python + onnxruntime reference of this pipeline reached 99.17 %.
    assert!(acc >= 0.990, "accuracy {acc}");
}

#[test]
fn dlib_lfw_accuracy_is_at_least_the_reference() {
    let Some(acc) = lfw_accuracy("dlib") else {
        eprintln!("SKIPPED: ../shared/data is not present on this machine");
        return;
    };
    // The Python + onnxruntime reference of this pipeline with dlib reached 98.25 %.
    assert!(acc >= 0.9825, "accuracy {acc}");
}

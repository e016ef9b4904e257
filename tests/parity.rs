//! Model parity: tract's outputs for the committed ONNX files equal the outputs the conversion
//! script recorded from the original framework (LiteRT, dlib) or an independent reference.

use std::path::{Path, PathBuf};

use facegate::runtime::models::{f32_slice, optimise, ModelDir};
use serde::Deserialize;
use tract_onnx::prelude::*;

#[derive(Deserialize)]
struct Fixture {
    model: String,
    reference: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    source: String,
    input: String,
    input_shape: Vec<usize>,
    outputs: Vec<Output>,
}

#[derive(Deserialize)]
struct Output {
    file: String,
    shape: Vec<usize>,
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Largest absolute difference between tract and the recorded outputs, over every case.
fn max_diff(fixture_name: &str, sha256: &str) -> f32 {
    let dir = models().join("parity");
    let text = std::fs::read_to_string(dir.join(fixture_name)).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    let model_dir = ModelDir::locate(Some(&models())).unwrap();
    let mut worst = 0.0f32;
    for case in &fixture.cases {
        let model = model_dir.load_verified(&fixture.model, sha256).unwrap();
        let shape: Vec<TDim> = case.input_shape.iter().map(|&d| d.to_dim()).collect();
        let plan = optimise(model, &shape, &models().join(&fixture.model)).unwrap();
        let input =
            Tensor::from_shape(&case.input_shape, &read_f32(&dir.join(&case.input))).unwrap();
        let outputs = plan.run(tvec!(input.into())).unwrap();
        assert_eq!(outputs.len(), case.outputs.len(), "{}", case.source);
        for (got, want) in outputs.iter().zip(&case.outputs) {
            assert_eq!(
                got.shape(),
                want.shape.as_slice(),
                "{} {}",
                fixture.model,
                want.file
            );
            let want_values = read_f32(&dir.join(&want.file));
            for (a, b) in f32_slice(got).unwrap().iter().zip(&want_values) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    eprintln!(
        "{}: max |tract - {}| = {worst:e}",
        fixture.model, fixture.reference
    );
    worst
}

fn sha(manifest: &str, table: Option<&str>) -> String {
    let text = std::fs::read_to_string(models().join(manifest)).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let t = match table {
        Some(t) => &value[t],
        None => &value,
    };
    t["sha256"].as_str().unwrap().to_string()
}

#[test]
fn mtcnn_nets_match_reference() {
    // Probabilities and regressions are O(1): float32 rounding is ~1e-6.
    assert!(max_diff("pnet.json", &sha("mtcnn.toml", Some("pnet"))) < 1e-4);
    assert!(max_diff("rnet.json", &sha("mtcnn.toml", Some("rnet"))) < 1e-4);
    assert!(max_diff("onet.json", &sha("mtcnn.toml", Some("onet"))) < 1e-4);
}

#[test]
fn mobilefacenet_matches_litert() {
    // Raw outputs have norm ≈ 57; LiteRT's own kernels differ among themselves by ~3e-5.
    assert!(
        max_diff(
            "mobilefacenet.json",
            &sha("mobilefacenet-arcface.toml", None)
        ) < 2e-4
    );
}

#[test]
fn dlib_resnet_matches_dlib() {
    assert!(max_diff("dlib.json", &sha("dlib-resnet.toml", None)) < 1e-4);
}

#[test]
fn minifasnet_matches_the_numpy_reference() {
    // Logits are O(10); the converter measured onnxruntime within 6e-6 of the float64 numpy
    // forward pass (models/minifasnet.toml, docs/liveness.md).
    assert!(max_diff("minifasnet_v2.json", &sha("minifasnet.toml", Some("v2"))) < 1e-4);
    assert!(
        max_diff(
            "minifasnet_v1se.json",
            &sha("minifasnet.toml", Some("v1se"))
        ) < 1e-4
    );
}

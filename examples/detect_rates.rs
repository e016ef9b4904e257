//! Detector recall on the OTB Girl sequence, whole-frame search against tracking, and the LFW
//! detection rate (the share of `dev/lfw_disjoint` photos with a face found), each photo
//! searched whole and the photos fed as one "video" through the tracker (a worst case for it:
//! every frame is a new person):
//! `cargo run --release --example detect_rates [DATA_DIR]`.

use std::path::{Path, PathBuf};

use facegate::perf::video::sequence_recall;
use facegate::runtime::models::ModelDir;
use facegate::vision::pipeline::{Pipeline, StageTimes};
use facegate::vision::tracking::FaceTracker;

fn images(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn main() {
    let data = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let models = ModelDir::locate(Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models")))
        .expect("models");
    let pipeline = Pipeline::load(
        &models,
        "mobilefacenet",
        Default::default(),
        Default::default(),
    )
    .expect("pipeline");

    let otb = data.join("video/otb_girl");
    let frames = images(&otb.join("img"));
    let truth: Vec<[f32; 4]> = std::fs::read_to_string(otb.join("groundtruth_rect.txt"))
        .expect("groundtruth")
        .lines()
        .map(|l| {
            let v: Vec<f32> = l
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            [v[0], v[1], v[0] + v[2], v[1] + v[3]]
        })
        .collect();
    for min_iou in [0.3, 0.5] {
        for tracked in [false, true] {
            let r = sequence_recall(&pipeline, &frames, &truth, tracked, min_iou).unwrap();
            println!(
                "OTB Girl, {}, IoU >= {min_iou}: {}/{} frames ({:.1} %), {} other detections, {} tracked frames, detector {:.0} ms in all",
                if tracked { "tracking" } else { "whole frames" },
                r.found,
                r.frames,
                r.rate() * 100.0,
                r.extra,
                r.tracked_frames,
                r.detect_ms
            );
        }
    }

    let people: Vec<PathBuf> = std::fs::read_dir(data.join("dev/lfw_disjoint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    let mut photos: Vec<PathBuf> = people.iter().flat_map(|p| images(p)).collect();
    photos.sort();
    for tracked in [false, true] {
        let mut times = StageTimes::default();
        let mut tracker = FaceTracker::default();
        let found = photos
            .iter()
            .filter(|p| {
                let image = facegate::media::image_io::load_rgb(p).unwrap();
                let faces = if tracked {
                    tracker.detect(&pipeline, &image, &mut times).unwrap().0
                } else {
                    pipeline.detect(&image, &mut times).unwrap().0
                };
                !faces.is_empty()
            })
            .count();
        println!(
            "LFW disjoint, {}: a face found in {found}/{} photos ({:.2} %), {} tracked frames",
            if tracked { "tracking" } else { "whole frames" },
            photos.len(),
            found as f64 * 100.0 / photos.len().max(1) as f64,
            tracker.tracked_frames
        );
    }
}

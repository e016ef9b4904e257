//! Detection with the real MTCNN on real photos: faces where there are faces, none where there
//! are none, and the annotated faces of crowded photos found.

mod common;

use std::path::Path;

use facegate::vision::detect::Detection;

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

#[test]
fn no_face_in_photos_without_people() {
    let data = data_or_skip!();
    let images = common::images_in(&data.join("noface"));
    assert!(images.len() >= 20);
    let analyses = common::analyse_all(common::pipeline("mobilefacenet"), &images);
    let false_faces: Vec<String> = images
        .iter()
        .zip(&analyses)
        .filter(|(_, a)| !a.faces.is_empty())
        .map(|(p, a)| format!("{} ({} faces)", p.display(), a.faces.len()))
        .collect();
    eprintln!(
        "noface/: {} images, false detections in {:?}",
        images.len(),
        false_faces
    );
    assert!(false_faces.is_empty(), "faces found in {false_faces:?}");
}

/// Ground-truth face boxes from a dlib imglab XML file: (image path, [x1, y1, x2, y2] each).
fn annotated_boxes(xml: &Path) -> Vec<(std::path::PathBuf, Vec<[f32; 4]>)> {
    let text = std::fs::read_to_string(xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let attr = |n: roxmltree::Node, k: &str| -> f32 { n.attribute(k).unwrap().parse().unwrap() };
    doc.descendants()
        .filter(|n| n.has_tag_name("image"))
        .map(|img| {
            let path = xml.parent().unwrap().join(img.attribute("file").unwrap());
            let boxes = img
                .children()
                .filter(|b| b.has_tag_name("box") && b.attribute("ignore") != Some("1"))
                .map(|b| {
                    let (x, y) = (attr(b, "left"), attr(b, "top"));
                    [x, y, x + attr(b, "width"), y + attr(b, "height")]
                })
                .collect();
            (path, boxes)
        })
        .collect()
}

#[test]
fn annotated_faces_in_crowded_photos_are_found() {
    let data = data_or_skip!();
    let dir = data.join("hard/many_faces/dlib_voc_with_boxes");
    let mut truth = annotated_boxes(&dir.join("testing.xml"));
    truth.extend(annotated_boxes(&dir.join("training.xml")));
    let paths: Vec<_> = truth.iter().map(|(p, _)| p.clone()).collect();
    let analyses = common::analyse_all(common::pipeline("mobilefacenet"), &paths);
    let (mut found, mut total) = (0, 0);
    for ((path, boxes), analysis) in truth.iter().zip(&analyses) {
        let detections: Vec<&Detection> = analysis.faces.iter().map(|f| &f.detection).collect();
        let hits = boxes
            .iter()
            .filter(|gt| detections.iter().any(|d| iou(**gt, d.bbox) >= 0.5))
            .count();
        eprintln!(
            "{}: {hits}/{} annotated faces found, {} detections",
            path.file_name().unwrap().to_string_lossy(),
            boxes.len(),
            detections.len()
        );
        found += hits;
        total += boxes.len();
    }
    let recall = found as f64 / total as f64;
    eprintln!(
        "many_faces: {found}/{total} annotated faces found (IoU ≥ 0.5): {:.1} %",
        recall * 100.0
    );
    assert!(recall >= 0.90, "recall {recall}");
}

#[test]
fn a_face_in_a_very_dark_photo_is_found_on_the_brightened_retry() {
    let data = data_or_skip!();
    let path = data.join("dev/face_recognition_examples/kit_harington/john1.jpeg");
    let mut image = facegate::media::image_io::load_rgb(&path).unwrap();
    // A dim corridor: a twentieth of the light.
    for p in image.pixels_mut() {
        for c in 0..3 {
            p[c] /= 20;
        }
    }
    let pipeline = common::pipeline("mobilefacenet");
    let mut times = facegate::vision::pipeline::StageTimes::default();
    let direct = pipeline
        .detector()
        .detect(&image, &mut times.detect)
        .unwrap();
    assert!(
        direct.is_empty(),
        "the darkened photo should defeat the plain detector"
    );
    let analysis = pipeline.analyse(&image, &mut times).unwrap();
    assert!(analysis.enhanced, "the retry must be reported");
    assert_eq!(analysis.faces.len(), 1);
    // And the face is still recognisable: compared with the same photo in full light.
    let bright = facegate::media::image_io::load_rgb(&path).unwrap();
    let reference = pipeline.analyse(&bright, &mut times).unwrap();
    let similarity = facegate::vision::embed::cosine(
        &reference.faces[0].embedding,
        &analysis.faces[0].embedding,
    );
    let threshold = pipeline.embedder().manifest().threshold;
    eprintln!("dark vs bright similarity {similarity:.3} (threshold {threshold})");
    assert!(similarity >= threshold);
}

#[test]
fn several_threads_find_exactly_what_one_thread_finds() {
    // P-Net levels, R-Net/O-Net batch slices and embeddings run in parallel with threads > 1;
    // the faces, scores, landmarks and embeddings must not change by a bit.
    let data = data_or_skip!();
    let mut paths = common::images_in(&data.join("hard/many_faces"));
    paths.retain(|p| p.parent() == Some(&data.join("hard/many_faces")));
    assert!(paths.len() >= 3, "many_faces photos: {paths:?}");
    let dir = facegate::runtime::models::ModelDir::locate(Some(&common::models_dir())).unwrap();
    let load = |threads| {
        let params = facegate::vision::detect::DetectorParams {
            threads,
            ..Default::default()
        };
        facegate::vision::pipeline::Pipeline::load(
            &dir,
            "mobilefacenet",
            params,
            Default::default(),
        )
        .unwrap()
    };
    let (one, three) = (load(1), load(3));
    let mut faces = 0;
    for path in &paths {
        let image = facegate::media::image_io::load_rgb(path).unwrap();
        let mut t = facegate::vision::pipeline::StageTimes::default();
        let a = one.analyse(&image, &mut t).unwrap();
        let b = three.analyse(&image, &mut t).unwrap();
        assert_eq!(a.faces.len(), b.faces.len(), "{}", path.display());
        for (x, y) in a.faces.iter().zip(&b.faces) {
            assert_eq!(x.detection, y.detection, "{}", path.display());
            assert_eq!(x.embedding, y.embedding, "{}", path.display());
        }
        faces += a.faces.len();
    }
    eprintln!(
        "{} photos, {faces} faces: identical on 1 and 3 threads",
        paths.len()
    );
    assert!(
        faces >= 10,
        "too few faces ({faces}) to exercise the parallel paths"
    );
}

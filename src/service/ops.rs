//! The gallery operations themselves, shared by the service (on its live gallery) and by the
//! CLI when no service runs (on the file, under the lock): one place decides what an enrolment
//! or a removal means, whichever path carried it.

use std::time::{SystemTime, UNIX_EPOCH};

use image::RgbImage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::gallery::lookalikes;
use crate::gallery::operating_point::{OperatingPoint, Rule};
use crate::gallery::{Candidate, Gallery, GalleryError, Match, Selector};
use crate::vision::pipeline::{Face, Pipeline, StageTimes};

use super::protocol::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(
        "{0:?} is already enrolled; use --append to add these photos to them, or remove them first"
    )]
    AlreadyEnrolled(String),
    #[error("{} (strict: nothing was enrolled)", .0.join("; "))]
    LookAlike(Vec<String>),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let code = match &e {
            OpError::AlreadyEnrolled(_)
            | OpError::LookAlike(_)
            | OpError::Gallery(GalleryError::DuplicateName(_) | GalleryError::LoginTaken { .. }) => {
                ErrorCode::Conflict
            }
            OpError::Gallery(GalleryError::NotFound(_)) => ErrorCode::NotFound,
            OpError::Gallery(
                GalleryError::InvalidName { .. }
                | GalleryError::NoTemplates
                | GalleryError::WrongDim { .. }
                | GalleryError::BadEmbedding(_)
                | GalleryError::InvalidLogin { .. },
            ) => ErrorCode::BadRequest,
            OpError::Gallery(_) => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<GalleryError> for ApiError {
    fn from(e: GalleryError) -> Self {
        OpError::from(e).into()
    }
}

/// A person given as a numeric id or a name.
pub fn selector(who: &str) -> Selector {
    match who.trim().parse::<u32>() {
        Ok(id) => Selector::Id(id),
        Err(_) => Selector::Name(who.to_string()),
    }
}

/// What an enrolment did (the JSON of `enroll --json` and of the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    pub id: u32,
    pub name: String,
    pub added: usize,
    pub templates: usize,
    /// The Unix login linked to the person, if any.
    #[serde(default)]
    pub user: Option<String>,
    pub warnings: Vec<String>,
}

/// Whom the faces are for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A new person of this name (an error if the name is taken).
    New(String),
    /// An enrolled person.
    Existing(Selector),
}

/// Add `faces` (source label, embedding) to the gallery. Faces that reach the door threshold
/// (`door` applied to the gallery as it will be after the enrolment) against someone else
/// already enrolled are look-alikes: the terminal may take one person for the other. They are
/// stored with a warning naming both and the score, or, with `strict`, refused (nothing is
/// stored). `user` links the person to that Unix login (login stations).
pub fn enrol(
    gallery: &mut Gallery,
    target: &Target,
    faces: &[(String, Vec<f32>)],
    door: &Rule,
    strict: bool,
    user: Option<&str>,
) -> Result<Enrolled, OpError> {
    if let Some(login) = user {
        crate::gallery::validate_login(login)?;
    }
    let (existing, name) = match target {
        Target::New(name) => {
            if gallery.find(&Selector::Name(name.clone())).is_some() {
                return Err(OpError::AlreadyEnrolled(name.clone()));
            }
            (None, name.clone())
        }
        Target::Existing(sel) => {
            let person = gallery
                .find(sel)
                .ok_or_else(|| GalleryError::NotFound(sel.clone()))?;
            (Some(person.id), person.name.to_string())
        }
    };
    let threshold = door.at(gallery.template_count() + faces.len()).threshold;
    let photos: Vec<&[f32]> = faces.iter().map(|(_, e)| e.as_slice()).collect();
    let warnings: Vec<String> = lookalikes::matches_for(gallery, &photos, threshold, existing)?
        .into_iter()
        .map(|(id, other, s)| {
            format!(
                "{name} looks like already-enrolled {other} (id {id}): similarity {s:.3}, at or \
                 above the door threshold {threshold:.4}; the terminal may take one for the other"
            )
        })
        .collect();
    if strict && !warnings.is_empty() {
        return Err(OpError::LookAlike(warnings));
    }
    let vectors: Vec<&[f32]> = faces.iter().map(|(_, e)| e.as_slice()).collect();
    let id = match (existing, target) {
        (Some(id), _) => {
            gallery.add_templates(id, &vectors)?;
            id
        }
        (None, Target::New(name)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            gallery.add_person(name, &vectors, now)?
        }
        (None, Target::Existing(_)) => unreachable!("an existing target has an id"),
    };
    if let Some(login) = user {
        gallery.link_user(&Selector::Id(id), Some(login))?;
    }
    let person = gallery.find(&Selector::Id(id)).expect("just added");
    Ok(Enrolled {
        id,
        name: person.name.to_string(),
        added: vectors.len(),
        templates: person.templates.len(),
        user: person.user.as_deref().map(str::to_string),
        warnings,
    })
}

/// The `list --json` object, with the door's operating point for this gallery.
pub fn list_json(gallery: &Gallery, door: &Rule) -> Value {
    let operating_point = door.at(gallery.template_count());
    let people: Vec<_> = gallery
        .people()
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name.as_str(),
                "templates": p.templates.len(),
                "created": p.created_unix,
                "user": p.user.as_deref(),
            })
        })
        .collect();
    json!({
        "embedder": gallery.embedder().id.as_str(),
        "threshold": operating_point.threshold,
        "operating_point": operating_point,
        "people": people,
    })
}

/// One line saying which door threshold applies and why, from the `"operating_point"` object
/// of `list --json` / `identify --json` (so it reads the same whichever path answered).
pub fn describe_operating_point(op: &Value) -> String {
    let threshold = op["threshold"].as_f64().unwrap_or(f64::NAN);
    match (op["target"].as_f64(), op["predicted_rate"].as_f64()) {
        (Some(target), Some(p)) if op["rule"] == "floor" => format!(
            "door threshold {threshold:.4}: the embedder's 1:1 threshold, higher than a stranger \
             accept rate of {target:.0e} per attempt against {} templates needs (predicted {p:.1e})",
            op["comparisons"]
        ),
        (Some(target), Some(p)) => format!(
            "door threshold {threshold:.4}: derived for a stranger accept rate of {target:.0e} \
             per attempt against {} templates (predicted {p:.1e})",
            op["comparisons"]
        ),
        _ => format!(
            "door threshold {threshold:.4} ({})",
            op["rule"].as_str().unwrap_or("?")
        ),
    }
}

/// The one face of an enrolment photo: exactly one, or the largest when `largest` is set.
/// With `check_liveness`, a face the pipeline's liveness check (when it has one) calls a spoof
/// is refused: a printed photo enrolled would teach the gallery a photo.
pub fn enrolment_face(
    pipeline: &Pipeline,
    image: &RgbImage,
    largest: bool,
    label: &str,
    check_liveness: bool,
) -> Result<Vec<f32>, String> {
    let analysis = pipeline
        .analyse(image, &mut StageTimes::default())
        .map_err(|e| format!("{label}: {e}"))?;
    let mut faces = analysis.faces;
    let face = match faces.len() {
        0 => {
            return Err(format!(
                "{label}: no face found; use a photo where the face is clearly visible"
            ))
        }
        1 => faces.remove(0),
        _ if largest => faces
            .into_iter()
            .max_by(|a, b| area(a).total_cmp(&area(b)))
            .expect("several faces"),
        n => {
            return Err(format!(
                "{label}: {n} faces found; use a photo of the person alone, or --largest"
            ))
        }
    };
    if let Some(l) = face.liveness.filter(|l| check_liveness && !l.live) {
        return Err(format!(
            "{label}: the face fails the liveness check (score {:.3} < {:.3}): a photo of a \
             photo or a screen? Take the picture of the person themselves, or pass --no-liveness",
            l.score,
            pipeline
                .liveness()
                .map_or(f32::NAN, |l| l.params().threshold)
        ));
    }
    Ok(face.embedding)
}

fn area(f: &Face) -> f32 {
    f.detection.width() * f.detection.height()
}

/// Who is in `image`: the object `facegate identify --json` prints for one image, without its
/// "image" field (the caller knows the file).
/// `best_match` matches one embedding at the door threshold of whichever gallery the caller
/// has; `operating_point` is that threshold as reported.
pub fn identify(
    pipeline: &Pipeline,
    operating_point: &OperatingPoint,
    image: &RgbImage,
    best_match: impl Fn(&[f32]) -> Result<Match, GalleryError>,
) -> Result<Map<String, Value>, String> {
    let analysis = pipeline
        .analyse(image, &mut StageTimes::default())
        .map_err(|e| e.to_string())?;
    let mut faces = Vec::new();
    for face in &analysis.faces {
        let (known, best) = match best_match(&face.embedding).map_err(|e| e.to_string())? {
            Match::Known(c) => (Some(c.clone()), Some(c)),
            Match::Unknown { best } => (None, best),
        };
        faces.push(json!({
            "box": face.detection.bbox,
            "score": face.detection.score,
            "landmarks": face.detection.landmarks,
            "quality": face.quality,
            "liveness": face.liveness,
            // A face the liveness check calls a spoof is nobody, whatever it resembles.
            "decision": match (&known, &face.liveness) {
                (_, Some(l)) if !l.live => "spoof",
                (Some(_), _) => "known",
                (None, _) => "unknown",
            },
            "match": known.as_ref().map(candidate_json),
            "best": best.as_ref().map(candidate_json),
        }));
    }
    let mut out = Map::new();
    out.insert("enhanced".into(), json!(analysis.enhanced));
    out.insert("threshold".into(), json!(operating_point.threshold));
    out.insert("operating_point".into(), json!(operating_point));
    out.insert("faces".into(), Value::Array(faces));
    Ok(out)
}

fn candidate_json(c: &Candidate) -> Value {
    json!({ "id": c.person_id, "name": c.name.as_str(), "similarity": c.similarity })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::testutil::random_gallery;

    #[test]
    fn enrol_new_append_and_conflicts() {
        let mut g = random_gallery(1, 8, 2, 1);
        let door = Rule::Fixed(0.99);
        let face = vec![("a".to_string(), vec![0.3; 8])];
        let e = enrol(
            &mut g,
            &Target::New("Zed".into()),
            &face,
            &door,
            false,
            None,
        )
        .unwrap();
        assert_eq!((e.name.as_str(), e.added, e.templates), ("Zed", 1, 1));
        let err = enrol(
            &mut g,
            &Target::New("zed".into()),
            &face,
            &door,
            false,
            None,
        )
        .unwrap_err();
        assert_eq!(ApiError::from(err).code, ErrorCode::Conflict);
        let e2 = enrol(
            &mut g,
            &Target::Existing(selector("Zed")),
            &face,
            &door,
            false,
            None,
        )
        .unwrap();
        assert_eq!((e2.id, e2.templates), (e.id, 2));
        assert!(e2.warnings.is_empty());
        let err = enrol(
            &mut g,
            &Target::Existing(selector("99")),
            &face,
            &door,
            false,
            None,
        )
        .unwrap_err();
        assert_eq!(ApiError::from(err).code, ErrorCode::NotFound);
        // The same face under a second name is stored with a warning.
        let e3 = enrol(
            &mut g,
            &Target::New("Twin".into()),
            &face,
            &door,
            false,
            None,
        )
        .unwrap();
        assert_eq!(e3.warnings.len(), 1, "{e3:?}");
        assert!(e3.warnings[0].contains("Twin looks like already-enrolled Zed"));
        // Strict: the look-alike is refused and nothing is stored.
        let before = (g.len(), g.template_count());
        let err = enrol(
            &mut g,
            &Target::New("Twin2".into()),
            &face,
            &door,
            true,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&err, OpError::LookAlike(w) if w.len() == 2),
            "{err}"
        );
        assert_eq!(ApiError::from(err).code, ErrorCode::Conflict);
        assert_eq!((g.len(), g.template_count()), before);
        // Appending to Zed: Twin is the look-alike, never Zed herself.
        let err = enrol(
            &mut g,
            &Target::Existing(selector("Zed")),
            &face,
            &door,
            true,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("Zed looks like already-enrolled Twin"),
            "{err}"
        );
        assert!(!err.contains("already-enrolled Zed"), "{err}");
    }

    #[test]
    fn the_door_threshold_follows_the_gallery_size() {
        use crate::gallery::operating_point::ImpostorTail;
        let tail = ImpostorTail {
            kind: "impostor-scores".into(),
            embedder: "e".into(),
            model_sha256: "00".into(),
            comparisons: 100_000,
            source: "test".into(),
            survival: vec![0.1, 0.01, 0.001, 0.0001],
            score: vec![0.2, 0.3, 0.4, 0.5],
            tail_rate: 23.0,
        };
        let door = Rule::derived(1e-2, tail).unwrap();
        let small = random_gallery(1, 8, 1, 1);
        let large = random_gallery(2, 8, 40, 2);
        let t = |g: &Gallery| list_json(g, &door)["threshold"].as_f64().unwrap();
        let op = list_json(&large, &door)["operating_point"].clone();
        assert_eq!(op["rule"], "derived");
        assert_eq!(op["comparisons"], 80);
        assert!(
            t(&large) > t(&small) + 0.1,
            "{} vs {}",
            t(&large),
            t(&small)
        );
        assert!(describe_operating_point(&op).contains("against 80 templates"));
    }
}

//! The gallery operations themselves, shared by the service (on its live gallery) and by the
//! CLI when no service runs (on the file, under the lock): one place decides what an enrolment
//! or a removal means, whichever path carried it.

use std::time::{SystemTime, UNIX_EPOCH};

use image::RgbImage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::gallery::{Candidate, Gallery, GalleryError, Match, Selector};
use crate::vision::pipeline::{Face, Pipeline, StageTimes};

use super::protocol::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(
        "{0:?} is already enrolled; use --append to add these photos to them, or remove them first"
    )]
    AlreadyEnrolled(String),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let code = match &e {
            OpError::AlreadyEnrolled(_)
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

/// Add `faces` (source label, embedding) to the gallery. Faces that look like someone else
/// already enrolled are stored but warned about: one person under two names weakens both.
/// `user` links the person to that Unix login (login stations).
pub fn enrol(
    gallery: &mut Gallery,
    target: &Target,
    faces: &[(String, Vec<f32>)],
    threshold: f32,
    user: Option<&str>,
) -> Result<Enrolled, OpError> {
    if let Some(login) = user {
        crate::gallery::validate_login(login)?;
    }
    let existing = match target {
        Target::New(name) => {
            if gallery.find(&Selector::Name(name.clone())).is_some() {
                return Err(OpError::AlreadyEnrolled(name.clone()));
            }
            None
        }
        Target::Existing(sel) => Some(
            gallery
                .find(sel)
                .ok_or_else(|| GalleryError::NotFound(sel.clone()))?
                .id,
        ),
    };
    let mut warnings = Vec::new();
    for (source, embedding) in faces {
        if let Match::Known(c) = gallery.best_match(embedding, threshold)? {
            if Some(c.person_id) != existing {
                warnings.push(format!(
                    "{source} looks like already-enrolled {} (id {}, similarity {:.3})",
                    c.name.as_str(),
                    c.person_id,
                    c.similarity
                ));
            }
        }
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

/// The `list --json` object.
pub fn list_json(gallery: &Gallery) -> Value {
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
    json!({ "embedder": gallery.embedder().id.as_str(), "people": people })
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
/// `best_match` matches one embedding at `threshold` (against whichever gallery the caller has).
pub fn identify(
    pipeline: &Pipeline,
    threshold: f32,
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
            "match": known.as_ref().map(candidate_json),
            "best": best.as_ref().map(candidate_json),
        }));
    }
    let mut out = Map::new();
    out.insert("enhanced".into(), json!(analysis.enhanced));
    out.insert("threshold".into(), json!(threshold));
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
        let face = vec![("a".to_string(), vec![0.3; 8])];
        let e = enrol(&mut g, &Target::New("Zed".into()), &face, 0.99, None).unwrap();
        assert_eq!((e.name.as_str(), e.added, e.templates), ("Zed", 1, 1));
        let err = enrol(&mut g, &Target::New("zed".into()), &face, 0.99, None).unwrap_err();
        assert_eq!(ApiError::from(err).code, ErrorCode::Conflict);
        let e2 = enrol(
            &mut g,
            &Target::Existing(selector("Zed")),
            &face,
            0.99,
            None,
        )
        .unwrap();
        assert_eq!((e2.id, e2.templates), (e.id, 2));
        assert!(e2.warnings.is_empty());
        let err = enrol(&mut g, &Target::Existing(selector("99")), &face, 0.99, None).unwrap_err();
        assert_eq!(ApiError::from(err).code, ErrorCode::NotFound);
        // The same face under a second name is stored with a warning.
        let e3 = enrol(&mut g, &Target::New("Twin".into()), &face, 0.99, None).unwrap();
        assert_eq!(e3.warnings.len(), 1, "{e3:?}");
    }
}

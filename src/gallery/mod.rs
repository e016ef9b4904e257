//! The enrolled-face gallery: who is enrolled, their face templates, and open-set matching.
//!
//! Templates are kept as i8 with one f32 scale each, a quarter of the f32 size, so 10,000 people
//! with 5 templates fit in about 10 MB and one search reads each byte once. A gallery records the
//! embedder that made its templates: similarities between two embedders' vectors mean nothing,
//! so a gallery never mixes them. [`store`] keeps a gallery on disk, sealed by [`seal`].

pub mod live;
pub mod lookalikes;
pub mod operating_point;
pub mod seal;
pub mod store;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use store::{
    inspect, FormatError, GalleryLock, GalleryStore, HeaderSummary, LoadSource, Loaded, Saved,
};

use crate::keys::KeyError;

/// Longest person name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest embedder id, in bytes of UTF-8.
pub const MAX_EMBEDDER_ID_BYTES: usize = 32;
/// Longest Unix login name linked to a person, in bytes (as Linux's `useradd` allows).
pub const MAX_LOGIN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("someone named {0:?} is already enrolled (names are compared ignoring case)")]
    DuplicateName(String),
    #[error("no enrolled person with {0}")]
    NotFound(Selector),
    #[error("at least one face template is needed")]
    NoTemplates,
    #[error("an embedding has {got} values, but this gallery's embedder makes {expected}")]
    WrongDim { got: usize, expected: usize },
    #[error("an embedding {0}")]
    BadEmbedding(&'static str),
    #[error("embedder id {0:?} is empty or longer than 32 bytes")]
    InvalidEmbedderId(String),
    #[error("all person ids are used up")]
    IdsExhausted,
    #[error("{op} {}: {error}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("renaming {} to {}: {error}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the folder {} for the gallery does not exist: create it, or point the config's \
         gallery path into an existing folder",
        dir.display()
    )]
    FolderMissing { dir: PathBuf },
    #[error("{} is not a file path", path.display())]
    InvalidPath { path: PathBuf },
    #[error("cannot use gallery file {}: {error}", path.display())]
    Unreadable { path: PathBuf, error: FormatError },
    #[error(
        "gallery {} was enrolled with embedder {found}, but the configured embedder is \
         {expected}: re-enroll everyone with the configured embedder (after moving the old \
         gallery aside), or configure the embedder and precision the gallery was made with",
        path.display()
    )]
    ForeignEmbedder {
        path: PathBuf,
        found: Box<EmbedderId>,
        expected: Box<EmbedderId>,
    },
    #[error("neither the gallery nor its backup can be used: main: {main}; backup: {backup}")]
    NoUsableCopy {
        main: Box<GalleryError>,
        backup: Box<GalleryError>,
    },
    #[error("the gallery is too large to save ({0} bytes)")]
    TooLarge(usize),
    #[error("encoding the gallery: {0}")]
    Encode(postcard::Error),
    #[error(
        "the gallery {} is in use by the running {holder}: change it through the service \
         (facegate does so when the service's socket answers: check [service] socket and that \
         you may use it), or stop the service first",
        path.display()
    )]
    Leased { path: PathBuf, holder: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "gallery {} is encrypted, but its key file {} does not exist: restore the key file \
         (mode 0600) from your copy, or set [security] key_file (or --key-file) to where it is; \
         facegate never replaces a gallery it cannot open",
        gallery.display(), key_file.display()
    )]
    KeyMissing { gallery: PathBuf, key_file: PathBuf },
    #[error(
        "key file {} is not the key gallery {} was encrypted with: restore the right key file, \
         or set [security] key_file (or --key-file) to it; facegate never replaces a gallery it \
         cannot open",
        key_file.display(), gallery.display()
    )]
    WrongKey { gallery: PathBuf, key_file: PathBuf },
    #[error(
        "key file {} is in the gallery's folder {}: a copy of that folder would carry the key \
         with it; set [security] key_file to a path outside it",
        key_file.display(), dir.display()
    )]
    KeyBesideGallery { key_file: PathBuf, dir: PathBuf },
    #[error("invalid login name {login:?}: {reason}")]
    InvalidLogin { login: String, reason: &'static str },
    #[error(
        "login {login:?} is already linked to {name:?} (id {id}): a login belongs to one person"
    )]
    LoginTaken {
        login: String,
        name: String,
        id: u32,
    },
}

/// Which embedder made a gallery's templates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbedderId {
    pub id: heapless::String<32>,
    pub model_sha256: [u8; 32],
    pub dim: u16,
}

impl EmbedderId {
    pub fn new(id: &str, model_sha256: [u8; 32], dim: u16) -> Result<Self, GalleryError> {
        let invalid = || GalleryError::InvalidEmbedderId(id.to_string());
        if id.is_empty() {
            return Err(invalid());
        }
        let id = heapless::String::try_from(id).map_err(|_| invalid())?;
        Ok(Self {
            id,
            model_sha256,
            dim,
        })
    }

    pub fn sha256_hex(&self) -> String {
        self.model_sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Display for EmbedderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 12 hex digits tell models apart in a message; `sha256_hex` has all 64.
        let hex = self.sha256_hex();
        write!(f, "{} (dim {}, sha256 {}…)", self.id, self.dim, &hex[..12])
    }
}

/// One face template: `values[i] * scale` approximates the unit embedding.
///
/// `values` is the embedding quantised with step `max|x| / 127`; `scale` is then `1 / |values|`,
/// so a decoded template has unit norm and `scale * dot(values, unit query)` is exactly its
/// cosine similarity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    scale: f32,
    values: Vec<i8>,
}

impl Template {
    /// Payload bytes of one template of `dim` values: the i8s and the f32 scale. On disk each
    /// template also carries its length as a varint (1 byte below dim 128, 2 below 16384).
    pub const fn bytes_for(dim: usize) -> usize {
        dim + std::mem::size_of::<f32>()
    }

    /// Quantise `embedding` (normalised first). A zero or non-finite input gives an all-zero
    /// template that matches nothing; [`Gallery`] rejects such input before it gets here.
    pub fn encode(embedding: &[f32]) -> Template {
        let max = embedding.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if max == 0.0 || !embedding.iter().all(|x| x.is_finite()) {
            return Template {
                scale: 0.0,
                values: vec![0; embedding.len()],
            };
        }
        // Dividing by max first keeps subnormal inputs from overflowing 127 / max.
        let values: Vec<i8> = embedding
            .iter()
            .map(|x| (x / max * 127.0).round() as i8)
            .collect();
        let norm = values
            .iter()
            .map(|&q| f64::from(q) * f64::from(q))
            .sum::<f64>()
            .sqrt();
        Template {
            scale: (1.0 / norm) as f32,
            values,
        }
    }

    /// Write the approximate unit embedding into `out`.
    ///
    /// # Panics
    /// If `out.len()` differs from [`Template::dim`].
    pub fn decode_into(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.values.len(), "template dim mismatch");
        for (o, &q) in out.iter_mut().zip(&self.values) {
            *o = f32::from(q) * self.scale;
        }
    }

    pub fn dim(&self) -> usize {
        self.values.len()
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// Cosine similarity with a unit-norm query of the same dim.
    fn similarity(&self, unit_query: &[f32]) -> f32 {
        self.scale * dot_i8_f32(&self.values, unit_query)
    }
}

/// Eight independent sums so the compiler can keep them in SIMD lanes. Compiled once more for
/// AVX2 and SSE4.1 and picked at run time (no FMA, so every build gives the same bits).
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn dot_i8_f32(q: &[i8], x: &[f32]) -> f32 {
    const LANES: usize = 8;
    let (qc, xc) = (q.chunks_exact(LANES), x.chunks_exact(LANES));
    let tail: f32 = qc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(&a, &b)| f32::from(a) * b)
        .sum();
    let mut acc = [0.0f32; LANES];
    for (qa, xa) in qc.zip(xc) {
        for ((s, &a), &b) in acc.iter_mut().zip(qa).zip(xa) {
            *s += f32::from(a) * b;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: u32,
    pub name: heapless::String<64>,
    pub created_unix: u64,
    pub templates: Vec<Template>,
    /// The Unix account this person logs in as (PAM login stations), at most one person each.
    pub user: Option<heapless::String<32>>,
}

/// Picks a person for [`Gallery::remove`] and [`Gallery::find`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Id(u32),
    /// Compared ignoring case and surrounding whitespace.
    Name(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Id(id) => write!(f, "id {id}"),
            Selector::Name(name) => write!(f, "name {name:?}"),
        }
    }
}

/// One person's best template against a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub person_id: u32,
    pub name: heapless::String<64>,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
    pub template_index: usize,
}

/// An open-set decision: a person is named only at or above the threshold.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    Known(Candidate),
    /// Nobody reached the threshold; `best` is the nearest person, for logs and tuning only.
    Unknown {
        best: Option<Candidate>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gallery {
    embedder: EmbedderId,
    next_id: u32,
    people: Vec<Person>,
}

impl Gallery {
    pub fn new(embedder: EmbedderId) -> Self {
        Self {
            embedder,
            next_id: 1,
            people: Vec::new(),
        }
    }

    pub fn embedder(&self) -> &EmbedderId {
        &self.embedder
    }

    pub fn dim(&self) -> usize {
        usize::from(self.embedder.dim)
    }

    /// The id the next enrolled person gets; it only grows, so ids are never reused.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Everyone enrolled, in enrolment order (so by increasing id).
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    pub fn template_count(&self) -> usize {
        self.people.iter().map(|p| p.templates.len()).sum()
    }

    pub fn find(&self, selector: &Selector) -> Option<&Person> {
        self.position(selector).map(|i| &self.people[i])
    }

    /// Enrol a new person; returns the new id. Nothing changes on error.
    pub fn add_person<E: AsRef<[f32]>>(
        &mut self,
        name: &str,
        embeddings: &[E],
        created_unix: u64,
    ) -> Result<u32, GalleryError> {
        let name = validate_name(name)?;
        if self.people.iter().any(|p| same_name(&p.name, &name)) {
            return Err(GalleryError::DuplicateName(name.to_string()));
        }
        let templates = self.encode_all(embeddings)?;
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or(GalleryError::IdsExhausted)?;
        self.people.push(Person {
            id,
            name,
            created_unix,
            templates,
            user: None,
        });
        Ok(id)
    }

    /// Add templates to an enrolled person; returns how many they now have.
    pub fn add_templates<E: AsRef<[f32]>>(
        &mut self,
        person_id: u32,
        embeddings: &[E],
    ) -> Result<usize, GalleryError> {
        let selector = Selector::Id(person_id);
        let index = self
            .position(&selector)
            .ok_or(GalleryError::NotFound(selector))?;
        let templates = self.encode_all(embeddings)?;
        let person = &mut self.people[index];
        person.templates.extend(templates);
        Ok(person.templates.len())
    }

    pub fn remove(&mut self, selector: &Selector) -> Result<Person, GalleryError> {
        let index = self
            .position(selector)
            .ok_or_else(|| GalleryError::NotFound(selector.clone()))?;
        Ok(self.people.remove(index))
    }

    /// Link `login` (a Unix account name) to the selected person, or unlink with `None`.
    /// A login already linked to someone else is refused; nothing changes on error.
    pub fn link_user(
        &mut self,
        selector: &Selector,
        login: Option<&str>,
    ) -> Result<(), GalleryError> {
        let index = self
            .position(selector)
            .ok_or_else(|| GalleryError::NotFound(selector.clone()))?;
        let login = login.map(validate_login).transpose()?;
        if let Some(login) = &login {
            if let Some(other) = self.find_by_user(login) {
                if other.id != self.people[index].id {
                    return Err(GalleryError::LoginTaken {
                        login: login.to_string(),
                        name: other.name.to_string(),
                        id: other.id,
                    });
                }
            }
        }
        self.people[index].user = login;
        Ok(())
    }

    /// The person linked to Unix account `login` (compared exactly: logins are case-sensitive).
    pub fn find_by_user(&self, login: &str) -> Option<&Person> {
        self.people
            .iter()
            .find(|p| p.user.as_deref() == Some(login))
    }

    /// 1:1: the best cosine of `query` to person `person_id`'s templates (None: no such person
    /// or no template). Face login compares only with the account's own person.
    pub fn similarity_to(
        &self,
        person_id: u32,
        query: &[f32],
    ) -> Result<Option<f32>, GalleryError> {
        let query = self.unit_query(query)?;
        Ok(self
            .people
            .iter()
            .find(|p| p.id == person_id)
            .and_then(|p| best_template(p, &query))
            .map(|(_, similarity)| similarity))
    }

    /// Remove everyone; `next_id` stays, so old ids still mean nobody.
    pub fn clear(&mut self) {
        self.people.clear();
    }

    /// Every person's best template against `query`, most similar first.
    pub fn search(&self, query: &[f32]) -> Result<Vec<Candidate>, GalleryError> {
        let query = self.unit_query(query)?;
        let mut out: Vec<Candidate> = self
            .people
            .iter()
            .filter_map(|p| best_template(p, &query).map(|best| candidate(p, best)))
            .collect();
        out.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.person_id.cmp(&b.person_id))
        });
        Ok(out)
    }

    /// The best person if their similarity is at least `threshold`, else `Unknown`.
    pub fn best_match(&self, query: &[f32], threshold: f32) -> Result<Match, GalleryError> {
        let query = self.unit_query(query)?;
        // One pass instead of sorting everyone; `>` keeps the lowest id on ties, as search does.
        let mut best: Option<(&Person, (usize, f32))> = None;
        for person in &self.people {
            if let Some(b) = best_template(person, &query) {
                if best.is_none_or(|(_, (_, s))| b.1 > s) {
                    best = Some((person, b));
                }
            }
        }
        let best = best.map(|(p, b)| candidate(p, b));
        Ok(match best {
            Some(c) if c.similarity >= threshold => Match::Known(c),
            best => Match::Unknown { best },
        })
    }

    /// Rebuild a decoded gallery, checking what `add_person` would have guaranteed.
    pub(crate) fn from_parts(
        embedder: EmbedderId,
        next_id: u32,
        people: Vec<Person>,
    ) -> Result<Self, String> {
        let dim = usize::from(embedder.dim);
        let mut names = HashSet::with_capacity(people.len());
        let mut logins = HashSet::new();
        let mut last_id = 0;
        for p in &people {
            if p.id <= last_id || p.id >= next_id {
                return Err(format!(
                    "person id {} out of order or not below next id",
                    p.id
                ));
            }
            last_id = p.id;
            if validate_name(&p.name).ok().as_ref() != Some(&p.name) {
                return Err(format!("invalid name {:?}", p.name));
            }
            if !names.insert(p.name.to_lowercase()) {
                return Err(format!("duplicate name {:?}", p.name));
            }
            if let Some(user) = &p.user {
                if validate_login(user).ok().as_ref() != Some(user) {
                    return Err(format!("invalid login {user:?}"));
                }
                if !logins.insert(user.as_str()) {
                    return Err(format!("login {user:?} linked twice"));
                }
            }
            if p.templates.is_empty() {
                return Err(format!("person {} has no templates", p.id));
            }
            if let Some(t) = p
                .templates
                .iter()
                .find(|t| t.dim() != dim || !t.scale.is_finite() || t.scale < 0.0)
            {
                return Err(format!(
                    "person {} has a template of dim {} scale {} (gallery dim {dim})",
                    p.id,
                    t.dim(),
                    t.scale
                ));
            }
        }
        Ok(Self {
            embedder,
            next_id,
            people,
        })
    }

    fn position(&self, selector: &Selector) -> Option<usize> {
        match selector {
            Selector::Id(id) => self.people.iter().position(|p| p.id == *id),
            Selector::Name(name) => {
                let name = name.trim();
                self.people.iter().position(|p| same_name(&p.name, name))
            }
        }
    }

    fn encode_all<E: AsRef<[f32]>>(&self, embeddings: &[E]) -> Result<Vec<Template>, GalleryError> {
        if embeddings.is_empty() {
            return Err(GalleryError::NoTemplates);
        }
        // Check everything before encoding anything, so a bad embedding changes nothing.
        for e in embeddings {
            self.check_embedding(e.as_ref())?;
        }
        Ok(embeddings
            .iter()
            .map(|e| Template::encode(e.as_ref()))
            .collect())
    }

    fn check_embedding(&self, e: &[f32]) -> Result<(), GalleryError> {
        if e.len() != self.dim() {
            return Err(GalleryError::WrongDim {
                got: e.len(),
                expected: self.dim(),
            });
        }
        if !e.iter().all(|x| x.is_finite()) {
            return Err(GalleryError::BadEmbedding("contains NaN or infinity"));
        }
        if e.iter().all(|&x| x == 0.0) {
            return Err(GalleryError::BadEmbedding("is all zeros"));
        }
        Ok(())
    }

    fn unit_query(&self, query: &[f32]) -> Result<Vec<f32>, GalleryError> {
        self.check_embedding(query)?;
        // f64 so that large but finite values cannot overflow the sum of squares.
        let norm = query
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        Ok(query
            .iter()
            .map(|&x| (f64::from(x) / norm) as f32)
            .collect())
    }
}

/// `(template index, similarity)` of the person's best template; ties keep the first.
fn best_template(person: &Person, unit_query: &[f32]) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (i, t) in person.templates.iter().enumerate() {
        let s = t.similarity(unit_query);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best
}

fn candidate(person: &Person, (template_index, similarity): (usize, f32)) -> Candidate {
    Candidate {
        person_id: person.id,
        name: person.name.clone(),
        similarity,
        template_index,
    }
}

/// Trim `name` and check it is 1..=64 bytes of UTF-8 with no control characters.
pub fn validate_name(name: &str) -> Result<heapless::String<64>, GalleryError> {
    let invalid = |reason| GalleryError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("it contains a control character"));
    }
    heapless::String::try_from(trimmed).map_err(|_| invalid("it is longer than 64 bytes of UTF-8"))
}

/// Check a Unix login name as POSIX's portable user names and shadow-utils have them: 1..=32
/// bytes of ASCII letters, digits, `.`, `_` and `-`, not starting with `-`, not all digits (it
/// would read as a uid), optionally ending in `$` (Samba machine accounts).
pub fn validate_login(login: &str) -> Result<heapless::String<32>, GalleryError> {
    let invalid = |reason| GalleryError::InvalidLogin {
        login: login.to_string(),
        reason,
    };
    let core = login.strip_suffix('$').unwrap_or(login);
    if core.is_empty() {
        return Err(invalid("it is empty"));
    }
    if login.len() > MAX_LOGIN_BYTES {
        return Err(invalid("it is longer than 32 bytes"));
    }
    if !core
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' (and a final '$') are allowed",
        ));
    }
    if core.starts_with('-') {
        return Err(invalid("it starts with '-'"));
    }
    if core.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("it is all digits (it would read as a uid)"));
    }
    if core == "." || core == ".." {
        return Err(invalid("it is '.' or '..'"));
    }
    Ok(heapless::String::try_from(login).expect("checked to be at most 32 bytes"))
}

/// Case-insensitive equality without allocating, for the duplicate check.
fn same_name(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// SplitMix64: deterministic test vectors without a rand dependency.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal via Box-Muller.
        pub fn gaussian(&mut self) -> f32 {
            let (u, v) = (self.unit(), self.unit());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        }

        /// A uniformly random direction (an isotropic gaussian, normalised).
        pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
            let v: Vec<f32> = (0..dim).map(|_| self.gaussian()).collect();
            normalised(&v)
        }
    }

    pub fn normalised(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (cosine_norm(a) * cosine_norm(b))
    }

    fn cosine_norm(a: &[f32]) -> f32 {
        a.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    pub fn embedder(dim: u16) -> EmbedderId {
        EmbedderId::new("test-embedder", [7; 32], dim).unwrap()
    }

    /// A gallery of `people` people with `per_person` random templates each.
    pub fn random_gallery(seed: u64, dim: u16, people: usize, per_person: usize) -> Gallery {
        let mut rng = Rng::new(seed);
        let mut g = Gallery::new(embedder(dim));
        for i in 0..people {
            let t: Vec<Vec<f32>> = (0..per_person)
                .map(|_| rng.unit_vector(usize::from(dim)))
                .collect();
            g.add_person(&format!("person {i}"), &t, 1_700_000_000 + i as u64)
                .unwrap();
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    /// A unit vector along axis `i`, tilted towards axis `j` by `t`.
    fn axis(dim: usize, i: usize, j: usize, t: f32) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[i] = 1.0;
        v[j] += t;
        normalised(&v)
    }

    #[test]
    fn quantisation_keeps_direction_for_dims_192_and_128() {
        for dim in [192usize, 128] {
            let mut rng = Rng::new(dim as u64);
            let mut worst = 1.0f32;
            let mut decoded = vec![0.0; dim];
            for _ in 0..2000 {
                let v = rng.unit_vector(dim);
                let t = Template::encode(&v);
                assert_eq!(t.dim(), dim);
                t.decode_into(&mut decoded);
                worst = worst.min(cosine(&v, &decoded));
                // The stored scale makes the decoded template unit length.
                let norm = decoded.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            }
            assert!(worst >= 0.9999, "dim {dim}: worst cosine {worst}");
        }
    }

    #[test]
    fn encode_normalises_first_and_bytes_per_template() {
        let mut rng = Rng::new(1);
        let v = rng.unit_vector(192);
        let scaled: Vec<f32> = v.iter().map(|x| x * 37.5).collect();
        assert_eq!(Template::encode(&v), Template::encode(&scaled));
        assert_eq!(Template::bytes_for(192), 196);
        assert_eq!(Template::bytes_for(128), 132);
        // Degenerate input gives a template that matches nothing rather than NaNs.
        let zero = Template::encode(&[0.0; 8]);
        assert_eq!(zero.similarity(&normalised(&[1.0; 8])), 0.0);
        assert_eq!(Template::encode(&[f32::NAN, 1.0]).scale(), 0.0);
    }

    #[test]
    fn similarity_is_the_cosine_with_the_decoded_template() {
        let mut rng = Rng::new(2);
        let mut decoded = vec![0.0; 192];
        for _ in 0..100 {
            let (a, q) = (rng.unit_vector(192), rng.unit_vector(192));
            let t = Template::encode(&a);
            t.decode_into(&mut decoded);
            assert!((t.similarity(&q) - cosine(&decoded, &q)).abs() < 1e-5);
        }
    }

    #[test]
    fn dot_handles_lengths_that_are_not_multiples_of_eight() {
        for n in [0usize, 1, 7, 8, 9, 17, 128, 131] {
            let q: Vec<i8> = (0..n).map(|i| (i as i8).wrapping_mul(37)).collect();
            let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            let want: f32 = q.iter().zip(&x).map(|(&a, b)| f32::from(a) * b).sum();
            assert!((dot_i8_f32(&q, &x) - want).abs() <= 1e-3 * want.abs().max(1.0));
        }
    }

    #[test]
    fn search_takes_each_persons_best_template_and_sorts_best_first() {
        let dim = 16;
        let mut g = Gallery::new(embedder(dim as u16));
        // The query is axis 0. Ann's second template is nearest overall, Bob's first is his
        // best, Cy has nothing near it.
        let ann = g
            .add_person("Ann", &[axis(dim, 5, 0, 0.1), axis(dim, 0, 1, 0.05)], 1)
            .unwrap();
        let bob = g
            .add_person(
                "Bob",
                &[
                    axis(dim, 0, 2, 0.5),
                    axis(dim, 3, 0, 0.2),
                    axis(dim, 4, 0, 0.1),
                ],
                2,
            )
            .unwrap();
        let cy = g.add_person("Cy", &[axis(dim, 7, 8, 0.3)], 3).unwrap();
        let found = g.search(&axis(dim, 0, 0, 0.0)).unwrap();
        let order: Vec<(u32, usize)> = found
            .iter()
            .map(|c| (c.person_id, c.template_index))
            .collect();
        assert_eq!(order, vec![(ann, 1), (bob, 0), (cy, 0)]);
        assert!(found[0].similarity > 0.99 && found[0].similarity <= 1.0 + 1e-6);
        // Two non-zero values quantise coarsely (127, 64): within 0.5% of 1/sqrt(1.25).
        assert!((found[1].similarity - 1.0 / 1.25f32.sqrt()).abs() < 5e-3);
        assert!(found[2].similarity.abs() < 1e-6);
        assert_eq!(found[0].name.as_str(), "Ann");
        // The query's length does not matter.
        let scaled = g.search(&[vec![9.0], vec![0.0; dim - 1]].concat()).unwrap();
        assert_eq!(scaled, found);
    }

    #[test]
    fn open_set_decision() {
        let dim = 8;
        let mut g = Gallery::new(embedder(dim as u16));
        assert_eq!(
            g.best_match(&axis(dim, 0, 0, 0.0), 0.5).unwrap(),
            Match::Unknown { best: None }
        );
        g.add_person("Ann", &[axis(dim, 0, 1, 1.0)], 0).unwrap();
        g.add_person("Bob", &[axis(dim, 2, 3, 0.1)], 0).unwrap();
        let query = axis(dim, 0, 0, 0.0);
        let best = g.search(&query).unwrap().remove(0);
        assert_eq!(best.name.as_str(), "Ann");
        // cos 45° ≈ 0.707: below 0.8 nobody is named, but the nearest is still reported.
        assert_eq!(
            g.best_match(&query, 0.8).unwrap(),
            Match::Unknown {
                best: Some(best.clone())
            }
        );
        assert_eq!(
            g.best_match(&query, 0.7).unwrap(),
            Match::Known(best.clone())
        );
        // The threshold itself counts as a match; NaN never does.
        assert_eq!(
            g.best_match(&query, best.similarity).unwrap(),
            Match::Known(best.clone())
        );
        assert!(matches!(
            g.best_match(&query, f32::NAN).unwrap(),
            Match::Unknown { best: Some(_) }
        ));
    }

    #[test]
    fn best_match_agrees_with_search_on_a_random_gallery() {
        let g = random_gallery(3, 64, 200, 3);
        let mut rng = Rng::new(4);
        for _ in 0..20 {
            let q = rng.unit_vector(64);
            let top = g.search(&q).unwrap().remove(0);
            assert_eq!(g.best_match(&q, -1.0).unwrap(), Match::Known(top));
        }
    }

    #[test]
    fn bad_queries_are_errors() {
        let g = random_gallery(5, 32, 3, 1);
        assert!(matches!(
            g.search(&[0.5; 31]),
            Err(GalleryError::WrongDim {
                got: 31,
                expected: 32
            })
        ));
        assert!(matches!(
            g.best_match(&[0.0; 32], 0.5),
            Err(GalleryError::BadEmbedding(_))
        ));
        let mut nan = vec![0.1; 32];
        nan[3] = f32::NAN;
        assert!(matches!(g.search(&nan), Err(GalleryError::BadEmbedding(_))));
    }

    #[test]
    fn ids_are_never_reused() {
        let mut g = random_gallery(6, 8, 3, 1);
        let ids: Vec<u32> = g.people().iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let removed = g.remove(&Selector::Id(3)).unwrap();
        assert_eq!(removed.name.as_str(), "person 2");
        let v = [axis(8, 0, 0, 0.0)];
        assert_eq!(g.add_person("New", &v, 0).unwrap(), 4);
        g.clear();
        assert!(g.is_empty());
        assert_eq!(g.add_person("Newer", &v, 0).unwrap(), 5);
        assert_eq!(g.next_id(), 6);
    }

    #[test]
    fn remove_by_name_ignores_case_and_reports_missing_people() {
        let mut g = random_gallery(7, 8, 2, 1);
        let removed = g.remove(&Selector::Name("  PERSON 0 ".into())).unwrap();
        assert_eq!(removed.id, 1);
        let err = g.remove(&Selector::Name("person 0".into())).unwrap_err();
        assert!(matches!(err, GalleryError::NotFound(_)));
        assert_eq!(err.to_string(), "no enrolled person with name \"person 0\"");
        assert!(matches!(
            g.remove(&Selector::Id(1)),
            Err(GalleryError::NotFound(Selector::Id(1)))
        ));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn duplicate_names_are_rejected_ignoring_case() {
        let mut g = Gallery::new(embedder(8));
        let v = [axis(8, 0, 0, 0.0)];
        g.add_person("Åsa Berg", &v, 0).unwrap();
        for dup in ["åsa berg", " ÅSA BERG\t", "Åsa Berg"] {
            assert!(
                matches!(
                    g.add_person(dup, &v, 0),
                    Err(GalleryError::DuplicateName(_))
                ),
                "{dup:?}"
            );
        }
        assert_eq!(g.len(), 1);
        assert_eq!(g.next_id(), 2);
    }

    #[test]
    fn invalid_names_are_rejected_with_a_reason() {
        let mut g = Gallery::new(embedder(8));
        let v = [axis(8, 0, 0, 0.0)];
        let cases = [
            ("", "empty"),
            ("   \t ", "empty"),
            ("Ann\nBob", "control"),
            ("Ann\u{7}", "control"),
            ("Ann\u{9b}", "control"),
            (&"x".repeat(65), "longer than 64"),
            (&"é".repeat(33), "longer than 64"),
        ];
        for (name, reason) in cases {
            let err = g.add_person(name, &v, 0).unwrap_err();
            assert!(matches!(err, GalleryError::InvalidName { .. }), "{name:?}");
            assert!(err.to_string().contains(reason), "{err}");
        }
        assert!(g.is_empty());
        // Exactly 64 bytes is fine, multi-byte or not, and names are stored trimmed.
        g.add_person(&"x".repeat(64), &v, 0).unwrap();
        g.add_person(&"é".repeat(32), &v, 0).unwrap();
        let id = g.add_person("  Zoë Ng  ", &v, 0).unwrap();
        assert_eq!(g.find(&Selector::Id(id)).unwrap().name.as_str(), "Zoë Ng");
    }

    #[test]
    fn embeddings_are_checked_before_anything_changes() {
        let mut g = Gallery::new(embedder(8));
        let good = axis(8, 0, 0, 0.0);
        let none: [Vec<f32>; 0] = [];
        assert!(matches!(
            g.add_person("Ann", &none, 0),
            Err(GalleryError::NoTemplates)
        ));
        assert!(matches!(
            g.add_person("Ann", &[good.clone(), vec![1.0; 7]], 0),
            Err(GalleryError::WrongDim { got: 7, .. })
        ));
        let mut inf = good.clone();
        inf[2] = f32::INFINITY;
        assert!(matches!(
            g.add_person("Ann", &[good.clone(), inf], 0),
            Err(GalleryError::BadEmbedding(_))
        ));
        assert!(g.is_empty());
        assert_eq!(g.next_id(), 1);

        // Slices of slices work as well as slices of Vecs.
        let id = g.add_person("Ann", &[good.as_slice()], 0).unwrap();
        assert!(g.add_templates(id, &[vec![0.0; 8]]).is_err());
        assert_eq!(g.add_templates(id, &[good.as_slice(), &good]).unwrap(), 3);
        assert_eq!(g.template_count(), 3);
        assert!(matches!(
            g.add_templates(99, &[good]),
            Err(GalleryError::NotFound(Selector::Id(99)))
        ));
    }

    #[test]
    fn logins_are_validated_and_linked_to_one_person_at_most() {
        let mut g = random_gallery(20, 8, 3, 1);
        for bad in [
            "",
            "-ann",
            "1234",
            "ann smith",
            "änn",
            "a/b",
            "..",
            &"a".repeat(33),
        ] {
            assert!(
                matches!(
                    g.link_user(&Selector::Id(1), Some(bad)),
                    Err(GalleryError::InvalidLogin { .. })
                ),
                "{bad:?}"
            );
        }
        for good in ["ann", "Ann.Smith", "_svc", "host$", "a-1", &"a".repeat(32)] {
            assert_eq!(validate_login(good).unwrap().as_str(), good);
        }
        g.link_user(&Selector::Id(1), Some("ann")).unwrap();
        assert_eq!(g.find_by_user("ann").unwrap().id, 1);
        assert!(g.find_by_user("Ann").is_none(), "logins are case-sensitive");
        let err = g
            .link_user(&Selector::Name("person 1".into()), Some("ann"))
            .unwrap_err();
        assert!(
            matches!(err, GalleryError::LoginTaken { id: 1, .. }),
            "{err}"
        );
        // Re-linking the same person is fine; unlinking frees the login.
        g.link_user(&Selector::Id(1), Some("ann")).unwrap();
        g.link_user(&Selector::Id(1), None).unwrap();
        g.link_user(&Selector::Id(2), Some("ann")).unwrap();
        assert_eq!(g.find_by_user("ann").unwrap().id, 2);
        assert!(g.people()[0].user.is_none());
        // A gallery whose contents link one login twice is refused on load.
        let mut people = g.people().to_vec();
        people[0].user = people[1].user.clone();
        assert!(Gallery::from_parts(g.embedder().clone(), g.next_id(), people).is_err());
    }

    #[test]
    fn embedder_ids_are_bounded() {
        assert!(EmbedderId::new("", [0; 32], 8).is_err());
        assert!(EmbedderId::new(&"m".repeat(33), [0; 32], 8).is_err());
        let e = EmbedderId::new(&"m".repeat(32), [0xab; 32], 512).unwrap();
        assert_eq!(
            e.to_string(),
            format!("{} (dim 512, sha256 abababababab…)", "m".repeat(32))
        );
    }

    /// 10,000 people × 5 templates at dim 192. Timing is printed, not asserted: run with
    /// `cargo test --release -- --ignored --nocapture search_scale`.
    #[test]
    #[ignore]
    fn search_scale() {
        let g = random_gallery(8, 192, 10_000, 5);
        let mut rng = Rng::new(9);
        let queries: Vec<Vec<f32>> = (0..50).map(|_| rng.unit_vector(192)).collect();
        let start = std::time::Instant::now();
        for q in &queries {
            assert!(matches!(
                g.best_match(q, 0.9).unwrap(),
                Match::Unknown { .. }
            ));
        }
        let per_match = start.elapsed() / queries.len() as u32;
        let start = std::time::Instant::now();
        for q in &queries {
            assert_eq!(g.search(q).unwrap().len(), 10_000);
        }
        let per_search = start.elapsed() / queries.len() as u32;
        println!("best_match {per_match:?}, search {per_search:?} per query");
    }
}

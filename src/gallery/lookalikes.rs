//! Look-alikes: enrolled people (or a person being enrolled) whose templates score at or above
//! the operating point against someone else. Each such pair is a door that opens for the wrong
//! person, so enrolment warns (or refuses, `--strict`) and `facegate doctor` lists them.

use super::{Gallery, GalleryError, Person};

/// Two people who look alike to the embedder: the best similarity over their templates.
#[derive(Clone, Debug, PartialEq)]
pub struct LookAlike {
    pub a: (u32, String),
    pub b: (u32, String),
    pub similarity: f32,
}

fn decoded(person: &Person) -> Vec<Vec<f32>> {
    person
        .templates
        .iter()
        .map(|t| {
            let mut v = vec![0.0; t.dim()];
            t.decode_into(&mut v);
            v
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Every pair of enrolled people whose closest templates reach `threshold`, most alike first.
/// Quadratic in the templates: about a second for 2,000 templates of 192 values.
pub fn enrolled_pairs(gallery: &Gallery, threshold: f32) -> Vec<LookAlike> {
    let people = gallery.people();
    let templates: Vec<Vec<Vec<f32>>> = people.iter().map(decoded).collect();
    let mut out = Vec::new();
    for i in 0..people.len() {
        for j in i + 1..people.len() {
            let best = templates[i]
                .iter()
                .flat_map(|a| templates[j].iter().map(move |b| dot(a, b)))
                .fold(f32::NEG_INFINITY, f32::max);
            if best >= threshold {
                out.push(LookAlike {
                    a: (people[i].id, people[i].name.to_string()),
                    b: (people[j].id, people[j].name.to_string()),
                    similarity: best,
                });
            }
        }
    }
    out.sort_by(|x, y| y.similarity.total_cmp(&x.similarity));
    out
}

/// The enrolled people (other than `except`) that any of `embeddings` reaches `threshold`
/// against: `(id, name, best similarity)`, most alike first.
pub fn matches_for<E: AsRef<[f32]>>(
    gallery: &Gallery,
    embeddings: &[E],
    threshold: f32,
    except: Option<u32>,
) -> Result<Vec<(u32, String, f32)>, GalleryError> {
    let mut best: Vec<(u32, String, f32)> = Vec::new();
    for e in embeddings {
        for c in gallery.search(e.as_ref())? {
            if c.similarity < threshold {
                break; // sorted, most similar first
            }
            if Some(c.person_id) == except {
                continue;
            }
            match best.iter_mut().find(|(id, _, _)| *id == c.person_id) {
                Some(b) => b.2 = b.2.max(c.similarity),
                None => best.push((c.person_id, c.name.to_string(), c.similarity)),
            }
        }
    }
    best.sort_by(|x, y| y.2.total_cmp(&x.2));
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{embedder, Rng};
    use super::*;

    #[test]
    fn finds_the_pair_that_looks_alike_and_nobody_else() {
        let mut rng = Rng::new(5);
        let mut g = Gallery::new(embedder(64));
        let base = rng.unit_vector(64);
        // A twin: the same direction plus a little noise.
        let twin: Vec<f32> = base.iter().map(|x| x + 0.02 * rng.gaussian()).collect();
        g.add_person("ann", std::slice::from_ref(&base), 0).unwrap();
        g.add_person("bea", &[twin], 0).unwrap();
        for name in ["cy", "dee", "eve"] {
            g.add_person(name, &[rng.unit_vector(64)], 0).unwrap();
        }
        let pairs = enrolled_pairs(&g, 0.6);
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        assert_eq!(
            (pairs[0].a.1.as_str(), pairs[0].b.1.as_str()),
            ("ann", "bea")
        );
        assert!(pairs[0].similarity > 0.9);

        let found = matches_for(&g, std::slice::from_ref(&base), 0.6, None).unwrap();
        let names: Vec<&str> = found.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, ["ann", "bea"]);
        // Adding templates to ann herself: only bea is a look-alike.
        let found = matches_for(&g, &[base], 0.6, Some(1)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, "bea");
    }
}

//! Open-set 1:N as the gallery grows: for each gallery size N, enrol the first N people of an
//! enrolment list, derive the threshold for that gallery with the configured rule, and count
//! strangers named (FPIR) and enrolled people named correctly (TPIR). A probe of a listed
//! person who is not among the first N is a stranger to that gallery, as at a real door.

use std::collections::HashSet;

use serde::Serialize;

use crate::gallery::operating_point::Rule;
use crate::gallery::{EmbedderId, Gallery, GalleryError, Match};

/// One gallery size of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    pub people: usize,
    pub templates: usize,
    pub threshold: f32,
    /// The rate per attempt the rule promises (derived rule only).
    pub target: Option<f64>,
    pub mated: usize,
    pub strangers: usize,
    pub tpir: Option<f64>,
    pub fpir: Option<f64>,
    pub false_accepts: usize,
}

/// `pool`: people in enrolment order with their embeddings (people without any are skipped);
/// `probes`: label and embedding (`None`: no face found). Sizes above the pool are dropped.
pub fn sweep(
    embedder: &EmbedderId,
    pool: &[(String, Vec<Vec<f32>>)],
    probes: &[(String, Option<Vec<f32>>)],
    sizes: &[usize],
    rule: &Rule,
) -> Result<Vec<SizeRow>, GalleryError> {
    let pool: Vec<&(String, Vec<Vec<f32>>)> = pool.iter().filter(|(_, e)| !e.is_empty()).collect();
    let mut rows = Vec::new();
    for &size in sizes.iter().filter(|&&s| s >= 1 && s <= pool.len()) {
        let mut gallery = Gallery::new(embedder.clone());
        for (label, embeddings) in &pool[..size] {
            gallery.add_person(label, embeddings, 0)?;
        }
        let enrolled: HashSet<&str> = pool[..size].iter().map(|(l, _)| l.as_str()).collect();
        let op = rule.at(gallery.template_count());
        let (mut mated, mut strangers, mut hits, mut false_accepts) = (0, 0, 0, 0);
        for (label, embedding) in probes {
            let is_mated = enrolled.contains(label.as_str());
            let named = match embedding {
                Some(e) => match gallery.best_match(e, op.threshold)? {
                    Match::Known(c) => Some(c.name),
                    Match::Unknown { .. } => None,
                },
                None => None,
            };
            if is_mated {
                mated += 1;
                hits += usize::from(named.is_some_and(|n| n.eq_ignore_ascii_case(label)));
            } else {
                strangers += 1;
                false_accepts += usize::from(named.is_some());
            }
        }
        let rate = |k: usize, n: usize| (n > 0).then(|| k as f64 / n as f64);
        rows.push(SizeRow {
            people: size,
            templates: gallery.template_count(),
            threshold: op.threshold,
            target: op.target,
            mated,
            strangers,
            tpir: rate(hits, mated),
            fpir: rate(false_accepts, strangers),
            false_accepts,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::testutil::{embedder, Rng};

    #[test]
    fn probes_of_people_left_out_are_strangers() {
        let mut rng = Rng::new(9);
        let faces: Vec<Vec<f32>> = (0..4).map(|_| rng.unit_vector(32)).collect();
        let pool: Vec<(String, Vec<Vec<f32>>)> = faces
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("p{i}"), vec![f.clone()]))
            .collect();
        let probes: Vec<(String, Option<Vec<f32>>)> = faces
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("p{i}"), Some(f.clone())))
            .chain([("UNKNOWN".to_string(), None)])
            .collect();
        let rows = sweep(&embedder(32), &pool, &probes, &[1, 3, 9], &Rule::Fixed(0.9)).unwrap();
        assert_eq!(rows.len(), 2, "size 9 is above the pool");
        assert_eq!((rows[0].mated, rows[0].strangers), (1, 4));
        assert_eq!((rows[1].mated, rows[1].strangers), (3, 2));
        assert_eq!(rows[1].tpir, Some(1.0));
        assert_eq!(rows[1].fpir, Some(0.0));
    }
}

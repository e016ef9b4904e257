//! Gallery load time with and without encryption: a gallery of N people (default 1,000) with 5
//! templates each, saved as the plain format 1 and as the sealed format 2, each loaded many
//! times through `GalleryStore::load` (read, checksum, decrypt, decode, check). Run in release:
//!
//!     cargo run --release --example gallery_load -- [PEOPLE] [DIM] [RUNS]

use std::time::{Duration, Instant};

use facegate::gallery::store::encode_plain_v1;
use facegate::gallery::{EmbedderId, Gallery, GalleryStore};

/// SplitMix64: a deterministic gallery without a rand dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (people, dim, runs) = (arg(1, 1000), arg(2, 192), arg(3, 50));
    let embedder = EmbedderId::new("bench", [1; 32], dim as u16)?;
    let mut g = Gallery::new(embedder.clone());
    let mut rng = 1u64;
    for i in 0..people {
        let templates: Vec<Vec<f32>> = (0..5)
            .map(|_| {
                (0..dim)
                    .map(|_| (next(&mut rng) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect()
            })
            .collect();
        g.add_person(&format!("person {i}"), &templates, 1_700_000_000)?;
    }
    let gallery_dir = tempfile::tempdir()?;
    let key_dir = tempfile::tempdir()?;
    let key = key_dir.path().join("gallery.key");

    let sealed = GalleryStore::new(gallery_dir.path().join("sealed.fg")).with_key_file(&key);
    sealed.save(&g)?;
    let plain_path = gallery_dir.path().join("plain.fg");
    std::fs::write(&plain_path, encode_plain_v1(&g)?)?;
    // No key file: the plain gallery loads without reading one, as before encryption.
    let plain = GalleryStore::new(&plain_path).with_key_file(key_dir.path().join("none.key"));

    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (t, store) in times.iter_mut().zip([&plain, &sealed]) {
            let start = Instant::now();
            let loaded = store.load(&embedder)?;
            t.push(start.elapsed());
            assert_eq!(loaded.gallery.len(), people);
        }
    }
    let [plain_t, sealed_t] = times;
    let (p, s) = (median(plain_t), median(sealed_t));
    println!("{people} people x 5 templates, dim {dim}, median of {runs} loads (page cache warm):");
    println!(
        "  plain (format 1):  {:>7.2} ms  ({} bytes)",
        p.as_secs_f64() * 1e3,
        std::fs::metadata(&plain_path)?.len()
    );
    println!(
        "  sealed (format 2): {:>7.2} ms  ({} bytes)",
        s.as_secs_f64() * 1e3,
        std::fs::metadata(sealed.path())?.len()
    );
    println!(
        "  encryption adds {:.2} ms ({:.0}%)",
        (s.as_secs_f64() - p.as_secs_f64()) * 1e3,
        (s.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}

//! Speed, measured: per-stage latency of the real pipeline ([`bench`]) and the same pipeline
//! against onnxruntime on the same ONNX files ([`compare`]).

use anyhow::Result;

use crate::gallery::Gallery;

pub mod bench;
pub mod compare;

/// The board or CPU: the device-tree model on a Pi ("Raspberry Pi 4 Model B Rev 1.4"), else the
/// CPU model name, with the core count.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let board = std::fs::read_to_string("/proc/device-tree/model")
        .ok()
        .map(|s| s.trim_end_matches('\0').trim().to_string())
        .filter(|s| !s.is_empty());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
    let name = board
        .or(cpu)
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{name}, {cores} cores")
}

/// Peak resident memory of this process (Linux `VmHWM`), in kB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A gallery of random unit vectors: search cost depends on its size, not on who is in it.
pub fn synthetic_gallery(
    pipeline: &crate::vision::pipeline::Pipeline,
    people: usize,
) -> Result<Gallery> {
    let dim = pipeline.embedder().dim();
    let mut gallery = Gallery::new(pipeline.gallery_id()?);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift: deterministic filler, no need for a crypto RNG here
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for p in 0..people {
        let templates: Vec<Vec<f32>> = (0..5).map(|_| (0..dim).map(|_| next()).collect()).collect();
        gallery.add_person(&format!("person-{p}"), &templates, 0)?;
    }
    Ok(gallery)
}

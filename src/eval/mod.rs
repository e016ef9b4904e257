//! Measuring accuracy: the protocols (verification pairs, open-set 1:N, conditions, heatmap),
//! threshold calibration, metrics (what the scores mean), the embedding cache that makes re-runs
//! fast, and plots.

pub mod cache;
pub mod calibrate;
pub mod liveness;
pub mod metrics;
pub mod open_set;
pub mod pairs;
pub mod plot;
pub mod protocols;

/// The progress bar every evaluation shows while it embeds images.
pub fn embedding_bar(images: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(images as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} images, {eta} left")
            .expect("valid template"),
    );
    bar.set_message("embedding");
    bar
}
